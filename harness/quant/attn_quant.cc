// Attention-input fake quantization: Q per (token, head), P per query row (see attn_quant.h).
#include "harness/quant/attn_quant.h"

#include <algorithm>

#include "harness/quant/kv_quant.h"
#include "kernels/quantizer.h"

namespace ql {

Status CheckRowLocalScheme(const Scheme& s, std::string_view what) {
  if (s.is_block) return Status::Ok();  // block codecs: blocks along each row (kernels/format.h)
  switch (s.granularity) {
    case Granularity::kNone:
    case Granularity::kToken:
    case Granularity::kGroup:
      return Status::Ok();
    default:
      return Status::Errorf(
          "{} scheme '{}': granularity {} shares a scale across tokens; attention inputs are quantized row by "
          "row (use token, g<N>, noscale or a block format)",
          what, ToString(s), GranularityName(s.granularity));
  }
}

Status FakeQuantizeRows(const Scheme& s, float* p, int rows, int cols) {
  for (int r = 0; r < rows; ++r) QL_RETURN_IF_ERROR(FakeQuantize(s, p + size_t(r) * cols, 1, cols, p + size_t(r) * cols));
  return Status::Ok();
}

void AttentionQuantizer::Fail(const Status& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (first_error_.ok()) first_error_ = s;
}

Status AttentionQuantizer::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

void AttentionQuantizer::Install(ForwardHooks* hooks) {
  if (q_) {
    hooks->attn_q = [this](int layer, float* q, int T) {
      // Per head: the [T, head_dim] slices, as the keys are (kv_quant.h).
      Status s = FakeQuantizeKvHeads(*q_, q, T, n_heads_, head_dim_);
      if (!s.ok()) Fail(Status::Errorf("attention q quantization at layer {}: {}", layer, s.message()));
    };
  }
  if (p_) {
    hooks->attn_probs = [this](int layer, int head, int q_pos0, float* p, int rows, int cols) {
      // Row r: only its causal prefix (q_pos0 + r + 1 keys), so the padding of the forward's query
      // blocks cannot enter a statistic (pct clipping) and decoding sees the same rows.
      for (int r = 0; r < rows; ++r) {
        const int valid = std::min(cols, q_pos0 + r + 1);
        Status s = FakeQuantizeRows(*p_, p + size_t(r) * cols, 1, valid);
        if (!s.ok()) {
          Fail(Status::Errorf("attention p quantization at layer {} head {}: {}", layer, head, s.message()));
          return;
        }
      }
    };
  }
}

}  // namespace ql
