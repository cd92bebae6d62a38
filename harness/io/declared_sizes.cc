// Declared sizes against the tensors present (see declared_sizes.h).
#include "harness/io/declared_sizes.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <string_view>

namespace ql::io {
namespace {

// 1 + the largest N of a "model.layers.N." name, 0 when there is none.
int64_t LayersPresent(const std::map<std::string, Tensor>& weights) {
  constexpr std::string_view kPrefix = "model.layers.";
  int64_t n = 0;
  for (const auto& [name, t] : weights) {
    if (!name.starts_with(kPrefix)) continue;
    const char* b = name.data() + kPrefix.size();
    int64_t l = -1;
    auto [end, ec] = std::from_chars(b, name.data() + name.size(), l);
    if (ec == std::errc() && *end == '.' && l >= 0 && l < INT32_MAX) n = std::max(n, l + 1);
  }
  return n;
}

}  // namespace

Status CheckDeclaredWidth(int64_t dim, int64_t n_heads, const std::string& origin, const DeclaredKeys& keys) {
  if (dim <= 0) return Status::Errorf("{}: {} = {} must be > 0", origin, keys.dim, dim);
  if (n_heads <= 0 || n_heads > dim) {
    return Status::Errorf("{}: {} = {} must be between 1 and {} = {}", origin, keys.heads, n_heads, keys.dim, dim);
  }
  return Status::Ok();
}

Status CheckDeclaredSizes(const ModelConfig& c, const std::map<std::string, Tensor>& weights,
                          const std::string& origin, const DeclaredKeys& keys) {
  QL_RETURN_IF_ERROR(CheckDeclaredWidth(c.dim, c.n_heads, origin, keys));
  const int64_t present = LayersPresent(weights);
  if (c.n_layers != present) {
    return Status::Errorf("{}: {} = {} but the file holds tensors for {} layers; fix the config or use the "
                          "matching weights",
                          origin, keys.layers, c.n_layers, present);
  }
  auto emb = weights.find("model.embed_tokens.weight");
  if (emb != weights.end() && emb->second.shape.size() == 2 && emb->second.shape[1] != c.dim) {
    return Status::Errorf("{}: {} = {} but the token embedding is {} wide", origin, keys.dim, c.dim,
                          emb->second.shape[1]);
  }
  return Status::Ok();
}

}  // namespace ql::io
