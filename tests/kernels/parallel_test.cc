// The worker pool behind ParallelFor (kernels/parallel.h): every item runs exactly once on a thread
// index below the thread count, across many tiny regions, thread-count changes, concurrent callers
// and nested regions; an item that throws aborts with file:line.
#include "kernels/parallel.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

struct ThreadsGuard {
  ~ThreadsGuard() { SetNumThreads(0); }
};

// Runs one region of n items on `threads` threads; checks each item ran once, on a valid index.
void ExpectEachItemOnce(int n, int threads) {
  std::vector<std::atomic<int>> hits(n);
  std::atomic<int> bad_tid{0};
  ParallelFor(n, threads, [&](int i, int tid) {
    hits[i].fetch_add(1, std::memory_order_relaxed);
    if (tid < 0 || tid >= threads) bad_tid.fetch_add(1);
  });
  for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "item " << i << " of " << n << ", " << threads;
  EXPECT_EQ(bad_tid.load(), 0);
}

TEST(ParallelPool, ManyTinyRegions) {
  for (int rep = 0; rep < 20000; ++rep) ExpectEachItemOnce(1 + rep % 7, 2 + rep % 3);
}

TEST(ParallelPool, AWorkerTakesItemsWhileTheCallerIsBusy) {
  // The caller's item waits (up to 30 s, sleeping) until a worker has run the other one: a worker
  // that was woken joins a region still in progress (a loaded machine only delays it).
  std::atomic<bool> worker_ran{false};
  std::atomic<int> wrong_tid{0};
  ParallelFor(2, 2, [&](int, int tid) {
    if (tid != 0) {
      if (tid != 1) wrong_tid.fetch_add(1);
      worker_ran.store(true);
      return;
    }
    for (int ms = 0; ms < 30000 && !worker_ran.load(); ++ms) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  EXPECT_TRUE(worker_ran.load()) << "no worker joined a region the caller held open for 30 s";
  EXPECT_EQ(wrong_tid.load(), 0);
}

TEST(ParallelPool, ThreadCountChanges) {
  ThreadsGuard guard;
  for (int n : {1, 4, 2, 3, 1, 4}) {
    SetNumThreads(n);
    ASSERT_EQ(NumThreads(), n);
    ExpectEachItemOnce(97, NumThreads());
  }
}

TEST(ParallelPool, ConcurrentCallers) {
  // Two threads start regions at once: one holds the pool, the other gets fresh threads; all items
  // of both run exactly once and the sums are exact.
  auto caller = [](int seed, int64_t* out) {
    int64_t total = 0;
    for (int rep = 0; rep < 300; ++rep) {
      std::vector<int64_t> v(50);
      ParallelFor(50, 2, [&](int i, int) { v[i] = int64_t(i) * seed + rep; });
      for (int64_t x : v) total += x;
    }
    *out = total;
  };
  int64_t a = 0, b = 0;
  std::thread other(caller, 3, &b);
  caller(5, &a);
  other.join();
  const int64_t items = 49 * 50 / 2;
  EXPECT_EQ(a, 300 * (items * 5) + 50 * (299 * 300 / 2));
  EXPECT_EQ(b, 300 * (items * 3) + 50 * (299 * 300 / 2));
}

TEST(ParallelPool, NestedRegionsRunInline) {
  std::vector<int> inner_tid(8 * 8, -1), inner_threads(8, -1);
  ParallelFor(8, 2, [&](int i, int) {
    inner_threads[i] = NumThreads();
    ParallelFor(8, 4, [&](int j, int tid) { inner_tid[i * 8 + j] = tid; });
  });
  for (int n : inner_threads) EXPECT_EQ(n, 1);
  for (int t : inner_tid) EXPECT_EQ(t, 0);  // inline: every inner item on the thread that runs the outer one
}

TEST(ParallelPool, ChunksCoverTheRangeOnce) {
  std::vector<int> hits(1001);
  ParallelForChunks(1001, 64, 3, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
  });
  for (int h : hits) ASSERT_EQ(h, 1);
}

TEST(ParallelPoolDeathTest, ThrowingItemAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto throw_on_worker = [] {
    ParallelFor(64, 2, [](int i, int) {
      if (i == 63) throw std::runtime_error("item 63 failed");
    });
  };
  EXPECT_DEATH(throw_on_worker(), "parallel.*check failed: a ParallelFor item threw \\(item 63 failed\\)");
  auto throw_inline = [] {
    ParallelFor(4, 1, [](int, int) { throw std::runtime_error("inline"); });
  };
  EXPECT_DEATH(throw_inline(), "parallel.h:[0-9]+: check failed: a ParallelFor item threw \\(inline\\)");
}

}  // namespace
}  // namespace ql
