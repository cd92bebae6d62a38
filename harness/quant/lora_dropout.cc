// LoRA's adapter path with input dropout (see lora_dropout.h). The products go through the trainer's
// LinearForward / LinearBackward (kernels/gemm.h: bitwise the same for any thread count).
#include "harness/quant/lora_dropout.h"

#include "harness/train/train_ops.h"
#include "harness/util/hash.h"
#include "kernels/status.h"

namespace ql {

LoraDropoutPath::LoraDropoutPath(const Model* trainable, train::TensorMap* grads, float scale, double p,
                                 uint64_t seed)
    : trainable_(trainable), grads_(grads), scale_(scale), p_(p), seed_(seed) {
  QL_CHECK(p >= 0 && p < 1, "dropout {} outside [0, 1)", p);
}

bool LoraDropoutPath::Has(const std::string& weight) const { return trainable_->Has(weight + ".A"); }

void LoraDropoutPath::Drop(const std::string& weight, const float* x, int n, int in, float* out) const {
  const uint64_t key = SplitMix64(SplitMix64(seed_) ^ SplitMix64(uint64_t(step_) + 0x51ED27ull) ^ Fnv1a64(weight, kTrainerFnvBasis));
  const float keep_scale = float(1.0 / (1.0 - p_));
  const int64_t count = int64_t(n) * in;
  for (int64_t i = 0; i < count; ++i) {
    const double u = double(SplitMix64(key ^ uint64_t(i)) >> 11) * 0x1.0p-53;  // uniform in [0, 1)
    out[i] = u < p_ ? 0.0f : x[i] * keep_scale;
  }
}

void LoraDropoutPath::Forward(const std::string& weight, const float* x, int n, int in, int out, float* y) {
  const Tensor& a = trainable_->W(weight + ".A");  // [rank, in]
  const Tensor& b = trainable_->W(weight + ".B");  // [out, rank]
  const int r = int(a.rows());
  QL_CHECK(a.cols() == in && b.rows() == out, "adapter of {} does not fit [{}, {}]", weight, out, in);
  std::vector<float> xd(size_t(n) * in);  // [n, in] drop(x)
  Drop(weight, x, n, in, xd.data());
  std::vector<float>& xa = xa_[weight];   // [n, rank]
  xa.resize(size_t(n) * r);
  train::LinearForward(xd.data(), a.data.data(), n, in, r, xa.data());
  std::vector<float> v(size_t(n) * out);  // [n, out] drop(x)·Aᵀ·Bᵀ
  train::LinearForward(xa.data(), b.data.data(), n, r, out, v.data());
  for (size_t i = 0; i < v.size(); ++i) y[i] += scale_ * v[i];
}

void LoraDropoutPath::Backward(const std::string& weight, const float* x, const float* dy, int n, int in, int out,
                               float* dx) {
  const Tensor& a = trainable_->W(weight + ".A");
  const Tensor& b = trainable_->W(weight + ".B");
  const int r = int(a.rows());
  const std::vector<float>& xa = xa_.at(weight);  // [n, rank] from this step's Forward
  QL_CHECK(xa.size() == size_t(n) * r, "adapter backward of {} without its forward", weight);
  std::vector<float> dys(size_t(n) * out);  // [n, out] s·dy
  for (size_t i = 0; i < dys.size(); ++i) dys[i] = scale_ * dy[i];
  std::vector<float> dxa(size_t(n) * r);    // [n, rank] d/d(drop(x)·Aᵀ) = s·dy·B;  dB += (s·dy)ᵀ·xa
  train::LinearBackward(xa.data(), b.data.data(), dys.data(), n, r, out, dxa.data(), grads_->at(weight + ".B").data.data());
  std::vector<float> xd(size_t(n) * in), dxd(size_t(n) * in);  // [n, in] drop(x) and d/d drop(x)
  Drop(weight, x, n, in, xd.data());
  train::LinearBackward(xd.data(), a.data.data(), dxa.data(), n, in, r, dxd.data(), grads_->at(weight + ".A").data.data());
  // d drop(x) / dx = m / (1 − p) elementwise: the same mask applied to the gradient.
  Drop(weight, dxd.data(), n, in, xd.data());
  for (size_t i = 0; i < xd.size(); ++i) dx[i] += xd[i];
}

}  // namespace ql
