// The sweep runner (see runner.h).
#include "ql_version.h"
#include "harness/sweep/runner.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "harness/eval/baseline.h"
#include "harness/eval/evaluator.h"
#include "harness/eval/protocol.h"
#include "harness/io/load.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/attn_quant.h"
#include "harness/quant/calibration.h"
#include "harness/quant/kv_quant.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/targets.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "results/store.h"

namespace ql {
namespace {

using Clock = std::chrono::steady_clock;

std::string NowIso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }


// llama.cpp's use_more_bits(i, n): the first and last eighth of the layers and every third in
// between get the bigger type in its _M mixes.
bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// Histogram of the weight error (quantized − original) in kHistBins equal bins over
// [−max_abs, +max_abs], followed by the two range ends: [counts…, lo, hi].
constexpr int kHistBins = 64;
std::vector<float> ErrorHistogram(const std::vector<float>& ref, const std::vector<float>& q, double max_abs) {
  std::vector<float> h(kHistBins + 2, 0.0f);
  const double lo = -max_abs, hi = max_abs, width = (hi - lo) / kHistBins;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = double(q[i]) - double(ref[i]);
    int b = width > 0 ? int((e - lo) / width) : kHistBins / 2;
    h[std::clamp(b, 0, kHistBins - 1)] += 1.0f;
  }
  h[kHistBins] = float(lo);
  h[kHistBins + 1] = float(hi);
  return h;
}

std::string FormatEta(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int t = int(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Activation fake quantization through the forward hooks: each targeted linear's input [T, in] is
// quantized with the activation scheme (granularity "token" = one scale per row, dynamic).
// KV-cache quantization per head through the kv hook.
struct ActivationHooks {
  std::optional<Scheme> act;
  std::set<std::string> modules;  // linear inputs to quantize (the cell's targets)
  Status first_error;
  ForwardHooks hooks;
  const AlgorithmRuntime* runtime = nullptr;  // the algorithm's online input transform, run first
  std::optional<Scheme> kv;                   // KV-cache scheme, per head (harness/quant/kv_quant.h)
  int kv_heads = 0, head_dim = 0;
  std::unique_ptr<AttentionQuantizer> attn;   // Q and P of attention (harness/quant/attn_quant.h)

  void Build() {
    if (attn) attn->Install(&hooks);
    if (kv) {
      hooks.kv = [this](int layer, float* k, float* v, int T) {
        Status s = FakeQuantizeKvHeads(*kv, k, T, kv_heads, head_dim);
        if (s.ok()) s = FakeQuantizeKvHeads(*kv, v, T, kv_heads, head_dim);
        if (!s.ok() && first_error.ok()) first_error = Status::Errorf("KV-cache quantization at layer {}: {}", layer, s.message());
      };
    }
    if (act || (runtime && runtime->linear_input)) {
      hooks.linear_input = [this](std::string_view path, float* x, int T, int in) {
        if (runtime && runtime->linear_input && runtime->linear_input(path, x, T, in)) return;
        if (!act || !modules.count(std::string(path))) return;
        std::vector<float> out(size_t(T) * in);
        Status s = FakeQuantize(*act, x, T, in, out.data());
        if (!s.ok()) {
          if (first_error.ok()) first_error = Status::Errorf("activation quantization at {}: {}", path, s.message());
          return;
        }
        std::copy(out.begin(), out.end(), x);
      };
    }
  }
};

}  // namespace

StatusOr<std::vector<std::pair<std::string, std::string>>> CellModuleSchemes(const Model& model,
                                                                            const Experiment& e,
                                                                            const Cell& cell) {
  std::vector<std::string> ignore = cell.ignore.entries;
  if (cell.ignore.builtin) {
    QL_ASSIGN_OR_RETURN(ignore, BuiltinIgnoreSet(model, cell.ignore.name));
  }
  QL_ASSIGN_OR_RETURN(std::vector<std::string> modules,
                      ResolveTargetsMinusIgnore(model, e.targets, ignore, cell.ignore.name));
  std::vector<std::pair<std::string, std::string>> out;
  if (cell.scheme.weights.empty()) return out;
  const int L = model.config.n_layers;
  for (const auto& m : modules) {
    std::string scheme = cell.scheme.weights;
    if (cell.scheme.mix == "q4_k_m") {
      const int layer = ModuleLayer(m);
      const bool more = m == "lm_head" ||
                        (layer >= 0 && (m.ends_with("v_proj") || m.ends_with("down_proj")) && UseMoreBits(layer, L));
      scheme = more ? "q6_k" : "q4_k";
    }
    out.emplace_back(m, scheme);
  }
  return out;
}

StatusOr<SweepSummary> RunSweep(const Experiment& e, const SweepOptions& opt, std::ostream& log) {
  SweepSummary sum;
  const std::string results_dir = opt.results.empty() ? e.results : opt.results;
  const std::string model_path = opt.model.empty() ? e.model : opt.model;
  sum.results_dir = results_dir;
  int shard_i = 0, shard_n = 1;
  if (!opt.shard.empty()) {
    QL_ASSIGN_OR_RETURN(auto sh, ParseShard(opt.shard));
    shard_i = sh.first;
    shard_n = sh.second;
  }
  const auto t_start = Clock::now();

  // ---- Load once: model, text, windows ----
  QL_ASSIGN_OR_RETURN(Model model, LoadModel(model_path));
  if (!model.tokenizer) return Status::Errorf("{}: the checkpoint has no tokenizer; quantlab needs one to read {}", model_path, e.data);
  std::ifstream tf(e.data, std::ios::binary);
  if (!tf) return Status::Errorf("{}: cannot read evaluation text (data: in {})", e.data, e.path.empty() ? "the experiment" : e.path);
  std::stringstream ss;
  ss << tf.rdbuf();
  const std::string text = ss.str();
  if (e.calibration && e.calibration->data == e.data)
    log << "warning: calibration and evaluation use the same text (" << e.data << "): results will be optimistic\n";
  QL_ASSIGN_OR_RETURN(ProtocolSpec protocol, ProtocolSpec::Parse(e.protocol));
  const std::vector<int> tokens = model.tokenizer->Encode(text, /*add_bos=*/false);
  QL_ASSIGN_OR_RETURN(std::vector<Window> windows, BuildWindows(protocol, tokens, model.tokenizer->bos_id()));

  // ---- Expand and validate every cell before running any ----
  std::vector<Cell> cells = ShardCells(ExpandGrid(e), shard_i, shard_n);
  std::vector<std::vector<std::pair<std::string, std::string>>> plan;
  for (const Cell& c : cells) {
    auto ms = CellModuleSchemes(model, e, c);
    if (!ms.ok()) return Status::Errorf("{}: cell '{}': {}", e.path.empty() ? e.name : e.path, c.Label(), ms.status().message());
    plan.push_back(std::move(*ms));
  }

  // ---- Calibration once, when any cell's algorithm needs it ----
  std::optional<CalibrationSet> calib;
  for (const Cell& c : cells) {
    QL_ASSIGN_OR_RETURN(const AlgorithmInfo* algo, FindAlgorithm(c.algorithm.name));
    if (!NeedsCalibration(*algo, c.algorithm.params) || calib) continue;
    if (!e.calibration)
      return Status::Errorf("{}: algorithm {} needs a calibration: section (data, samples, seqlen, seed)",
                            e.path.empty() ? e.name : e.path, algo->name);
    QL_ASSIGN_OR_RETURN(calib, BuildCalibration(model, e.calibration->data, e.calibration->samples,
                                                e.calibration->seqlen, e.calibration->seed));
    log << fmt::format("calibration: {} windows x {} tokens from {} (seed {})\n", calib->windows.size(),
                       e.calibration->seqlen, e.calibration->data, e.calibration->seed);
  }

  QL_ASSIGN_OR_RETURN(const std::string model_hash, HashPath(model_path));
  QL_ASSIGN_OR_RETURN(const std::string data_hash, HashFile(e.data));
  const std::string code_version = QL_GIT_VERSION;
  const std::string host = HostName();
  const std::string experiment_id =
      fmt::format("{}-{:016x}", e.name, Fnv1a64(e.text.data(), e.text.size()));
  sum.experiment_id = experiment_id;

  QL_ASSIGN_OR_RETURN(auto store, ResultStore::Open(results_dir));
  QL_RETURN_IF_ERROR(store->PutExperiment({experiment_id, e.name, e.text, NowIso(), code_version, host}));
  QL_RETURN_IF_ERROR(store->PutModel({model_hash, model_path, model.config.arch, model.config.ParameterCount(), "{}"}));
  QL_RETURN_IF_ERROR(store->PutDataset({data_hash, e.data, int64_t(text.size()), int64_t(tokens.size())}));

  // ---- Baseline once (cached on disk in the results directory) ----
  QL_ASSIGN_OR_RETURN(BaselinePrecision precision, ParsePrecision(e.baseline));
  BaselineCache cache(results_dir + "/baseline-cache");
  BaselineOptions bopt;
  bopt.precision = precision;
  const auto t_b0 = Clock::now();
  QL_ASSIGN_OR_RETURN(std::shared_ptr<const Baseline> base,
                      cache.GetOrCompute(model, data_hash, protocol, windows, bopt));
  const std::string baseline_id = fmt::format("base-{:016x}", Fnv1a64(base->key.data(), base->key.size()));
  {
    PerplexityStats ps = Perplexity(base->nll);
    BaselineRow row{baseline_id, model_hash, data_hash, protocol.Canonical(), std::string(PrecisionName(precision)),
                    ps.ppl, ps.ppl_err, ps.mean_nll, ps.n, Seconds(t_b0, Clock::now())};
    ArrayMap arrays;
    arrays["nll"].assign(base->nll.begin(), base->nll.end());
    QL_RETURN_IF_ERROR(store->PutBaseline(row, arrays));
    log << fmt::format("baseline {} {}: PPL {:.4f} ± {:.4f} over {} tokens ({} windows)\n",
                       PrecisionName(precision), protocol.Canonical(), ps.ppl, ps.ppl_err, ps.n, windows.size());
    log.flush();
  }

  // The reference the cells start from: weights at the baseline precision. `work` is restored
  // from it after each cell (only the tensors the cell touched).
  const Model reference = WithPrecision(model, precision);
  Model work = reference;
  const bool tty = opt.progress_bar && isatty(fileno(stderr));
  sum.total = int(cells.size());
  int done = 0;
  double run_seconds = 0;
  int ran = 0;
  for (size_t ci = 0; ci < cells.size(); ++ci) {
    const Cell& cell = cells[ci];
    const nlohmann::json canonical = cell.CanonicalJson(e);
    const std::string id = CellId(canonical, model_hash, data_hash, code_version);
    QL_ASSIGN_OR_RETURN(bool have, store->HasCell(id));
    ++done;
    if (have) {
      ++sum.skipped;
      log << fmt::format("[{}/{}] {} — already recorded, skipped", done, cells.size(), cell.Label()) << std::endl;
      continue;
    }
    const auto t0 = Clock::now();
    CellResult r;
    CellRow& row = r.cell;
    row.id = id;
    row.experiment_id = experiment_id;
    row.baseline_id = baseline_id;
    row.model_id = model_hash;
    row.dataset_id = data_hash;
    row.protocol = protocol.Canonical();
    row.weight_scheme = cell.scheme.mix.empty() ? cell.scheme.weights : cell.scheme.mix;
    row.act_scheme = cell.scheme.activations;
    row.kv_scheme = cell.scheme.kv_cache;
    row.attn_scheme = cell.scheme.AttentionText();
    row.algorithm = cell.algorithm.name;
    row.algo_params = cell.algorithm.params.dump();
    row.ignore_set = cell.ignore.name;
    row.ignore = nlohmann::json(cell.ignore.entries).dump();
    row.config = canonical.dump();
    row.seed = e.seed;
    row.started_at = NowIso();
    row.host = host;
    row.code_version = code_version;
    row.shard = opt.shard;

    const auto& module_schemes = plan[ci];
    std::vector<std::string> touched;
    for (const auto& [m, s] : module_schemes) touched.push_back(WeightKey(work, m));
    AlgorithmRuntime runtime;  // online transforms the algorithm leaves for evaluation
    auto body = [&]() -> Status {
      QL_ASSIGN_OR_RETURN(const AlgorithmInfo* algo, FindAlgorithm(cell.algorithm.name));
      AlgorithmContext ctx;
      ctx.module_schemes = &module_schemes;
      ctx.params = cell.algorithm.params;
      ctx.seed = e.seed;
      ctx.calibration = calib ? &*calib : nullptr;
      ctx.runtime = &runtime;
      QL_RETURN_IF_ERROR(algo->apply(work, ctx));
      const auto t1 = Clock::now();
      row.seconds_quantize = Seconds(t0, t1);

      ActivationHooks ah;
      if (!cell.scheme.activations.empty()) {
        QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(cell.scheme.activations));
        ah.act = s;
        for (const auto& [m, sc] : module_schemes) ah.modules.insert(m);
      }
      if (!cell.scheme.kv_cache.empty()) {
        QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(cell.scheme.kv_cache));
        ah.kv = s;
        ah.kv_heads = work.config.n_kv_heads;
        ah.head_dim = work.config.head_dim;
      }
      if (!cell.scheme.attn_q.empty() || !cell.scheme.attn_p.empty()) {
        std::optional<Scheme> q, p;
        if (!cell.scheme.attn_q.empty()) { QL_ASSIGN_OR_RETURN(q, ParseScheme(cell.scheme.attn_q)); }
        if (!cell.scheme.attn_p.empty()) { QL_ASSIGN_OR_RETURN(p, ParseScheme(cell.scheme.attn_p)); }
        ah.attn = std::make_unique<AttentionQuantizer>(q, p, work.config.n_heads, work.config.head_dim);
      }
      ah.runtime = &runtime;
      ah.Build();
      QL_ASSIGN_OR_RETURN(TokenRecords rec, EvaluateAgainstBaseline(work, windows, *base, &ah.hooks));
      QL_RETURN_IF_ERROR(ah.first_error);
      if (ah.attn) QL_RETURN_IF_ERROR(ah.attn->status());
      const ComparisonStats st = Compare(rec);
      if (!std::isfinite(st.quant.ppl) || !std::isfinite(st.kld.mean)) {
        row.status = "diverged";
        row.reason = fmt::format("non-finite result: PPL {} KLD {} (NaN/Inf in the logits)", st.quant.ppl, st.kld.mean);
      }
      MetricsRow m;
      m.n_tokens = st.n;
      m.ppl = st.quant.ppl;
      m.ppl_err = st.quant.ppl_err;
      m.ppl_base = st.base.ppl;
      m.dppl = st.delta.dppl;
      m.dppl_lo = st.delta.dppl_lo;
      m.dppl_hi = st.delta.dppl_hi;
      m.kld_mean = st.kld.mean;
      m.kld_median = st.kld.median;
      m.kld_p99 = st.kld.P(0.99);
      m.kld_max = st.kld.max;
      m.top1 = st.top1;
      m.dp_mean = st.p_diff.mean;
      m.dp_rms = st.p_diff.rms;

      // Storage cost: every tensor as stored (quantized ones at their scheme, the rest at the
      // baseline precision), and bits/weight over the quantized ones.
      int64_t q_bits = 0, q_n = 0, total_bytes = 0;
      std::set<std::string> counted;
      for (const auto& [mod, sc] : module_schemes) {
        const std::string wn = WeightKey(reference, mod);
        if (!counted.insert(wn).second) continue;
        const Tensor& w = reference.W(wn);
        QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(sc));
        QL_ASSIGN_OR_RETURN(QuantizedTensor qt, Quantize(s, w.data.data(), w.rows(), w.cols()));
        q_bits += int64_t(qt.Bytes()) * 8;
        q_n += w.numel();
        total_bytes += int64_t(qt.Bytes());
        // A transforming algorithm (rotation) is compared with its own unrounded weights.
        const auto tr = runtime.weights_before_rounding.find(wn);
        const std::vector<float>& w0 = tr != runtime.weights_before_rounding.end() ? tr->second : w.data;
        const SignalError err = CompareTensors(w0, work.W(wn).data);
        r.tensor_errors.push_back({wn, sc, err.mse, err.sqnr_db, err.max_abs, qt.BitsPerWeight(), int64_t(qt.Bytes())});
        r.arrays["weight_error_hist/" + wn] = ErrorHistogram(w0, work.W(wn).data, err.max_abs);
      }
      const int64_t base_bytes_per = precision == BaselinePrecision::kFp32 ? 4 : 2;
      for (const auto& [name, t] : reference.weights)
        if (!counted.count(name)) total_bytes += t.numel() * base_bytes_per;
      if (q_n > 0) m.bits_per_weight = double(q_bits) / double(q_n);
      m.model_bytes = total_bytes;
      r.metrics = m;

      QL_ASSIGN_OR_RETURN(std::vector<SignalError> layers,
                          LayerOutputErrors(reference, work, windows, opt.layer_error_windows, &ah.hooks,
                                            runtime.residual_to_model_basis));
      std::vector<float> layer_rel;
      for (size_t l = 0; l < layers.size(); ++l) {
        r.layer_errors.push_back({int(l), layers[l].rel_mse, layers[l].sqnr_db});
        layer_rel.push_back(float(layers[l].rel_mse));
      }
      r.arrays["nll"].assign(rec.nll_quant.begin(), rec.nll_quant.end());
      r.arrays["kld"].assign(rec.kld.begin(), rec.kld.end());
      r.arrays["p_diff"].assign(rec.p_diff.begin(), rec.p_diff.end());
      r.arrays["layer_rel_mse"] = layer_rel;
      for (const auto& [name, a] : runtime.arrays) r.arrays[name] = a;
      row.seconds_eval = Seconds(t1, Clock::now());
      return Status::Ok();
    };
    Status s = body();
    if (!s.ok()) {
      row.status = "failed";
      row.reason = s.message();
      r.metrics.reset();
      r.tensor_errors.clear();
      r.layer_errors.clear();
      r.arrays.clear();
    } else if (row.status.empty()) {
      row.status = "ok";
    }
    // Restore what the cell touched.
    // Calibrated algorithms also change norms, other tensors and even the config (rotation): restore all.
    if (cell.algorithm.name == "rtn") {
      for (const auto& wn : touched) work.W(wn).data = reference.W(wn).data;
    } else {
      work = reference;
    }
    row.finished_at = NowIso();
    row.seconds_total = Seconds(t0, Clock::now());
    QL_RETURN_IF_ERROR(store->CommitCell(r));
    run_seconds += row.seconds_total;
    ++ran;
    if (row.status == "ok") ++sum.ok;
    else if (row.status == "failed") ++sum.failed;
    else ++sum.diverged;
    const int left = int(cells.size()) - done;
    const std::string eta = FormatEta(left * run_seconds / std::max(1, ran));
    std::string what = row.status == "ok"
                           ? fmt::format("PPL {:.4f} (Δ {:+.4f}) KLD {:.5f} top1 {:.2f}% {:.2f} b/w", r.metrics->ppl,
                                         r.metrics->dppl.value_or(NAN), r.metrics->kld_mean.value_or(NAN),
                                         100 * r.metrics->top1.value_or(NAN), r.metrics->bits_per_weight.value_or(0))
                           : row.status + ": " + row.reason;
    const std::string line = fmt::format("[{}/{}] {} — {} ({:.1f}s, ETA {})", done, cells.size(), cell.Label(), what,
                                         row.seconds_total, eta);
    if (tty) {
      const int width = 30, fill = int(width * double(done) / double(cells.size()));
      std::cerr << "\r\033[K" << line << "\n"
                << "[" << std::string(fill, '#') << std::string(width - fill, '.') << "] " << done << "/"
                << cells.size() << " ETA " << eta << std::flush;
      if (done == int(cells.size())) std::cerr << "\r\033[K";
    } else {
      log << line << std::endl;  // flushed: a batch log (Slurm, nohup) shows progress as it happens
    }
  }
  log << fmt::format("sweep {}: {} cells, {} ok, {} failed, {} diverged, {} skipped (already recorded) in {:.1f}s\n",
                     e.name, sum.total, sum.ok, sum.failed, sum.diverged, sum.skipped, Seconds(t_start, Clock::now()));
  return sum;
}

bool AnyCellSets(ResultStore& store, const std::string& experiment_id, const std::string& column) {
  auto r = store.Query("SELECT 1 FROM cells WHERE " + column + " != ''" +
                       (experiment_id.empty() ? std::string() : " AND experiment_id = '" + experiment_id + "'") +
                       " LIMIT 1");
  return r.ok() && !r->rows.empty();  // a version-1 store has no attn_scheme column: none
}

std::string CompareSql(const std::string& experiment_id, const std::string& sort, bool attention, bool kv) {
  std::string order = "m.dppl";
  if (sort == "kld") order = "m.kld_mean";
  else if (sort == "bits") order = "m.bits_per_weight";
  std::string where = experiment_id.empty() ? "" : "WHERE c.experiment_id = '" + experiment_id + "' ";
  return "SELECT c.weight_scheme AS weights, c.act_scheme AS acts, " +
         std::string(kv ? "c.kv_scheme AS kv, " : "") + std::string(attention ? "c.attn_scheme AS attn, " : "") +
         "c.algorithm AS algo, c.ignore_set AS ignore, "
         "printf('%.3f', m.bits_per_weight) AS bpw, printf('%.4f', m.ppl) AS ppl, "
         "printf('%+.4f [%+.4f, %+.4f]', m.dppl, m.dppl_lo, m.dppl_hi) AS dppl_95ci, "
         "printf('%.5f', m.kld_mean) AS kld, printf('%.5f', m.kld_p99) AS kld_p99, "
         "printf('%.2f%%', 100 * m.top1) AS top1, c.status AS status, "
         "CASE WHEN c.status = 'ok' THEN '' ELSE substr(c.reason, 1, 60) END AS reason "
         "FROM cells c LEFT JOIN metrics m ON m.cell_id = c.id " + where +
         "ORDER BY (c.status = 'ok') DESC, " + order + " IS NULL, " + order + ", c.weight_scheme";
}

}  // namespace ql
