// The process-wide thread count of kernels/parallel.h.
#include "kernels/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

namespace ql {
namespace {

std::atomic<int> g_override{0};
thread_local int t_item_depth = 0;  // > 0 while this thread runs a ParallelFor item

int FromEnvironment() {
  for (const char* name : {"QL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end == '\0' && n > 0) return int(std::min(n, 1024L));
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? int(hw) : 1;
}

}  // namespace

ParallelItemScope::ParallelItemScope() { ++t_item_depth; }
ParallelItemScope::~ParallelItemScope() { --t_item_depth; }

int NumThreads() {
  if (t_item_depth > 0) return 1;
  const int o = g_override.load(std::memory_order_relaxed);
  if (o > 0) return o;
  static const int env = FromEnvironment();
  return env;
}

void SetNumThreads(int n) { g_override.store(n > 0 ? n : 0, std::memory_order_relaxed); }

}  // namespace ql
