// Baseline: reference forward over the windows, the cache key, and the .qlbase file reader/writer.
#include "harness/eval/baseline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <optional>

#include "harness/eval/evaluator.h"
#include "harness/eval/metrics.h"
#include "harness/io/file_io.h"
#include "harness/model/forward.h"
#include "kernels/half.h"
#include "kernels/select.h"
#include "kernels/parallel.h"

namespace ql {

std::string_view PrecisionName(BaselinePrecision p) {
  if (p == BaselinePrecision::kBf16Compute) return "bf16-compute";
  return p == BaselinePrecision::kBf16 ? "bf16" : "fp32";
}

StatusOr<BaselinePrecision> ParsePrecision(std::string_view name) {
  if (name == "bf16") return BaselinePrecision::kBf16;
  if (name == "fp32") return BaselinePrecision::kFp32;
  if (name == "bf16-compute") return BaselinePrecision::kBf16Compute;
  return Status::Errorf("unknown baseline precision '{}' (use bf16, fp32 or bf16-compute)", name);
}

Model WithPrecision(const Model& model, BaselinePrecision p) { return WithPrecision(Model(model), p); }

Model WithPrecision(Model&& model, BaselinePrecision p) {
  Model m = std::move(model);
  if (p == BaselinePrecision::kBf16 || p == BaselinePrecision::kBf16Compute) {
    for (auto& [name, t] : m.weights)
      for (float& v : t.data) v = Bf16ToF32(F32ToBf16(v));
  }
  if (p == BaselinePrecision::kBf16Compute) m.matmul = MatmulPrecision::kBf16;
  return m;
}

namespace {
// True when WithPrecision(model, p) would equal `model`: fp32 always (its weights are used as they
// are), bf16 modes when the matmul matches and every weight already is a BF16 value (the session
// passes its reference, rounded once). A read-only pass instead of a copy of every weight.
bool AlreadyAtPrecision(const Model& model, BaselinePrecision p) {
  if (p == BaselinePrecision::kFp32) return model.matmul == MatmulPrecision::kFp32;
  const MatmulPrecision want = p == BaselinePrecision::kBf16Compute ? MatmulPrecision::kBf16 : MatmulPrecision::kFp32;
  if (model.matmul != want) return false;
  for (const auto& [name, t] : model.weights) {
    uint32_t low = 0;  // any of the 16 bits below a BF16 value
    for (float v : t.data) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      low |= bits & 0xFFFFu;
    }
    if (low != 0) return false;
  }
  return true;
}
}  // namespace

size_t Baseline::bytes() const {
  return nll.size() * sizeof(double) + top1.size() * sizeof(int32_t) + logp.size() * sizeof(float) +
         top_idx.size() * sizeof(int32_t) + top_logp.size() * sizeof(float) + (p.size() + top_mass.size()) * sizeof(double);
}

void CacheProbabilities(Baseline* b, int64_t max_bytes) {
  b->p.clear();
  b->top_mass.clear();
  if (int64_t(b->probability_cache_bytes()) > max_bytes) return;
  const std::vector<float>& lp = b->top_k == 0 ? b->logp : b->top_logp;  // [n, width]
  const size_t width = size_t(b->top_k == 0 ? b->vocab : b->top_k), n = size_t(b->n());
  b->p.resize(lp.size());
  if (b->top_k > 0) b->top_mass.resize(n);
  constexpr int kRows = 64;
  const int items = int((n + kRows - 1) / kRows);
  ParallelFor(items, double(lp.size()) < double(1 << 20) ? 1 : NumThreads(), [&](int item, int) {
    for (size_t r = size_t(item) * kRows; r < std::min(n, size_t(item + 1) * kRows); ++r) {
      for (size_t v = r * width; v < (r + 1) * width; ++v) b->p[v] = std::exp(double(lp[v]));
      if (b->top_k == 0) continue;
      double mass = 0;  // in index order, as KlDivergenceTopK adds up the base's top mass
      for (size_t v = r * width; v < (r + 1) * width; ++v) mass += b->p[v];
      b->top_mass[r] = mass;
    }
  });
}

namespace {

// Scratch of one thread computing baseline rows.
struct BaselineScratch {
  std::vector<double> lp;  // [V]
  std::vector<float> lpf;  // [V]
  std::vector<int> order;  // [top_k]
};

// Rows per work item and the least work (rows · vocab) worth a second thread (a 49k-vocabulary row
// costs a log-softmax and a partial sort, ~0.3 ms).
constexpr int kRowsPerItem = 16;
constexpr double kMinThreadedRows = double(1 << 20);

// Scored row t of a window: nll, top1 and the full (top_k 0) or top-k log-probs into the slots given.
void BaselineRow(std::span<const float> row, int target, int top_k, BaselineScratch& s, double* nll, int32_t* top1,
                 float* logp, int32_t* top_idx, float* top_logp) {
  const int V = int(row.size());
  s.lp.resize(V);
  s.lpf.resize(V);
  LogSoftmax(row, s.lp);
  QL_CHECK(target >= 0 && target < V, "token {} outside the vocabulary", target);
  *nll = -s.lp[target];
  *top1 = ArgMax(row);
  for (int v = 0; v < V; ++v) s.lpf[v] = float(s.lp[v]);
  if (top_k == 0) {
    std::copy(s.lpf.begin(), s.lpf.end(), logp);
    return;
  }
  s.order.resize(top_k);
  TopKF32(s.lpf.data(), V, top_k, s.order.data());
  for (int j = 0; j < top_k; ++j) {
    top_idx[j] = s.order[j];
    top_logp[j] = s.lpf[s.order[j]];
  }
}

// Window w's scored rows into b's rows r0.. (b's arrays are sized for every window already). The
// rows are independent: computed in parallel, each into its own slots.
void WindowRows(const Window& w, const float* logits, size_t r0, std::vector<BaselineScratch>& scratch, Baseline* b) {
  const int V = b->vocab, top_k = b->top_k, n = w.score_end - w.score_begin;
  const int threads = double(n) * V < kMinThreadedRows ? 1 : NumThreads();
  if (scratch.size() < size_t(threads)) scratch.resize(threads);
  ParallelFor((n + kRowsPerItem - 1) / kRowsPerItem, threads, [&](int item, int tid) {
    for (int j = item * kRowsPerItem; j < std::min(n, (item + 1) * kRowsPerItem); ++j) {
      const int t = w.score_begin + j;
      const size_t r = r0 + j;
      BaselineRow(std::span<const float>(logits + size_t(t - 1) * V, V), w.tokens[t], top_k, scratch[tid],
                  &b->nll[r], &b->top1[r], top_k == 0 ? &b->logp[r * V] : nullptr,
                  top_k == 0 ? nullptr : &b->top_idx[r * top_k], top_k == 0 ? nullptr : &b->top_logp[r * top_k]);
    }
  });
}

// Every window's rows: whole windows on separate threads when one window cannot fill the cores (a
// small model), else one after another. Each row's slots are fixed by its window, so any schedule
// gives the same bits.
Status AllRows(const Model& reference, const std::vector<Window>& windows, const ProgressFn& progress, Baseline* b) {
  std::vector<size_t> first(windows.size() + 1, 0);  // [windows + 1] row offsets
  size_t t_max = 0;
  for (size_t i = 0; i < windows.size(); ++i) {
    first[i + 1] = first[i] + size_t(windows[i].score_end - windows[i].score_begin);
    t_max = std::max(t_max, windows[i].tokens.size());
  }
  const int threads = WindowThreads(reference.config, int(t_max), int(windows.size()));
  if (threads > 1) {
    std::vector<std::span<const int>> tokens(windows.size());
    for (size_t i = 0; i < windows.size(); ++i) tokens[i] = windows[i].tokens;
    std::vector<std::vector<BaselineScratch>> scratch(threads);  // [threads][1]: serial inside a window
    std::mutex mu;  // serializes progress
    int64_t done = 0;
    const ForwardHooks scoring = ScoringHooks(nullptr, FirstScoredLogitRow(windows));  // the scored rows' logits
    return ForwardWindowsEach(reference, tokens, &scoring, threads, [&](int i, int tid, const float* logits) {
      WindowRows(windows[i], logits, first[i], scratch[tid], b);
      if (progress) {
        std::lock_guard<std::mutex> lock(mu);
        progress(++done, int64_t(windows.size()));
      }
      return Status::Ok();
    });
  }
  std::vector<float> logits;
  std::vector<BaselineScratch> scratch;
  for (size_t i = 0; i < windows.size(); ++i) {
    logits.resize(windows[i].tokens.size() * size_t(b->vocab));  // [T, V]
    const ForwardHooks scoring = ScoringHooks(nullptr, FirstScoredLogitRow(std::span<const Window>(&windows[i], 1)));
    QL_RETURN_IF_ERROR(ForwardWindow(reference, windows[i].tokens, logits.data(), &scoring));
    WindowRows(windows[i], logits.data(), first[i], scratch, b);
    if (progress) progress(int64_t(i + 1), int64_t(windows.size()));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Baseline> ComputeBaseline(const Model& reference, const std::vector<Window>& windows, int top_k,
                                   const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int V = reference.config.vocab_size;
  QL_CHECK(V > 0);
  QL_CHECK(top_k >= 0 && top_k <= V, "top_k {} for vocab {}", top_k, V);
  const int64_t n = CountScored(windows);
  Baseline b;
  b.vocab = V;
  b.top_k = top_k;
  b.nll.resize(n);
  b.top1.resize(n);
  if (top_k == 0) {
    b.logp.resize(size_t(n) * V);
  } else {
    b.top_idx.resize(size_t(n) * top_k);
    b.top_logp.resize(size_t(n) * top_k);
  }
  QL_RETURN_IF_ERROR(AllRows(reference, windows, progress, &b));
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return b;
}

uint64_t Fnv1a64(const void* data, size_t size, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string TextHash(std::string_view text) { return fmt::format("{:016x}", Fnv1a64(text.data(), text.size())); }

// Word-wise FNV-style hash of every tensor (8 bytes per step, ~1 GB/s): catches a model changed in
// memory after loading, which a path/size/mtime identity cannot.
static uint64_t HashWeights(const Model& model) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& [name, t] : model.weights) {
    h = Fnv1a64(name.data(), name.size(), h);
    h = Fnv1a64(t.shape.data(), t.shape.size() * sizeof(int64_t), h);
    const size_t bytes = t.data.size() * sizeof(float);
    const auto* p = reinterpret_cast<const unsigned char*>(t.data.data());
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    h = Fnv1a64(p + i, bytes - i, h);
  }
  return h;
}

std::string ModelIdentity(const Model& model) {
  std::string id;
  std::error_code ec;
  if (!model.source_path.empty() && std::filesystem::exists(model.source_path, ec)) {
    const auto path = std::filesystem::absolute(model.source_path, ec);
    uintmax_t size = 0;
    if (std::filesystem::is_regular_file(path, ec)) size = std::filesystem::file_size(path, ec);
    const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
    id = fmt::format("{}|{}|{}", path.string(), size, int64_t(mtime));
  }
  int64_t numel = 0;
  for (const auto& [name, t] : model.weights) numel += int64_t(t.data.size());
  // Hash the weights themselves unless the model is large and has a file to stand for it.
  if (id.empty() || numel <= (int64_t(1) << 26)) {
    id += fmt::format("{}weights:{:016x}", id.empty() ? "" : "|", HashWeights(model));
  }
  return id;
}

std::string BaselineKey(const std::string& model_id, const std::string& text_hash, const ProtocolSpec& protocol,
                        const std::vector<Window>& windows, BaselinePrecision precision, int top_k) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const Window& w : windows) {
    const int64_t head[3] = {w.stream_offset, w.score_begin, w.score_end};
    h = Fnv1a64(head, sizeof(head), h);
    h = Fnv1a64(w.tokens.data(), w.tokens.size() * sizeof(int), h);
  }
  return fmt::format("model={}|text={}|protocol={}|precision={}|kld={}|windows={:016x}", model_id, text_hash,
                     protocol.Canonical(), PrecisionName(precision), top_k == 0 ? "full" : fmt::format("top{}", top_k),
                     h);
}

StatusOr<std::shared_ptr<const Baseline>> BaselineCache::GetOrCompute(const Model& model,
                                                                      const std::string& text_hash,
                                                                      const ProtocolSpec& protocol,
                                                                      const std::vector<Window>& windows,
                                                                      const BaselineOptions& options) {
  const int V = model.config.vocab_size;
  const int64_t n = CountScored(windows);
  int top_k = options.top_k;
  if (options.force_full) {
    top_k = 0;
  } else if (top_k == 0 && n * int64_t(V) > options.full_budget) {
    top_k = std::min(BaselineOptions::kAutoTopK, V);
  }
  if (top_k < 0 || top_k > V)
    return Status::Errorf("baseline top-k {} is outside [0, vocab = {}] (0 keeps every log-prob)", top_k, V);
  const std::string key = BaselineKey(ModelIdentity(model), text_hash, protocol, windows, options.precision, top_k);
  if (auto it = entries_.find(key); it != entries_.end()) {
    ++memory_hits_;
    return it->second;
  }
  std::string file;
  if (!dir_.empty()) {
    file = (std::filesystem::path(dir_) / fmt::format("{:016x}.qlbase", Fnv1a64(key.data(), key.size()))).string();
    std::error_code ec;
    if (std::filesystem::exists(file, ec)) {
      auto loaded = LoadBaseline(file);
      if (loaded.ok() && loaded->key == key) {
        ++disk_hits_;
        CacheProbabilities(&loaded.value(), options.probability_cache_bytes);
        auto sp = std::make_shared<const Baseline>(std::move(loaded).value());
        entries_[key] = sp;
        return sp;
      }
      // A damaged or colliding file is recomputed and overwritten below.
    }
  }
  std::optional<Model> rounded;  // only when `model` is not at the precision yet
  if (!AlreadyAtPrecision(model, options.precision)) rounded = WithPrecision(model, options.precision);
  QL_ASSIGN_OR_RETURN(Baseline b, ComputeBaseline(rounded ? *rounded : model, windows, top_k, options.progress));
  b.key = key;
  b.protocol = protocol.Canonical();
  b.precision = options.precision;
  ++computed_;
  if (!file.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec)
      return Status::Errorf("baseline cache: cannot create directory '{}': {} (pick a writable --cache-dir)", dir_,
                            ec.message());
    QL_RETURN_IF_ERROR(SaveBaseline(b, file));
  }
  CacheProbabilities(&b, options.probability_cache_bytes);
  auto sp = std::make_shared<const Baseline>(std::move(b));
  entries_[key] = sp;
  return sp;
}

namespace {
constexpr char kMagic[8] = {'Q', 'L', 'B', 'A', 'S', 'E', '0', '1'};

template <typename T>
void Put(std::ofstream& f, const T& v) {
  f.write(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
void PutVec(std::ofstream& f, const std::vector<T>& v) {
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}
template <typename T>
bool Get(std::ifstream& f, T* v) {
  return bool(f.read(reinterpret_cast<char*>(v), sizeof(T)));
}
template <typename T>
bool GetVec(std::ifstream& f, std::vector<T>* v, size_t n) {
  v->resize(n);
  return bool(f.read(reinterpret_cast<char*>(v->data()), std::streamsize(n * sizeof(T))));
}
}  // namespace

Status SaveBaseline(const Baseline& b, const std::string& path) {
  const std::string tmp = io::UniqueTempPath(path);  // never shared with another writer
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::Errorf("baseline cache: cannot write '{}' (check the directory's permissions)", tmp);
    f.write(kMagic, 8);
    Put(f, uint32_t(b.key.size()));
    f.write(b.key.data(), std::streamsize(b.key.size()));
    Put(f, int64_t(b.n()));
    Put(f, int32_t(b.vocab));
    Put(f, int32_t(b.top_k));
    Put(f, int32_t(b.precision == BaselinePrecision::kBf16 ? 0 : b.precision == BaselinePrecision::kFp32 ? 1 : 2));
    PutVec(f, b.nll);
    PutVec(f, b.top1);
    if (b.top_k == 0) {
      PutVec(f, b.logp);
    } else {
      PutVec(f, b.top_idx);
      PutVec(f, b.top_logp);
    }
    if (!f) return Status::Errorf("baseline cache: writing '{}' failed (disk full?)", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Errorf("baseline cache: cannot rename '{}' to '{}': {}", tmp, path, ec.message());
  return Status::Ok();
}

StatusOr<Baseline> LoadBaseline(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("baseline cache: cannot open '{}'", path);
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0)
    return Status::Errorf("baseline cache: '{}' is not a quantlab baseline (bad magic; delete it)", path);
  Baseline b;
  uint32_t key_len = 0;
  int64_t n = 0;
  int32_t vocab = 0, top_k = 0, prec = 0;
  if (!Get(f, &key_len) || key_len > (1u << 20))
    return Status::Errorf("baseline cache: '{}' has a bad header (delete it)", path);
  b.key.resize(key_len);
  if (!f.read(b.key.data(), key_len) || !Get(f, &n) || !Get(f, &vocab) || !Get(f, &top_k) || !Get(f, &prec) ||
      n < 0 || vocab <= 0 || top_k < 0 || top_k > vocab || (prec < 0 || prec > 2))
    return Status::Errorf("baseline cache: '{}' has a bad header (delete it)", path);
  b.vocab = vocab;
  b.top_k = top_k;
  b.precision = prec == 0 ? BaselinePrecision::kBf16 : prec == 1 ? BaselinePrecision::kFp32 : BaselinePrecision::kBf16Compute;
  const size_t rows = size_t(n);
  bool ok = GetVec(f, &b.nll, rows) && GetVec(f, &b.top1, rows);
  if (top_k == 0) {
    ok = ok && GetVec(f, &b.logp, rows * size_t(vocab));
  } else {
    ok = ok && GetVec(f, &b.top_idx, rows * size_t(top_k)) && GetVec(f, &b.top_logp, rows * size_t(top_k));
  }
  if (!ok) return Status::Errorf("baseline cache: '{}' is truncated (delete it)", path);
  if (const auto p = b.key.find("protocol="); p != std::string::npos)
    b.protocol = b.key.substr(p + 9, b.key.find('|', p) - p - 9);
  return b;
}

}  // namespace ql
