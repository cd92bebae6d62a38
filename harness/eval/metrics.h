// Evaluation metrics as pure math on arrays: log-softmax, PPL ± error, KLD(base‖quant), top-1
// agreement, Δp, the paired ΔPPL interval, and error statistics between two tensors (weights or
// per-layer activations). No model here: harness/eval/evaluator.h feeds these from forward passes.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace ql {

// z for a two-sided 95% normal interval.
inline constexpr double kZ95 = 1.96;

// out[v] = logits[v] - logsumexp(logits), accumulated in double. Both [V].
void LogSoftmax(std::span<const float> logits, std::span<double> out);
// Index of the largest value; the first one on ties (as llama.cpp's KLD "same top" check).
int ArgMax(std::span<const float> x);
int ArgMax(std::span<const double> x);

// KL(base ‖ quant) = Σ_v p_base(v) · (log p_base(v) − log p_quant(v)), in nats, over full rows [V].
// The float overload serves stored baselines; p_base = 0 (log = −inf) contributes 0.
double KlDivergence(std::span<const float> logp_base, std::span<const float> logp_quant);
double KlDivergence(std::span<const double> logp_base, std::span<const double> logp_quant);
// The same with p_base = exp(logp_base) given ([V] in double: each stored log-prob's exp, computed once
// per baseline row by Baseline::CacheProbabilities instead of once per compared model): bitwise the
// overload above, which adds the same terms in the same order.
double KlDivergence(std::span<const float> logp_base, std::span<const double> p_base,
                    std::span<const float> logp_quant);

// KL(base ‖ quant) when only the base's top-k log-probs are kept (indices `top_idx`, values
// `top_logp`, [k]). The tail (all other tokens) is merged into one outcome with mass
// T_b = 1 − Σ p_base(top) and T_q = 1 − Σ p_quant(top):
//   KLD_k = Σ_top p_b (log p_b − log p_q) + T_b · log(T_b / T_q).
// By the log-sum inequality KLD_k <= KLD (never above the exact value); the gap is the tail's
// internal divergence, ≤ T_b · max_tail |log(p_b/p_q) − log(T_b/T_q)|. Measured in baseline_test.
double KlDivergenceTopK(std::span<const int> top_idx, std::span<const float> top_logp,
                        std::span<const float> logp_quant);
// The same with the base side given: top_p = exp(top_logp) ([k], double) and mass_b = Σ top_p added in
// index order (Baseline::CacheProbabilities). Bitwise the overload above.
double KlDivergenceTopK(std::span<const int> top_idx, std::span<const float> top_logp, std::span<const double> top_p,
                        double mass_b, std::span<const float> logp_quant);

// Mean and its standard error s/√n (s: the n−1 sample standard deviation; 0 when n < 2).
struct MeanErr {
  double mean = 0, se = 0;
};
MeanErr MeanAndStdErr(std::span<const double> x);

// Linear interpolation between sorted values at position q·(n−1) (llama.cpp's percentile rule).
double Percentile(std::span<const double> sorted, double q);

// Distribution summary of per-token values (KLD or Δp).
struct ValueStats {
  int64_t n = 0;
  double mean = 0, se = 0;  // mean ± standard error
  double rms = 0, rms_se = 0;  // sqrt(mean(x²)); rms_se by the delta method (llama.cpp's Δp RMS)
  double min = 0, max = 0, median = 0;
  // Percentiles at kPercentileLevels.
  static constexpr std::array<double, 10> kPercentileLevels = {0.001, 0.01, 0.05, 0.10, 0.25,
                                                                0.75,  0.90, 0.95, 0.99, 0.999};
  std::array<double, 10> pct{};
  double P(double level) const;  // one of kPercentileLevels (QL_CHECKs), or 0.5 → median
};
ValueStats Summarize(std::span<const double> values);

// Perplexity of per-token NLLs: ppl = exp(mean), error by the delta method: ppl · se(nll).
struct PerplexityStats {
  int64_t n = 0;
  double mean_nll = 0, se_nll = 0;
  double ppl = 0, ppl_err = 0;
};
PerplexityStats Perplexity(std::span<const double> nll);

// Quantized vs baseline perplexity on the same tokens, paired. d_i = nll_quant_i − nll_base_i;
// mean d = ln(PPL_q / PPL_b) exactly, and its standard error from the d_i themselves (so the
// per-token correlation of the two runs cancels). 95% interval: d ± 1.96·se_d, mapped through
// exp to the ratio, and to the difference as PPL_b·(ratio − 1) (PPL_b treated as fixed: the
// interval is for the change on this text, not for the base model's own sampling error).
struct PairedDelta {
  int64_t n = 0;
  double mean_diff = 0, se_diff = 0;  // ln(PPL_q/PPL_b) and its paired standard error
  double se_diff_unpaired = 0;        // sqrt(se_b² + se_q²): what ignoring the pairing would give
  double correlation = 0;             // Pearson correlation of nll_base and nll_quant
  double ppl_base = 0, ppl_quant = 0;
  double ratio = 0, ratio_lo = 0, ratio_hi = 0;  // PPL_q / PPL_b with its 95% interval
  double dppl = 0, dppl_lo = 0, dppl_hi = 0;     // PPL_q − PPL_b with its 95% interval
};
PairedDelta PairPerplexities(std::span<const double> nll_base, std::span<const double> nll_quant);

// Per-token records of a quantized run against the baseline, in scored-token order.
struct TokenRecords {
  std::vector<double> nll_base, nll_quant;  // −log p(correct)
  std::vector<double> kld;                  // KL(base ‖ quant)
  std::vector<double> p_diff;               // p_quant(correct) − p_base(correct)
  std::vector<uint8_t> same_top;            // argmax agrees
  int64_t size() const { return int64_t(nll_quant.size()); }
  void Add(double nll_b, double nll_q, double kld_value, bool same);
};

struct ComparisonStats {
  int64_t n = 0;
  PerplexityStats base, quant;
  PairedDelta delta;
  ValueStats kld;
  ValueStats p_diff;              // Δp in probability units (×100 for %)
  double top1 = 0, top1_se = 0;   // fraction of tokens whose argmax agrees, binomial se
};
ComparisonStats Compare(const TokenRecords& records);

// Error of `test` against `ref`, accumulated over any number of chunks (one tensor, or one layer's
// outputs over many windows). SQNR = 10·log10(Σref² / Σ(test−ref)²); rel_mse = Σ(test−ref)²/Σref².
// (Named apart from kernels/quantizer.h's ErrorStats, a one-shot per-tensor version without rel_mse.)
struct SignalError {
  int64_t n = 0;
  double mse = 0, rel_mse = 0, sqnr_db = 0, max_abs = 0;
};
class ErrorAccumulator {
 public:
  void Add(std::span<const float> ref, std::span<const float> test);
  SignalError Result() const;  // sqnr_db = +inf when identical, rel_mse = inf when ref is all zero

 private:
  int64_t n_ = 0;
  double sum_sq_err_ = 0, sum_sq_ref_ = 0, max_abs_ = 0;
};
SignalError CompareTensors(std::span<const float> ref, std::span<const float> test);

}  // namespace ql
