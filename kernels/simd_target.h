// The SIMD width quantlab's Highway kernels dispatch to on this machine. Sums in the kernels are grouped
// by lane, so results differ between widths in the last bits (never between thread counts): numbers
// pinned bit for bit (tests/data/golden) are pinned per width. Defined in kernels/gemm.cc beside
// GemmTarget(), the target's name. LimitSimdTarget caps the dispatch, so that a machine of one width can
// compute another width's numbers bit for bit (QL_SIMD=avx2 on an AVX-512 machine gives an AVX2
// machine's results).
#pragma once

#include <string_view>

#include "kernels/status.h"

namespace ql {

// Float lanes of the dispatched target: 16 on AVX-512, 8 on AVX2, 4 on SSE4, 1 on the scalar target.
int SimdFloatLanes();

// Caps every Highway dispatch of the process at `name`: "native" (the widest this CPU has), "avx2"
// (8 float lanes) or "sse4" (4). A cap above the CPU's widest target changes nothing. Call before the
// work whose numbers matter; it applies to every later dispatch on every thread.
Status LimitSimdTarget(std::string_view name);

// The QL_SIMD environment variable's value passed to LimitSimdTarget (unset or empty: native); the
// error names the variable.
Status LimitSimdTargetFromEnvironment();

}  // namespace ql
