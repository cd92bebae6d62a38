// Body reuse: keeping the streams entering the final norm, and a cell run from them (see body_reuse.h).
#include "harness/eval/body_reuse.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "kernels/parallel.h"

namespace ql {

namespace {

uint64_t Mix(uint64_t h, uint64_t w, uint64_t k) {
  h = (h ^ w) * k;
  return h ^ (h >> 31);
}

constexpr uint64_t kA = 0x9e3779b97f4a7c15ull, kB = 0xc2b2ae3d27d4eb4full;

// Runs fn(i, tid) for i in [0, n): on `threads` threads (whole windows each, their products on that
// thread) or, with one thread, in order on the caller, whose products then use every thread.
template <class Fn>
void ForWindows(int n, int threads, const Fn& fn) {
  if (threads > 1) return ParallelFor(n, threads, fn);
  for (int i = 0; i < n; ++i) fn(i, 0);
}

// Scored-token offsets of the windows in the baseline: [windows + 1].
std::vector<int64_t> FirstScored(const std::vector<Window>& windows) {
  std::vector<int64_t> first(windows.size() + 1, 0);
  for (size_t i = 0; i < windows.size(); ++i) first[i + 1] = first[i] + windows[i].n_scored();
  return first;
}

// Window records joined in window order: what EvaluateCell appends window after window.
TokenRecords Join(const std::vector<TokenRecords>& per, int64_t n) {
  TokenRecords r;
  r.nll_base.reserve(size_t(n));
  for (const TokenRecords& w : per)
    for (int64_t i = 0; i < w.size(); ++i) r.Add(w.nll_base[i], w.nll_quant[i], w.kld[i], w.same_top[i] != 0);
  return r;
}

// Counts finished windows for a ProgressFn from any thread.
struct Done {
  Done(const ProgressFn& f, int64_t n) : fn(f), total(n) {}
  const ProgressFn& fn;
  int64_t total, done = 0;
  std::mutex mu;
  void Window() {
    if (!fn) return;
    std::lock_guard<std::mutex> lock(mu);
    fn(++done, total);
  }
};

size_t TMax(const std::vector<Window>& windows) {
  size_t t = 0;
  for (const Window& w : windows) t = std::max(t, w.tokens.size());
  return t;
}

}  // namespace

void BodyKeyBuilder::Add(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    a_ = Mix(a_, w, kA);
    b_ = Mix(b_, w ^ 0x5bd1e9955bd1e995ull, kB);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, bytes - i);
  a_ = Mix(Mix(a_, tail, kA), uint64_t(bytes), kA);
  b_ = Mix(Mix(b_, tail, kB), uint64_t(bytes) + 1, kB);
}

BodyKey BodyKeyBuilder::Key() const { return {Mix(a_, b_, kA), Mix(b_, a_, kB)}; }

size_t KeptBody::bytes() const {
  size_t n = 0;
  for (const auto& w : h) n += w.size() * sizeof(float);
  return n;
}

size_t BodyBytes(const ModelConfig& c, const std::vector<Window>& windows) {
  size_t rows = 0;
  for (const Window& w : windows) rows += w.tokens.size();
  return rows * size_t(c.dim) * sizeof(float);
}

StatusOr<CellEvaluation> EvaluateHeadOnBody(const Model& model, const std::vector<Window>& windows,
                                            const Baseline& base, const ForwardHooks* hooks, const KeptBody& body,
                                            const ProgressFn& progress) {
  QL_RETURN_IF_ERROR(CheckAgainstBaseline(model, windows, base));
  QL_CHECK(body.h.size() == windows.size(), "a body of {} windows for {} windows", body.h.size(), windows.size());
  const int L = model.config.n_layers, D = model.config.dim, V = model.config.vocab_size;
  const std::vector<int64_t> first = FirstScored(windows);
  std::vector<TokenRecords> per(windows.size());
  Done done(progress, int64_t(windows.size()));
  const int threads = WindowThreads(model.config, int(TMax(windows)), int(windows.size()));
  std::vector<std::vector<float>> scratch(std::max(1, threads));  // [threads][T_max, V]
  std::vector<Status> status(windows.size());
  ForWindows(int(windows.size()), threads, [&](int i, int tid) {
    const Window& w = windows[size_t(i)];
    QL_CHECK(body.h[size_t(i)].size() == w.tokens.size() * size_t(D), "window {} has no kept body", i);
    const ForwardHooks h = ScoringHooks(hooks, FirstScoredLogitRow(std::span<const Window>(&w, 1)));
    scratch[size_t(tid)].resize(w.tokens.size() * size_t(V));
    status[size_t(i)] = ForwardFromBlock(model, w.tokens, L, body.h[size_t(i)].data(), scratch[size_t(tid)].data(), &h);
    if (status[size_t(i)].ok()) ScoreWindow(base, w, first[size_t(i)], scratch[size_t(tid)].data(), &per[size_t(i)]);
    done.Window();
  });
  for (size_t i = 0; i < windows.size(); ++i)
    if (!status[i].ok()) return Status::Errorf("window {}: {}", i, status[i].message());
  CellEvaluation e;
  e.records = Join(per, base.n());
  e.layers = body.layers;
  e.windows = int(windows.size());
  return e;
}

}  // namespace ql
