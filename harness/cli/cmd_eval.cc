// `quantlab eval`: perplexity of a model on a text under a protocol and — with --scheme — one cell
// of the cell pipeline (harness/sweep/cell_pipeline.h): the same plan, quantization, hooks,
// evaluation and metrics as a one-cell sweep with the sweep's defaults, printed instead of stored.
// The flags build an experiment, which the experiment parser checks exactly as it checks a file.
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/commands.h"
#include "harness/cli/eval_tasks.h"
#include "harness/eval/metric_table.h"
#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/compact_reference.h"
#include "harness/sweep/experiment.h"
#include "harness/quant/targets.h"

namespace ql::cli {
namespace {

struct EvalOptions {
  std::string model, data, tokenizer, protocol = "llamacpp", baseline = "bf16", tied_head = "shared";
  std::string scheme, activations, kv_cache, attention, attn_q, attn_p, ignore = "none", targets = "Linear";
  std::string cache_dir;
  std::optional<int> ctx, chunks;
  int top_k = 0, layer_windows = 1;
  int64_t seed = 0;
  bool json = false, tensors = false;
  std::string algorithm, calib;
  std::vector<std::string> params;
  int calib_samples = 32, calib_seqlen = 256;
  int64_t calib_seed = 0;
  EvalTaskFlags task;
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

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(',', start);
    const std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) out.push_back(part);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// The protocol string with --ctx / --chunks applied, validated.
StatusOr<std::string> ProtocolText(const EvalOptions& o) {
  QL_ASSIGN_OR_RETURN(ProtocolSpec spec, ProtocolSpec::Parse(o.protocol));
  if (o.ctx) {
    if (*o.ctx < 2) return Status::Errorf("--ctx {} must be at least 2 (tokens per window)", *o.ctx);
    spec.n_ctx = *o.ctx;
    if (spec.kind == ProtocolKind::kStrided && spec.stride > spec.n_ctx) spec.stride = spec.n_ctx / 2;
  }
  if (o.chunks) {
    if (*o.chunks < 1) return Status::Errorf("--chunks {} must be at least 1 (leave it out to use every window)", *o.chunks);
    spec.max_chunks = *o.chunks;
  }
  QL_RETURN_IF_ERROR(spec.Validate());
  return spec.Canonical();
}

// The flags as an experiment document (JSON is YAML), so one parser checks eval and sweep alike.
StatusOr<nlohmann::json> EvalExperiment(const EvalOptions& o) {
  nlohmann::json e = {{"name", "eval"}, {"model", o.model}, {"data", o.data}, {"baseline", o.baseline},
                      {"seed", o.seed}, {"tied_head", o.tied_head}, {"layer_error_windows", o.layer_windows},
                      {"kld_top_k", o.top_k}, {"targets", SplitComma(o.targets)}};
  QL_ASSIGN_OR_RETURN(e["protocol"], ProtocolText(o));
  nlohmann::json scheme = {{"weights", o.scheme.empty() ? "none" : o.scheme}};
  if (!o.activations.empty()) scheme["activations"] = o.activations;
  if (!o.kv_cache.empty()) scheme["kv_cache"] = o.kv_cache;
  if (!o.attention.empty()) scheme["attention"] = o.attention;
  if (!o.attn_q.empty() || !o.attn_p.empty()) {
    if (!o.attention.empty()) return Status::Error("--attention sets both q and p: leave out --attn-q / --attn-p");
    scheme["attention"] = nlohmann::json::object();
    if (!o.attn_q.empty()) scheme["attention"]["q"] = o.attn_q;
    if (!o.attn_p.empty()) scheme["attention"]["p"] = o.attn_p;
  }
  if (o.scheme.empty() && scheme.size() > 1)
    return Status::Error("--activations, --kv-cache and --attention need --scheme (use --scheme bf16 to keep weights)");
  nlohmann::json algo = {{"name", o.algorithm.empty() ? "rtn" : o.algorithm}};
  QL_ASSIGN_OR_RETURN(nlohmann::json params, ParseAlgorithmParams(o.params));
  for (const auto& [k, v] : params.items()) algo[k] = v;
  if (!o.calib.empty())
    e["calibration"] = {{"data", o.calib}, {"samples", o.calib_samples}, {"seqlen", o.calib_seqlen}, {"seed", o.calib_seed}};
  const std::vector<std::string> builtin = BuiltinIgnoreSetNames();
  std::string ignore = o.ignore;
  if (std::find(builtin.begin(), builtin.end(), ignore) == builtin.end()) {
    e["ignore_sets"] = {{"cli", SplitComma(ignore)}};
    ignore = "cli";
  }
  // A bare --scheme may also name a preset (W8A8): the string form of a grid entry accepts both.
  const nlohmann::json entry = scheme.size() == 1 && !o.scheme.empty() ? nlohmann::json(o.scheme) : scheme;
  e["grid"] = {{"schemes", {entry}}, {"algorithms", {algo}}, {"ignore", {ignore}}};
  QL_ASSIGN_OR_RETURN(nlohmann::json tasks, EvalTasksJson(o.task));
  if (!tasks.empty()) e["tasks"] = tasks;
  return e;
}

nlohmann::json MetricsJson(const MetricValues& m) {
  nlohmann::json j = nlohmann::json::object();
  const auto& table = MetricTable();
  for (size_t i = 0; i < table.size(); ++i) {
    const auto& v = m.values[i];
    if (!v || !std::isfinite(*v)) j[std::string(table[i].name)] = nullptr;
    else if (table[i].type == MetricType::kInteger) j[std::string(table[i].name)] = int64_t(*v);
    else j[std::string(table[i].name)] = *v;
  }
  return j;
}

double Finite(double v) { return std::isfinite(v) ? v : (v > 0 ? 999.0 : -999.0); }

nlohmann::json BaselineJson(const Session& s) {
  const PerplexityStats p = Perplexity(s.base->nll);
  return {{"model", s.model_path}, {"data", s.experiment->data}, {"data_bytes", s.text.size()},
          {"tokens", s.tokens.size()}, {"protocol", s.protocol.Canonical()}, {"windows", s.windows.size()},
          {"tokens_scored", s.base->n()}, {"baseline_precision", PrecisionName(s.precision)},
          {"kld_store", s.base->top_k == 0 ? "full" : fmt::format("top{}", s.base->top_k)},
          {"baseline_cache", s.baseline_from_disk ? "disk" : "computed"}, {"ppl_base", p.ppl},
          {"ppl_base_err", p.ppl_err}, {"nll_base_mean", p.mean_nll}, {"seconds_baseline", s.base->seconds}};
}

nlohmann::json CellJson(const Session& s, const CellResult& r) {
  const CellRow& c = r.cell;
  nlohmann::json j = {{"cell_id", c.id}, {"status", c.status}, {"weight_scheme", c.weight_scheme},
                      {"act_scheme", c.act_scheme}, {"kv_scheme", c.kv_scheme}, {"attn_scheme", c.attn_scheme},
                      {"algorithm", c.algorithm}, {"algo_params", nlohmann::json::parse(c.algo_params)},
                      {"ignore_set", c.ignore_set}, {"tied_head", s.experiment->tied_head},
                      {"quantized_tensors", r.tensor_errors.size()}, {"seconds_quantize", c.seconds_quantize},
                      {"seconds_eval", c.seconds_eval}, {"seconds_total", c.seconds_total},
                      {"cpu_seconds_quantize", c.cpu_seconds_quantize.value_or(0)},
                      {"cpu_seconds_eval", c.cpu_seconds_eval.value_or(0)},
                      {"cpu_seconds_total", c.cpu_seconds_total.value_or(0)},
                      {"numerics_version", c.numerics_version}, {"code_version", c.code_version}};
  if (s.calibration) {
    const CalibrationSpec& k = *s.experiment->calibration;
    j["calibration"] = {{"data", k.data}, {"samples", k.samples}, {"seqlen", k.seqlen}, {"seed", k.seed}};
  }
  if (r.metrics) j.update(MetricsJson(*r.metrics));
  nlohmann::json te = nlohmann::json::array();
  for (const auto& t : r.tensor_errors)
    te.push_back({{"tensor", t.tensor}, {"scheme", t.scheme}, {"mse", t.mse}, {"sqnr_db", Finite(t.sqnr_db)},
                  {"max_abs", t.max_abs}, {"bits_per_weight", t.bits_per_weight}, {"bytes", t.bytes}});
  j["tensor_errors"] = te;
  nlohmann::json le = nlohmann::json::array();
  for (const auto& l : r.layer_errors)
    le.push_back({{"layer", l.layer}, {"rel_mse", l.rel_mse}, {"sqnr_db", Finite(l.sqnr_db)}});
  j["layer_errors"] = le;
  j["layer_error_windows"] = s.experiment->layer_error_windows;
  if (!r.task_metrics.empty()) j["tasks"] = TaskRowsJson(r.task_metrics);
  return j;
}

void PrintBaseline(const Session& s) {
  const ModelConfig& c = s.reference.config;
  const nlohmann::json b = BaselineJson(s);
  fmt::print("model     {} ({}, {} layers, dim {}, vocab {}, context {})\n", s.model_path, c.arch, c.n_layers, c.dim,
             c.vocab_size, c.max_seq_len);
  fmt::print("data      {} ({} bytes, {} tokens)\n", s.experiment->data, s.text.size(), s.tokens.size());
  fmt::print("protocol  {} ({} windows, {} scored tokens)\n", s.protocol.Canonical(), s.windows.size(), s.base->n());
  fmt::print("baseline  {} weights: PPL {:.4f} ± {:.4f}   (KLD store {}, {:.1f} MiB, {}, {:.2f} s)\n",
             PrecisionName(s.precision), b["ppl_base"].get<double>(), b["ppl_base_err"].get<double>(),
             b["kld_store"].get<std::string>(), s.base->bytes() / 1048576.0,
             s.baseline_from_disk ? "from disk cache" : "computed", s.base->seconds);
}

void PrintCell(const Session& s, const CellResult& r, bool tensors) {
  const CellRow& c = r.cell;
  const MetricValues& m = *r.metrics;
  fmt::print("cell      {} | {} {} | ignore={} | tied_head {}  (id {})\n", c.weight_scheme,
             c.algorithm, c.algo_params, c.ignore_set, s.experiment->tied_head, c.id);
  if (!c.act_scheme.empty() || !c.kv_scheme.empty() || !c.attn_scheme.empty())
    fmt::print("          activations {}  kv {}  attention {}\n", c.act_scheme.empty() ? "-" : c.act_scheme,
               c.kv_scheme.empty() ? "-" : c.kv_scheme, c.attn_scheme.empty() ? "-" : c.attn_scheme);
  // Every metric, by its table name, with its unit.
  for (const MetricDef& d : MetricTable()) {
    const auto v = m.Get(d.name);
    const std::string value = !v ? "-" : d.type == MetricType::kInteger ? fmt::format("{}", int64_t(*v))
                                                                        : fmt::format("{:.6g}", *v);
    fmt::print("  {:<16} {:>14} {:<12} {}\n", d.name, value, d.unit, d.doc);
  }
  fmt::print("layers    output SQNR dB (rel. MSE) vs baseline over {} window(s):", s.experiment->layer_error_windows);
  for (const auto& l : r.layer_errors) fmt::print("  {}: {:.2f} ({:.2e})", l.layer, l.sqnr_db, l.rel_mse);
  fmt::print("\n");
  if (tensors) {
    for (const auto& t : r.tensor_errors)
      fmt::print("tensor    {:<40} {:<14} SQNR {:6.2f} dB  MSE {:.3e}  {:.3f} b/w\n", t.tensor, t.scheme, t.sqnr_db,
                 t.mse, t.bits_per_weight);
  } else if (!r.tensor_errors.empty()) {
    auto worst = std::min_element(r.tensor_errors.begin(), r.tensor_errors.end(),
                                  [](const auto& a, const auto& b) { return a.sqnr_db < b.sqnr_db; });
    fmt::print("weights   {} tensors, worst SQNR {:.2f} dB ({}); --tensors lists all\n", r.tensor_errors.size(),
               worst->sqnr_db, worst->tensor);
  }
  PrintTaskRows(r.task_metrics);
  fmt::print("time      baseline {:.2f} s, quantize {:.2f} s ({:.2f} CPU-s), eval {:.2f} s ({:.2f} CPU-s)\n",
             s.base->seconds, c.seconds_quantize, c.cpu_seconds_quantize.value_or(0), c.seconds_eval,
             c.cpu_seconds_eval.value_or(0));
}

Status RunEval(const EvalOptions& o) {
  if (!o.algorithm.empty() && o.scheme.empty())
    return Status::Errorf("--algorithm {} needs --scheme (the weight scheme it quantizes to, e.g. int4:g32)", o.algorithm);
  if (o.algorithm.empty() && (!o.params.empty() || !o.calib.empty()))
    return Status::Error("--param and --calib need --algorithm NAME");
  if (!o.algorithm.empty() && o.calib.empty()) {
    QL_ASSIGN_OR_RETURN(const AlgorithmInfo* algo, FindAlgorithm(o.algorithm));
    QL_ASSIGN_OR_RETURN(const nlohmann::json params, ParseAlgorithmParams(o.params));
    if (NeedsCalibration(*algo, params))
      return Status::Errorf("--algorithm {} needs calibration text: pass --calib FILE (disjoint from --data)", algo->name);
  }
  QL_ASSIGN_OR_RETURN(const nlohmann::json doc, EvalExperiment(o));
  QL_ASSIGN_OR_RETURN(const Experiment e, ParseExperiment(doc.dump(), "the eval flags", "."));
  const std::vector<Cell> cells = ExpandGrid(e);
  SessionOptions so;
  so.tokenizer = o.tokenizer;
  so.baseline_cache_dir = o.cache_dir;
  so.progress = ProgressStyle::ForStderr(&std::cerr);  // stderr: stdout is the result (--json: one document)
  QL_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, OpenSession(e, o.scheme.empty() ? std::vector<Cell>{} : cells, so));
  nlohmann::json j = BaselineJson(*s);
  if (!s->tasks.empty()) j["tasks_base"] = BaselineTasksJson(*s);
  if (o.scheme.empty()) {
    if (o.json) fmt::print("{}\n", j.dump());
    else PrintBaseline(*s), PrintBaselineTasks(*s);
    return Status::Ok();
  }
  QL_ASSIGN_OR_RETURN(const CellPlan plan, PlanCell(*s, cells.front()));
  if (CanCompactReference(*s, cells)) CompactReference(s.get());  // one FP32 copy of the weights: the work model
  Model work = WorkModel(*s);
  const CellResult r = RunCell(*s, work, plan, so.progress);
  if (r.cell.status != "ok") return Status::Errorf("cell {}: {}", r.cell.status, r.cell.reason);
  if (o.json) {
    j.update(CellJson(*s, r));
    fmt::print("{}\n", j.dump());
    return Status::Ok();
  }
  PrintBaseline(*s);
  PrintBaselineTasks(*s);
  PrintCell(*s, r, o.tensors);
  return Status::Ok();
}

}  // namespace

void AddEvalCommand(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Perplexity under a protocol; with --scheme, one cell (ΔPPL/KLD/top-1/Δp, sizes, errors) against the "
              "baseline, exactly as a one-cell sweep computes it");
  cmd->add_option("--model", o->model, "model: llama2.c .bin, .gguf, or a Hugging Face directory / .safetensors")->required();
  cmd->add_option("--data", o->data, "evaluation text (UTF-8)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file when it is not beside the model");
  cmd->add_option("--scheme", o->scheme, "weight scheme of every targeted linear, e.g. int4:g32, int8:channel, or a preset (W8A8)");
  cmd->add_option("--activations", o->activations, "activation scheme of the targeted linears' inputs, e.g. int8:token");
  cmd->add_option("--kv-cache", o->kv_cache, "KV-cache scheme (per head), e.g. int8:token");
  cmd->add_option("--attention", o->attention, "scheme of both attention-matmul inputs Q and P (row-local)");
  cmd->add_option("--attn-q", o->attn_q, "scheme of the queries after RoPE only");
  cmd->add_option("--attn-p", o->attn_p, "scheme of the softmax output P only");
  cmd->add_option("--targets", o->targets, "comma-separated targets (llm-compressor syntax)")->capture_default_str();
  cmd->add_option("--ignore", o->ignore, "a built-in ignore set (none, lm_head, first_block, …) or comma-separated entries")
      ->capture_default_str();
  cmd->add_option("--tied-head", o->tied_head, "a tied lm_head: shared (quantize the one tensor, embedding too) or untie "
                                               "(quantize a copy; lookups stay exact)")->capture_default_str();
  cmd->add_option("--protocol", o->protocol,
                  "llamacpp | gptq | strided, or a canonical string (llamacpp:ctx512, strided:ctx1024:s512)");
  cmd->add_option("--ctx", o->ctx, "window length (overrides the protocol's)");
  cmd->add_option("--chunks", o->chunks, "evaluate at most this many windows");
  cmd->add_option("--baseline", o->baseline, "baseline precision: bf16 (default; weights rounded), fp32, or bf16-compute (BF16 weights and GEMM inputs, FP32 sums)");
  cmd->add_option("--seed", o->seed, "seed of the cell (random rotations, …)");
  cmd->add_option("--top-k", o->top_k, "keep the baseline's top-k log-probs for KLD (0 = all when they fit)");
  cmd->add_option("--cache-dir", o->cache_dir, "directory for baseline cache files (none by default)");
  cmd->add_option("--layer-windows", o->layer_windows, "windows used for per-layer output error (0 = all)")
      ->capture_default_str();
  cmd->add_flag("--tensors", o->tensors, "print the error of every quantized tensor");
  cmd->add_option("--algorithm", o->algorithm, "quantization algorithm for --scheme: rtn (default), gptq, awq, rotation, …");
  cmd->add_option("--param", o->params, "algorithm parameter key=value (repeatable), e.g. --param act_order=true");
  cmd->add_option("--calib", o->calib, "calibration text for calibrated algorithms (disjoint from --data)");
  cmd->add_option("--calib-samples", o->calib_samples, "calibration windows")->capture_default_str();
  cmd->add_option("--calib-seqlen", o->calib_seqlen, "calibration window length")->capture_default_str();
  cmd->add_option("--calib-seed", o->calib_seed, "seed of the calibration window starts")->capture_default_str();
  cmd->add_option("--task", o->task.tasks, "task accuracy beside PPL: NAME=FILE, a JSONL task file (repeatable; docs/tasks.md)");
  cmd->add_option("--task-convention", o->task.convention, "lmeval (default), llamacpp or both");
  cmd->add_option("--limit", o->task.limit, "score at most N items per task (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--task-seed", o->task.seed, "with --limit: a seeded sample instead of the first N");
  cmd->add_flag("--json", o->json, "print one JSON object instead of text (keys: the store's column names)");
  cmd->callback([o] {
    const Status s = RunEval(*o);
    if (!s.ok()) Fail("eval", s);
  });
}

}  // namespace ql::cli
