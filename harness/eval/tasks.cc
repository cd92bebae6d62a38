// Task scoring (harness/eval/tasks.h): conventions -> token plans -> shared-prefix forward passes ->
// per-candidate log-likelihoods; summaries and the paired comparison against a baseline.
#include "harness/eval/tasks.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "harness/eval/metrics.h"
#include "harness/model/forward_packed.h"
#include "harness/model/generate.h"

namespace ql {
namespace {

bool IsAsciiSpace(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

int CodePoints(std::string_view s) {
  int n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

size_t CommonPrefix(std::span<const int> a, std::span<const int> b) {
  size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
  return k;
}

// lm-eval's _encode_pair for one (context, continuation): trailing whitespace of the context moves to
// the continuation, the continuation's tokens are encode(context + continuation) past encode(context).
StatusOr<CandidateTokens> LmEvalPair(std::string context, std::string continuation, const Tokenizer& tok, int eos_id,
                                     const std::string& where) {
  size_t keep = context.size();
  while (keep > 0 && IsAsciiSpace(context[keep - 1])) --keep;
  continuation = context.substr(keep) + continuation;
  context.resize(keep);
  std::vector<int> ctx = tok.Encode(context, /*add_bos=*/false);
  const std::vector<int> whole = tok.Encode(context + continuation, /*add_bos=*/false);
  const size_t split = ctx.size();
  if (ctx.empty()) ctx.push_back(eos_id);  // lm-eval's prefix token for an empty context
  if (whole.size() <= split)
    return Status::Errorf("{}: the continuation {:?} adds no tokens to its context", where, continuation);
  CandidateTokens c;
  c.tokens = std::move(ctx);
  c.score_from = int(c.tokens.size());
  c.tokens.insert(c.tokens.end(), whole.begin() + split, whole.end());
  return c;
}

// llama.cpp's rule: candidates tokenized whole, scored after the prefix common to all of them
// (capped so every candidate keeps one scored token). `reference` (cloze) joins the comparison
// without being a candidate.
ItemPlan CommonPrefixPlan(std::vector<std::vector<int>> seqs, const std::vector<int>* reference, int eos_id) {
  size_t p = seqs[0].size();
  for (const auto& s : seqs) p = std::min({p, CommonPrefix(s, seqs[0]), s.size() - 1});
  if (reference) p = std::min(p, CommonPrefix(*reference, seqs[0]));
  int shift = 0;
  if (p == 0) {  // nothing to condition on (no BOS, candidates differ from the first token)
    for (auto& s : seqs) s.insert(s.begin(), eos_id);
    shift = 1;
  }
  ItemPlan plan;
  for (auto& s : seqs) plan.candidates.push_back({std::move(s), int(p) + shift});
  return plan;
}

// Drops context tokens on the left so the fed part (all but the last token) fits in `window`.
Status Truncate(ItemPlan* plan, int window, const std::string& where) {
  if (window <= 0) return Status::Ok();
  for (CandidateTokens& c : plan->candidates) {
    const int fed = int(c.tokens.size()) - 1;
    if (fed <= window) continue;
    const int drop = fed - window;
    if (drop > c.score_from - 1)
      return Status::Errorf("{}: {} scored tokens do not fit in a window of {} (raise --ctx or drop the item)", where,
                            int(c.tokens.size()) - c.score_from, window);
    c.tokens.erase(c.tokens.begin(), c.tokens.begin() + drop);
    c.score_from -= drop;
    plan->truncated_tokens = std::max(plan->truncated_tokens, drop);
  }
  return Status::Ok();
}

// log p(token) from one row of logits [V], and whether token is the row's argmax.
double TokenLogProb(const float* row, int vocab, int token, bool* is_argmax) {
  const std::span<const float> r(row, size_t(vocab));
  const int top = ArgMax(r);
  const double m = row[top];
  double z = 0;
  for (int v = 0; v < vocab; ++v) z += std::exp(double(row[v]) - m);
  *is_argmax = top == token;
  return double(row[token]) - m - std::log(z);
}

// The distinct token sequences of one item over every convention being scored, and for each the
// log-probabilities of its tokens from `from` on (the earliest token any convention scores).
struct ItemSequences {
  std::vector<std::vector<int>> seqs;
  std::vector<int> from;
  std::vector<std::vector<int>> index;  // [plan][candidate] -> sequence
  std::vector<std::vector<double>> lp;  // [sequence][token - from] log p
  std::vector<std::vector<uint8_t>> top;  // [sequence][token - from] is the row's argmax
};

ItemSequences CollectSequences(std::span<const ItemPlan* const> plans) {
  ItemSequences u;
  for (const ItemPlan* plan : plans) {
    std::vector<int>& idx = u.index.emplace_back();
    for (const CandidateTokens& c : plan->candidates) {
      size_t k = 0;
      while (k < u.seqs.size() && u.seqs[k] != c.tokens) ++k;
      if (k == u.seqs.size()) u.seqs.push_back(c.tokens), u.from.push_back(c.score_from);
      u.from[k] = std::min(u.from[k], c.score_from);
      idx.push_back(int(k));
    }
  }
  u.lp.resize(u.seqs.size());
  u.top.resize(u.seqs.size());
  return u;
}

// Fills u.lp/u.top of sequence k; row_of(j) gives the logits [V] predicting token j.
template <class RowOf>
void RecordRows(ItemSequences& u, size_t k, int vocab, const RowOf& row_of) {
  const std::vector<int>& seq = u.seqs[k];
  for (size_t j = u.from[k]; j < seq.size(); ++j) {
    bool top = false;
    u.lp[k].push_back(TokenLogProb(row_of(j), vocab, seq[j], &top));
    u.top[k].push_back(top ? 1 : 0);
  }
}

// Every sequence from position 0 on its own (the reference the shared path is tested against).
Status RunAlone(const Model& model, const ForwardHooks* hooks, std::vector<float>& logits, ItemSequences& u,
                int64_t* fed) {
  const int V = model.config.vocab_size;
  for (size_t k = 0; k < u.seqs.size(); ++k) {
    const std::span<const int> in(u.seqs[k].data(), u.seqs[k].size() - 1);
    logits.resize(in.size() * size_t(V));  // [fed, V]
    QL_RETURN_IF_ERROR(ForwardWindow(model, in, logits.data(), hooks));
    *fed += int64_t(in.size());
    RecordRows(u, k, V, [&](size_t j) { return logits.data() + (j - 1) * V; });
  }
  return Status::Ok();
}

// The prefix all sequences share (up to the first scored token) runs once; the cache is rewound to it
// for each sequence, whose remaining fed tokens run in one call.
Status RunShared(const Model& model, const ForwardHooks* hooks, KvCache& cache, std::vector<float>& prefix_logits,
                 std::vector<float>& logits, ItemSequences& u, int64_t* fed) {
  const int V = model.config.vocab_size;
  const std::vector<int>& first = u.seqs[0];
  size_t p = first.size();
  for (size_t k = 0; k < u.seqs.size(); ++k) p = std::min({p, CommonPrefix(u.seqs[k], first), size_t(u.from[k])});
  cache.length = 0;
  prefix_logits.resize(V);  // [V]: the prediction for position p
  if (p > 0) {  // p = 0: sequences differ from their first token (e.g. a WinoGrande blank first)
    QL_RETURN_IF_ERROR(ForwardCached(model, std::span<const int>(first.data(), p), &cache, prefix_logits.data(), hooks));
    *fed += int64_t(p);
  }
  for (size_t k = 0; k < u.seqs.size(); ++k) {
    const std::vector<int>& seq = u.seqs[k];
    cache.length = int(p);
    const size_t n_rest = seq.size() - 1 - p;  // fed positions p .. size-2
    if (n_rest > 0) {
      logits.resize(n_rest * size_t(V));  // [n_rest, V], row r = position p + r
      QL_RETURN_IF_ERROR(
          ForwardCachedAll(model, std::span<const int>(seq.data() + p, n_rest), &cache, logits.data(), hooks));
      *fed += int64_t(n_rest);
    }
    RecordRows(u, k, V, [&](size_t j) { return j - 1 < p ? prefix_logits.data() : logits.data() + (j - 1 - p) * V; });
  }
  return Status::Ok();
}

bool NoHooks(const ForwardHooks* h) {
  return !h || (!h->linear_input && !h->kv && !h->attn_q && !h->attn_probs && !h->block_output &&
                h->stop_after_layer < 0 && h->stop_at_input.empty() && h->start_layer == 0 && !h->start_hidden);
}

// Several items per forward call: each item's sequences become one trie of rows (every shared prefix
// runs once), the tries of consecutive items are packed into one ForwardPacked call of about
// `pack_rows` rows, and only the rows that predict a scored token get logits.
class PackedRunner {
 public:
  PackedRunner(const Model& model, int pack_rows) : model_(model), pack_rows_(pack_rows) {}

  // Adds an item's sequences to the pending batch; true when the batch is full.
  bool Add(ItemSequences* u) {
    Placed p{u, {}};
    std::map<std::pair<int, int>, int> child;  // (parent row, token) -> row, within this item
    for (size_t k = 0; k < u->seqs.size(); ++k) {
      const std::vector<int>& seq = u->seqs[k];
      std::vector<int>& rows = p.row_of.emplace_back();  // [fed positions]
      int parent = -1;
      for (size_t j = 0; j + 1 < seq.size(); ++j) {
        auto [it, fresh] = child.try_emplace({parent, seq[j]}, 0);
        if (fresh) it->second = batch_.Add(seq[j], parent);
        parent = it->second;
        rows.push_back(parent);
      }
      for (size_t j = std::max(1, u->from[k]); j < seq.size(); ++j) WantLogits(rows[j - 1]);
    }
    items_.push_back(std::move(p));
    return batch_.rows() >= pack_rows_;
  }

  // Runs the pending batch and fills lp/top of every pending item's sequences.
  Status Flush(int64_t* fed) {
    if (items_.empty()) return Status::Ok();
    const int V = model_.config.vocab_size;
    logits_.resize(batch_.logit_rows.size() * size_t(V));  // [L, V]
    QL_RETURN_IF_ERROR(ForwardPacked(model_, batch_, logits_.data()));
    *fed += batch_.rows();
    for (Placed& p : items_)
      for (size_t k = 0; k < p.u->seqs.size(); ++k)
        RecordRows(*p.u, k, V, [&](size_t j) { return logits_.data() + size_t(logit_index_[p.row_of[k][j - 1]]) * V; });
    items_.clear();
    batch_ = PackedBatch{};
    logit_index_.clear();
    return Status::Ok();
  }

 private:
  struct Placed {
    ItemSequences* u;
    std::vector<std::vector<int>> row_of;  // [sequence][fed position] -> batch row
  };
  void WantLogits(int row) {
    if (int(logit_index_.size()) <= row) logit_index_.resize(row + 1, -1);
    if (logit_index_[row] >= 0) return;
    logit_index_[row] = int(batch_.logit_rows.size());
    batch_.logit_rows.push_back(row);
  }
  const Model& model_;
  const int pack_rows_;
  PackedBatch batch_;
  std::vector<Placed> items_;
  std::vector<int> logit_index_;  // [row] -> logits row, or -1
  std::vector<float> logits_;
};

// A candidate's score from its sequence's recorded log-probabilities.
CandidateScore Accumulate(const ItemSequences& u, int k, const CandidateTokens& c) {
  CandidateScore s;
  s.greedy = true;
  for (size_t j = c.score_from; j < c.tokens.size(); ++j) {
    s.loglik += u.lp[k][j - u.from[k]];
    s.greedy = s.greedy && u.top[k][j - u.from[k]];
    ++s.n_tokens;
  }
  return s;
}

// The text acc_norm divides by: the choice (multiple choice) or the shared continuation.
int CandidateChars(const TaskItem& item, TaskShape shape, int c) {
  return CodePoints(shape == TaskShape::kPartialContext ? item.Continuation(0) : item.Continuation(c));
}

}  // namespace

std::string_view TaskConventionName(TaskConvention c) { return c == TaskConvention::kLmEval ? "lmeval" : "llamacpp"; }

StatusOr<TaskConvention> ParseTaskConvention(std::string_view name) {
  if (name == "lmeval") return TaskConvention::kLmEval;
  if (name == "llamacpp") return TaskConvention::kLlamaCpp;
  return Status::Errorf("unknown task convention '{}' (use lmeval or llamacpp)", name);
}

std::vector<TaskMetricSpec> TaskMetricSpecs(TaskShape shape, TaskConvention convention) {
  if (shape == TaskShape::kCloze) return {{"acc", ChoiceRule::kGreedy}};
  if (convention == TaskConvention::kLlamaCpp) return {{"acc_per_token", ChoiceRule::kPerToken}};
  if (shape == TaskShape::kPartialContext) return {{"acc", ChoiceRule::kSum}};
  return {{"acc", ChoiceRule::kSum}, {"acc_norm", ChoiceRule::kPerChar}};
}

StatusOr<ItemPlan> PlanItem(const TaskItem& item, TaskShape shape, TaskConvention convention, const Tokenizer& tok,
                            int eos_id, int window, const std::string& origin) {
  const std::string where = origin + ":" + std::to_string(item.line);
  const int n = item.num_candidates();
  ItemPlan plan;
  if (convention == TaskConvention::kLmEval) {
    for (int c = 0; c < n; ++c) {
      QL_ASSIGN_OR_RETURN(CandidateTokens ct, LmEvalPair(item.Context(c), " " + item.Continuation(c), tok, eos_id, where));
      plan.candidates.push_back(std::move(ct));
    }
  } else {
    std::vector<std::vector<int>> seqs;
    for (int c = 0; c < n; ++c) seqs.push_back(tok.Encode(item.Context(c) + " " + item.Continuation(c), true));
    std::vector<int> reference;
    if (shape == TaskShape::kCloze) reference = tok.Encode(item.Context(0), true);
    for (const auto& s : seqs)
      if (s.empty()) return Status::Errorf("{}: a candidate tokenizes to nothing", where);
    plan = CommonPrefixPlan(std::move(seqs), shape == TaskShape::kCloze ? &reference : nullptr, eos_id);
  }
  QL_RETURN_IF_ERROR(Truncate(&plan, window, where));
  return plan;
}

double ItemScore::Score(int c, ChoiceRule rule) const {
  const CandidateScore& s = candidates[c];
  switch (rule) {
    case ChoiceRule::kSum: return s.loglik;
    case ChoiceRule::kPerChar: return s.loglik / std::max(1, s.n_chars);
    case ChoiceRule::kPerToken: return s.loglik / std::max(1, s.n_tokens);
    case ChoiceRule::kGreedy: return s.greedy ? 1 : 0;
  }
  return 0;
}

int ItemScore::Chosen(ChoiceRule rule) const {
  if (rule == ChoiceRule::kGreedy) return candidates[0].greedy ? 0 : -1;
  int best = 0;
  for (int c = 1; c < int(candidates.size()); ++c)
    if (Score(c, rule) > Score(best, rule)) best = c;
  return best;
}

bool ItemScore::Correct(ChoiceRule rule) const { return Chosen(rule) == gold; }

int64_t TaskScores::truncated_items() const {
  return std::count_if(items.begin(), items.end(), [](const ItemScore& s) { return s.truncated_tokens > 0; });
}

std::vector<uint8_t> TaskScores::Correct(ChoiceRule rule) const {
  std::vector<uint8_t> out;
  for (const ItemScore& s : items) out.push_back(s.Correct(rule) ? 1 : 0);
  return out;
}

std::vector<TaskMetricValue> TaskMetrics(const TaskScores& scores) {
  std::vector<TaskMetricValue> out;
  for (const TaskMetricSpec& m : TaskMetricSpecs(scores.shape, scores.convention)) {
    const Accuracy a = AccuracyOf(scores.Correct(m.rule));
    out.push_back({std::string(m.name), a.acc, a.se});
  }
  if (scores.shape == TaskShape::kCloze && !scores.items.empty()) {
    std::vector<double> nll;
    double sum = 0;
    int64_t tokens = 0;
    for (const ItemScore& s : scores.items) {
      nll.push_back(-s.candidates[0].loglik);
      sum += s.candidates[0].loglik;
      tokens += s.candidates[0].n_tokens;
    }
    const MeanErr m = MeanAndStdErr(nll);
    out.push_back({"ppl", std::exp(m.mean), std::exp(m.mean) * m.se});
    out.push_back({"ppl_token", std::exp(-sum / double(std::max<int64_t>(1, tokens))), 0});
  }
  return out;
}

StatusOr<std::vector<TaskScores>> ScoreTaskConventions(const Model& model, const TaskSet& tasks,
                                                       std::span<const TaskConvention> conventions,
                                                       const TaskScoreOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!model.tokenizer) return Status::Errorf("{}: the model has no tokenizer (task scoring needs one)", model.source_path);
  if (conventions.empty()) return Status::Error("task scoring: no convention given (use lmeval or llamacpp)");
  const Tokenizer& tok = *model.tokenizer;
  const int eos_id = tok.eos_id() >= 0 ? tok.eos_id() : model.config.eos_id;
  int window = options.window > 0 ? options.window : model.config.max_seq_len;
  if (options.window > 0 && model.config.max_seq_len > 0) window = std::min(window, model.config.max_seq_len);

  const size_t n_conv = conventions.size();
  std::vector<ItemPlan> plans;  // [item * n_conv + convention]
  size_t longest = 1;
  for (const TaskItem& item : tasks.items) {
    for (TaskConvention conv : conventions) {
      QL_ASSIGN_OR_RETURN(ItemPlan plan, PlanItem(item, tasks.shape, conv, tok, eos_id, window, tasks.path));
      for (const CandidateTokens& c : plan.candidates) longest = std::max(longest, c.tokens.size());
      plans.push_back(std::move(plan));
    }
  }

  std::vector<TaskScores> out(n_conv);
  for (size_t v = 0; v < n_conv; ++v) {
    out[v].task = tasks.name;
    out[v].path = tasks.path;
    out[v].shape = tasks.shape;
    out[v].convention = conventions[v];
    out[v].limit = tasks.limit.Canonical();
    out[v].window = window;
  }
  const bool packed = options.share_prefix && options.pack_rows > 0 && NoHooks(options.hooks) &&
                      model.matmul == MatmulPrecision::kFp32;
  KvCache cache = options.share_prefix && !packed ? KvCache::ForModel(model.config, int(longest)) : KvCache{};
  std::vector<float> prefix_logits, logits;
  int64_t fed = 0;
  PackedRunner runner(model, options.pack_rows);
  std::vector<ItemSequences> pending;  // [items in the packed batch]
  size_t done = 0;                     // items whose scores are in `out`
  auto finish = [&](size_t i, const ItemSequences& u) {  // item i's scores per convention
    const TaskItem& item = tasks.items[i];
    for (size_t v = 0; v < n_conv; ++v) {
      const ItemPlan& plan = plans[i * n_conv + v];
      ItemScore s;
      s.line = item.line;
      s.gold = item.gold;
      s.truncated_tokens = plan.truncated_tokens;
      for (size_t c = 0; c < plan.candidates.size(); ++c) {
        s.candidates.push_back(Accumulate(u, u.index[v][c], plan.candidates[c]));
        s.candidates.back().n_chars = CandidateChars(item, tasks.shape, int(c));
      }
      out[v].items.push_back(std::move(s));
    }
    ++done;
    if (options.progress) options.progress(int64_t(done), int64_t(tasks.items.size()));
  };
  pending.reserve(tasks.items.size());
  for (size_t i = 0; i < tasks.items.size(); ++i) {
    const TaskItem& item = tasks.items[i];
    std::vector<const ItemPlan*> item_plans;
    for (size_t v = 0; v < n_conv; ++v) item_plans.push_back(&plans[i * n_conv + v]);
    ItemSequences u = CollectSequences(item_plans);
    if (packed) {  // items [done, i] share the pending batch
      pending.push_back(std::move(u));
      if (runner.Add(&pending.back()) || i + 1 == tasks.items.size()) {
        const Status st = runner.Flush(&fed);
        if (!st.ok()) return Status::Errorf("{}:{}-{}: {}", tasks.path, tasks.items[done].line, item.line, st.message());
        for (const ItemSequences& p : pending) finish(done, p);
        pending.clear();
      }
      continue;
    }
    const Status st = options.share_prefix ? RunShared(model, options.hooks, cache, prefix_logits, logits, u, &fed)
                                           : RunAlone(model, options.hooks, logits, u, &fed);
    if (!st.ok()) return Status::Errorf("{}:{}: {}", tasks.path, item.line, st.message());
    finish(i, u);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (TaskScores& s : out) s.seconds = seconds, s.tokens_forwarded = fed;
  return out;
}

StatusOr<TaskScores> ScoreTask(const Model& model, const TaskSet& tasks, TaskConvention convention,
                               const TaskScoreOptions& options) {
  QL_ASSIGN_OR_RETURN(std::vector<TaskScores> s, ScoreTaskConventions(model, tasks, {&convention, 1}, options));
  return std::move(s[0]);
}

StatusOr<TaskComparison> CompareTask(const TaskScores& base, const TaskScores& cell, int bootstrap_resamples,
                                     uint64_t seed) {
  if (base.convention != cell.convention || base.shape != cell.shape || base.items.size() != cell.items.size())
    return Status::Errorf("task {}: baseline ({}, {} items) and cell ({}, {} items) were not scored alike", base.task,
                          TaskConventionName(base.convention), base.items.size(), TaskConventionName(cell.convention),
                          cell.items.size());
  for (size_t i = 0; i < base.items.size(); ++i) {
    const ItemScore &b = base.items[i], &c = cell.items[i];
    if (b.line != c.line || b.gold != c.gold || b.candidates.size() != c.candidates.size())
      return Status::Errorf("task {}: item {} differs between baseline (line {}) and cell (line {})", base.task, i,
                            b.line, c.line);
  }
  TaskComparison out;
  out.task = base.task;
  out.convention = base.convention;
  out.n = int64_t(base.items.size());
  for (const TaskMetricSpec& m : TaskMetricSpecs(base.shape, base.convention)) {
    TaskMetricComparison mc;
    mc.metric = std::string(m.name);
    mc.paired = PairAccuracies(base.Correct(m.rule), cell.Correct(m.rule), bootstrap_resamples, seed);
    std::vector<double> kl;
    int64_t same = 0;
    for (size_t i = 0; i < base.items.size(); ++i) {
      const ItemScore &b = base.items[i], &c = cell.items[i];
      same += b.Chosen(m.rule) == c.Chosen(m.rule);
      if (m.rule == ChoiceRule::kGreedy) continue;
      std::vector<double> sb, sc;
      for (int k = 0; k < int(b.candidates.size()); ++k) sb.push_back(b.Score(k, m.rule)), sc.push_back(c.Score(k, m.rule));
      kl.push_back(CandidateKl(sb, sc));
    }
    mc.same_choice = out.n > 0 ? double(same) / double(out.n) : 0;
    if (!kl.empty()) {
      const MeanErr k = MeanAndStdErr(kl);
      mc.has_kl = true;
      mc.kl_mean = k.mean;
      mc.kl_se = k.se;
    }
    out.metrics.push_back(std::move(mc));
  }
  std::vector<double> d;
  for (size_t i = 0; i < base.items.size(); ++i) {
    const int g = base.items[i].gold;
    d.push_back(cell.items[i].candidates[g].loglik - base.items[i].candidates[g].loglik);
  }
  const MeanErr md = MeanAndStdErr(d);
  out.dloglik_gold = md.mean;
  out.dloglik_gold_se = md.se;
  return out;
}

}  // namespace ql
