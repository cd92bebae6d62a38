// KV-cache fake quantization per head (see kv_quant.h).
#include "harness/quant/kv_quant.h"

#include <algorithm>
#include <vector>

#include "kernels/quantizer.h"

namespace ql {

Status FakeQuantizeKvHeads(const Scheme& scheme, float* x, int T, int n_heads, int head_dim) {
  const size_t stride = size_t(n_heads) * head_dim;
  std::vector<float> head(size_t(T) * head_dim), out(head.size());  // [T, head_dim]
  for (int h = 0; h < n_heads; ++h) {
    for (int t = 0; t < T; ++t)
      std::copy_n(x + t * stride + size_t(h) * head_dim, head_dim, head.begin() + size_t(t) * head_dim);
    QL_RETURN_IF_ERROR(FakeQuantize(scheme, head.data(), T, head_dim, out.data()));
    for (int t = 0; t < T; ++t)
      std::copy_n(out.begin() + size_t(t) * head_dim, head_dim, x + t * stride + size_t(h) * head_dim);
  }
  return Status::Ok();
}

}  // namespace ql
