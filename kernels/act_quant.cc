// Highway implementation of kernels/act_quant.h, compiled once per SIMD target (foreach_target.h) and
// chosen at run time, beside its scalar oracle. Two passes over x: every run's scale first (so a
// non-finite value is found before anything is written), then the rounding.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/act_quant.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"
#include "kernels/tail-inl.h"  // TailLoad, TailStore

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/act_quant.h"
#include "kernels/format.h"
#include "kernels/parallel.h"
#include "kernels/quantizer.h"

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// max |x[0, n)|; *finite stays true only when every value is finite (x − x is +0 exactly then, NaN
// for ±Inf and NaN, and the NaN survives the sum).
HWY_INLINE float AbsMax(const float* x, size_t n, bool* finite) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF m = hn::Zero(d), bad = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const VF v = hn::LoadU(d, x + i);
    m = hn::Max(m, hn::Abs(v));
    bad = hn::Add(bad, hn::Sub(v, v));
  }
  if (i < n) {
    const VF v = TailLoad(d, x + i, n - i);
    m = hn::Max(m, hn::Abs(v));
    bad = hn::Add(bad, hn::Sub(v, v));
  }
  const float b = hn::GetLane(hn::SumOfLanes(d, bad));
  if (!(b == 0.0f)) *finite = false;
  return hn::GetLane(hn::MaxOfLanes(d, m));
}

// x ← rne(clamp(x / s, −qmax, qmax)) · s for s > 0 (adding +0 turns a −0 code into +0, as the
// integer code of the scalar path does); +0 for s = 0.
HWY_INLINE void RoundRun(float* x, size_t n, float s, float qmax) {
  const DF d;
  const size_t N = hn::Lanes(d);
  if (!(s > 0)) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  const VF vs = hn::Set(d, s), hi = hn::Set(d, qmax), lo = hn::Set(d, -qmax), zero = hn::Zero(d);
  auto one = [&](VF v) { return hn::Mul(hn::Add(hn::Round(hn::Min(hn::Max(hn::Div(v, vs), lo), hi)), zero), vs); };
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(one(hn::LoadU(d, x + i)), d, x + i);
  if (i < n) TailStore(one(TailLoad(d, x + i, n - i)), d, x + i, n - i);
}

HWY_NOINLINE bool FakeQuantIntSymRowsImpl(float* x, int64_t rows, int64_t cols, int64_t group, int qmax,
                                          int threads) {
  const int64_t n_groups = (cols + group - 1) / group;
  std::vector<float> scale(size_t(rows * n_groups));  // [rows, n_groups]
  constexpr int64_t kRowsPerItem = 16;
  const int n_items = int((rows + kRowsPerItem - 1) / kRowsPerItem);
  if (rows * cols < (int64_t(1) << 16)) threads = 1;  // below ~20 µs of work a thread costs more
  std::vector<char> finite(size_t(n_items), 1);
  ParallelFor(n_items, threads, [&](int item, int) {
    bool ok = true;
    for (int64_t r = item * kRowsPerItem; r < std::min(rows, (item + 1) * kRowsPerItem); ++r)
      for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t c0 = g * group, w = std::min(group, cols - c0);
        scale[size_t(r * n_groups + g)] = AbsMax(x + r * cols + c0, size_t(w), &ok) / float(qmax);
      }
    finite[size_t(item)] = ok;
  });
  if (std::count(finite.begin(), finite.end(), 0) > 0) return false;
  ParallelFor(n_items, threads, [&](int item, int) {
    for (int64_t r = item * kRowsPerItem; r < std::min(rows, (item + 1) * kRowsPerItem); ++r)
      for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t c0 = g * group, w = std::min(group, cols - c0);
        RoundRun(x + r * cols + c0, size_t(w), scale[size_t(r * n_groups + g)], float(qmax));
      }
  });
  return true;
}

HWY_NOINLINE const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(FakeQuantIntSymRowsImpl);
HWY_EXPORT(TargetNameImpl);

bool FakeQuantIntSymRows(float* x, int64_t rows, int64_t cols, int64_t group, int qmax, int threads) {
  if (rows <= 0 || cols <= 0) return true;
  return HWY_DYNAMIC_DISPATCH(FakeQuantIntSymRowsImpl)(x, rows, cols, group, qmax, std::max(1, threads));
}

bool FakeQuantIntSymRowsRef(float* x, int64_t rows, int64_t cols, int64_t group, int qmax) {
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(x[i])) return false;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += group) {
      float* v = x + r * cols + c0;
      const int64_t w = std::min(group, cols - c0);
      float amax = 0.0f;
      for (int64_t c = 0; c < w; ++c) amax = std::max(amax, std::fabs(v[c]));
      const float s = amax / float(qmax);
      for (int64_t c = 0; c < w; ++c) {
        if (!(s > 0)) {
          v[c] = 0.0f;
          continue;
        }
        const int32_t q = int32_t(std::nearbyint(std::clamp(v[c] / s, -float(qmax), float(qmax))));
        v[c] = float(q) * s;
      }
    }
  return true;
}

bool IntSymRowsParams(const Scheme& s, int64_t cols, int64_t* group, int* qmax) {
  if (s.is_block || s.int_mode != IntMode::kSym || s.clip != ClipRule::kMax || s.scale_dtype != ScaleDtype::kFp32)
    return false;
  auto codec = FindElementCodec(s.format);
  if (!codec.ok() || (*codec)->kind() != FormatKind::kInt) return false;
  const int bits = (*codec)->bits();
  if (bits < 2 || bits > 16) return false;
  switch (s.granularity) {
    case Granularity::kToken:
    case Granularity::kChannel: *group = std::max<int64_t>(cols, 1); break;
    case Granularity::kGroup: *group = s.group_size; break;
    default: return false;
  }
  if (*group < 1) return false;
  *qmax = (1 << (bits - 1)) - 1;
  return true;
}

Status FakeQuantizeInPlace(const Scheme& scheme, float* x, int64_t rows, int64_t cols) {
  int64_t group = 0;
  int qmax = 0;
  if (IntSymRowsParams(scheme, cols, &group, &qmax) && FakeQuantIntSymRows(x, rows, cols, group, qmax, NumThreads()))
    return Status::Ok();
  // FakeQuantize's out may alias x, and it writes nothing before its last check (so an error leaves x as it was).
  return FakeQuantize(scheme, x, rows, cols, x);
}

const char* ActQuantTarget() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

}  // namespace ql
#endif  // HWY_ONCE
