// Evaluator: forward passes of the model under test, compared with the baseline and the reference.
#include "harness/eval/evaluator.h"

#include <cmath>

namespace ql {

StatusOr<TokenRecords> EvaluateAgainstBaseline(const Model& model, const std::vector<Window>& windows,
                                               const Baseline& base, const ForwardHooks* hooks) {
  const int V = model.config.vocab_size;
  if (V != base.vocab)
    return Status::Errorf("evaluate: the model's vocabulary ({}) differs from the baseline's ({})", V, base.vocab);
  if (CountScored(windows) != base.n())
    return Status::Errorf("evaluate: the windows score {} tokens but the baseline holds {} (built on other windows)",
                          CountScored(windows), base.n());
  TokenRecords r;
  r.nll_base.reserve(base.n());
  std::vector<float> logits;
  int64_t i = 0;  // scored-token index into the baseline
  for (const Window& w : windows) {
    logits.resize(w.tokens.size() * size_t(V));  // [T, V]
    QL_RETURN_IF_ERROR(ForwardWindow(model, w.tokens, logits.data(), hooks));
    ScoreWindow(base, w, i, logits.data(), &r);
    i += w.score_end - w.score_begin;
  }
  return r;
}

void ScoreWindow(const Baseline& base, const Window& w, int64_t first, const float* logits, TokenRecords* r) {
  const int V = base.vocab, k = base.top_k;
  std::vector<double> lp(V);
  std::vector<float> lpf(V);
  int64_t i = first;
  for (int t = w.score_begin; t < w.score_end; ++t, ++i) {
    std::span<const float> row(logits + size_t(t - 1) * V, V);
    LogSoftmax(row, lp);
    for (int v = 0; v < V; ++v) lpf[v] = float(lp[v]);
    double kld;
    if (k == 0) {
      kld = KlDivergence(std::span<const float>(base.logp.data() + size_t(i) * V, V), std::span<const float>(lpf));
    } else {
      kld = KlDivergenceTopK(std::span<const int>(base.top_idx.data() + size_t(i) * k, k),
                             std::span<const float>(base.top_logp.data() + size_t(i) * k, k), lpf);
    }
    r->Add(base.nll[i], -lp[w.tokens[t]], kld, ArgMax(row) == base.top1[i]);
  }
}

std::vector<std::pair<std::string, SignalError>> WeightErrors(const Model& reference, const Model& quantized,
                                                             const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, SignalError>> out;
  for (const std::string& name : names) {
    if (!reference.Has(name) || !quantized.Has(name)) continue;
    const Tensor& a = reference.W(name);
    const Tensor& b = quantized.W(name);
    QL_CHECK(a.shape == b.shape, "tensor {} changed shape", name);
    out.emplace_back(name, CompareTensors(a.data, b.data));
  }
  return out;
}

StatusOr<std::vector<SignalError>> LayerOutputErrors(const Model& reference, const Model& test,
                                                    const std::vector<Window>& windows, int max_windows) {
  return LayerOutputErrors(reference, test, windows, max_windows, nullptr, {});
}

StatusOr<std::vector<SignalError>> LayerOutputErrors(const Model& reference, const Model& test,
                                                    const std::vector<Window>& windows, int max_windows,
                                                    const ForwardHooks* test_hooks,
                                                    const std::function<void(float* h, int T, int dim)>& to_test_basis) {
  const int L = reference.config.n_layers, D = reference.config.dim, V = reference.config.vocab_size;
  std::vector<ErrorAccumulator> acc(L);
  std::vector<std::vector<float>> ref_out(L);  // [L][T, D]
  std::vector<float> logits;
  ForwardHooks capture;
  ForwardHooks compare = test_hooks ? *test_hooks : ForwardHooks{};
  capture.block_output = [&](int layer, const float* h, int T) {
    ref_out[layer].assign(h, h + size_t(T) * D);
    if (to_test_basis) to_test_basis(ref_out[layer].data(), T, D);
  };
  compare.block_output = [&](int layer, const float* h, int T) {
    QL_CHECK(ref_out[layer].size() == size_t(T) * D, "layer {} was not captured for this window", layer);
    acc[layer].Add(ref_out[layer], std::span<const float>(h, size_t(T) * D));
  };
  compare.stop_after_layer = -1;
  compare.start_layer = 0;
  compare.start_hidden = nullptr;
  const size_t n = max_windows > 0 ? std::min<size_t>(windows.size(), size_t(max_windows)) : windows.size();
  for (size_t wi = 0; wi < n; ++wi) {
    const Window& w = windows[wi];
    logits.resize(w.tokens.size() * size_t(V));
    for (auto& r : ref_out) r.clear();
    QL_RETURN_IF_ERROR(ForwardWindow(reference, w.tokens, logits.data(), &capture));
    QL_RETURN_IF_ERROR(ForwardWindow(test, w.tokens, logits.data(), &compare));
  }
  std::vector<SignalError> out;
  for (const ErrorAccumulator& a : acc) out.push_back(a.Result());
  return out;
}

}  // namespace ql
