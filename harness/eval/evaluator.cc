// Evaluator: forward passes of the model under test, compared with the baseline and the reference.
#include "harness/eval/evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "kernels/parallel.h"

namespace ql {

namespace {

// Counts finished windows for a ProgressFn, from any thread (the callback is serialized).
class WindowProgress {
 public:
  WindowProgress(const ProgressFn& fn, size_t total) : fn_(fn), total_(int64_t(total)) {}
  void Done() const {
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    fn_(++done_, total_);
  }

 private:
  const ProgressFn& fn_;
  const int64_t total_;
  mutable int64_t done_ = 0;
  mutable std::mutex mu_;
};

// Scratch of one scoring thread: log-probs of one row in double and as stored (float).
struct ScoreScratch {
  std::vector<double> lp;  // [V]
  std::vector<float> lpf;  // [V]
};

// Rows per scoring work item, and the least work (rows · vocab) worth a second thread: the
// log-softmax of a 49k vocabulary costs ~0.2 ms a row, as much as a 135M forward spends on ~3 tokens.
constexpr int kScoreRows = 16;
constexpr double kMinThreadedScore = double(1 << 20);

// KLD of baseline row i against the model's log-probs lpf [V], with the baseline's cached
// probabilities when it has them (bitwise the same as without: metrics.h).
double RowKld(const Baseline& base, int64_t i, std::span<const float> lpf) {
  const int V = base.vocab, k = base.top_k;
  const bool cached = !base.p.empty();
  if (k == 0) {
    const std::span<const float> lb(base.logp.data() + size_t(i) * V, V);
    return cached ? KlDivergence(lb, std::span<const double>(base.p.data() + size_t(i) * V, V), lpf)
                  : KlDivergence(lb, lpf);
  }
  const std::span<const int> idx(base.top_idx.data() + size_t(i) * k, k);
  const std::span<const float> lb(base.top_logp.data() + size_t(i) * k, k);
  return cached ? KlDivergenceTopK(idx, lb, std::span<const double>(base.p.data() + size_t(i) * k, k), base.top_mass[size_t(i)], lpf)
                : KlDivergenceTopK(idx, lb, lpf);
}

// The records of window w's scored tokens into r; i0 = index of its first scored token in `base`.
// Rows are independent: computed in parallel into their slots, then added in order.
void ScoreWindow(const Window& w, const float* logits, const Baseline& base, int64_t i0,
                 std::vector<ScoreScratch>& scratch, TokenRecords* r) {
  const int V = base.vocab, n = w.score_end - w.score_begin;
  std::vector<double> nll(n), kld(n);  // [n]
  std::vector<uint8_t> same(n);        // [n]
  const int items = (n + kScoreRows - 1) / kScoreRows;
  const int threads = double(n) * V < kMinThreadedScore ? 1 : NumThreads();
  if (scratch.size() < size_t(threads)) scratch.resize(threads);
  ParallelFor(items, threads, [&](int item, int tid) {
    ScoreScratch& s = scratch[tid];
    s.lp.resize(V);
    s.lpf.resize(V);
    for (int j = item * kScoreRows; j < std::min(n, (item + 1) * kScoreRows); ++j) {
      const int t = w.score_begin + j;
      const int64_t i = i0 + j;
      std::span<const float> row(logits + size_t(t - 1) * V, V);
      LogSoftmax(row, s.lp);
      for (int v = 0; v < V; ++v) s.lpf[v] = float(s.lp[v]);
      kld[j] = RowKld(base, i, s.lpf);
      nll[j] = -s.lp[w.tokens[t]];
      same[j] = ArgMax(row) == base.top1[i];
    }
  });
  for (int j = 0; j < n; ++j) r->Add(base.nll[i0 + j], nll[j], kld[j], same[j] != 0);
}

void Append(const TokenRecords& from, TokenRecords* to) {
  to->nll_base.insert(to->nll_base.end(), from.nll_base.begin(), from.nll_base.end());
  to->nll_quant.insert(to->nll_quant.end(), from.nll_quant.begin(), from.nll_quant.end());
  to->kld.insert(to->kld.end(), from.kld.begin(), from.kld.end());
  to->p_diff.insert(to->p_diff.end(), from.p_diff.begin(), from.p_diff.end());
  to->same_top.insert(to->same_top.end(), from.same_top.begin(), from.same_top.end());
}

// Streams entering the final norm, kept per window: [windows][T_w * dim] (EvaluateCell's final_streams).
using FinalStreams = std::vector<std::vector<float>>;

// Makes h keep window wi's stream entering the final norm (the last block's output) in (*streams)[wi],
// after h's own block_output if it has one.
void KeepFinalStream(const ModelConfig& c, FinalStreams* streams, size_t wi, ForwardHooks* h) {
  h->block_output = [inner = h->block_output, streams, wi, last = c.n_layers - 1, dim = size_t(c.dim)](
                        int layer, const float* x, int T) {
    if (inner) inner(layer, x, T);
    if (layer == last) (*streams)[wi].assign(x, x + size_t(T) * dim);
  };
}

// Windows of a model too small to fill the cores: whole windows on separate threads, each window's
// records kept apart and joined in window order, so the result is bitwise the sequential one. Window i
// is window from + i of the cell (its slot in streams, when kept).
Status EvaluateWindowsParallel(const Model& model, const std::vector<Window>& windows, const Baseline& base,
                               int64_t i0, const ForwardHooks* hooks, int threads, const WindowProgress& progress,
                               TokenRecords* r, size_t from, FinalStreams* streams) {
  std::vector<std::span<const int>> tokens;
  std::vector<int64_t> first(windows.size() + 1, i0);  // [windows + 1] scored-token offsets in base
  for (size_t i = 0; i < windows.size(); ++i) {
    tokens.emplace_back(windows[i].tokens);
    first[i + 1] = first[i] + (windows[i].score_end - windows[i].score_begin);
  }
  std::vector<TokenRecords> per_window(windows.size());
  std::vector<std::vector<ScoreScratch>> scratch(threads);  // [threads][1]: inside a window item scoring is serial
  const ForwardHooks scoring = ScoringHooks(hooks, FirstScoredLogitRow(windows));
  const auto keep = [&](int i, ForwardHooks* h) { KeepFinalStream(model.config, streams, from + size_t(i), h); };
  QL_RETURN_IF_ERROR(ForwardWindowsEach(
      model, tokens, &scoring, threads,
      [&](int i, int tid, const float* logits) {
        ScoreWindow(windows[i], logits, base, first[i], scratch[tid], &per_window[i]);
        progress.Done();
        return Status::Ok();
      },
      streams ? std::function<void(int, ForwardHooks*)>(keep) : nullptr));
  for (const TokenRecords& w : per_window) Append(w, r);
  return Status::Ok();
}

}  // namespace

int FirstScoredLogitRow(std::span<const Window> windows) {
  int row = std::numeric_limits<int>::max();
  for (const Window& w : windows) row = std::min(row, w.score_begin - 1);
  return windows.empty() ? 0 : std::max(0, row);
}

ForwardHooks ScoringHooks(const ForwardHooks* hooks, int first_logit_row) {
  ForwardHooks h = hooks ? *hooks : ForwardHooks{};
  h.logits_from_row = first_logit_row;
  return h;
}

Status CheckAgainstBaseline(const Model& model, const std::vector<Window>& windows, const Baseline& base) {
  const int V = model.config.vocab_size;
  if (V != base.vocab)
    return Status::Errorf("evaluate: the model's vocabulary ({}) differs from the baseline's ({})", V, base.vocab);
  if (CountScored(windows) != base.n())
    return Status::Errorf("evaluate: the windows score {} tokens but the baseline holds {} (built on other windows)",
                          CountScored(windows), base.n());
  return Status::Ok();
}

namespace {

// Windows [from, end) into r (which holds the records of windows < from): whole windows on separate
// threads when one window cannot fill the cores, else one after another. streams (optional): keeps
// each window's stream entering the final norm.
Status EvaluateWindowsFrom(const Model& model, const std::vector<Window>& windows, size_t from, const Baseline& base,
                           const ForwardHooks* hooks, const WindowProgress& progress, TokenRecords* r,
                           FinalStreams* streams = nullptr) {
  const std::vector<Window> rest(windows.begin() + from, windows.end());
  size_t t_max = 0;
  for (const Window& w : rest) t_max = std::max(t_max, w.tokens.size());
  const int threads = WindowThreads(model.config, int(t_max), int(rest.size()));
  if (threads > 1)
    return EvaluateWindowsParallel(model, rest, base, r->size(), hooks, threads, progress, r, from, streams);
  std::vector<float> logits;
  std::vector<ScoreScratch> scratch;
  int64_t i = r->size();  // scored-token index into the baseline
  for (size_t wi = from; wi < windows.size(); ++wi) {
    const Window& w = windows[wi];
    logits.resize(w.tokens.size() * size_t(model.config.vocab_size));  // [T, V]
    ForwardHooks scoring = ScoringHooks(hooks, FirstScoredLogitRow(std::span<const Window>(&w, 1)));
    if (streams) KeepFinalStream(model.config, streams, wi, &scoring);
    QL_RETURN_IF_ERROR(ForwardWindow(model, w.tokens, logits.data(), &scoring));
    ScoreWindow(w, logits.data(), base, i, scratch, r);
    i += w.score_end - w.score_begin;
    progress.Done();
  }
  return Status::Ok();
}

}  // namespace

StatusOr<TokenRecords> EvaluateAgainstBaseline(const Model& model, const std::vector<Window>& windows,
                                               const Baseline& base, const ForwardHooks* hooks,
                                               const ProgressFn& progress) {
  QL_RETURN_IF_ERROR(CheckAgainstBaseline(model, windows, base));
  TokenRecords r;
  r.nll_base.reserve(base.n());
  const WindowProgress done(progress, windows.size());
  QL_RETURN_IF_ERROR(EvaluateWindowsFrom(model, windows, 0, base, hooks, done, &r));
  return r;
}

size_t ReferenceBlockOutputs::bytes() const {
  size_t n = 0;
  for (const auto& w : h)
    for (const auto& l : w) n += l.size() * sizeof(float);
  return n;
}

StatusOr<ReferenceBlockOutputs> CaptureBlockOutputs(const Model& reference, const std::vector<Window>& windows,
                                                    int max_windows) {
  const int L = reference.config.n_layers, D = reference.config.dim;
  const size_t n = max_windows > 0 ? std::min<size_t>(windows.size(), size_t(max_windows)) : windows.size();
  ReferenceBlockOutputs out;
  out.h.assign(n, std::vector<std::vector<float>>(L));
  for (size_t wi = 0; wi < n; ++wi) {
    ForwardHooks capture;
    capture.block_output = [&](int layer, const float* h, int T) { out.h[wi][layer].assign(h, h + size_t(T) * D); };
    capture.stop_after_layer = L - 1;  // no LM head: the logits are not needed (nor written)
    QL_RETURN_IF_ERROR(ForwardWindow(reference, windows[wi].tokens, nullptr, &capture));
  }
  return out;
}

StatusOr<CellEvaluation> EvaluateCell(const Model& model, const std::vector<Window>& windows, const Baseline& base,
                                      const ForwardHooks* hooks, const ReferenceBlockOutputs& ref,
                                      const std::function<void(float* h, int T, int dim)>& to_test_basis,
                                      const ProgressFn& progress, std::vector<std::vector<float>>* final_streams) {
  QL_RETURN_IF_ERROR(CheckAgainstBaseline(model, windows, base));
  const WindowProgress done(progress, windows.size());
  if (final_streams) final_streams->assign(windows.size(), {});
  const int L = model.config.n_layers, D = model.config.dim, V = model.config.vocab_size;
  QL_CHECK(ref.h.size() <= windows.size(), "{} captured windows for {} windows", ref.h.size(), windows.size());
  CellEvaluation e;
  e.records.nll_base.reserve(base.n());
  std::vector<ErrorAccumulator> acc(L);
  std::vector<float> logits, mapped;
  std::vector<ScoreScratch> scratch;
  for (size_t wi = 0; wi < ref.h.size(); ++wi) {  // the compared windows first, in order, one at a time
    const Window& w = windows[wi];
    ForwardHooks compare = hooks ? *hooks : ForwardHooks{};
    compare.block_output = [&](int layer, const float* h, int T) {
      const std::vector<float>& r = ref.h[wi][layer];
      QL_CHECK(r.size() == size_t(T) * D, "layer {} was not captured for window {}", layer, wi);
      if (to_test_basis) {
        mapped = r;
        to_test_basis(mapped.data(), T, D);
      }
      acc[layer].Add(to_test_basis ? mapped : r, std::span<const float>(h, size_t(T) * D));
    };
    if (final_streams) KeepFinalStream(model.config, final_streams, wi, &compare);
    logits.resize(w.tokens.size() * size_t(V));
    compare.logits_from_row = FirstScoredLogitRow(std::span<const Window>(&w, 1));
    QL_RETURN_IF_ERROR(ForwardWindow(model, w.tokens, logits.data(), &compare));
    ScoreWindow(w, logits.data(), base, e.records.size(), scratch, &e.records);
    done.Done();
  }
  std::vector<float>().swap(logits);  // [T, V] freed: the rest of the windows bring their own buffers
  QL_RETURN_IF_ERROR(EvaluateWindowsFrom(model, windows, ref.h.size(), base, hooks, done, &e.records, final_streams));
  for (const ErrorAccumulator& a : acc) e.layers.push_back(a.Result());
  return e;
}

void ScoreWindow(const Baseline& base, const Window& w, int64_t first, const float* logits, TokenRecords* r) {
  std::vector<ScoreScratch> scratch;
  ScoreWindow(w, logits, base, first, scratch, r);
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
