// The SIMD width quantlab's Highway kernels dispatch to on this machine. Sums in the kernels are grouped
// by lane, so results differ between widths in the last bits (never between thread counts): numbers
// pinned bit for bit (tests/data/golden) are pinned per width. Defined in kernels/gemm.cc beside
// GemmTarget(), the target's name.
#pragma once

namespace ql {

// Float lanes of the dispatched target: 16 on AVX-512, 8 on AVX2, 4 on SSE4, 1 on the scalar target.
int SimdFloatLanes();

}  // namespace ql
