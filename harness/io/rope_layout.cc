// RoPE pairing conversion by per-head row permutation (see rope_layout.h).
#include "harness/io/rope_layout.h"

#include <algorithm>

namespace ql::io {
namespace {

// Permutes the rows of t (shape [n_heads*hd, ...] or [n_heads*hd]) head by head.
void PermuteHeads(Tensor* t, int head_dim, bool to_interleaved) {
  const int64_t rows = t->rows(), cols = t->shape.size() < 2 ? 1 : t->cols();
  QL_CHECK(rows % head_dim == 0, "rows {} not a multiple of head_dim {}", rows, head_dim);
  const int half = head_dim / 2;
  std::vector<float> out(t->data.size());
  for (int64_t h = 0; h < rows / head_dim; ++h) {
    for (int j = 0; j < 2; ++j) {
      for (int r = 0; r < half; ++r) {
        const int64_t rh = h * head_dim + j * half + r;  // rotate-half row
        const int64_t il = h * head_dim + 2 * r + j;     // interleaved row
        const int64_t dst = to_interleaved ? il : rh, src = to_interleaved ? rh : il;
        std::copy_n(t->data.begin() + src * cols, cols, out.begin() + dst * cols);
      }
    }
  }
  t->data = std::move(out);
}

}  // namespace

void SetRopeLayout(Model* model, bool interleaved) {
  if (model->config.rope_interleaved == interleaved) return;
  const int hd = model->config.head_dim;
  for (int l = 0; l < model->config.n_layers; ++l) {
    const std::string p = LayerPrefix(l);
    for (const char* name : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.q_proj.bias",
                             "self_attn.k_proj.bias", "self_attn.q_norm.weight", "self_attn.k_norm.weight"}) {
      auto it = model->weights.find(p + name);
      if (it != model->weights.end()) PermuteHeads(&it->second, hd, interleaved);
    }
  }
  model->config.rope_interleaved = interleaved;
}

}  // namespace ql::io
