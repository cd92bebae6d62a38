// `quantlab eval`: perplexity of a model on a text under a named protocol, and — with --scheme — what
// fake-quantizing its linear weights costs against the BF16/FP32 baseline (ΔPPL, KLD, top-1, Δp,
// per-tensor and per-layer error). With --algorithm, any registered quantization algorithm (GPTQ, AWQ,
// rotation, …) chooses the weights instead of round-to-nearest. One model load, one baseline pass. Not a
// sweep (harness/sweep).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/commands.h"
#include "harness/eval/baseline.h"
#include "harness/eval/evaluator.h"
#include "harness/eval/metrics.h"
#include "harness/eval/protocol.h"
#include "harness/io/load.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/calibration.h"
#include "harness/model/model.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql::cli {
namespace {

struct EvalOptions {
  std::string model, data, tokenizer, scheme, protocol = "llamacpp", baseline = "bf16", head = "auto";
  std::string cache_dir;
  int ctx = 0, chunks = 0, top_k = 0, layer_windows = 4;
  bool json = false, tensors = false;
  // --algorithm NAME [--param key=value ...] [--calib FILE --calib-samples N --calib-seqlen L --calib-seed S]
  std::string algorithm, calib;
  std::vector<std::string> params;
  int calib_samples = 128, calib_seqlen = 0, calib_seed = 0;
};

// --param key=value → {key: value}; the value is read as JSON when it parses (numbers, true/false,
// {"act_order": true}), else as a string (quantizer=gptq).
StatusOr<nlohmann::json> ParseAlgorithmParams(const std::vector<std::string>& kv) {
  nlohmann::json j = nlohmann::json::object();
  for (const std::string& p : kv) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::Errorf("--param '{}' is not key=value (e.g. --param act_order=true)", p);
    const std::string key = p.substr(0, eq), value = p.substr(eq + 1);
    nlohmann::json v = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    j[key] = v.is_discarded() ? nlohmann::json(value) : v;
  }
  return j;
}

// io's LoadModel detects the checkpoint kind (HF directory/safetensors, GGUF, llama2.c);
// --tokenizer replaces whatever tokenizer the loader found beside the model.
StatusOr<Model> LoadForEval(const std::string& path, const std::string& tokenizer) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Status::Errorf("model file '{}' does not exist (pass --model PATH)", path);
  QL_ASSIGN_OR_RETURN(Model m, LoadModel(path));
  if (!tokenizer.empty()) {
    QL_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizer(tokenizer, m.config.vocab_size));
    m.tokenizer = std::shared_ptr<const Tokenizer>(std::move(tok));
  }
  return m;
}

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("data file '{}' cannot be opened (pass --data PATH to a UTF-8 text)", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// What was quantized, and the storage it takes.
struct QuantSummary {
  std::vector<std::string> tensors;  // weight names quantized
  int64_t quant_numel = 0, quant_bytes = 0;
  int64_t other_numel = 0;           // weights left at the baseline precision
  std::string head_policy;
  double seconds = 0;
};

// Fake-quantizes the linear weights of `m` (already at the baseline precision) in place.
// lm_head: --head auto quantizes an untied head and keeps a tied one (it is the embedding table) at
// the baseline precision; --head quantize unties a tied head (a quantized copy becomes lm_head.weight,
// embedding lookups stay exact); --head skip never touches it.
// With `algo`, the same modules are handed to the algorithm (module_schemes = every chosen module at
// `scheme`), which quantizes them its own way and may leave online transforms in *runtime.
StatusOr<QuantSummary> QuantizeLinears(Model* m, const Scheme& scheme, const std::string& head,
                                       const AlgorithmInfo* algo = nullptr, const nlohmann::json& params = {},
                                       const CalibrationSet* calib = nullptr, AlgorithmRuntime* runtime = nullptr) {
  QuantSummary q;
  const auto t0 = std::chrono::steady_clock::now();
  const bool tied = m->config.tied_embeddings;
  bool do_head;
  if (head == "auto") {
    do_head = !tied;
    q.head_policy = tied ? "tied to the embedding: kept at baseline precision" : "quantized";
  } else if (head == "quantize") {
    do_head = true;
    q.head_policy = tied ? "untied: quantized copy, embedding kept at baseline precision" : "quantized";
  } else if (head == "skip") {
    do_head = false;
    q.head_policy = "kept at baseline precision";
  } else {
    return Status::Errorf("--head '{}' is not one of auto, quantize, skip", head);
  }
  if (do_head && tied) {
    m->weights["lm_head.weight"] = m->W("model.embed_tokens.weight");
    m->config.tied_embeddings = false;
  }
  if (algo) {
    std::vector<std::pair<std::string, std::string>> module_schemes;
    for (const std::string& mod : m->LinearModules()) {
      if (mod == "lm_head" && !do_head) continue;
      if (m->Has(mod + ".weight")) module_schemes.emplace_back(mod, ToString(scheme));
    }
    AlgorithmContext ctx;
    ctx.module_schemes = &module_schemes;
    ctx.params = params;
    ctx.calibration = calib;
    ctx.runtime = runtime;
    if (Status s = algo->apply(*m, ctx); !s.ok()) return Status::Errorf("algorithm {}: {}", algo->name, s.message());
    for (const auto& [mod, sc] : module_schemes) {
      const Tensor& t = m->W(mod + ".weight");
      auto qt = Quantize(scheme, t.data.data(), t.rows(), t.cols());  // storage size of the chosen values
      if (!qt.ok()) return Status::Errorf("sizing {}: {}", mod, qt.status().message());
      q.tensors.push_back(mod + ".weight");
      q.quant_numel += t.numel();
      q.quant_bytes += int64_t(qt->Bytes());
    }
  }
  for (const std::string& mod : m->LinearModules()) {
    if (algo) break;
    if (mod == "lm_head" && !do_head) continue;
    const std::string name = mod + ".weight";
    if (!m->Has(name)) continue;
    Tensor& t = m->W(name);
    auto qt = Quantize(scheme, t.data.data(), t.rows(), t.cols());
    if (!qt.ok()) return Status::Errorf("quantizing {}: {}", name, qt.status().message());
    qt->Dequantize(t.data.data());
    q.tensors.push_back(name);
    q.quant_numel += t.numel();
    q.quant_bytes += int64_t(qt->Bytes());
  }
  for (const auto& [name, t] : m->weights) {
    bool quantized = false;
    for (const std::string& n : q.tensors) quantized |= n == name;
    if (!quantized) q.other_numel += t.numel();
  }
  q.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return q;
}

nlohmann::json ValueStatsJson(const ValueStats& s) {
  nlohmann::json j = {{"mean", s.mean}, {"se", s.se}, {"rms", s.rms}, {"rms_se", s.rms_se},
                      {"min", s.min},   {"max", s.max}, {"median", s.median}};
  for (size_t i = 0; i < ValueStats::kPercentileLevels.size(); ++i)
    j[fmt::format("p{}", ValueStats::kPercentileLevels[i] * 100)] = s.pct[i];
  return j;
}

double Finite(double v) { return std::isfinite(v) ? v : (v > 0 ? 999.0 : -999.0); }

Status RunEval(const EvalOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  QL_ASSIGN_OR_RETURN(const BaselinePrecision precision, ParsePrecision(o.baseline));
  std::optional<Scheme> scheme;
  if (!o.scheme.empty()) {
    auto s = ParseScheme(o.scheme);
    if (!s.ok()) return Status::Errorf("--scheme '{}': {}", o.scheme, s.status().message());
    scheme = *s;
  }
  // The algorithm and its parameters are checked before any work or output.
  const AlgorithmInfo* algo = nullptr;
  nlohmann::json params;
  if (!o.algorithm.empty()) {
    if (!scheme)
      return Status::Errorf("--algorithm {} needs --scheme (the weight scheme it quantizes to, e.g. int4:g32)",
                            o.algorithm);
    QL_ASSIGN_OR_RETURN(algo, FindAlgorithm(o.algorithm));
    QL_ASSIGN_OR_RETURN(params, ParseAlgorithmParams(o.params));
    QL_RETURN_IF_ERROR(ResolveAlgorithmParams(*algo, params).status());
    if (NeedsCalibration(*algo, params) && o.calib.empty())
      return Status::Errorf("--algorithm {} needs calibration text: pass --calib FILE (disjoint from --data)",
                            algo->name);
  } else if (!o.params.empty() || !o.calib.empty()) {
    return Status::Error("--param and --calib need --algorithm NAME");
  }
  QL_ASSIGN_OR_RETURN(ProtocolSpec spec, ProtocolSpec::Parse(o.protocol));
  if (o.ctx > 0) spec.n_ctx = o.ctx;
  if (o.chunks > 0) spec.max_chunks = o.chunks;
  if (spec.kind == ProtocolKind::kStrided && spec.stride > spec.n_ctx) spec.stride = spec.n_ctx / 2;
  QL_RETURN_IF_ERROR(spec.Validate());

  QL_ASSIGN_OR_RETURN(Model model, LoadForEval(o.model, o.tokenizer));
  if (!model.tokenizer)
    return Status::Errorf("model '{}' has no tokenizer beside it (pass --tokenizer PATH)", o.model);
  const int max_ctx = model.config.max_seq_len;
  if (max_ctx > 0 && spec.n_ctx > max_ctx)
    return Status::Errorf("context {} is larger than the model's context {} (use --ctx <= {})", spec.n_ctx, max_ctx,
                          max_ctx);
  QL_ASSIGN_OR_RETURN(const std::string text, ReadText(o.data));
  const std::vector<int> tokens = model.tokenizer->Encode(text, /*add_bos=*/false);
  QL_ASSIGN_OR_RETURN(const std::vector<Window> windows, BuildWindows(spec, tokens, model.tokenizer->bos_id()));

  BaselineOptions bopt;
  bopt.precision = precision;
  bopt.top_k = o.top_k;
  bopt.cache_dir = o.cache_dir;
  BaselineCache cache(o.cache_dir);
  QL_ASSIGN_OR_RETURN(std::shared_ptr<const Baseline> base,
                      cache.GetOrCompute(model, TextHash(text), spec, windows, bopt));
  const PerplexityStats ppl_base = Perplexity(base->nll);
  const std::string kld_store = base->top_k == 0 ? "full" : fmt::format("top{}", base->top_k);

  nlohmann::json j;
  j["model"] = o.model;
  j["data"] = o.data;
  j["data_bytes"] = text.size();
  j["tokens"] = tokens.size();
  j["protocol"] = spec.Canonical();
  j["windows"] = windows.size();
  j["tokens_scored"] = base->n();
  j["baseline_precision"] = PrecisionName(precision);
  j["kld_store"] = kld_store;
  j["baseline_cache"] = cache.disk_hits() > 0 ? "disk" : "computed";
  j["ppl_base"] = ppl_base.ppl;
  j["ppl_base_err"] = ppl_base.ppl_err;
  j["nll_base_mean"] = ppl_base.mean_nll;
  j["time_baseline_s"] = base->seconds;

  const ModelConfig& c = model.config;
  if (!o.json) {
    fmt::print("model     {} ({}, {} layers, dim {}, vocab {}, context {})\n", o.model, c.arch, c.n_layers, c.dim,
               c.vocab_size, c.max_seq_len);
    fmt::print("data      {} ({} bytes, {} tokens)\n", o.data, text.size(), tokens.size());
    fmt::print("protocol  {} ({} windows, {} scored tokens)\n", spec.Canonical(), windows.size(), base->n());
    fmt::print("baseline  {} weights: PPL {:.4f} ± {:.4f}   (mean NLL {:.5f}; KLD store {}, {:.1f} MiB, {}, {:.2f} s)\n",
               PrecisionName(precision), ppl_base.ppl, ppl_base.ppl_err, ppl_base.mean_nll, kld_store,
               base->bytes() / 1048576.0, cache.disk_hits() > 0 ? "from disk cache" : "computed", base->seconds);
  }
  if (!scheme) {
    if (o.json) fmt::print("{}\n", j.dump());
    return Status::Ok();
  }

  const Model reference = WithPrecision(model, precision);
  Model quant = reference;
  std::optional<CalibrationSet> calib;
  AlgorithmRuntime runtime;
  if (algo) {
    if (NeedsCalibration(*algo, params)) {
      if (o.calib == o.data && !o.json)
        fmt::print("warning: --calib is the evaluation text ({}): results will be optimistic\n", o.data);
      const int seqlen = o.calib_seqlen > 0 ? o.calib_seqlen : spec.n_ctx;
      QL_ASSIGN_OR_RETURN(calib, BuildCalibration(reference, o.calib, o.calib_samples, seqlen, o.calib_seed));
      j["calibration"] = {{"data", o.calib}, {"samples", o.calib_samples}, {"seqlen", seqlen}, {"seed", o.calib_seed}};
    }
    j["algorithm"] = algo->name;
    j["algorithm_params"] = params;
  }
  QL_ASSIGN_OR_RETURN(const QuantSummary qs,
                      QuantizeLinears(&quant, *scheme, o.head, algo, params, calib ? &*calib : nullptr, &runtime));
  // The algorithm's online transforms (rotation's R4, LLM.int8()'s outlier split) run during evaluation.
  ForwardHooks hooks;
  if (runtime.linear_input)
    hooks.linear_input = [&runtime](std::string_view path, float* x, int T, int in) { runtime.linear_input(path, x, T, in); };
  const auto t_eval = std::chrono::steady_clock::now();
  QL_ASSIGN_OR_RETURN(const TokenRecords records, EvaluateAgainstBaseline(quant, windows, *base, &hooks));
  const double eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_eval).count();
  const ComparisonStats cs = Compare(records);
  std::vector<std::string> names = qs.tensors;
  // The untied head copy is compared with the embedding it came from.
  Model ref_for_err = reference;
  if (ref_for_err.config.tied_embeddings && quant.Has("lm_head.weight"))
    ref_for_err.weights["lm_head.weight"] = ref_for_err.W("model.embed_tokens.weight");
  std::vector<std::pair<std::string, SignalError>> werr = WeightErrors(ref_for_err, quant, names);
  // A transforming algorithm (rotation) is compared with its own unrounded weights.
  for (auto& [name, e] : werr)
    if (auto it = runtime.weights_before_rounding.find(name); it != runtime.weights_before_rounding.end())
      e = CompareTensors(it->second, quant.W(name).data);
  QL_ASSIGN_OR_RETURN(const std::vector<SignalError> lerr,
                      LayerOutputErrors(reference, quant, windows, o.layer_windows, &hooks,
                                        runtime.residual_to_model_basis));

  const double bits_linear = qs.quant_numel ? 8.0 * double(qs.quant_bytes) / double(qs.quant_numel) : 0;
  const double base_bits = precision == BaselinePrecision::kFp32 ? 32.0 : 16.0;
  const double bits_model = (8.0 * double(qs.quant_bytes) + base_bits * double(qs.other_numel)) /
                            double(qs.quant_numel + qs.other_numel);
  const PairedDelta& d = cs.delta;

  j["scheme"] = ToString(*scheme);
  j["lm_head"] = qs.head_policy;
  j["quantized_tensors"] = qs.tensors.size();
  j["bits_per_weight"] = bits_linear;
  j["bits_per_weight_model"] = bits_model;
  j["ppl_quant"] = cs.quant.ppl;
  j["ppl_quant_err"] = cs.quant.ppl_err;
  j["ln_ppl_ratio"] = d.mean_diff;
  j["ln_ppl_ratio_se"] = d.se_diff;
  j["ln_ppl_ratio_se_unpaired"] = d.se_diff_unpaired;
  j["nll_correlation"] = d.correlation;
  j["ppl_ratio"] = d.ratio;
  j["ppl_ratio_lo"] = d.ratio_lo;
  j["ppl_ratio_hi"] = d.ratio_hi;
  j["dppl"] = d.dppl;
  j["dppl_lo"] = d.dppl_lo;
  j["dppl_hi"] = d.dppl_hi;
  j["dppl_method"] = "paired per-token NLL differences, mean ± 1.96·se, exp-mapped; PPL_base fixed";
  j["kld"] = ValueStatsJson(cs.kld);
  j["kld_mean"] = cs.kld.mean;
  j["kld_median"] = cs.kld.median;
  j["kld_p99"] = cs.kld.P(0.99);
  j["kld_max"] = cs.kld.max;
  j["top1_agree"] = cs.top1;
  j["top1_agree_se"] = cs.top1_se;
  j["dp"] = ValueStatsJson(cs.p_diff);
  j["time_quantize_s"] = qs.seconds;
  j["time_eval_s"] = eval_seconds;
  nlohmann::json wj = nlohmann::json::array();
  for (const auto& [name, e] : werr)
    wj.push_back({{"name", name}, {"mse", e.mse}, {"sqnr_db", Finite(e.sqnr_db)}, {"max_abs", e.max_abs}});
  j["weight_error"] = wj;
  nlohmann::json lj = nlohmann::json::array();
  for (size_t l = 0; l < lerr.size(); ++l)
    lj.push_back({{"layer", l}, {"rel_mse", lerr[l].rel_mse}, {"sqnr_db", Finite(lerr[l].sqnr_db)}});
  j["layer_error"] = lj;
  j["layer_error_windows"] = o.layer_windows > 0 ? std::min<size_t>(windows.size(), o.layer_windows) : windows.size();
  j["time_total_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  if (o.json) {
    fmt::print("{}\n", j.dump());
    return Status::Ok();
  }
  if (algo) fmt::print("algorithm {} {}\n", algo->name, params.dump());
  fmt::print("scheme    {}: {:.4f} bits/weight over {} linear tensors ({:.3f} over all weights); lm_head {}\n",
             ToString(*scheme), bits_linear, qs.tensors.size(), bits_model, qs.head_policy);
  fmt::print("quant     PPL {:.4f} ± {:.4f}\n", cs.quant.ppl, cs.quant.ppl_err);
  fmt::print("ΔPPL      {:+.4f}  95% CI [{:+.4f}, {:+.4f}]   PPL ratio {:.5f} [{:.5f}, {:.5f}]\n", d.dppl, d.dppl_lo,
             d.dppl_hi, d.ratio, d.ratio_lo, d.ratio_hi);
  fmt::print("          paired: ln ratio {:+.5f} ± {:.5f} (unpaired ± {:.5f}; NLL correlation {:.4f})\n", d.mean_diff,
             d.se_diff, d.se_diff_unpaired, d.correlation);
  fmt::print("KLD       mean {:.6f} ± {:.6f}  median {:.6f}  p99 {:.6f}  max {:.6f}  ({} store)\n", cs.kld.mean,
             cs.kld.se, cs.kld.median, cs.kld.P(0.99), cs.kld.max, kld_store);
  fmt::print("top-1     {:.3f} ± {:.3f} % agree with the baseline\n", 100 * cs.top1, 100 * cs.top1_se);
  fmt::print("Δp        mean {:+.3f} ± {:.3f} %  RMS {:.3f} %  min {:+.3f}  p1 {:+.3f}  p5 {:+.3f}  median {:+.3f}  "
             "p95 {:+.3f}  p99 {:+.3f}  max {:+.3f} %\n",
             100 * cs.p_diff.mean, 100 * cs.p_diff.se, 100 * cs.p_diff.rms, 100 * cs.p_diff.min,
             100 * cs.p_diff.P(0.01), 100 * cs.p_diff.P(0.05), 100 * cs.p_diff.median, 100 * cs.p_diff.P(0.95),
             100 * cs.p_diff.P(0.99), 100 * cs.p_diff.max);
  fmt::print("layers    output SQNR dB (rel. MSE) vs baseline over {} windows:", j["layer_error_windows"].get<size_t>());
  for (size_t l = 0; l < lerr.size(); ++l) fmt::print("  {}: {:.2f} ({:.2e})", l, lerr[l].sqnr_db, lerr[l].rel_mse);
  fmt::print("\n");
  if (o.tensors) {
    for (const auto& [name, e] : werr)
      fmt::print("tensor    {:<40} SQNR {:6.2f} dB  MSE {:.3e}  max|err| {:.3e}\n", name, e.sqnr_db, e.mse, e.max_abs);
  } else if (!werr.empty()) {
    double lo = werr[0].second.sqnr_db, sum = 0;
    std::string worst = werr[0].first;
    for (const auto& [name, e] : werr) {
      sum += e.sqnr_db;
      if (e.sqnr_db < lo) lo = e.sqnr_db, worst = name;
    }
    fmt::print("weights   SQNR mean {:.2f} dB over {} tensors, worst {:.2f} dB ({}); --tensors lists all\n",
               sum / double(werr.size()), werr.size(), lo, worst);
  }
  fmt::print("time      baseline {:.2f} s, quantize {:.2f} s, eval {:.2f} s\n", base->seconds, qs.seconds, eval_seconds);
  return Status::Ok();
}

}  // namespace

void AddEvalCommand(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Perplexity under a protocol; with --scheme, ΔPPL/KLD/top-1/Δp of fake-quantized linear weights vs "
              "the BF16/FP32 baseline");
  cmd->add_option("--model", o->model, "model: llama2.c .bin, .gguf, or a Hugging Face directory / .safetensors")->required();
  cmd->add_option("--data", o->data, "evaluation text (UTF-8)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file when it is not beside the model");
  cmd->add_option("--scheme", o->scheme, "quantization scheme for every linear weight, e.g. int4:g32, int8:channel");
  cmd->add_option("--protocol", o->protocol,
                  "llamacpp | gptq | strided, or a canonical string (llamacpp:ctx512, strided:ctx1024:s512)");
  cmd->add_option("--ctx", o->ctx, "window length (overrides the protocol's)");
  cmd->add_option("--chunks", o->chunks, "evaluate at most this many windows");
  cmd->add_option("--baseline", o->baseline, "baseline precision: bf16 (default; weights rounded), fp32, or bf16-compute (BF16 weights and GEMM inputs, FP32 sums)");
  cmd->add_option("--head", o->head, "lm_head: auto (quantize unless tied), quantize, skip");
  cmd->add_option("--top-k", o->top_k, "keep the baseline's top-k log-probs for KLD (0 = all when they fit)");
  cmd->add_option("--cache-dir", o->cache_dir, "directory for baseline cache files (none by default)");
  cmd->add_option("--layer-windows", o->layer_windows, "windows used for per-layer output error (0 = all)");
  cmd->add_flag("--tensors", o->tensors, "print the error of every quantized tensor");
  cmd->add_option("--algorithm", o->algorithm, "quantization algorithm for --scheme: rtn (default), gptq, awq, rotation, …");
  cmd->add_option("--param", o->params, "algorithm parameter key=value (repeatable), e.g. --param act_order=true");
  cmd->add_option("--calib", o->calib, "calibration text for calibrated algorithms (disjoint from --data)");
  cmd->add_option("--calib-samples", o->calib_samples, "calibration windows (default 128)");
  cmd->add_option("--calib-seqlen", o->calib_seqlen, "calibration window length (default: the evaluation context)");
  cmd->add_option("--calib-seed", o->calib_seed, "seed of the calibration window starts (default 0)");
  cmd->add_flag("--json", o->json, "print one JSON object instead of text");
  cmd->callback([o] {
    const Status s = RunEval(*o);
    if (!s.ok()) Fail("eval", s);
  });
}

}  // namespace ql::cli
