// Checks a checkpoint's declared sizes (layer count, width, heads) against the tensors the file really
// holds, before anything is sized by them: a corrupt header must not allocate per declared layer.
// Not the full shape check: Model::Validate does that once these sizes are known to be sane.
#pragma once

#include <map>
#include <string>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

// What the format calls each size, for the message ("llama.block_count", "num_hidden_layers").
struct DeclaredKeys {
  std::string layers, dim, heads;
};

// Width and heads alone (before head_dim is derived from them): dim > 0, 1 <= n_heads <= dim.
Status CheckDeclaredWidth(int64_t dim, int64_t n_heads, const std::string& origin, const DeclaredKeys& keys);

// c.n_layers must equal the number of model.layers.N blocks present in `weights` (HF names), and c.dim the
// embedding's width.
Status CheckDeclaredSizes(const ModelConfig& c, const std::map<std::string, Tensor>& weights,
                          const std::string& origin, const DeclaredKeys& keys);

}  // namespace ql::io
