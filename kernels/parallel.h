// quantlab's thread count and its fork-join loop: the one place kernels and the forward pass take
// their parallelism from. Not a task system: work is split into items whose boundaries do not
// depend on the thread count, so any number of threads computes bitwise the same result.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace ql {

// Threads quantlab's own kernels use: SetNumThreads(n > 0) if called, else the first of the
// environment variables QL_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS that holds a positive
// integer, else std::thread::hardware_concurrency(). Always >= 1.
int NumThreads();
// n > 0 overrides the environment for this process (tests, --threads); n = 0 restores the default.
void SetNumThreads(int n);

// Parallel regions do not nest: while a thread runs a ParallelFor item, NumThreads() returns 1 on it
// (an outer split, e.g. over independent windows, already fills the cores; an inner one would
// oversubscribe them). Used by ParallelFor; RAII.
class ParallelItemScope {
 public:
  ParallelItemScope();
  ~ParallelItemScope();
  ParallelItemScope(const ParallelItemScope&) = delete;
  ParallelItemScope& operator=(const ParallelItemScope&) = delete;
};

// Runs fn(item, thread_index) for every item in [0, n_items) on min(threads, n_items) threads: the
// caller plus fresh std::threads pulling items from a shared counter (no spin-waiting, no pool that
// idles on a core: when the cores are shared a blocked sibling costs a join, not a time slice of
// spinning). Not OpenMP: idle libgomp workers spin after a parallel region and steal the cores from
// the next one (measured ~10% of all samples inside libgomp on the 135M forward). A thread start
// costs ~20 µs; callers give items of at least tens of microseconds. fn must not depend on which
// thread runs an item except through thread_index-private scratch.
template <class Fn>
void ParallelFor(int n_items, int threads, const Fn& fn) {
  if (threads > n_items) threads = n_items;
  if (threads <= 1) {
    ParallelItemScope scope;
    for (int i = 0; i < n_items; ++i) fn(i, 0);
    return;
  }
  std::atomic<int> next{0};
  auto work = [&](int tid) {
    ParallelItemScope scope;
    for (int i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) fn(i, tid);
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();
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
