// quantlab's thread count and its fork-join loop: the one place kernels and the forward pass take
// their parallelism from. Not a task system: work is split into items whose boundaries do not
// depend on the thread count, so any number of threads computes bitwise the same result.
#pragma once

#include <cstdint>

namespace ql {

// Threads quantlab's own kernels use: SetNumThreads(n > 0) if called, else the first of the
// environment variables QL_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS that holds a positive
// integer, else std::thread::hardware_concurrency(). Always >= 1.
int NumThreads();
// n > 0 overrides the environment for this process (tests, --threads); n = 0 restores the default.
void SetNumThreads(int n);

// Parallel regions do not nest: while a thread runs a ParallelFor item, NumThreads() returns 1 on it
// and a ParallelFor it starts runs inline (an outer split, e.g. over independent windows, already
// fills the cores; an inner one would oversubscribe them). Used by ParallelFor; RAII.
class ParallelItemScope {
 public:
  ParallelItemScope();
  ~ParallelItemScope();
  ParallelItemScope(const ParallelItemScope&) = delete;
  ParallelItemScope& operator=(const ParallelItemScope&) = delete;
};

namespace parallel_detail {
using ItemFn = void (*)(const void* fn, int item, int thread_index);
// The region of ParallelFor with threads >= 2 outside any item (parallel.cc).
void RunRegion(int n_items, int threads, ItemFn call, const void* fn);
bool InsideItem();
// An item threw: aborts with the file:line of the region and the exception's message. A region's
// items run on threads that share the caller's stack frame, so nothing may unwind through it.
[[noreturn]] void ItemThrew(const char* file, int line);
}  // namespace parallel_detail

// Runs fn(item, thread_index) for every item in [0, n_items) on min(threads, n_items) threads, the
// caller (thread_index 0) and workers of a process-wide pool (1 .. threads-1), each pulling the next
// item from a shared counter. The workers persist across regions and block in the kernel (a futex)
// between them: no spinning, so when the cores are shared an idle worker costs nothing, and a worker
// that has not started by the time the caller has taken every item is released without being waited
// for. Not OpenMP: idle libgomp workers spin after a parallel region and steal the cores from the next
// one (measured ~10% of all samples inside libgomp on the 135M forward). Starting a region costs one
// futex wake per worker (a few µs; a fresh std::thread, as before the pool, cost ~20 µs). A second
// thread that starts a region while another thread's region holds the pool gets fresh std::threads.
// fn must not depend on which thread runs an item except through thread_index-private scratch, and
// must not throw (an exception aborts with file:line). thread_local state of the workers lives as
// long as the process.
template <class Fn>
void ParallelFor(int n_items, int threads, const Fn& fn) {
  if (threads > n_items) threads = n_items;
  if (threads <= 1 || parallel_detail::InsideItem()) {
    ParallelItemScope scope;
    try {
      for (int i = 0; i < n_items; ++i) fn(i, 0);
    } catch (...) {
      parallel_detail::ItemThrew(__FILE__, __LINE__);
    }
    return;
  }
  parallel_detail::RunRegion(
      n_items, threads, [](const void* f, int item, int tid) { (*static_cast<const Fn*>(f))(item, tid); }, &fn);
}

// ParallelFor over [0, n) cut into chunks of `chunk` indices (the last may be shorter): fn(begin, end)
// for each chunk. The cut depends on n and chunk only, never on the thread count.
template <class Fn>
void ParallelForChunks(int64_t n, int64_t chunk, int threads, const Fn& fn) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  const int64_t n_items = (n + chunk - 1) / chunk;
  ParallelFor(int(n_items), threads, [&](int item, int) {
    const int64_t begin = int64_t(item) * chunk;
    fn(begin, begin + chunk < n ? begin + chunk : n);
  });
}

}  // namespace ql
