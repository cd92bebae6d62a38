// Reading and writing llama.cpp imatrix files (see imatrix.h). The layouts are those of llama.cpp's
// tools/imatrix/imatrix.cpp (writers) and common/imatrix-loader.cpp (reader); the checks are quantlab's.
#include "harness/io/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "harness/io/file_io.h"
#include "harness/io/gguf.h"

namespace ql::io {
namespace {

constexpr uint32_t kGgufMagicLe = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kGgmlF32 = 0;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// A value of a sum of squares (or of a count) must be finite and >= 0.
Status CheckValues(const std::string& path, const std::string& name, const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]) || v[i] < 0)
      return Status::Errorf("{}: {} value #{} is {} (sums of squares and counts are finite and >= 0; the file "
                            "is corrupt)", path, Quoted(name), i, v[i]);
  return Status::Ok();
}

// ---- GGUF layout -----------------------------------------------------------------------------------------

StatusOr<int32_t> MetaInt32(const GgufFile& f, const char* key) {
  const GgufValue* v = f.Find(key);
  if (!v)
    return Status::Errorf("{}: no '{}' key: not an imatrix file llama-quantize accepts (write it with "
                          "llama-imatrix or `quantlab imatrix`)", f.path, key);
  std::optional<int64_t> x = v->AsInt();
  if (!x || *x < 0 || *x > kInt32Max)
    return Status::Errorf("{}: '{}' = {} must be an integer in [0, 2^31)", f.path, key, v->ToString());
  return int32_t(*x);
}

Status ReadGgufMeta(const GgufFile& f, Imatrix* m) {
  QL_ASSIGN_OR_RETURN(m->chunk_count, MetaInt32(f, "imatrix.chunk_count"));
  QL_ASSIGN_OR_RETURN(m->chunk_size, MetaInt32(f, "imatrix.chunk_size"));
  const GgufValue* d = f.Find("imatrix.datasets");
  if (!d) return Status::Errorf("{}: no 'imatrix.datasets' key (llama-quantize refuses such a file)", f.path);
  if (d->type != GgufType::kArray || d->elem != GgufType::kString)
    return Status::Errorf("{}: 'imatrix.datasets' must be an array of strings, not {}", f.path, d->ToString());
  for (const GgufValue& s : d->items) m->datasets.push_back(s.s);
  return Status::Ok();
}

// The F32 values of one tensor (its size was checked against the file by ReadGgufHeader).
StatusOr<std::vector<float>> ReadF32(const GgufFile& f, FileReader& r, const GgufTensorInfo& t) {
  if (t.type != kGgmlF32)
    return Status::Errorf("{}: tensor {} is {}; imatrix sums and counts must be f32", f.path, Quoted(t.name),
                          GgmlTypeName(t.type));
  std::vector<float> v(t.nbytes / sizeof(float));
  QL_RETURN_IF_ERROR(r.ReadAt(f.data_start + t.offset, v.data(), t.nbytes, "tensor " + Quoted(t.name)));
  QL_RETURN_IF_ERROR(CheckValues(f.path, t.name, v.data(), v.size()));
  return v;
}

// Pairs "<name>.in_sum2" with "<name>.counts"; other tensors are ignored, as llama.cpp's loader does.
StatusOr<Imatrix> ReadGgufImatrix(const std::string& path) {
  QL_ASSIGN_OR_RETURN(GgufFile f, ReadGgufHeader(path));
  if (f.tensors.empty()) return Status::Errorf("{}: an imatrix file without tensors (no data)", path);
  Imatrix m;
  QL_RETURN_IF_ERROR(ReadGgufMeta(f, &m));
  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> pairs;
  for (const GgufTensorInfo& t : f.tensors) {
    for (auto [suffix, second] : {std::pair{".in_sum2", false}, std::pair{".counts", true}}) {
      const size_t n = std::strlen(suffix);
      if (t.name.size() > n && t.name.ends_with(suffix)) {
        auto& p = pairs[t.name.substr(0, t.name.size() - n)];
        (second ? p.second : p.first) = &t;
      }
    }
  }
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  for (const auto& [name, p] : pairs) {
    if (!p.first || !p.second)
      return Status::Errorf("{}: {} has {} but no {} tensor", path, Quoted(name), p.first ? "in_sum2" : "counts",
                            p.first ? "counts" : "in_sum2");
    QL_ASSIGN_OR_RETURN(std::vector<float> sums, ReadF32(f, r, *p.first));
    QL_ASSIGN_OR_RETURN(std::vector<float> counts, ReadF32(f, r, *p.second));
    if (counts.empty() || sums.size() != p.first->ne[0] * counts.size())
      return Status::Errorf("{}: {}: {} sums of rows of {} do not fit {} counts (one count per matrix)", path,
                            Quoted(name), sums.size(), p.first->ne[0], counts.size());
    constexpr float kMaxCount = 1e15f;  // tokens; keeps count arithmetic far from int64 overflow
    if (*std::max_element(counts.begin(), counts.end()) > kMaxCount)
      return Status::Errorf("{}: {} claims more than 1e15 tokens (corrupt)", path, Quoted(name));
    ImatrixEntry& e = m.entries[name];
    e.sums = std::move(sums);
    for (float c : counts) e.counts.push_back(std::llround(c));
  }
  if (m.entries.empty()) return Status::Errorf("{}: no '<weight>.in_sum2' / '.counts' tensors (no data)", path);
  return m;
}

// ---- legacy .dat layout ----------------------------------------------------------------------------------

StatusOr<int32_t> ReadI32(FileReader& r, const std::string& what) {
  int32_t v = 0;
  QL_RETURN_IF_ERROR(r.ReadPod(&v, what));
  return v;
}

// A length-prefixed string whose length is checked against the bytes left.
StatusOr<std::string> ReadString(FileReader& r, const std::string& what) {
  QL_ASSIGN_OR_RETURN(int32_t len, ReadI32(r, "the length of " + what));
  if (len < 0 || uint64_t(len) > r.remaining())
    return Status::Errorf("{}: {} claims {} bytes at offset {}, {} are left (truncated or not an imatrix)",
                          r.path(), what, len, r.pos(), r.remaining());
  std::string s(size_t(len), '\0');
  QL_RETURN_IF_ERROR(r.Read(s.data(), uint64_t(len), what));
  return s;
}

Status ReadDatEntry(FileReader& r, int i, Imatrix* m) {
  QL_ASSIGN_OR_RETURN(std::string name, ReadString(r, fmt::format("the name of entry #{}", i)));
  QL_ASSIGN_OR_RETURN(int32_t ncall, ReadI32(r, "ncall of " + Quoted(name)));
  QL_ASSIGN_OR_RETURN(int32_t nval, ReadI32(r, "nval of " + Quoted(name)));
  if (ncall < 0) return Status::Errorf("{}: {} has ncall {} (must be >= 0)", r.path(), Quoted(name), ncall);
  if (nval < 1 || uint64_t(nval) > r.remaining() / sizeof(float))
    return Status::Errorf("{}: {} claims {} values at offset {}, the file has room for {} (truncated or corrupt)",
                          r.path(), Quoted(name), nval, r.pos(), r.remaining() / sizeof(float));
  if (m->entries.count(name)) return Status::Errorf("{}: entry {} appears twice", r.path(), Quoted(name));
  ImatrixEntry& e = m->entries[name];
  e.sums.resize(size_t(nval));
  QL_RETURN_IF_ERROR(r.Read(e.sums.data(), uint64_t(nval) * sizeof(float), "the values of " + Quoted(name)));
  QL_RETURN_IF_ERROR(CheckValues(r.path(), name, e.sums.data(), e.sums.size()));
  e.counts = {ncall};
  return Status::Ok();
}

StatusOr<Imatrix> ReadDatImatrix(const std::string& path) {
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  QL_ASSIGN_OR_RETURN(int32_t n, ReadI32(r, "the entry count"));
  constexpr uint64_t kMinEntryBytes = 16;  // len, ncall, nval and one value
  if (n < 1 || uint64_t(n) > r.remaining() / kMinEntryBytes)
    return Status::Errorf("{}: {} entries claimed in a {}-byte file: neither a GGUF imatrix nor a legacy .dat",
                          path, n, r.size());
  Imatrix m;
  m.legacy = true;
  for (int i = 0; i < n; ++i) QL_RETURN_IF_ERROR(ReadDatEntry(r, i, &m));
  if (r.remaining() == 0) return m;  // the trailer (chunk count, dataset) is optional
  QL_ASSIGN_OR_RETURN(m.chunk_count, ReadI32(r, "the chunk count"));
  if (m.chunk_count < 0) return Status::Errorf("{}: chunk count {} is negative", path, m.chunk_count);
  QL_ASSIGN_OR_RETURN(std::string dataset, ReadString(r, "the dataset name"));
  if (!dataset.empty()) m.datasets.push_back(std::move(dataset));
  if (r.remaining() != 0)
    return Status::Errorf("{}: {} bytes after the dataset name at offset {} (corrupt)", path, r.remaining(), r.pos());
  return m;
}

// ---- writers ---------------------------------------------------------------------------------------------

// Dimensions as ggml_n_dims writes them: trailing 1s dropped, at least one.
std::vector<uint64_t> NDims(std::vector<uint64_t> ne) {
  while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
  return ne;
}

GgufTensorBlob F32Blob(std::string name, std::vector<uint64_t> ne, const std::vector<float>& v) {
  GgufTensorBlob b{std::move(name), NDims(std::move(ne)), kGgmlF32, {}};
  b.data.resize(v.size() * sizeof(float));
  std::memcpy(b.data.data(), v.data(), b.data.size());
  return b;
}

Status CheckShape(const std::string& path, const std::string& name, const ImatrixEntry& e) {
  if (e.counts.empty() || e.sums.empty() || e.sums.size() % e.counts.size() != 0)
    return Status::Errorf("{}: imatrix entry {} has {} sums for {} counts", path, Quoted(name), e.sums.size(),
                          e.counts.size());
  return Status::Ok();
}

// One legacy entry's values: the stored ones (legacy) or (sum / count) · ncall.
std::vector<float> DatValues(const Imatrix& m, const ImatrixEntry& e, int32_t ncall) {
  if (m.legacy) return e.sums;
  const size_t per = e.sums.size() / e.counts.size();
  std::vector<float> v(e.sums.size());
  for (size_t i = 0; i < v.size(); ++i) {
    float count = float(e.counts[i / per]), value = e.sums[i];
    if (count == 0.0f) value = count = 1.0f;  // llama.cpp stores 1 for a matrix without data
    v[i] = (value / count) * float(ncall);
  }
  return v;
}

}  // namespace

StatusOr<Imatrix> ReadImatrix(const std::string& path) {
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  uint32_t magic = 0;
  if (r.size() >= 4) QL_RETURN_IF_ERROR(r.ReadPod(&magic, "the magic"));
  return magic == kGgufMagicLe ? ReadGgufImatrix(path) : ReadDatImatrix(path);
}

Status WriteImatrixGguf(const std::string& path, const Imatrix& m) {
  if (m.legacy)
    return Status::Errorf("{}: a legacy .dat imatrix has no token counts; write it as .dat (--format dat)", path);
  std::vector<GgufValue> datasets;
  for (const std::string& d : m.datasets) datasets.push_back(GgufValue::Str(d));
  const std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.type", GgufValue::Str("imatrix")},
      {"imatrix.datasets", GgufValue::Array(GgufType::kString, std::move(datasets))},
      {"imatrix.chunk_count", GgufValue::U32(uint32_t(m.chunk_count))},
      {"imatrix.chunk_size", GgufValue::U32(uint32_t(m.chunk_size))},
  };
  std::vector<GgufTensorBlob> blobs;
  for (const auto& [name, e] : m.entries) {  // std::map: name order, as llama-imatrix sorts
    QL_RETURN_IF_ERROR(CheckShape(path, name, e));
    const uint64_t n_mat = e.counts.size();
    std::vector<float> counts(e.counts.begin(), e.counts.end());
    blobs.push_back(F32Blob(name + ".in_sum2", {e.sums.size() / n_mat, n_mat}, e.sums));
    blobs.push_back(F32Blob(name + ".counts", {1, n_mat}, counts));
  }
  return WriteGgufFile(path, kv, blobs);
}

Status WriteImatrixDat(const std::string& path, const Imatrix& m) {
  if (!m.legacy && m.chunk_size <= 0)
    return Status::Errorf("{}: the .dat layout needs the imatrix's chunk size (got {})", path, m.chunk_size);
  std::vector<const std::pair<const std::string, ImatrixEntry>*> stored;
  for (const auto& kv : m.entries) {
    QL_RETURN_IF_ERROR(CheckShape(path, kv.first, kv.second));
    if (kv.first.size() > size_t(kInt32Max) || kv.second.sums.size() > size_t(kInt32Max))
      return Status::Errorf("{}: entry {} is too large for the .dat layout", path, Quoted(kv.first));
    const auto& c = kv.second.counts;
    if (m.legacy || std::any_of(c.begin(), c.end(), [](int64_t x) { return x != 0; })) stored.push_back(&kv);
  }
  FileWriter w;
  QL_RETURN_IF_ERROR(w.Open(path));
  w.WritePod(int32_t(stored.size()));
  for (const auto* kv : stored) {
    const ImatrixEntry& e = kv->second;
    const int64_t max_count = *std::max_element(e.counts.begin(), e.counts.end());
    const int32_t ncall = m.legacy ? int32_t(max_count) : int32_t((max_count + m.chunk_size - 1) / m.chunk_size);
    const std::vector<float> v = DatValues(m, e, ncall);
    w.WritePod(int32_t(kv->first.size()));
    w.Write(kv->first.data(), kv->first.size());
    w.WritePod(ncall);
    w.WritePod(int32_t(v.size()));
    w.Write(v.data(), v.size() * sizeof(float));
  }
  w.WritePod(m.chunk_count);
  const std::string dataset = m.datasets.empty() ? "" : m.datasets.back();
  w.WritePod(int32_t(dataset.size()));
  w.Write(dataset.data(), dataset.size());
  return w.Close();
}

std::vector<float> ImatrixImportance(const Imatrix& m, const ImatrixEntry& e) {
  std::vector<float> out(e.sums.size());
  if (e.counts.empty()) return out;
  if (m.legacy) {
    const int64_t ncall = e.counts[0];
    for (size_t i = 0; i < out.size(); ++i) out[i] = ncall > 0 ? e.sums[i] / float(ncall) : e.sums[i];
    return out;
  }
  const size_t per = e.sums.size() / e.counts.size();
  for (size_t i = 0; i < out.size(); ++i) {
    const float count = float(e.counts[i / per]);
    out[i] = count > 0.0f ? e.sums[i] / count : 1.0f;
  }
  return out;
}

std::map<std::string, std::vector<float>> ImatrixImportances(const Imatrix& m) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, e] : m.entries) out[name] = ImatrixImportance(m, e);
  return out;
}

namespace {

// One GGUF-layout entry added to `e` (load_imatrix's non-legacy branch).
Status MergeRawEntry(const ImatrixEntry& in, const std::string& name, const std::string& source, ImatrixEntry* e) {
  if (e->sums.empty()) e->sums.assign(in.sums.size(), 0.0f);
  if (e->sums.size() != in.sums.size())
    return Status::Errorf("{}: entry {} has {} sums where the files before it have {} (imatrix files of different "
                          "models?)", source, name, in.sums.size(), e->sums.size());
  if (e->counts.empty()) e->counts.assign(in.counts.size(), 0);
  else if (e->counts.size() == 1 && in.counts.size() > 1) e->counts.assign(in.counts.size(), e->counts[0]);
  if (e->counts.size() != in.counts.size())
    return Status::Errorf("{}: entry {} has {} matrices where the files before it have {}", source, name,
                          in.counts.size(), e->counts.size());
  for (size_t j = 0; j < in.sums.size(); ++j) e->sums[j] += in.sums[j];
  for (size_t j = 0; j < in.counts.size(); ++j) e->counts[j] += in.counts[j];
  return Status::Ok();
}

// One legacy entry ({ncall}, mean · ncall) added to `e` in raw form (load_imatrix's legacy branch).
Status MergeLegacyEntry(const ImatrixEntry& in, const std::string& name, const std::string& source,
                        int32_t chunk_size, ImatrixEntry* e) {
  if (e->sums.empty()) {
    e->sums.assign(in.sums.size(), 0.0f);
    e->counts.assign(1, 0);
  }
  if (e->sums.size() != in.sums.size() || in.counts.size() != 1)
    return Status::Errorf("{}: entry {} has {} values where the files before it have {} (imatrix files of different "
                          "models?)", source, name, in.sums.size(), e->sums.size());
  for (size_t j = 0; j < in.sums.size(); ++j) e->sums[j] += in.sums[j] * float(chunk_size);
  for (int64_t& c : e->counts) c += in.counts[0] * chunk_size;
  return Status::Ok();
}

}  // namespace

Status MergeImatrix(const Imatrix& in, const std::string& source, int32_t chunk_size, Imatrix* into) {
  if (chunk_size <= 0) return Status::Errorf("imatrix merge: chunk size {} must be positive (give --ctx)", chunk_size);
  for (const auto& [name, entry] : in.entries) {
    ImatrixEntry& e = into->entries[name];
    QL_RETURN_IF_ERROR(in.legacy ? MergeLegacyEntry(entry, name, source, chunk_size, &e)
                                 : MergeRawEntry(entry, name, source, &e));
  }
  into->datasets.insert(into->datasets.end(), in.datasets.begin(), in.datasets.end());
  int64_t max_count = 0;
  for (const auto& [name, e] : into->entries)
    for (int64_t c : e.counts) max_count = std::max(max_count, c);
  into->chunk_count = int32_t(max_count / chunk_size);
  into->chunk_size = chunk_size;
  into->legacy = false;
  return Status::Ok();
}

std::vector<std::pair<std::string, GgufValue>> ImatrixQuantizeKeys(const std::string& file, const Imatrix& m,
                                                                   size_t entries) {
  std::vector<std::pair<std::string, GgufValue>> kv;
  if (!file.empty()) kv.emplace_back("quantize.imatrix.file", GgufValue::Str(file.substr(0, 127)));
  if (!m.datasets.empty()) kv.emplace_back("quantize.imatrix.dataset", GgufValue::Str(m.datasets[0].substr(0, 127)));
  kv.emplace_back("quantize.imatrix.entries_count", GgufValue::U32(uint32_t(entries)));
  if (m.chunk_count > 0) kv.emplace_back("quantize.imatrix.chunks_count", GgufValue::U32(uint32_t(m.chunk_count)));
  return kv;
}

}  // namespace ql::io
