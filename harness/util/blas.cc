// OpenBLAS thread pinning and the machine description recorded with every cell (see blas.h).
#include "harness/util/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "kernels/gemm.h"
#include "kernels/simd_target.h"

namespace ql {

void UseOneBlasThread() { openblas_set_num_threads(1); }

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name && *name ? name : "unknown";
}

std::string MachineDescription() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
  return fmt::format("{} · {} f32x{} · OpenBLAS {}", host, GemmTarget(), SimdFloatLanes(), BlasCoreName());
}

}  // namespace ql
