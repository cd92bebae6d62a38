// OpenBLAS thread pinning and the machine description recorded with every cell (see blas.h).
#include "harness/util/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string_view>

#include <fmt/format.h>

#include "kernels/gemm.h"
#include "kernels/simd_target.h"

namespace ql {

void UseOneBlasThread() { openblas_set_num_threads(1); }

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name && *name ? name : "unknown";
}

std::string BlasFallbackNote(const std::string& core, int simd_float_lanes) {
  // OpenBLAS's generic x86 kernel sets (its "cpuid" fallbacks), none with AVX.
  static constexpr std::array<std::string_view, 11> kGeneric = {"Prescott", "Core2",    "Penryn", "Dunnington",
                                                                "Nehalem",  "Atom",     "Katmai", "Coppermine",
                                                                "Northwood", "Banias",  "unknown"};
  if (simd_float_lanes < 8) return "";
  for (std::string_view g : kGeneric)
    if (core == g)
      return fmt::format(
          "note: OpenBLAS did not recognise this CPU and runs its {} kernels (no AVX) on a machine with {}-float "
          "SIMD: QLoRA's LoftQ and the rotations use them (GPTQ, GPTAQ and the forward pass do not), so they run slower and "
          "their numbers are those of OpenBLAS {} (recorded with every cell); OPENBLAS_CORETYPE=Haswell in the "
          "environment picks its AVX2 kernels\n",
          core, simd_float_lanes, core);
  return "";
}

std::string BlasFallbackNote() { return BlasFallbackNote(BlasCoreName(), SimdFloatLanes()); }

std::string MachineDescription() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
  return fmt::format("{} · {} f32x{} · OpenBLAS {}", host, GemmTarget(), SimdFloatLanes(), BlasCoreName());
}

}  // namespace ql
