// Quantized GGUF export (harness/io/gguf_export.h): check every weight's type, carry the metadata over,
// quantize with the GGUF codecs row by row, write with the low-level GGUF writer.
#include "harness/io/gguf_export.h"

#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "harness/io/rope_layout.h"
#include "kernels/format.h"
#include "kernels/gguf_blocks.h"

namespace ql::io {
namespace {

constexpr uint32_t kGgmlQuantizationVersion = 2;  // GGML_QNT_VERSION, written by llama-quantize

// One tensor's plan: its GGUF name, shape and ggml type.
struct Planned {
  std::string hf;
  std::string gguf;
  int type = 0;
};

// Chooses and checks the type of every tensor; collects all problems into one error.
StatusOr<std::vector<Planned>> PlanTensors(const Model& model, const GgufTypeChooser& type_of,
                                           const std::string& path) {
  std::vector<Planned> plan;
  std::vector<std::string> bad;
  for (const auto& [hf, shape] : model.ExpectedTensors()) {
    Planned p{hf, HfToGgufName(hf), 0};
    QL_CHECK(!p.gguf.empty(), "no GGUF name for {}", hf);
    if (shape.size() >= 2) {
      const Tensor& t = model.W(hf);
      QL_ASSIGN_OR_RETURN(std::string scheme, type_of(hf, t.rows(), t.cols()));
      p.type = GgufTypeOfScheme(scheme);
      if (p.type < 0) {
        bad.push_back(fmt::format("{} ({}: no GGUF type)", hf, scheme));
      } else if (t.cols() % FindGgmlTypeInfo(p.type)->block_elems != 0) {
        bad.push_back(fmt::format("{} ({}: rows of {} are not whole {}-blocks)", hf, scheme, t.cols(),
                                  FindGgmlTypeInfo(p.type)->block_elems));
      }
    }
    plan.push_back(std::move(p));
  }
  if (!bad.empty()) {
    constexpr size_t kShown = 6;  // one readable line: the first few, then a count
    std::string list;
    for (size_t i = 0; i < bad.size() && i < kShown; ++i) list += (i == 0 ? "" : ", ") + bad[i];
    if (bad.size() > kShown) list += fmt::format(" and {} more", bad.size() - kShown);
    return Status::Errorf("{}: cannot export {} tensor(s) as GGUF: {} (pick GGUF types: q4_0..q8_0, q2_k..q6_k, "
                          "iq4_nl, iq4_xs, f32, fp16, bf16, or a llama.cpp preset with fallbacks)",
                          path, bad.size(), list);
  }
  return plan;
}

// Source metadata verbatim, with general.file_type replaced and general.quantization_version set.
std::vector<std::pair<std::string, GgufValue>> CarriedMetadata(const GgufFile& src, uint32_t file_type,
                                                               bool quantized) {
  std::vector<std::pair<std::string, GgufValue>> kv;
  bool has_file_type = false, has_qv = false;
  for (const auto& [k, v] : src.kv) {
    if (k == "general.file_type") {
      kv.emplace_back(k, GgufValue::U32(file_type));
      has_file_type = true;
    } else if (k == "general.quantization_version") {
      kv.emplace_back(k, GgufValue::U32(kGgmlQuantizationVersion));
      has_qv = true;
    } else {
      kv.emplace_back(k, v);
    }
  }
  if (!has_file_type) kv.emplace_back("general.file_type", GgufValue::U32(file_type));
  if (quantized && !has_qv) kv.emplace_back("general.quantization_version", GgufValue::U32(kGgmlQuantizationVersion));
  return kv;
}

// The importance row of one tensor (nullptr: none); a size that is not the row length is an error, as in
// llama-quantize.
StatusOr<const float*> ImportanceOf(const GgufExportOptions& opt, const std::string& gguf_name, int64_t cols,
                                    int type, const std::string& path) {
  if (opt.importance == nullptr || FindGgmlTypeInfo(type)->block_elems == 1) return nullptr;
  auto it = opt.importance->find(gguf_name);
  if (it == opt.importance->end()) return nullptr;
  if (int64_t(it->second.size()) != cols)
    return Status::Errorf("{}: the imatrix has {} values for {}, whose rows have {} (an imatrix of another model?)",
                          path, it->second.size(), gguf_name, cols);
  return it->second.data();
}

// Sets key to v, replacing an existing entry of that name.
void SetKv(std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& key, const GgufValue& v) {
  for (auto& [k, old] : kv)
    if (k == key) {
      old = v;
      return;
    }
  kv.emplace_back(key, v);
}

// One tensor's bytes in its ggml type, row by row (rows are independent); qw: [cols] importances or null.
StatusOr<std::vector<uint8_t>> EncodeTensor(const Tensor& t, int type, const float* qw = nullptr) {
  const int64_t rows = t.shape.size() >= 2 ? t.rows() : 1, cols = t.numel() / rows;
  std::vector<uint8_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    QL_ASSIGN_OR_RETURN(std::vector<uint8_t> row, QuantizeGgmlRow(type, t.data.data() + r * cols, cols, qw));
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

// How many values of the encoded tensor do not decode bitwise to `want` (same element order as t).
StatusOr<int64_t> CountMismatches(const std::vector<uint8_t>& data, int type, const Tensor& t, const Tensor& want) {
  if (want.shape != t.shape) return t.numel();
  const int64_t rows = t.shape.size() >= 2 ? t.rows() : 1, cols = t.numel() / rows;
  const GgmlTypeInfo* info = FindGgmlTypeInfo(type);
  const size_t row_bytes = size_t(cols / info->block_elems) * size_t(info->block_bytes);
  std::vector<float> y(static_cast<size_t>(cols));
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    QL_RETURN_IF_ERROR(DequantizeGgmlRow(type, data.data() + size_t(r) * row_bytes, cols, y.data()));
    const float* w = want.data.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) bad += std::memcmp(&y[size_t(c)], &w[c], sizeof(float)) != 0;
  }
  return bad;
}

// The `expect` model in the layout the file is written in (the same RoPE conversion as the model's).
const Model* ExpectedInFileLayout(const GgufExportOptions& opt, bool convert, Model* storage) {
  if (opt.expect == nullptr || !convert) return opt.expect;
  *storage = *opt.expect;
  SetRopeLayout(storage, storage->config.arch == "llama");
  return storage;
}

}  // namespace

int GgufTypeOfScheme(const std::string& scheme) {
  if (scheme == "f32") return 0;
  if (scheme == "fp16" || scheme == "f16") return 1;
  if (scheme == "bf16") return 30;
  if (scheme == "q8_k") return -1;  // an activation format: llama.cpp has no matrix product for Q8_K weights
  return GgmlTypeIdOfCodec(scheme);
}

Status ExportGguf(const std::string& path, const Model& model, const GgufExportOptions& opt) {
  QL_RETURN_IF_ERROR(model.Validate(path));
  const ModelConfig& c = model.config;
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "qwen3")
    return Status::Errorf("{}: cannot write architecture '{}' as GGUF (llama, qwen2, qwen3)", path, c.arch);
  QL_ASSIGN_OR_RETURN(std::vector<Planned> plan, PlanTensors(model, opt.type_of, path));
  const Model* src = &model;
  Model converted, expect_converted;
  const bool convert = c.rope_interleaved != (c.arch == "llama");  // GGUF llama stores q/k in adjacent-pair order
  if (convert) {
    converted = model;
    SetRopeLayout(&converted, c.arch == "llama");
    src = &converted;
  }
  const Model* expect = ExpectedInFileLayout(opt, convert, &expect_converted);
  std::vector<std::string> moved;  // tensors that would not decode to `expect`
  bool quantized = false;
  for (const Planned& p : plan) quantized |= FindGgmlTypeInfo(p.type)->block_elems > 1;
  uint32_t alignment = 32;
  std::vector<std::pair<std::string, GgufValue>> kv;
  if (opt.source != nullptr) {
    kv = CarriedMetadata(*opt.source, opt.file_type, quantized);
    alignment = uint32_t(opt.source->alignment);
  } else {
    QL_ASSIGN_OR_RETURN(kv, GgufModelMetadata(path, model, opt.file_type, alignment));
    if (quantized) kv.emplace_back("general.quantization_version", GgufValue::U32(kGgmlQuantizationVersion));
  }
  for (const auto& [k, v] : opt.extra_kv) SetKv(kv, k, v);
  std::vector<GgufTensorBlob> blobs;
  for (const Planned& p : plan) {
    const Tensor& t = src->W(p.hf);
    GgufTensorBlob b;
    b.name = p.gguf;
    b.ne.assign(t.shape.rbegin(), t.shape.rend());
    b.type = uint32_t(p.type);
    QL_ASSIGN_OR_RETURN(const float* qw, ImportanceOf(opt, p.gguf, int64_t(b.ne[0]), p.type, path));
    QL_ASSIGN_OR_RETURN(b.data, EncodeTensor(t, p.type, qw));
    if (expect != nullptr && !expect->Has(p.hf)) {
      moved.push_back(p.hf + " (not in the evaluated model)");
    } else if (expect != nullptr) {
      QL_ASSIGN_OR_RETURN(int64_t bad, CountMismatches(b.data, p.type, t, expect->W(p.hf)));
      if (bad > 0) moved.push_back(fmt::format("{} ({}: {} of {} values)", p.hf, GgmlTypeName(p.type), bad, t.numel()));
    }
    blobs.push_back(std::move(b));
  }
  if (!moved.empty()) {
    std::string list;
    for (size_t i = 0; i < moved.size() && i < 4; ++i) list += (i == 0 ? "" : ", ") + moved[i];
    if (moved.size() > 4) list += fmt::format(" and {} more", moved.size() - 4);
    return Status::Errorf("{}: not written: {} tensor(s) would not hold the evaluated weights bit for bit: {} (their "
                          "values are not on the grid of their GGUF type)", path, moved.size(), list);
  }
  return WriteGgufFile(path, kv, blobs, alignment);
}

}  // namespace ql::io
