// KV-cache fake quantization: the keys or values of one layer, [T, n_kv_heads * head_dim], viewed as
// n_kv_heads matrices [T, head_dim] and each fake-quantized with a Scheme. Granularity picks the
// KV-cache variant: token (one scale per token and head, as KV8 / FP8 caches), channel_in (one scale
// per channel over the window, KIVI's key quantization), g<N> (groups along head_dim), tensor (per
// head). Applied through ForwardHooks::kv by the sweep runner. Not attention-score quantization.
#pragma once

#include "kernels/scheme.h"
#include "kernels/status.h"

namespace ql {

// x: [T, n_heads * head_dim] row-major, quantized in place.
Status FakeQuantizeKvHeads(const Scheme& scheme, float* x, int T, int n_heads, int head_dim);

}  // namespace ql
