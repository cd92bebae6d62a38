// The process-wide thread count and the worker pool of kernels/parallel.h. Workers sleep on a futex
// (Linux) between regions; nothing here spins.
#include "kernels/parallel.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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

// Blocks while *word == expected (returns at once if it differs; may return spuriously).
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void FutexWake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// One ParallelFor region: the type-erased body and the shared item counter. Lives on the caller's
// stack; the caller returns only once no worker can still touch it.
struct Region {
  parallel_detail::ItemFn call;
  const void* fn;
  int n_items;
  std::atomic<int> next{0};
};

void RunItems(Region& r, int tid) {
  ParallelItemScope scope;
  try {
    for (int i; (i = r.next.fetch_add(1, std::memory_order_relaxed)) < r.n_items;) r.call(r.fn, i, tid);
  } catch (...) {
    parallel_detail::ItemThrew(__FILE__, __LINE__);
  }
}

// The pool. A worker's state word: kIdle (asleep on the futex, or about to be), kAssigned (the caller
// has given it `region` and woken it), kRunning (it claimed the region). The caller revokes an
// assignment the worker has not claimed once the items are all taken, so a worker that the kernel
// has not yet scheduled (a shared core) never delays the caller; it then waits on `pending_` for the
// workers that did claim the region.
class Pool {
 public:
  // Runs the region on the caller and threads - 1 workers. False (nothing run) when another thread's
  // region holds the pool.
  bool TryRun(Region& r, int threads) {
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    const int helpers = threads - 1;
    while (int(workers_.size()) < helpers) Start();
    pending_.store(uint32_t(helpers), std::memory_order_relaxed);
    for (int i = 0; i < helpers; ++i) {
      Worker& w = *workers_[i];
      w.region = &r;
      w.state.store(kAssigned, std::memory_order_release);
      FutexWake(&w.state);
    }
    RunItems(r, 0);
    for (int i = 0; i < helpers; ++i) {
      uint32_t assigned = kAssigned;
      if (workers_[i]->state.compare_exchange_strong(assigned, kIdle, std::memory_order_acq_rel))
        pending_.fetch_sub(1, std::memory_order_relaxed);
    }
    for (uint32_t p; (p = pending_.load(std::memory_order_acquire)) != 0;) FutexWait(&pending_, p);
    return true;
  }

 private:
  static constexpr uint32_t kIdle = 0, kAssigned = 1, kRunning = 2;
  struct Worker {
    std::atomic<uint32_t> state{kIdle};
    Region* region = nullptr;  // written by the caller before kAssigned
  };

  void Start() {
    workers_.push_back(std::make_unique<Worker>());
    std::thread(&Pool::Serve, this, workers_.back().get(), int(workers_.size())).detach();
  }

  void Serve(Worker* w, int tid) {
    for (;;) {
      uint32_t s = w->state.load(std::memory_order_acquire);
      if (s == kIdle) {
        FutexWait(&w->state, kIdle);
        continue;
      }
      if (s != kAssigned || !w->state.compare_exchange_strong(s, kRunning, std::memory_order_acquire)) continue;
      RunItems(*w->region, tid);
      w->state.store(kIdle, std::memory_order_release);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) FutexWake(&pending_);
    }
  }

  std::mutex busy_;                               // held by the thread whose region runs
  std::vector<std::unique_ptr<Worker>> workers_;  // grown under busy_; worker i has thread index i + 1
  std::atomic<uint32_t> pending_{0};              // workers of the running region not yet done
};

// Never destroyed: detached workers sleep in it until the process exits. A forked child has none of
// the parent's workers, so it starts from a fresh pool.
Pool* g_pool = nullptr;

Pool& ThePool() {
  static const bool once = [] {
    g_pool = new Pool;
    pthread_atfork(nullptr, nullptr, [] { g_pool = new Pool; });
    return true;
  }();
  (void)once;
  return *g_pool;
}

void RunOnFreshThreads(Region& r, int threads) {
  std::vector<std::thread> fresh;
  fresh.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) fresh.emplace_back([&r, t] { RunItems(r, t); });
  RunItems(r, 0);
  for (std::thread& th : fresh) th.join();
}

}  // namespace

namespace parallel_detail {

void RunRegion(int n_items, int threads, ItemFn call, const void* fn) {
  Region r{call, fn, n_items};
  if (!ThePool().TryRun(r, threads)) RunOnFreshThreads(r, threads);
}

bool InsideItem() { return t_item_depth > 0; }

void ItemThrew(const char* file, int line) {
  const char* what = "not a std::exception";
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::fprintf(stderr, "%s:%d: check failed: a ParallelFor item threw (%s); items must not throw\n", file, line,
               what);
  std::fflush(stderr);
  std::abort();
}

}  // namespace parallel_detail

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
