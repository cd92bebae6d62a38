// The one cell pipeline (see cell_pipeline.h).
#include "harness/sweep/cell_pipeline.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <ostream>
#include <set>

#include "datasets/text.h"
#include "harness/eval/evaluator.h"
#include "harness/sweep/cell_eval.h"
#include "harness/eval/metric_table.h"
#include "harness/eval/numerics.h"
#include "harness/io/load.h"
#include "harness/quant/attn_quant.h"
#include "harness/quant/kv_quant.h"
#include "harness/quant/llama_mixes.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/targets.h"
#include "harness/sweep/algorithm_files.h"
#include "harness/sweep/compact_reference.h"
#include "harness/tokenizer/tokenizer.h"
#include "harness/util/blas.h"
#include "harness/util/cpu_time.h"
#include "kernels/act_quant.h"
#include "kernels/parallel.h"
#include "kernels/quantizer.h"
#include "ql_version.h"

namespace ql {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

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

// The files whose bytes the loader read: what the model hash covers (not a README or a training
// log beside the checkpoint).
std::vector<std::string> ModelFiles(const std::string& path, const io::CheckpointInfo& info,
                                    const std::string& tokenizer) {
  std::vector<std::string> files = info.files;
  std::error_code ec;
  const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  if (fs::is_directory(path, ec) || fs::path(path).extension() == ".safetensors") {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".safetensors") || name == "model.safetensors.index.json") files.push_back(e.path().string());
    }
  }
  if (auto it = info.metadata.find("tokenizer"); it != info.metadata.end() && fs::exists(it->second, ec))
    files.push_back(it->second);
  if (files.empty()) files.push_back(path);
  if (!tokenizer.empty()) files.push_back(tokenizer);
  return files;
}

// The model and, on a second thread (the content hash of a 540 MB file is ~0.6 s of serial FNV-1a), the
// hash of its files: the caller reads and tokenizes the text meanwhile and takes the hash with get().
StatusOr<Model> LoadSessionModel(const std::string& path, const std::string& tokenizer,
                                 std::future<StatusOr<std::string>>* hash) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::Errorf("model '{}' does not exist (pass --model PATH)", path);
  io::CheckpointInfo info;
  QL_ASSIGN_OR_RETURN(Model m, LoadModel(path, &info));
  if (!tokenizer.empty()) {
    QL_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizer(tokenizer, m.config.vocab_size));
    m.tokenizer = std::shared_ptr<const Tokenizer>(std::move(tok));
  }
  if (!m.tokenizer)
    return Status::Errorf("{}: the model has no tokenizer beside it; quantlab needs one to read text (pass --tokenizer)",
                          path);
  *hash = std::async(std::launch::async, HashFiles, ModelFiles(path, info, tokenizer));
  return m;
}

bool AnyNeedsCalibration(const std::vector<Cell>& cells) {
  for (const Cell& c : cells) {
    auto algo = FindAlgorithm(c.algorithm.name);
    if (algo.ok() && NeedsCalibration(**algo, c.algorithm.params)) return true;
  }
  return false;
}

std::string Origin(const Experiment& e) { return e.path.empty() ? e.name : e.path; }

}  // namespace

std::string NowIso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

namespace {
// Session::block_outputs, when the layer-error windows' residual streams fit the budget.
Status CaptureSessionBlockOutputs(const Experiment& e, Session* s) {
  const ModelConfig& c = s->reference.config;
  const size_t n = e.layer_error_windows > 0 ? std::min<size_t>(s->windows.size(), size_t(e.layer_error_windows))
                                             : s->windows.size();
  size_t floats = 0;
  for (size_t i = 0; i < n; ++i) floats += s->windows[i].tokens.size() * size_t(c.n_layers) * size_t(c.dim);
  if (floats * sizeof(float) > Session::kBlockOutputBudget) return Status::Ok();
  QL_ASSIGN_OR_RETURN(ReferenceBlockOutputs r, CaptureBlockOutputs(s->reference, s->windows, int(n)));
  s->block_outputs = std::make_shared<const ReferenceBlockOutputs>(std::move(r));
  return Status::Ok();
}

// The reference's block inputs for prefix reuse, when asked for.
Status OpenPrefix(const SessionOptions& o, Session* s) {
  if (o.prefix_budget_mb <= 0) return Status::Ok();
  QL_ASSIGN_OR_RETURN(PrefixStore p, PrefixStore::Build(s->reference, s->windows, o.prefix_budget_mb << 20));
  if (o.log)
    *o.log << fmt::format("prefix reuse: the stream entering {} of {} blocks kept ({:.1f} MB of {} MB)\n",
                          p.kept_blocks(), s->reference.config.n_layers, double(p.bytes()) / (1 << 20),
                          o.prefix_budget_mb);
  s->prefix = std::make_shared<const PrefixStore>(std::move(p));
  return Status::Ok();
}
}  // namespace

StatusOr<std::unique_ptr<Session>> OpenSession(const Experiment& e, const std::vector<Cell>& cells,
                                               const SessionOptions& o) {
  UseOneBlasThread();  // GPTQ's numbers must not depend on OpenBLAS's thread count (harness/util/blas.h)
  if (o.log) *o.log << BlasFallbackNote();
  auto s = std::make_unique<Session>();
  s->experiment = &e;
  s->model_path = o.model.empty() ? e.model : o.model;
  QL_ASSIGN_OR_RETURN(s->protocol, ProtocolSpec::Parse(e.protocol));
  QL_ASSIGN_OR_RETURN(s->precision, ParsePrecision(e.baseline));
  std::future<StatusOr<std::string>> model_hash;
  QL_ASSIGN_OR_RETURN(Model model, LoadSessionModel(s->model_path, o.tokenizer, &model_hash));
  const int max_ctx = model.config.max_seq_len;
  if (max_ctx > 0 && s->protocol.n_ctx > max_ctx)
    return Status::Errorf("{}: protocol context {} is larger than the model's context {} (use ctx <= {})", Origin(e),
                          s->protocol.n_ctx, max_ctx, max_ctx);
  QL_ASSIGN_OR_RETURN(s->text, ReadTextFile(e.data, "evaluation text"));
  s->hashes.data = TextHash(s->text);
  s->tokens = model.tokenizer->Encode(s->text, /*add_bos=*/false);
  QL_ASSIGN_OR_RETURN(s->windows, BuildWindows(s->protocol, s->tokens, model.tokenizer->bos_id()));
  s->reference = WithPrecision(std::move(model), s->precision);
  model = Model();  // one copy of the weights from here on
  QL_ASSIGN_OR_RETURN(s->hashes.model, model_hash.get());

  // Hashed whenever the file has one: every shard records the whole grid's ids, calibrated cells too.
  if (e.calibration) { QL_ASSIGN_OR_RETURN(s->hashes.calibration, HashFile(e.calibration->data)); }
  if (AnyNeedsCalibration(cells)) {
    if (!e.calibration)
      return Status::Errorf("{}: a cell's algorithm needs a calibration: section (data, samples, seqlen, seed)", Origin(e));
    const CalibrationSpec& c = *e.calibration;
    if (c.data == e.data && o.log)
      *o.log << "warning: calibration and evaluation use the same text (" << e.data << "): results will be optimistic\n";
    QL_ASSIGN_OR_RETURN(s->calibration, BuildCalibration(s->reference, c.data, c.samples, c.seqlen, c.seed));
    if (o.log)
      *o.log << fmt::format("calibration: {} windows x {} tokens from {} (seed {})\n", s->calibration->windows.size(),
                            c.seqlen, c.data, c.seed);
  }

  BaselineCache cache(o.baseline_cache_dir);
  BaselineOptions bopt;
  bopt.precision = s->precision;
  bopt.top_k = e.kld_top_k;
  bopt.cache_dir = o.baseline_cache_dir;
  ProgressMeter meter(o.progress, fmt::format("baseline {}", PrecisionName(s->precision)), "windows");
  bopt.progress = meter.Fn();
  QL_ASSIGN_OR_RETURN(s->base, cache.GetOrCompute(s->reference, s->hashes.data, s->protocol, s->windows, bopt));
  s->baseline_from_disk = cache.disk_hits() > 0;
  const SessionTaskOptions to{s->hashes.model, std::string(PrecisionName(s->precision)), o.baseline_cache_dir, o.log};
  QL_ASSIGN_OR_RETURN(s->tasks, OpenSessionTasks(e, s->reference, to, &s->hashes.tasks));
  QL_RETURN_IF_ERROR(OpenPrefix(o, s.get()));
  // The layer-error reference: a baseline-only eval needs none, and the prefix store serves its cells.
  if (!cells.empty() && !s->prefix) QL_RETURN_IF_ERROR(CaptureSessionBlockOutputs(e, s.get()));
  return s;
}

namespace {

// The cell's `overrides:` on top of `base` (module -> scheme, "" = baseline precision): each entry must
// match a module, no module may be matched twice (see experiment.h).
Status ApplyOverrides(const Model& model, const Cell& cell, std::map<std::string, std::string>* base) {
  std::map<std::string, std::string> claimed;  // module -> the entry that set it
  for (const OverrideSpec& o : cell.overrides) {
    auto hit = ResolveTargets(model, o.targets, "override at " + o.where);
    if (!hit.ok()) return hit.status();
    for (const std::string& m : *hit) {
      auto [it, fresh] = claimed.emplace(m, o.where);
      if (!fresh)
        return Status::Errorf("override at {}: module '{}' is already set by the override at {} (make the targets disjoint)",
                              o.where, m, it->second);
      (*base)[m] = o.scheme;
    }
  }
  return Status::Ok();
}

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
  std::map<std::string, std::string> chosen;  // module -> scheme ("" = baseline precision)
  for (const auto& m : cell.scheme.weights.empty() ? std::vector<std::string>{} : modules) {
    std::string scheme = cell.scheme.weights;
    if (!cell.scheme.mix.empty()) {  // llama.cpp's per-tensor choice, the one export uses too
      const Tensor& w = model.W(WeightKey(model, m));
      const std::string_view mix = std::string_view(cell.scheme.mix).starts_with("mix:")
                                       ? std::string_view(cell.scheme.mix).substr(4) : std::string_view(cell.scheme.mix);
      const bool imatrix = cell.algorithm.name == "imatrix";  // llama-quantize --imatrix picks differently
      QL_ASSIGN_OR_RETURN(scheme, LlamaMixScheme(mix, model.config, m, w.rows(), w.cols(), imatrix));
    }
    chosen[m] = scheme;
  }
  QL_RETURN_IF_ERROR(ApplyOverrides(model, cell, &chosen));
  std::vector<std::pair<std::string, std::string>> out;  // in the model's module order
  for (const std::string& m : TargetableModules(model))
    if (auto it = chosen.find(m); it != chosen.end() && !it->second.empty()) out.emplace_back(m, it->second);
  return out;
}

StatusOr<CellPlan> PlanCell(const Session& s, const Cell& cell) {
  const Experiment& e = *s.experiment;
  CellPlan p;
  p.cell = &cell;
  auto ms = CellModuleSchemes(s.reference, e, cell);
  if (!ms.ok()) return Status::Errorf("{}: cell '{}': {}", Origin(e), cell.Label(), ms.status().message());
  p.module_schemes = std::move(*ms);
  if (p.module_schemes.empty() && !cell.scheme.weights.empty() && cell.overrides.empty())
    return Status::Errorf("{}: cell '{}': ignore set '{}' leaves none of the targets to quantize with {} (the cell "
                          "would measure the baseline against itself)",
                          Origin(e), cell.Label(), cell.ignore.name, cell.scheme.weights);
  for (const auto& [m, sc] : p.module_schemes) {
    QL_ASSIGN_OR_RETURN(Scheme parsed, ParseScheme(sc));
    p.schemes.push_back(parsed);
    if (m == "lm_head" && s.reference.config.tied_embeddings && e.tied_head == "untie") p.untie_head = true;
  }
  auto parse = [](const std::string& text, std::optional<Scheme>* out) -> Status {
    if (text.empty()) return Status::Ok();
    if (text == kLlamaCppActivations)
      return Status::Errorf("'{}' is an activation mode (activations: llamacpp), not a KV-cache or attention scheme", text);
    QL_ASSIGN_OR_RETURN(Scheme sc, ParseScheme(text));
    *out = sc;
    return Status::Ok();
  };
  if (cell.scheme.activations == kLlamaCppActivations) {
    QL_ASSIGN_OR_RETURN(p.llamacpp_act, LlamaCppActivationTypes(s.reference, p.module_schemes,
                                                                s.precision == BaselinePrecision::kFp32 ? "f32" : "bf16"));
  } else {
    QL_RETURN_IF_ERROR(parse(cell.scheme.activations, &p.activations));
  }
  QL_RETURN_IF_ERROR(parse(cell.scheme.kv_cache, &p.kv_cache));
  QL_RETURN_IF_ERROR(parse(cell.scheme.attn_q, &p.attn_q));
  QL_RETURN_IF_ERROR(parse(cell.scheme.attn_p, &p.attn_p));
  QL_ASSIGN_OR_RETURN(p.algorithm, FindAlgorithm(cell.algorithm.name));
  return p;
}

// A file an algorithm reads (imatrix's `file`) enters the identity by its content as well as its path, so a
// file replaced under the same name makes new cells. An unreadable file is left out: the cell fails when it runs.
static nlohmann::json WithAlgorithmFileHashes(nlohmann::json canonical, const Cell& cell) {
  for (const auto& [param, path] : AlgorithmFiles(cell.algorithm.name, cell.algorithm.params))
    if (auto hash = HashFile(path); hash.ok()) canonical["algorithm"]["file_hashes"][param] = *hash;
  return canonical;
}

CellRow DescribeCell(const Session& s, const Cell& cell) {
  const Experiment& e = *s.experiment;
  const nlohmann::json canonical = WithAlgorithmFileHashes(cell.CanonicalJson(e), cell);
  ContentHashes h = s.hashes;
  if (!canonical.contains("calibration")) h.calibration.clear();
  CellRow row;
  row.id = CellId(canonical, h);
  row.model_id = s.hashes.model;
  row.dataset_id = s.hashes.data;
  row.protocol = s.protocol.Canonical();
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
  row.host = MachineDescription();  // host, SIMD target and BLAS kernels
  row.code_version = QL_GIT_VERSION;
  row.numerics_version = kNumericsVersion;
  return row;
}

namespace {

// Activation fake quantization through the forward hooks: each targeted linear's input [T, in] is
// quantized with the activation scheme (granularity "token" = one scale per row, dynamic);
// KV-cache quantization per head; Q and P of attention; the algorithm's online input transform first.
struct CellHooks {
  std::optional<Scheme> act;
  std::set<std::string> modules;  // linear inputs to quantize (the cell's targets)
  const std::map<std::string, VecDotType>* llamacpp = nullptr;  // activations 'llamacpp'; every linear
  Status first_error;
  ForwardHooks hooks;
  const AlgorithmRuntime* runtime = nullptr;
  std::optional<Scheme> kv;
  int kv_heads = 0, head_dim = 0;
  std::unique_ptr<AttentionQuantizer> attn;
  mutable std::mutex mu;  // guards first_error: the hooks run on several threads (ForwardWindowsEach)

  void Record(Status s) {
    std::lock_guard<std::mutex> lock(mu);
    if (!s.ok() && first_error.ok()) first_error = std::move(s);
  }
  void RoundLlamaCpp(std::string_view path, float* x, int T, int in) {
    const auto it = llamacpp->find(std::string(path));
    if (it == llamacpp->end()) return Record(Status::Errorf("activations 'llamacpp': no weight type for {}", path));
    Status s = RoundLikeGgmlVecDot(it->second, x, T, in);
    if (!s.ok()) Record(Status::Errorf("activations 'llamacpp' at {}: {}", path, s.message()));
  }
  Status status() const {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!first_error.ok()) return first_error;
    }
    return attn ? attn->status() : Status::Ok();
  }

  void Build(const CellPlan& p, const ModelConfig& c, const AlgorithmRuntime* rt) {
    runtime = rt;
    act = p.activations;
    if (act)
      for (const auto& [m, sc] : p.module_schemes) modules.insert(m);
    kv = p.kv_cache;
    kv_heads = c.n_kv_heads;
    head_dim = c.head_dim;
    if (p.attn_q || p.attn_p) {
      attn = std::make_unique<AttentionQuantizer>(p.attn_q, p.attn_p, c.n_heads, c.head_dim);
      attn->Install(&hooks);
    }
    if (kv) {
      hooks.kv = [this](int layer, float* k, float* v, int T) {
        Status s = FakeQuantizeKvHeads(*kv, k, T, kv_heads, head_dim);
        if (s.ok()) s = FakeQuantizeKvHeads(*kv, v, T, kv_heads, head_dim);
        if (!s.ok()) Record(Status::Errorf("KV-cache quantization at layer {}: {}", layer, s.message()));
      };
    }
    if (!p.llamacpp_act.empty()) llamacpp = &p.llamacpp_act;
    if (act || llamacpp || (runtime && runtime->linear_input)) {
      hooks.linear_input = [this](std::string_view path, float* x, int T, int in) {
        if (runtime && runtime->linear_input && runtime->linear_input(path, x, T, in)) return;
        if (llamacpp) return RoundLlamaCpp(path, x, T, in);
        if (!act || !modules.count(std::string(path))) return;
        Status s = FakeQuantizeInPlace(*act, x, T, in);  // vectorized for int sym token/group schemes
        if (!s.ok()) return Record(Status::Errorf("activation quantization at {}: {}", path, s.message()));
      };
    }
  }
};

// The reference values of a weight of the cell's model: an untied head copy is the embedding.
const Tensor& ReferenceTensor(const Model& reference, const std::string& name) {
  if (name == "lm_head.weight" && !reference.Has(name)) return reference.W("model.embed_tokens.weight");
  return reference.W(name);
}

// Storage and per-tensor errors: every quantized tensor at its scheme (bytes exact, counted from the scheme
// and shape: kernels/quantizer.h QuantizedBytes), the rest at the
// baseline precision; errors against the reference (or, for a transforming algorithm, against its
// own weights before rounding). The tensors are measured on quantlab's threads, one tensor per item
// (each its own sums, so the thread count changes no bit), and recorded in the plan's order.
Status MeasureTensors(const Session& s, const Model& work, const CellPlan& p, const AlgorithmRuntime& runtime,
                      CellMeasurements* m, CellResult* r) {
  std::set<std::string> counted;
  std::vector<size_t> plan_index;  // [tensors] the plan entry of each distinct tensor, in plan order
  for (size_t i = 0; i < p.module_schemes.size(); ++i)
    if (counted.insert(WeightKey(work, p.module_schemes[i].first)).second) plan_index.push_back(i);
  struct Measured {
    StatusOr<int64_t> bytes = int64_t(0);
    SignalError err;
    std::vector<float> hist;
  };
  std::vector<Measured> out(plan_index.size());
  std::vector<std::vector<float>> scratch(static_cast<size_t>(NumThreads()));  // [threads] a compact reference's values of one tensor
  ParallelFor(int(plan_index.size()), NumThreads(), [&](int t, int tid) {
    const size_t i = plan_index[size_t(t)];
    const std::string wn = WeightKey(work, p.module_schemes[i].first);
    const Tensor& w = ReferenceTensor(s.reference, wn);  // shape; the values from ReferenceValues
    Measured& o = out[size_t(t)];
    o.bytes = QuantizedBytes(p.schemes[i], w.rows(), w.cols());  // no second quantization
    if (!o.bytes.ok()) return;
    const auto tr = runtime.weights_before_rounding.find(wn);
    const std::vector<float>& w0 =
        tr != runtime.weights_before_rounding.end() ? tr->second : ReferenceValues(s, wn, &scratch[size_t(tid)]);
    o.err = CompareTensors(w0, work.W(wn).data);
    o.hist = ErrorHistogram(w0, work.W(wn).data, o.err.max_abs);
  });
  for (size_t t = 0; t < plan_index.size(); ++t) {
    const size_t i = plan_index[t];
    const std::string wn = WeightKey(work, p.module_schemes[i].first);
    const Tensor& w = ReferenceTensor(s.reference, wn);
    QL_ASSIGN_OR_RETURN(const int64_t bytes, std::move(out[t].bytes));
    const double bits_per_weight = w.rows() * w.cols() == 0 ? 0.0 : 8.0 * double(bytes) / double(w.rows() * w.cols());
    m->quant_bits += bytes * 8;
    m->quant_numel += w.numel();
    m->model_bytes += bytes;
    const SignalError& err = out[t].err;
    r->tensor_errors.push_back(
        {wn, p.module_schemes[i].second, err.mse, err.sqnr_db, err.max_abs, bits_per_weight, bytes});
    r->arrays["weight_error_hist/" + wn] = std::move(out[t].hist);
  }
  const int64_t base_bytes = s.precision == BaselinePrecision::kFp32 ? 4 : 2;
  for (const auto& [name, t] : work.weights)
    if (!counted.count(name)) m->model_bytes += t.numel() * base_bytes;
  m->quant_bits += runtime.extra_weight_bytes * 8;  // adapters kept beside the quantized weights
  m->model_bytes += runtime.extra_weight_bytes;
  return Status::Ok();
}

// The cell's records and per-layer errors: one forward per window against the session's captured
// reference outputs, or (when they were too large to keep) the reference re-run per cell.
StatusOr<CellEvaluation> EvaluateOnce(const Session& s, const Model& work, const CellPlan& p, const ForwardHooks& hooks,
                                      const AlgorithmRuntime& runtime, const ProgressFn& progress) {
  CellEvaluation ev;
  if (s.prefix || p.cell->adaptive) {  // sensitivity units: prefix reuse, adaptive windows (cell_eval.h)
    QL_ASSIGN_OR_RETURN(WindowRecords ran, EvaluateReusingPrefix(s, work, p, runtime, hooks));
    ev.records = std::move(ran.records);
    ev.windows = ran.windows;
    // A refinement's doubling step (AdaptiveSpec::windows) is decision data: no per-layer errors.
    if (p.cell->adaptive && p.cell->adaptive->windows > 0) return ev;
    QL_ASSIGN_OR_RETURN(ev.layers, CellLayerErrors(s, work, p, runtime, hooks));
    return ev;
  }
  if (s.block_outputs) {
    QL_ASSIGN_OR_RETURN(ev, EvaluateCell(work, s.windows, *s.base, &hooks, *s.block_outputs,
                                         runtime.residual_to_model_basis, progress));
  } else {
    QL_ASSIGN_OR_RETURN(ev.records, EvaluateAgainstBaseline(work, s.windows, *s.base, &hooks, progress));
    QL_ASSIGN_OR_RETURN(ev.layers, LayerOutputErrors(s.reference, work, s.windows, s.experiment->layer_error_windows,
                                                     &hooks, runtime.residual_to_model_basis));
  }
  ev.windows = int(s.windows.size());
  if (s.window_tally) s.window_tally->evaluated += ev.windows;
  return ev;
}

// Body reuse is off when the kept streams would take more than this (Σ T_w · dim floats).
constexpr size_t kBodyBudget = size_t(256) << 20;

// EvaluateOnce for a cell with a body key: the same records and per-layer errors, with every window's
// stream entering the final norm kept in *body (its key and owner are set by the caller once the cell
// succeeded).
StatusOr<CellEvaluation> EvaluateKeepingBody(const Session& s, const Model& work, const ForwardHooks& hooks,
                                             const AlgorithmRuntime& runtime, const ProgressFn& progress,
                                             KeptBody* body) {
  const ReferenceBlockOutputs none;
  QL_ASSIGN_OR_RETURN(CellEvaluation ev,
                      EvaluateCell(work, s.windows, *s.base, &hooks, s.block_outputs ? *s.block_outputs : none,
                                   runtime.residual_to_model_basis, progress, &body->h));
  ev.windows = int(s.windows.size());
  if (!s.block_outputs) {
    QL_ASSIGN_OR_RETURN(ev.layers, LayerOutputErrors(s.reference, work, s.windows, s.experiment->layer_error_windows,
                                                     &hooks, runtime.residual_to_model_basis));
  }
  body->layers = ev.layers;
  return ev;
}

// The cell's evaluation, from the kept body when it computes the same (then only the final norm, the LM
// head and the scoring run, and the row names the body's cell), else in full, keeping its body for the
// next cell when it has a key. body null: EvaluateOnce.
StatusOr<CellEvaluation> EvaluateCellBody(const Session& s, const Model& work, const CellPlan& p,
                                          const ForwardHooks& hooks, const AlgorithmRuntime& runtime,
                                          const ProgressFn& progress, KeptBody* body, std::optional<BodyKey>* key,
                                          CellRow* row) {
  if (body && BodyBytes(work.config, s.windows) <= kBodyBudget) *key = CellBodyKey(s, work, p, runtime);
  if (!*key) return EvaluateOnce(s, work, p, hooks, runtime, progress);
  if (s.window_tally) s.window_tally->evaluated += int64_t(s.windows.size());
  if (!body->owner.empty() && body->key == **key) {
    row->body_from = body->owner;
    return EvaluateHeadOnBody(work, s.windows, *s.base, &hooks, *body, progress);
  }
  body->owner.clear();  // no longer valid; set again once this cell succeeded
  return EvaluateKeepingBody(s, work, hooks, runtime, progress, body);
}

// The cell's algorithm on `work` (the head untied first when the plan says so): what the cell evaluates.
Status ApplyAlgorithm(const Session& s, Model& work, const CellPlan& p, const ProgressStyle& progress,
                      AlgorithmRuntime* runtime) {
  if (p.untie_head) {
    work.weights["lm_head.weight"] = work.W("model.embed_tokens.weight");
    work.config.tied_embeddings = false;
  }
  AlgorithmContext ctx;
  ctx.module_schemes = &p.module_schemes;
  ctx.params = p.cell->algorithm.params;
  ctx.seed = s.experiment->seed;
  ctx.calibration = s.calibration ? &*s.calibration : nullptr;
  ctx.runtime = runtime;
  ProgressMeter meter(progress, p.algorithm->name);
  ctx.progress = meter.Fn();
  return p.algorithm->apply(work, ctx);
}

// Quantize, evaluate, measure: the body of RunCell, on a work model that RunCell restores.
Status QuantizeAndEvaluate(const Session& s, Model& work, const CellPlan& p, const ProgressStyle& progress,
                           KeptBody* body, CellResult* r) {
  CellRow& row = r->cell;
  const auto t0 = Clock::now();
  const double c0 = ProcessCpuSeconds();
  AlgorithmRuntime runtime;
  QL_RETURN_IF_ERROR(ApplyAlgorithm(s, work, p, progress, &runtime));
  const auto t1 = Clock::now();
  const double c1 = ProcessCpuSeconds();
  row.seconds_quantize = Seconds(t0, t1);
  row.cpu_seconds_quantize = c1 - c0;

  CellHooks h;
  h.Build(p, work.config, &runtime);
  ProgressMeter eval_meter(progress, "eval", "windows");
  std::optional<BodyKey> key;
  QL_ASSIGN_OR_RETURN(CellEvaluation ev,
                      EvaluateCellBody(s, work, p, h.hooks, runtime, eval_meter.Fn(), body, &key, &row));
  QL_RETURN_IF_ERROR(h.status());
  const TokenRecords& rec = ev.records;
  CellMeasurements m;
  m.cmp = Compare(rec);
  m.eval_windows = ev.windows;
  if (!std::isfinite(m.cmp.quant.ppl) || !std::isfinite(m.cmp.kld.mean)) {
    row.status = "diverged";
    row.reason = fmt::format("non-finite result: PPL {} KLD {} (NaN/Inf in the logits)", m.cmp.quant.ppl, m.cmp.kld.mean);
  }
  QL_RETURN_IF_ERROR(MeasureTensors(s, work, p, runtime, &m, r));
  r->metrics = ComputeMetrics(m);
  QL_RETURN_IF_ERROR(ScoreCellTasks(s.tasks, work, &h.hooks, r));
  QL_RETURN_IF_ERROR(h.status());

  const std::vector<SignalError>& layers = ev.layers;
  std::vector<float> layer_rel;
  for (size_t l = 0; l < layers.size(); ++l) {
    r->layer_errors.push_back({int(l), layers[l].rel_mse, layers[l].sqnr_db});
    layer_rel.push_back(float(layers[l].rel_mse));
  }
  r->arrays["nll"].assign(rec.nll_quant.begin(), rec.nll_quant.end());
  r->arrays["kld"].assign(rec.kld.begin(), rec.kld.end());
  r->arrays["p_diff"].assign(rec.p_diff.begin(), rec.p_diff.end());
  if (!layer_rel.empty()) r->arrays["layer_rel_mse"] = layer_rel;
  for (const auto& [name, a] : runtime.arrays) r->arrays[name] = a;
  row.seconds_eval = Seconds(t1, Clock::now());
  row.cpu_seconds_eval = ProcessCpuSeconds() - c1;
  if (key && row.body_from.empty()) body->key = *key, body->owner = row.id;  // complete: the next cell may start there
  return Status::Ok();
}

// Back to the reference: only what the algorithm declares it changes, or everything.
void Restore(const Session& s, Model& work, const CellPlan& p) {
  if (p.untie_head) {
    work.weights.erase("lm_head.weight");
    work.config.tied_embeddings = true;
  }
  if (!p.algorithm->changes_only_targets) {
    work = WorkModel(s);
    return;
  }
  for (const auto& [m, sc] : p.module_schemes) RestoreReferenceTensor(s, work, WeightKey(work, m));
}

}  // namespace

StatusOr<WindowRecords> EvaluateCellWindows(const Session& s, Model& work, const CellPlan& p) {
  auto evaluate = [&]() -> StatusOr<WindowRecords> {
    AlgorithmRuntime runtime;
    QL_RETURN_IF_ERROR(ApplyAlgorithm(s, work, p, {}, &runtime));
    CellHooks h;
    h.Build(p, work.config, &runtime);
    QL_ASSIGN_OR_RETURN(WindowRecords out, EvaluateReusingPrefix(s, work, p, runtime, h.hooks));
    QL_RETURN_IF_ERROR(h.status());
    return out;
  };
  StatusOr<WindowRecords> out = evaluate();
  Restore(s, work, p);
  return out;
}

CellResult RunCell(const Session& s, Model& work, const CellPlan& p, const ProgressStyle& progress, KeptBody* body) {
  const auto t0 = Clock::now();
  const double c0 = ProcessCpuSeconds();
  CellResult r;
  r.cell = DescribeCell(s, *p.cell);
  r.cell.started_at = NowIso();
  Status st = QuantizeAndEvaluate(s, work, p, progress, body, &r);
  if (!st.ok()) {
    r.cell.status = "failed";
    r.cell.reason = st.message();
    r.metrics.reset();
    r.tensor_errors.clear();
    r.layer_errors.clear();
    r.task_metrics.clear();
    r.arrays.clear();
  } else if (r.cell.status.empty()) {
    r.cell.status = "ok";
  }
  Restore(s, work, p);
  r.cell.finished_at = NowIso();
  r.cell.seconds_total = Seconds(t0, Clock::now());
  r.cell.cpu_seconds_total = ProcessCpuSeconds() - c0;
  return r;
}

}  // namespace ql
