// Interop (ctest LABEL interop): `activations: llamacpp` against ggml-cpu's own matrix product. For every
// weight type llama.cpp multiplies, ggml_mul_mat (tests/interop/ggml_oracle.c, linked against llama.cpp's
// libggml-cpu: the kernels llama-perplexity runs, llamafile's tinyBLAS and the tiled K-quant path included)
// must equal quantlab's model of it — inputs rounded by RoundLikeGgmlVecDot, then an exact sum with the
// dequantized weights — to FP32 summation order. Without the rounding the same check fails, so it measures
// the rounding, not only the weights.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/gguf_export.h"
#include "harness/quant/llamacpp_act.h"
#include "kernels/half.h"
#include "tests/interop/ggml_oracle.h"

namespace ql {
namespace {

// Activations like a transformer's linear inputs: unit Gaussians with a few large outliers, whole zero
// blocks, and exact ties between +amax and -amax inside a block.
std::vector<float> Inputs(int T, int in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(T) * size_t(in));  // [T, in]
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 61 == 0 ? 30.f * nd(rng) : nd(rng);
  if (x.size() >= 96)
    for (int j = 0; j < 32; ++j) x[size_t(64 + j)] = 0.f;  // row 0, block 2: all zero
  if (x.size() > size_t(in) + 40) {                       // row 1: +amax and -amax in one block
    x[size_t(in) + 3] = 50.f;
    x[size_t(in) + 9] = -50.f;
  }
  return x;
}

struct Worst {
  double rel = 0;  // max over outputs of |ggml - model| / sum |terms|
};

// y_model[t, o] = extra[t, o] + sum_i w[o, i] * xr[t, i] in double (extra empty = 0); the worst difference
// to ggml relative to sum |terms|.
Worst Compare(const std::vector<float>& w, const std::vector<float>& xr, const std::vector<float>& y, int T,
              int in, int out, const std::vector<double>& extra = {}) {
  Worst worst;
  for (int t = 0; t < T; ++t) {
    for (int o = 0; o < out; ++o) {
      double s = extra.empty() ? 0 : extra[size_t(t) * out + o], mag = 0;
      for (int i = 0; i < in; ++i) {
        const double p = double(w[size_t(o) * in + i]) * double(xr[size_t(t) * in + i]);
        s += p;
        mag += std::fabs(p);
      }
      if (mag > 0) worst.rel = std::max(worst.rel, std::fabs(double(y[size_t(t) * out + o]) - s) / mag);
    }
  }
  return worst;
}

// Q4_1 / Q5_1 weights (vec_dot_type Q8_1): ggml adds m_w · s per 32-block, with the input block sum stored
// as s = fp16(d · Σq) from the fp32 scale d = amax/127 (ggml-cpu's AVX2 quantize_row_q8_1), while the
// rounded inputs x̂ = q · fp16(d) sum to fp16(d) · Σq. This returns ggml's extra term, [T, out]:
// sum over blocks b of m_w[o, b] · (s_b − fp16(d_b) · Σq_b). m_w is the fp16 at byte 2 of each weight block.
std::vector<double> Q8_1SumTerm(const std::vector<unsigned char>& bytes, size_t row_bytes, size_t block_bytes,
                                const std::vector<float>& x, int T, int in, int out) {
  std::vector<double> diff(size_t(T) * (in / 32));  // [T, in/32]
  for (int t = 0; t < T; ++t) {
    for (int b = 0; b < in / 32; ++b) {
      const float* xb = &x[size_t(t) * in + size_t(b) * 32];
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
      int sum_q = 0;
      for (int j = 0; j < 32; ++j) sum_q += int(std::nearbyint(xb[j] * id));
      diff[size_t(t) * (in / 32) + b] =
          double(F16ToF32(F32ToF16(d * float(sum_q)))) - double(F16ToF32(F32ToF16(d))) * sum_q;
    }
  }
  std::vector<double> extra(size_t(T) * out);
  for (int o = 0; o < out; ++o) {
    for (int b = 0; b < in / 32; ++b) {
      uint16_t m;
      std::memcpy(&m, &bytes[size_t(o) * row_bytes + size_t(b) * block_bytes + 2], 2);
      for (int t = 0; t < T; ++t) extra[size_t(t) * out + o] += double(F16ToF32(m)) * diff[size_t(t) * (in / 32) + b];
    }
  }
  return extra;
}

// What that term leaves in act:llamacpp's Q8_1 products: |m_w · s| · 2^-11 (fp16's half ulp) against sum
// |terms|, measured 6e-5 .. 3e-4 here. Modelling it would need the weight's block minima inside the product.
constexpr double kQ8_1Residual = 1e-3;

// FP32 sums over `in` terms in ggml's blocked order: well under 1e-6 of sum |terms| at in = 1024. One
// activation rounded to a neighbouring Q8 code moves an output by about |w| * amax / 127, ~1e-4 of it.
constexpr double kTol = 2e-6;

void CheckType(const std::string& scheme, int in, int out, std::initializer_list<int> Ts) {
  const int type = io::GgufTypeOfScheme(scheme);
  ASSERT_GE(type, 0) << scheme;
  StatusOr<VecDotType> vdt = LlamaCppVecDotType(scheme);
  ASSERT_TRUE(vdt.ok()) << vdt.status().message();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(out) * in);  // [out, in]
  for (float& v : w) v = nd(rng);
  std::vector<unsigned char> bytes(QlGgmlRowSize(type, in) * out);
  ASSERT_EQ(QlGgmlQuantize(type, w.data(), bytes.data(), out, in, nullptr), bytes.size()) << scheme;
  std::vector<float> wd(w.size());  // the weights ggml multiplies, dequantized
  for (int o = 0; o < out; ++o)
    QlGgmlDequantize(type, bytes.data() + size_t(o) * QlGgmlRowSize(type, in), wd.data() + size_t(o) * in, in);
  // T = 1 and 3: vec_dot / gemv paths; 8 and 37: llamafile's tinyBLAS and the tiled K-quant GEMM (>= 8 rows).
  for (int T : Ts) {
    const std::vector<float> x = Inputs(T, in, 100 + uint32_t(T));
    std::vector<float> y(size_t(T) * out);
    ASSERT_EQ(QlGgmlMulMat(type, bytes.data(), in, out, x.data(), T, y.data(), 2), 0) << scheme;
    std::vector<float> xr = x;
    ASSERT_TRUE(RoundLikeGgmlVecDot(*vdt, xr.data(), T, in).ok());
    const bool q8_1 = *vdt == VecDotType::kQ8_1;
    const Worst modelled = Compare(wd, xr, y, T, in, out), unrounded = Compare(wd, x, y, T, in, out);
    const Worst exact =
        q8_1 ? Compare(wd, xr, y, T, in, out, Q8_1SumTerm(bytes, QlGgmlRowSize(type, in), QlGgmlRowSize(type, 32), x, T, in, out))
             : modelled;
    std::printf("[matmul-interop] %-6s (%s) T=%3d: act:llamacpp %.2e, with ggml's fp16 block sums %.2e, unrounded "
                "inputs %.2e\n", scheme.c_str(), VecDotTypeName(*vdt), T, modelled.rel, exact.rel, unrounded.rel);
    EXPECT_LT(exact.rel, kTol) << scheme << " T=" << T;
    EXPECT_LT(modelled.rel, q8_1 ? kQ8_1Residual : kTol) << scheme << " T=" << T;
    if (*vdt != VecDotType::kF32) {
      EXPECT_GT(unrounded.rel, 10 * kTol) << scheme << " T=" << T;
    }
  }
}

class MatMulInterop : public ::testing::TestWithParam<const char*> {};

TEST_P(MatMulInterop, ActLlamaCppEqualsGgmlCpu) { CheckType(GetParam(), 1024, 24, {1, 3, 8, 37}); }
TEST_P(MatMulInterop, SmolLm2Shapes) { CheckType(GetParam(), 1536, 576, {128}); }

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulInterop,
                         ::testing::Values("f32", "fp16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl",
                                           "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

}  // namespace
}  // namespace ql
