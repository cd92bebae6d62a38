// The tensor quantizer and the block codecs on quantlab's threads (kernels/parallel.h): the same bits
// for 1, 2 and 3 threads, on tensors large enough to take the threaded paths, for the element schemes
// whose tiles are searched (MSE, percentile), the plain element and integer paths and every block codec.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/parallel.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

std::vector<float> Wave(int64_t n) {  // deterministic, non-periodic, with a few outliers
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(std::sin(0.37 * double(i)) * (i % 97 == 0 ? 8.0 : 1.0));
  return x;
}

struct ThreadsGuard {
  ~ThreadsGuard() { SetNumThreads(0); }
};

TEST(QuantThreads, FakeQuantizeIsTheSameForAnyThreadCount) {
  // Rows x 1536 columns: 192 rows (294912 elements) are above every threading threshold; the tile
  // searches (MSE, percentile) thread from 65536 elements, so 48 rows suffice for them.
  struct Case { const char* scheme; int64_t rows; };
  const Case cases[] = {{"int4:g32:mse", 48}, {"int3:g64:asym:pct99", 48}, {"fp4_e2m1:g32:s=e8m0", 192},
                        {"int8:channel", 192}, {"nvfp4", 192}, {"nvfp4:ct", 192}, {"q4_k", 192}, {"q6_k", 192},
                        {"q5_0", 192}, {"mxfp4", 192}};
  const int64_t cols = 1536;
  const std::vector<float> x = Wave(192 * cols);
  ThreadsGuard restore;
  for (const Case& c : cases) {
    StatusOr<Scheme> s = ParseScheme(c.scheme);
    ASSERT_TRUE(s.ok()) << c.scheme << ": " << s.status().message();
    const size_t n = size_t(c.rows * cols);
    std::vector<float> one(n), many(n);
    SetNumThreads(1);
    ASSERT_TRUE(FakeQuantize(*s, x.data(), c.rows, cols, one.data()).ok()) << c.scheme;
    for (int threads : {2, 3}) {
      SetNumThreads(threads);
      ASSERT_TRUE(FakeQuantize(*s, x.data(), c.rows, cols, many.data()).ok()) << c.scheme;
      ASSERT_EQ(0, std::memcmp(one.data(), many.data(), n * sizeof(float))) << c.scheme << " threads " << threads;
    }
  }
}

}  // namespace
}  // namespace ql
