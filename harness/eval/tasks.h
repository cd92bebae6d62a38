// Zero-shot task accuracy: scores the candidates of multiple-choice, partial-context and cloze items
// (datasets/tasks.h) by their log-likelihood under a model, by one of two labelled conventions, and
// compares a quantized model's answers with the baseline's item by item (harness/eval/paired_stats.h).
// Not a prompt library: items are scored as the file spells them (zero-shot, no few-shot examples).
//
// Conventions (the label is stored with every number; the two differ in tokenization and scoring):
//   lmeval   — lm-evaluation-harness's loglikelihood requests. Candidate c is the pair (context,
//              " " + continuation) (the space is lm-eval's default target delimiter). Trailing
//              whitespace of the context moves to the front of the continuation; then
//              context_enc = encode(context), whole = encode(context + continuation) and the scored
//              tokens are whole[len(context_enc):], fed after context_enc (lm-eval's _encode_pair).
//              No BOS (lm-eval's default for causal models); an empty context is replaced by the
//              EOS token, lm-eval's prefix token. Metrics:
//                acc      argmax of the summed log-likelihood of the scored tokens;
//                acc_norm argmax of that sum divided by the length of the candidate text (the choice
//                         without the delimiter) in Unicode code points, as lm-eval's
//                         len(choice) (bytes == code points for ASCII text). Multiple choice only:
//                         lm-eval's WinoGrande reports acc alone.
//   llamacpp — llama.cpp perplexity's --multiple-choice: each candidate is the one string
//              context + " " + continuation, tokenized with BOS only if the model asks for it; the
//              tokens after the longest prefix common to all candidates (at most min length − 1)
//              are scored by their mean log-probability (metric acc_per_token). Partial-context
//              items go through the same rule with the full sentences as candidates (so the
//              option word is scored too; this is not llama.cpp's separate --winogrande rule).
//   Cloze items (LAMBADA) under either label: the target is " " + continuation; metrics acc (every
//   target token is the argmax of its row: greedy decoding would produce exactly the target) and
//   ppl = exp(−mean over items of the target's summed log-likelihood) (lm-eval's per-target
//   perplexity), ppl_token = exp(−Σ loglik / Σ tokens). lmeval splits as above; llamacpp scores the
//   tokens of encode(context + " " + continuation) after its common prefix with encode(context).
//
// Items longer than the window: the fed sequence (all tokens but the last) must fit in `window`
// positions (default: the model's max_seq_len). A longer candidate loses tokens from the LEFT of its
// context; the scored tokens are always kept whole (lm-eval's rule). A candidate whose scored part
// alone does not fit is an error naming the item's line. Truncated items are counted.
//
// Speed: each item's distinct token sequences (over every convention scored) form one trie, so every
// prefix they share runs once; the tries of consecutive items are packed into one call of about
// pack_rows rows (harness/model/forward_packed.h: attention within each trie only), and only rows
// that predict a scored token reach the LM head. A row's scores do not depend on what is packed
// beside it, so they are bitwise the same for any pack size and thread count. With forward hooks (a
// quantized cell's activation / KV / attention schemes) or BF16 compute, items run one at a time:
// the shared prefix once on a KV cache, rewound for each candidate, whose remaining tokens run in
// one call (ForwardCachedAll); that path agrees with the packed one to float rounding. Same inputs
// give bitwise the same scores.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/tasks.h"
#include "harness/eval/paired_stats.h"
#include "harness/model/forward.h"
#include "harness/model/model.h"
#include "harness/tokenizer/tokenizer.h"

namespace ql {

enum class TaskConvention { kLmEval, kLlamaCpp };
std::string_view TaskConventionName(TaskConvention c);  // "lmeval", "llamacpp"
StatusOr<TaskConvention> ParseTaskConvention(std::string_view name);

// How a candidate's scored log-probabilities become the number its choice is decided by.
enum class ChoiceRule { kSum, kPerChar, kPerToken, kGreedy };

// One reported accuracy: its name (the same in the CLI, JSON and any store) and its rule.
struct TaskMetricSpec {
  std::string_view name;  // "acc", "acc_norm", "acc_per_token"
  ChoiceRule rule;
};
// The accuracy metrics of a (shape, convention), in report order (see the header comment).
std::vector<TaskMetricSpec> TaskMetricSpecs(TaskShape shape, TaskConvention convention);

// What the model is fed for one candidate: tokens[0..n-2] (the last token is only predicted), and the
// scored tokens tokens[score_from..n-1], each predicted by the logits of the position before it.
struct CandidateTokens {
  std::vector<int> tokens;
  int score_from = 1;  // >= 1
};
struct ItemPlan {
  std::vector<CandidateTokens> candidates;
  int truncated_tokens = 0;  // context tokens dropped on the left (the most of any candidate)
};
// The convention's tokenization of one item, truncated to `window` fed positions (0: no limit).
StatusOr<ItemPlan> PlanItem(const TaskItem& item, TaskShape shape, TaskConvention convention,
                            const Tokenizer& tokenizer, int eos_id, int window, const std::string& origin);

struct CandidateScore {
  double loglik = 0;    // Σ log p(token) over the scored tokens (nats)
  int n_tokens = 0;     // scored tokens
  int n_chars = 0;      // code points of the candidate text (acc_norm's divisor)
  bool greedy = false;  // every scored token is its row's argmax (first index on ties)
};
struct ItemScore {
  int line = 0;
  int gold = 0;
  int truncated_tokens = 0;
  std::vector<CandidateScore> candidates;  // [candidates]
  double Score(int c, ChoiceRule rule) const;  // the number `rule` ranks candidate c by
  int Chosen(ChoiceRule rule) const;           // argmax of Score (first on ties); kGreedy: 0 or −1
  bool Correct(ChoiceRule rule) const;
};

struct TaskScores {
  std::string task, path;
  TaskShape shape = TaskShape::kMultipleChoice;
  TaskConvention convention = TaskConvention::kLmEval;
  std::string limit;  // TaskLimit::Canonical()
  int window = 0;     // fed positions allowed per candidate
  std::vector<ItemScore> items;
  int64_t tokens_forwarded = 0;  // positions run through the model (shared prefixes counted once)
  double seconds = 0;            // wall time of ScoreTask (tokenizing + forward passes)
  double items_per_s() const { return seconds > 0 ? double(items.size()) / seconds : 0; }
  double tokens_per_s() const { return seconds > 0 ? double(tokens_forwarded) / seconds : 0; }
  int64_t truncated_items() const;
  std::vector<uint8_t> Correct(ChoiceRule rule) const;  // [items]
};

// A named number with its standard error, as it would be stored: (task, convention, name, value, se).
struct TaskMetricValue {
  std::string name;
  double value = 0, se = 0;
};
// The accuracy metrics of TaskMetricSpecs, and for cloze tasks ppl (se by the delta method) and
// ppl_token (se 0: not estimated).
std::vector<TaskMetricValue> TaskMetrics(const TaskScores& scores);

struct TaskScoreOptions {
  int window = 0;                // 0: the model's max_seq_len (no limit when that is 0)
  bool share_prefix = true;      // false: every candidate runs alone from position 0 (the reference)
  // > 0 (with share_prefix, no hooks and FP32 matmuls): items are packed into ForwardPacked calls of
  // about this many rows (harness/model/forward_packed.h); 0, or hooks set: one item at a time on the
  // KV cache. The packed scores do not depend on this value (bitwise).
  int pack_rows = 512;
  const ForwardHooks* hooks = nullptr;  // activation / KV-cache hooks of a quantized cell
  std::function<void(int64_t done, int64_t total)> progress;  // called after each item when set
};
StatusOr<TaskScores> ScoreTask(const Model& model, const TaskSet& tasks, TaskConvention convention,
                               const TaskScoreOptions& options = {});
// Several conventions in one pass: a token sequence two conventions share (the usual case for
// multiple choice, whose lmeval and llamacpp strings are the same) runs once. Each result carries the
// joint pass's seconds and tokens_forwarded. Scores equal ScoreTask's per convention to float rounding
// (the shared prefix may be shorter, so the matrix shapes differ).
StatusOr<std::vector<TaskScores>> ScoreTaskConventions(const Model& model, const TaskSet& tasks,
                                                       std::span<const TaskConvention> conventions,
                                                       const TaskScoreOptions& options = {});

// A cell's answers against the baseline's on the same items, per accuracy metric.
struct TaskMetricComparison {
  std::string metric;
  PairedAccuracy paired;
  double same_choice = 0;  // fraction of items where both pick the same candidate
  // Mean KL(base ‖ cell) of softmax over the candidates' scores under the metric's rule, ± se;
  // has_kl false for cloze items (one candidate).
  bool has_kl = false;
  double kl_mean = 0, kl_se = 0;
};
struct TaskComparison {
  std::string task;
  TaskConvention convention = TaskConvention::kLmEval;
  int64_t n = 0;
  std::vector<TaskMetricComparison> metrics;
  double dloglik_gold = 0, dloglik_gold_se = 0;  // mean (cell − base) log-likelihood of the gold candidate
};
// Errors when the two were not scored on the same items by the same convention.
StatusOr<TaskComparison> CompareTask(const TaskScores& base, const TaskScores& cell, int bootstrap_resamples = 10000,
                                     uint64_t seed = 1);

}  // namespace ql
