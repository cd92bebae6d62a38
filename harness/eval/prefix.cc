// Prefix reuse and the window-by-window evaluation loop (see prefix.h).
#include "harness/eval/prefix.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "harness/eval/evaluator.h"

namespace ql {

StatusOr<PrefixStore> PrefixStore::Build(const Model& reference, const std::vector<Window>& windows,
                                         int64_t budget_bytes) {
  const int L = reference.config.n_layers, D = reference.config.dim;
  PrefixStore p;
  p.dim_ = D;
  p.streams_.resize(size_t(L) + 1);
  size_t rows = 0;
  for (const Window& w : windows) p.offset_.push_back(rows), rows += w.tokens.size();
  const int64_t per_block = int64_t(rows) * D * int64_t(sizeof(float));
  const int64_t fit = per_block > 0 ? std::min<int64_t>(L, budget_bytes / per_block) : 0;
  if (fit <= 0) return p;
  const int stride = int((L + fit - 1) / fit);  // ceil(L / fit): at most `fit` multiples of it in 1..L
  for (int b = stride; b <= L; b += stride) p.streams_[size_t(b)].resize(rows * size_t(D));
  if (p.kept_blocks() < fit) p.streams_[size_t(L)].resize(rows * size_t(D));
  p.mlp_.resize(size_t(L));
  const int64_t fit_mlp = std::min<int64_t>(L, (budget_bytes - p.kept_blocks() * per_block) / per_block);
  if (fit_mlp > 0)  // blocks 0, s', 2s', …: at most fit_mlp of them
    for (int b = 0, s = int((L + fit_mlp - 1) / fit_mlp); b < L; b += s) p.mlp_[size_t(b)].resize(rows * size_t(D));
  int last = 0;  // the last layer the capture must run
  for (int b = 1; b <= L; ++b)
    if (p.Kept(b)) last = b - 1;
  for (int b = 0; b < L; ++b)
    if (p.MlpKept(b)) last = std::max(last, b);
  ForwardHooks capture;
  size_t w_at = 0;
  capture.block_output = [&](int layer, const float* h, int T) {  // output of `layer` = input of layer + 1
    if (p.Kept(layer + 1)) std::memcpy(p.streams_[size_t(layer) + 1].data() + p.offset_[w_at] * D, h, sizeof(float) * size_t(T) * D);
  };
  capture.attn_residual = [&](int layer, const float* h, int T) {
    if (p.MlpKept(layer)) std::memcpy(p.mlp_[size_t(layer)].data() + p.offset_[w_at] * D, h, sizeof(float) * size_t(T) * D);
  };
  capture.stop_after_layer = last;
  std::vector<float> logits;
  for (; w_at < windows.size(); ++w_at) {
    logits.resize(windows[w_at].tokens.size() * size_t(reference.config.vocab_size));
    QL_RETURN_IF_ERROR(ForwardWindow(reference, windows[w_at].tokens, logits.data(), &capture));
  }
  p.bytes_ = int64_t(p.kept_blocks() + p.kept_mlp_inputs()) * per_block;
  return p;
}

int PrefixStore::StartAtOrBelow(int k) const {
  for (int b = std::min(k, int(streams_.size()) - 1); b > 0; --b)
    if (Kept(b)) return b;
  return 0;
}

int PrefixStore::kept_mlp_inputs() const {
  int n = 0;
  for (const auto& m : mlp_) n += !m.empty();
  return n;
}

int PrefixStore::kept_blocks() const {
  int n = 0;
  for (size_t b = 1; b < streams_.size(); ++b) n += !streams_[b].empty();
  return n;
}

StatusOr<WindowRecords> EvaluateWindows(const Model& model, const std::vector<Window>& windows, const Baseline& base,
                                        const ForwardHooks* hooks, const WindowPlan& plan) {
  QL_RETURN_IF_ERROR(CheckAgainstBaseline(model, windows, base));
  const int V = model.config.vocab_size;
  QL_CHECK(plan.start_mlp ? plan.prefix && plan.prefix->MlpKept(plan.start_block)
                          : plan.start_block == 0 || (plan.prefix && plan.prefix->Kept(plan.start_block)),
           "block {} ({}) is not kept by the prefix store", plan.start_block, plan.start_mlp ? "MLP input" : "input");
  std::vector<int64_t> first(windows.size() + 1, 0);  // scored-token index of each window in the baseline
  for (size_t i = 0; i < windows.size(); ++i) first[i + 1] = first[i] + windows[i].score_end - windows[i].score_begin;
  std::vector<int> order = plan.order;
  if (order.empty()) order.resize(windows.size()), std::iota(order.begin(), order.end(), 0);
  std::vector<TokenRecords> per(windows.size());  // by window index
  WindowSums sums;
  std::vector<float> logits;
  WindowRecords out;
  for (int w : order) {
    const Window& win = windows[size_t(w)];
    if (plan.known && (*plan.known)[size_t(w)]) {
      per[size_t(w)] = *(*plan.known)[size_t(w)];
      ++out.reused;
    } else {
      logits.resize(win.tokens.size() * size_t(V));  // [T, V]
      const ForwardHooks scoring = ScoringHooks(hooks, FirstScoredLogitRow(std::span<const Window>(&win, 1)));
      if (plan.start_mlp) {
        const float* mid = plan.prefix->MlpStream(plan.start_block, size_t(w));
        QL_RETURN_IF_ERROR(ForwardFromMlp(model, win.tokens, plan.start_block, mid, logits.data(), &scoring));
      } else {
        const float* start = plan.start_block > 0 ? plan.prefix->Stream(plan.start_block, size_t(w)) : nullptr;
        QL_RETURN_IF_ERROR(ForwardFromBlock(model, win.tokens, plan.start_block, start, logits.data(), &scoring));
      }
      ScoreWindow(base, win, first[size_t(w)], logits.data(), &per[size_t(w)]);
    }
    const TokenRecords& r = per[size_t(w)];
    double dnll = 0;
    for (int64_t i = 0; i < r.size(); ++i) dnll += r.nll_quant[size_t(i)] - r.nll_base[size_t(i)];
    sums.kld.push_back(std::accumulate(r.kld.begin(), r.kld.end(), 0.0));
    sums.dnll.push_back(dnll);
    sums.tokens.push_back(r.size());
    ++out.windows;
    if (plan.stop && plan.stop(sums)) break;
  }
  for (const TokenRecords& r : per)
    for (int64_t i = 0; i < r.size(); ++i) out.records.Add(r.nll_base[i], r.nll_quant[i], r.kld[i], r.same_top[i]);
  return out;
}

StatusOr<std::vector<SignalError>> LayerOutputErrorsFrom(const Model& reference, const Model& test,
                                                        const std::vector<Window>& windows, int max_windows,
                                                        const ForwardHooks* test_hooks, const PrefixStore& prefix,
                                                        int k) {
  const int L = reference.config.n_layers, D = reference.config.dim, V = reference.config.vocab_size;
  const int s0 = prefix.StartAtOrBelow(k);
  bool stored = true;  // every reference output from block s0 on is in the store
  for (int b = s0 + 1; b <= L; ++b) stored = stored && prefix.Kept(b);
  std::vector<ErrorAccumulator> acc(L);
  std::vector<std::vector<float>> ref_out(L);  // [L][T, D] when not stored
  ForwardHooks capture, compare = test_hooks ? *test_hooks : ForwardHooks{};
  capture.block_output = [&](int layer, const float* h, int T) { ref_out[layer].assign(h, h + size_t(T) * D); };
  capture.stop_after_layer = compare.stop_after_layer = L - 1;
  size_t wi = 0;
  compare.block_output = [&](int layer, const float* h, int T) {
    const float* ref = stored ? prefix.Stream(layer + 1, wi) : ref_out[layer].data();
    acc[layer].Add(std::span<const float>(ref, size_t(T) * D), std::span<const float>(h, size_t(T) * D));
  };
  const size_t n = max_windows > 0 ? std::min<size_t>(windows.size(), size_t(max_windows)) : windows.size();
  int64_t values = 0;  // per layer: positions · dim over the windows compared
  std::vector<float> logits;
  for (; wi < n; ++wi) {
    const Window& w = windows[wi];
    values += int64_t(w.tokens.size()) * D;
    if (s0 == L) continue;
    logits.resize(w.tokens.size() * size_t(V));
    const float* start = s0 > 0 ? prefix.Stream(s0, wi) : nullptr;
    if (!stored) { QL_RETURN_IF_ERROR(ForwardFromBlock(reference, w.tokens, s0, start, logits.data(), &capture)); }
    QL_RETURN_IF_ERROR(ForwardFromBlock(test, w.tokens, s0, start, logits.data(), &compare));
  }
  std::vector<SignalError> out;
  for (int l = 0; l < L; ++l) {
    if (l >= s0) {
      out.push_back(acc[size_t(l)].Result());
      continue;
    }
    // What ErrorAccumulator gives for identical streams: no error, SQNR +inf.
    SignalError same;
    same.n = values;
    same.sqnr_db = values > 0 ? std::numeric_limits<double>::infinity() : 0;
    out.push_back(same);
  }
  return out;
}

}  // namespace ql
