// kernels/select.h. ArgMaxF32: two passes over the row, both SIMD: the maximum (lane-wise "greater than"
// updates, the scalar loop's rule, so NaNs never enter; the order of a max reduction changes no
// value), then the first index holding a value equal to it. Cost ~2 loads per element, no branches
// per element (the scalar loop carries a dependency through x[best]).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/select.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/select.h"

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

size_t ArgMaxImpl(const float* x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  if (std::isnan(x[0])) return 0;  // nothing compares greater than x[0]
  auto m = hn::Set(d, x[0]);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, x + i);
    m = hn::IfThenElse(hn::Gt(v, m), v, m);
  }
  float best = hn::GetLane(hn::MaxOfLanes(d, m));  // lanes hold no NaN
  for (; i < n; ++i)
    if (x[i] > best) best = x[i];
  const auto vb = hn::Set(d, best);
  for (i = 0; i + N <= n; i += N) {
    const intptr_t hit = hn::FindFirstTrue(d, hn::Eq(hn::LoadU(d, x + i), vb));
    if (hit >= 0) return i + size_t(hit);
  }
  for (; i < n; ++i)
    if (x[i] == best) return i;
  return 0;  // unreachable: best is one of the elements
}

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(ArgMaxImpl);

size_t ArgMaxF32(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(ArgMaxImpl)(x, n); }

size_t ArgMaxF32Ref(const float* x, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// One scan keeps the k best seen in a heap whose top is the worst of them; a later index enters only
// with a strictly larger value (it loses a tie to every earlier one); then the k are sorted.
void TopKF32(const float* x, int n, int k, int* out) {
  const auto better = [x](int a, int c) { return x[a] > x[c] || (x[a] == x[c] && a < c); };
  if (k <= 0) return;
  std::iota(out, out + k, 0);
  std::make_heap(out, out + k, better);  // out[0]: the worst kept
  for (int v = k; v < n; ++v) {
    if (!(x[v] > x[out[0]])) continue;
    std::pop_heap(out, out + k, better);
    out[k - 1] = v;
    std::push_heap(out, out + k, better);
  }
  std::sort(out, out + k, better);
}

void TopKF32Ref(const float* x, int n, int k, int* out) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [x](int a, int c) { return x[a] > x[c] || (x[a] == x[c] && a < c); });
  std::copy(order.begin(), order.begin() + k, out);
}

}  // namespace ql
#endif  // HWY_ONCE
