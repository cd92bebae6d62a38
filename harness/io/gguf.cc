// GGUF reader/writer (docs/formats.md §4.2). File layout, all little-endian:
//   u32 magic "GGUF" (0x46554747) | u32 version (3) | u64 tensor_count | u64 kv_count
//   kv_count x { string key (u64 len + bytes) | u32 value_type | value }   (arrays: u32 elem, u64 n, values)
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] (ne[0] innermost) | u32 ggml_type | u64 offset }
//   zero padding to `general.alignment` (default 32) | tensor data (each tensor at an aligned offset)
#include "harness/io/gguf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <regex>

#include "harness/io/declared_sizes.h"
#include "harness/io/rope_layout.h"
#include "harness/tokenizer/byte_bpe.h"
#include "harness/tokenizer/spm_bpe.h"
#include "kernels/gguf_blocks.h"
#include "kernels/half.h"
#include "kernels/parallel.h"

namespace ql::io {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF readers assume a little-endian host");

constexpr uint32_t kGgufMagic = 0x46554747;  // bytes "GGUF"
constexpr int kMaxDims = 4;                  // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxArrayItems = uint64_t(1) << 26;  // vocabularies and merges are ~10^5-10^6

// ggml type ids, block sizes and dequantization come from kernels/gguf_blocks.h (docs/formats.md §4.1).
const GgmlTypeInfo* FindType(uint32_t id) { return id > INT32_MAX ? nullptr : FindGgmlTypeInfo(int(id)); }

int ScalarBytes(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    case GgufType::kString: return 8;   // at least the length field
    case GgufType::kArray: return 12;   // at least elem type + count
  }
  return 0;
}

class Parser {
 public:
  explicit Parser(FileReader& r) : r_(r) {}

  Status String(std::string* s, std::string_view what) {
    uint64_t n = 0;
    QL_RETURN_IF_ERROR(r_.ReadPod(&n, what));
    if (n > r_.remaining())
      return Status::Errorf("{}: truncated or corrupt: {} claims a {}-byte string at offset {} but only {} bytes "
                            "remain",
                            r_.path(), what, n, r_.pos(), r_.remaining());
    s->resize(n);
    return r_.Read(s->data(), n, what);
  }

  Status Value(GgufType type, GgufValue* v, const std::string& key, int depth) {
    v->type = type;
    auto rd = [&](auto tag) -> StatusOr<decltype(tag)> {
      decltype(tag) x;
      QL_RETURN_IF_ERROR(r_.ReadPod(&x, "the value of '" + key + "'"));
      return x;
    };
    switch (type) {
      case GgufType::kU8: { QL_ASSIGN_OR_RETURN(v->u, rd(uint8_t())); return Status::Ok(); }
      case GgufType::kI8: { QL_ASSIGN_OR_RETURN(v->i, rd(int8_t())); return Status::Ok(); }
      case GgufType::kU16: { QL_ASSIGN_OR_RETURN(v->u, rd(uint16_t())); return Status::Ok(); }
      case GgufType::kI16: { QL_ASSIGN_OR_RETURN(v->i, rd(int16_t())); return Status::Ok(); }
      case GgufType::kU32: { QL_ASSIGN_OR_RETURN(v->u, rd(uint32_t())); return Status::Ok(); }
      case GgufType::kI32: { QL_ASSIGN_OR_RETURN(v->i, rd(int32_t())); return Status::Ok(); }
      case GgufType::kU64: { QL_ASSIGN_OR_RETURN(v->u, rd(uint64_t())); return Status::Ok(); }
      case GgufType::kI64: { QL_ASSIGN_OR_RETURN(v->i, rd(int64_t())); return Status::Ok(); }
      case GgufType::kF32: { QL_ASSIGN_OR_RETURN(v->f, rd(float())); return Status::Ok(); }
      case GgufType::kF64: { QL_ASSIGN_OR_RETURN(v->f, rd(double())); return Status::Ok(); }
      case GgufType::kBool: {
        QL_ASSIGN_OR_RETURN(uint8_t b, rd(uint8_t()));
        if (b > 1) return Status::Errorf("{}: bool '{}' has byte value {} (must be 0 or 1)", r_.path(), key, b);
        v->u = b;
        return Status::Ok();
      }
      case GgufType::kString: return String(&v->s, "the string value of '" + key + "'");
      case GgufType::kArray: {
        if (depth >= kMaxArrayDepth)
          return Status::Errorf("{}: '{}' nests arrays deeper than {}", r_.path(), key, kMaxArrayDepth);
        uint32_t et = 0;
        uint64_t n = 0;
        QL_RETURN_IF_ERROR(r_.ReadPod(&et, "the array element type of '" + key + "'"));
        if (et > uint32_t(GgufType::kF64))
          return Status::Errorf("{}: array '{}' has unknown element type {} (valid 0..12)", r_.path(), key, et);
        QL_RETURN_IF_ERROR(r_.ReadPod(&n, "the array length of '" + key + "'"));
        v->elem = GgufType(et);
        if (n > kMaxArrayItems)
          return Status::Errorf("{}: array '{}' claims {} elements (more than {}; corrupt file?)", r_.path(), key, n,
                                kMaxArrayItems);
        if (n > r_.remaining() / ScalarBytes(v->elem))
          return Status::Errorf("{}: truncated or corrupt: array '{}' claims {} elements at offset {} but only {} "
                                "bytes remain",
                                r_.path(), key, n, r_.pos(), r_.remaining());
        v->items.resize(n);
        for (uint64_t k = 0; k < n; ++k) QL_RETURN_IF_ERROR(Value(v->elem, &v->items[k], key, depth + 1));
        return Status::Ok();
      }
    }
    return Status::Errorf("{}: metadata '{}' has unknown value type {} (valid 0..12)", r_.path(), key,
                          uint32_t(type));
  }

 private:
  FileReader& r_;
};

// Key lookups with typed errors.
struct Meta {
  const GgufFile& f;
  StatusOr<int64_t> Int(const std::string& key, std::optional<int64_t> def = std::nullopt) const {
    const GgufValue* v = f.Find(key);
    if (!v) {
      if (def) return *def;
      return Status::Errorf("{}: required metadata key '{}' is missing", f.path, key);
    }
    auto x = v->AsInt();
    if (!x) return Status::Errorf("{}: metadata '{}' must be an integer (is {})", f.path, key, GgufTypeName(v->type));
    return *x;
  }
  StatusOr<double> Float(const std::string& key, std::optional<double> def = std::nullopt) const {
    const GgufValue* v = f.Find(key);
    if (!v) {
      if (def) return *def;
      return Status::Errorf("{}: required metadata key '{}' is missing", f.path, key);
    }
    auto x = v->AsFloat();
    if (!x) return Status::Errorf("{}: metadata '{}' must be a number (is {})", f.path, key, GgufTypeName(v->type));
    return *x;
  }
  StatusOr<std::string> Str(const std::string& key, std::optional<std::string> def = std::nullopt) const {
    const GgufValue* v = f.Find(key);
    if (!v) {
      if (def) return *def;
      return Status::Errorf("{}: required metadata key '{}' is missing", f.path, key);
    }
    if (v->type != GgufType::kString)
      return Status::Errorf("{}: metadata '{}' must be a string (is {})", f.path, key, GgufTypeName(v->type));
    return v->s;
  }
  const GgufValue* Array(const std::string& key) const {
    const GgufValue* v = f.Find(key);
    return v && v->type == GgufType::kArray ? v : nullptr;
  }
};

struct NamePair {
  const char* gguf;
  const char* hf;
};
constexpr NamePair kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
constexpr NamePair kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

std::string_view GgufTypeName(GgufType t) {
  static const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                 "u64", "i64", "f64"};
  const uint32_t i = uint32_t(t);
  return i < 13 ? kNames[i] : "unknown";
}

GgufValue GgufValue::U32(uint32_t v) { GgufValue x; x.type = GgufType::kU32; x.u = v; return x; }
GgufValue GgufValue::U64(uint64_t v) { GgufValue x; x.type = GgufType::kU64; x.u = v; return x; }
GgufValue GgufValue::I32(int32_t v) { GgufValue x; x.type = GgufType::kI32; x.i = v; return x; }
GgufValue GgufValue::F32(float v) { GgufValue x; x.type = GgufType::kF32; x.f = v; return x; }
GgufValue GgufValue::Bool(bool v) { GgufValue x; x.type = GgufType::kBool; x.u = v; return x; }
GgufValue GgufValue::Str(std::string v) { GgufValue x; x.type = GgufType::kString; x.s = std::move(v); return x; }
GgufValue GgufValue::Array(GgufType elem, std::vector<GgufValue> items) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.elem = elem;
  x.items = std::move(items);
  return x;
}

std::optional<int64_t> GgufValue::AsInt() const {
  switch (type) {
    case GgufType::kU8: case GgufType::kU16: case GgufType::kU32: case GgufType::kU64:
      if (u > uint64_t(INT64_MAX)) return std::nullopt;
      return int64_t(u);
    case GgufType::kI8: case GgufType::kI16: case GgufType::kI32: case GgufType::kI64: return i;
    default: return std::nullopt;
  }
}

std::optional<double> GgufValue::AsFloat() const {
  if (type == GgufType::kF32 || type == GgufType::kF64) return f;
  if (auto x = AsInt()) return double(*x);
  return std::nullopt;
}

std::string GgufValue::ToString(size_t max_items) const {
  switch (type) {
    case GgufType::kString: return Quoted(s);
    case GgufType::kBool: return u ? "true" : "false";
    case GgufType::kF32: case GgufType::kF64: return fmt::format("{}", f);
    case GgufType::kArray: {
      std::string r = fmt::format("{}[{}] [", GgufTypeName(elem), items.size());
      for (size_t k = 0; k < items.size() && k < max_items; ++k) r += (k ? ", " : "") + items[k].ToString(max_items);
      return r + (items.size() > max_items ? ", ...]" : "]");
    }
    default: return AsInt() ? std::to_string(*AsInt()) : std::to_string(u);
  }
}

std::vector<int64_t> GgufTensorInfo::TorchShape() const {
  return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  for (const auto& [k, v] : kv)
    if (k == key) return &v;
  return nullptr;
}

std::string GgmlTypeName(uint32_t type) {
  const GgmlTypeInfo* t = FindType(type);
  return t ? t->name : fmt::format("type{}", type);
}

std::string GgufToHfName(const std::string& g) {
  for (const NamePair& p : kGlobalNames)
    if (g == p.gguf) return p.hf;
  static const std::regex kBlk(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(g, m, kBlk)) return "";
  for (const NamePair& p : kLayerNames)
    if (m[2] == p.gguf) return "model.layers." + m[1].str() + "." + p.hf;
  return "";
}

std::string HfToGgufName(const std::string& h) {
  for (const NamePair& p : kGlobalNames)
    if (h == p.hf) return p.gguf;
  static const std::regex kLayer(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(h, m, kLayer)) return "";
  for (const NamePair& p : kLayerNames)
    if (m[2] == p.hf) return "blk." + m[1].str() + "." + p.gguf;
  return "";
}

StatusOr<GgufFile> ReadGgufHeader(const std::string& path) {
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  GgufFile f;
  f.path = path;
  uint32_t magic = 0;
  QL_RETURN_IF_ERROR(r.ReadPod(&magic, "the GGUF magic"));
  if (magic != kGgufMagic)
    return Status::Errorf("{}: wrong magic 0x{:08x} (a GGUF file starts with the bytes \"GGUF\", 0x{:08x})", path,
                          magic, kGgufMagic);
  QL_RETURN_IF_ERROR(r.ReadPod(&f.version, "the GGUF version"));
  if (f.version != 3 && f.version != 2)
    return Status::Errorf("{}: GGUF version {} is not supported (2 and 3 are; convert v1 files with llama.cpp)",
                          path, f.version);
  uint64_t n_tensors = 0, n_kv = 0;
  QL_RETURN_IF_ERROR(r.ReadPod(&n_tensors, "the tensor count"));
  QL_RETURN_IF_ERROR(r.ReadPod(&n_kv, "the metadata count"));
  if (n_kv > r.remaining() / 12 || n_tensors > r.remaining() / 24)
    return Status::Errorf("{}: header claims {} metadata entries and {} tensors, more than the {}-byte file can hold "
                          "(truncated or corrupt)",
                          path, n_kv, n_tensors, r.size());
  Parser p(r);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    QL_RETURN_IF_ERROR(p.String(&key, fmt::format("metadata key #{}", k)));
    uint32_t type = 0;
    QL_RETURN_IF_ERROR(r.ReadPod(&type, "the value type of '" + key + "'"));
    if (type > uint32_t(GgufType::kF64))
      return Status::Errorf("{}: metadata '{}' has unknown value type {} (valid 0..12)", path, key, type);
    if (f.Find(key)) return Status::Errorf("{}: metadata key '{}' appears twice", path, key);
    GgufValue v;
    QL_RETURN_IF_ERROR(p.Value(GgufType(type), &v, key, 0));
    f.kv.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.Find("general.alignment")) {
    auto x = a->AsInt();
    if (!x || *x <= 0 || (*x & (*x - 1)) != 0)
      return Status::Errorf("{}: general.alignment = {} must be a positive power of two", path, a->ToString());
    f.alignment = uint64_t(*x);
  }
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    QL_RETURN_IF_ERROR(p.String(&t.name, fmt::format("the name of tensor #{}", k)));
    uint32_t n_dims = 0;
    QL_RETURN_IF_ERROR(r.ReadPod(&n_dims, "n_dims of tensor '" + t.name + "'"));
    if (n_dims == 0 || n_dims > kMaxDims)
      return Status::Errorf("{}: tensor '{}' has {} dimensions (GGUF allows 1..{})", path, t.name, n_dims, kMaxDims);
    t.ne.resize(n_dims);
    QL_RETURN_IF_ERROR(r.Read(t.ne.data(), 8 * n_dims, "the shape of tensor '" + t.name + "'"));
    QL_RETURN_IF_ERROR(r.ReadPod(&t.type, "the type of tensor '" + t.name + "'"));
    QL_RETURN_IF_ERROR(r.ReadPod(&t.offset, "the data offset of tensor '" + t.name + "'"));
    const GgmlTypeInfo* td = FindType(t.type);
    if (!td)
      return Status::Errorf("{}: tensor '{}' has unknown ggml type id {} (not in the ggml type table)", path,
                            t.name, t.type);
    uint64_t numel = 1;
    for (uint64_t d : t.ne) {
      if (d != 0 && numel > (uint64_t(1) << 56) / d)
        return Status::Errorf("{}: tensor '{}' shape is too large", path, t.name);
      numel *= d;
    }
    if (t.ne[0] % td->block_elems != 0)
      return Status::Errorf("{}: tensor '{}' row length {} is not a multiple of the {} block size {}", path, t.name,
                            t.ne[0], td->name, td->block_elems);
    t.nbytes = numel / td->block_elems * td->block_bytes;
    if (t.offset % f.alignment != 0)
      return Status::Errorf("{}: tensor '{}' offset {} is not a multiple of the alignment {}", path, t.name, t.offset,
                            f.alignment);
    for (const GgufTensorInfo& o : f.tensors)
      if (o.name == t.name) return Status::Errorf("{}: tensor '{}' appears twice", path, t.name);
    f.tensors.push_back(std::move(t));
  }
  f.data_start = AlignUp(r.pos(), f.alignment);
  if (f.data_start > r.size())
    return Status::Errorf("{}: truncated: tensor data should start at offset {} but the file has {} bytes", path,
                          f.data_start, r.size());
  const uint64_t data_size = r.size() - f.data_start;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : f.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return Status::Errorf("{}: truncated: tensor '{}' ({} {}) needs bytes [{}, {}) of the data section, which has "
                            "{} bytes",
                            path, t.name, GgmlTypeName(t.type), ShapeString(t.TorchShape()), t.offset,
                            t.offset + t.nbytes, data_size);
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensorInfo *a = by_offset[k - 1], *b = by_offset[k];
    if (b->offset < a->offset + a->nbytes)
      return Status::Errorf("{}: tensors '{}' and '{}' overlap in the data section", path, a->name, b->name);
  }
  return f;
}

namespace {
constexpr uint32_t kGgmlF32 = 0;         // ggml's type id of float32
constexpr int64_t kDequantRowChunk = 256;  // rows per work item when dequantizing on threads

// Rows of a block-type (or F16/BF16) tensor -> out.data, row chunks on NumThreads() threads: each
// row is independent, so the bits do not depend on the split. The first failing row is reported.
StatusOr<Tensor> DequantizeRows(const GgufFile& file, const GgufTensorInfo& t, const GgmlTypeInfo& td,
                                const uint8_t* buf, Tensor out) {
  const int64_t row = int64_t(t.ne[0]);
  const int64_t rows = row == 0 ? 0 : out.numel() / row;
  const uint64_t row_bytes = uint64_t(row) / td.block_elems * td.block_bytes;
  const int chunks = int((rows + kDequantRowChunk - 1) / kDequantRowChunk);
  std::vector<Status> status(chunks);
  ParallelFor(chunks, NumThreads(), [&](int c, int) {
    for (int64_t k = c * kDequantRowChunk; k < std::min(rows, (c + 1) * kDequantRowChunk); ++k) {
      Status st = DequantizeGgmlRow(int(t.type), buf + k * row_bytes, row, out.data.data() + k * row);
      if (!st.ok()) {
        status[c] = Status::Errorf("{}: tensor '{}' row {}: {}", file.path, t.name, k, st.message());
        return;
      }
    }
  });
  for (const Status& st : status)
    if (!st.ok()) return st;
  return out;
}
}  // namespace

StatusOr<Tensor> ReadGgufTensor(const GgufFile& file, FileReader& reader, const GgufTensorInfo& t) {
  const GgmlTypeInfo* td = FindType(t.type);
  QL_CHECK(td != nullptr, "tensor infos were checked by ReadGgufHeader");
  if (!td->supported) {
    Status st = SupportedGgmlType(int(t.type)).status();
    return Status::Errorf("{}: tensor '{}': {}", file.path, t.name, st.message());
  }
  Tensor out;
  out.shape = t.TorchShape();
  out.data.resize(size_t(out.numel()));
  const std::string what = "tensor '" + t.name + "'";
  if (t.type == kGgmlF32 && t.nbytes == sizeof(float) * out.data.size()) {  // stored as used: no staging copy
    QL_RETURN_IF_ERROR(reader.ReadAt(file.data_start + t.offset, out.data.data(), t.nbytes, what));
    return out;
  }
  std::vector<uint8_t> buf(t.nbytes);
  QL_RETURN_IF_ERROR(reader.ReadAt(file.data_start + t.offset, buf.data(), buf.size(), what));
  return DequantizeRows(file, t, *td, buf.data(), std::move(out));
}

StatusOr<Model> ReadGguf(const std::string& path, CheckpointInfo* info) {
  QL_ASSIGN_OR_RETURN(GgufFile f, ReadGgufHeader(path));
  Meta meta{f};
  QL_ASSIGN_OR_RETURN(std::string arch, meta.Str("general.architecture"));
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3")
    return Status::Errorf("{}: general.architecture '{}' is not supported (llama, qwen2, qwen3)", path, arch);
  Model m;
  m.source_path = path;
  ModelConfig& c = m.config;
  c.arch = arch;
  const std::string a = arch + ".";
  auto as_int = [&](const std::string& key, std::optional<int64_t> def, int* out) -> Status {
    QL_ASSIGN_OR_RETURN(int64_t v, meta.Int(a + key, def));
    if (v < 0 || v > INT32_MAX) return Status::Errorf("{}: metadata '{}{}' = {} is out of range", path, a, key, v);
    *out = int(v);
    return Status::Ok();
  };
  if (const GgufValue* kv = f.Find(a + "attention.head_count_kv"); kv && kv->type == GgufType::kArray)
    return Status::Errorf("{}: per-layer {}attention.head_count_kv arrays are not supported", path, a);
  QL_RETURN_IF_ERROR(as_int("embedding_length", std::nullopt, &c.dim));
  QL_RETURN_IF_ERROR(as_int("feed_forward_length", std::nullopt, &c.hidden_dim));
  QL_RETURN_IF_ERROR(as_int("block_count", std::nullopt, &c.n_layers));
  QL_RETURN_IF_ERROR(as_int("attention.head_count", std::nullopt, &c.n_heads));
  QL_RETURN_IF_ERROR(as_int("attention.head_count_kv", c.n_heads, &c.n_kv_heads));
  QL_RETURN_IF_ERROR(as_int("context_length", 0, &c.max_seq_len));
  const DeclaredKeys keys{a + "block_count", a + "embedding_length", a + "attention.head_count"};
  QL_RETURN_IF_ERROR(CheckDeclaredWidth(c.dim, c.n_heads, path, keys));
  if (f.Find(a + "context_length") && c.max_seq_len == 0)
    return Status::Errorf("{}: {}context_length = 0 must be > 0 (drop the key if the context is unknown)", path, a);
  QL_RETURN_IF_ERROR(as_int("attention.key_length", c.dim / c.n_heads, &c.head_dim));
  int value_length = 0, rope_dims = 0;
  QL_RETURN_IF_ERROR(as_int("attention.value_length", c.head_dim, &value_length));
  QL_RETURN_IF_ERROR(as_int("rope.dimension_count", c.head_dim, &rope_dims));
  if (value_length != c.head_dim)
    return Status::Errorf("{}: attention.value_length {} != key_length {} is not supported", path, value_length,
                          c.head_dim);
  if (rope_dims != c.head_dim)
    return Status::Errorf("{}: partial rotary embeddings (rope.dimension_count {} < head_dim {}) are not supported",
                          path, rope_dims, c.head_dim);
  QL_ASSIGN_OR_RETURN(std::string scaling, meta.Str(a + "rope.scaling.type", std::string("none")));
  if (scaling != "none")
    return Status::Errorf("{}: RoPE scaling '{}' is not supported", path, scaling);
  QL_ASSIGN_OR_RETURN(double theta, meta.Float(a + "rope.freq_base", 10000.0));
  QL_ASSIGN_OR_RETURN(double eps, meta.Float(a + "attention.layer_norm_rms_epsilon"));
  c.rope_theta = float(theta);
  c.norm_eps = float(eps);
  // llama.cpp's converter permutes Llama q/k rows to adjacent pairs; Qwen2/3 use NEOX rotate-half (docs/formats.md §4).
  c.rope_interleaved = arch == "llama";

  if (info) {
    info->format = fmt::format("gguf v{}", f.version);
    info->files.push_back(path);
    for (const auto& [k, v] : f.kv) info->metadata[k] = v.ToString();
  }
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  for (const GgufTensorInfo& t : f.tensors) {
    const std::string hf = GgufToHfName(t.name);
    if (info) info->tensors.push_back({t.name, hf, t.TorchShape(), GgmlTypeName(t.type), t.nbytes});
    if (hf.empty())
      return Status::Errorf("{}: tensor '{}' is not part of the {} layout quantlab knows (token_embd, blk.N.attn_*, "
                            "blk.N.ffn_*, output_norm, output)",
                            path, t.name, arch);
    QL_ASSIGN_OR_RETURN(Tensor w, ReadGgufTensor(f, r, t));
    m.weights.emplace(hf, std::move(w));
  }
  auto emb = m.weights.find("model.embed_tokens.weight");
  if (emb == m.weights.end()) return Status::Errorf("{}: tensor 'token_embd.weight' is missing", path);
  if (emb->second.shape.size() != 2)
    return Status::Errorf("{}: token_embd.weight must be 2-D, has shape {}", path, ShapeString(emb->second.shape));
  c.vocab_size = int(emb->second.shape[0]);
  {
    QL_ASSIGN_OR_RETURN(int64_t v, meta.Int(a + "vocab_size", c.vocab_size));
    if (v != c.vocab_size)
      return Status::Errorf("{}: {}vocab_size = {} but token_embd.weight has {} rows", path, a, v, c.vocab_size);
  }
  auto head = m.weights.find("lm_head.weight");
  if (head == m.weights.end()) {
    c.tied_embeddings = true;
  } else if (head->second.shape == emb->second.shape &&
             std::memcmp(head->second.data.data(), emb->second.data.data(), 4 * head->second.data.size()) == 0) {
    c.tied_embeddings = true;  // a stored copy of the embedding (stories260K.gguf): same function, tied
    m.weights.erase(head);
    if (info) info->metadata["quantlab.note"] = "output.weight equals token_embd.weight bitwise: loaded as tied";
  }
  c.qkv_bias = m.Has("model.layers.0.self_attn.q_proj.bias");
  c.qk_norm = m.Has("model.layers.0.self_attn.q_norm.weight");

  // Tokenizer (tokenizer.ggml.*).
  QL_ASSIGN_OR_RETURN(int64_t bos, meta.Int("tokenizer.ggml.bos_token_id", 1));
  QL_ASSIGN_OR_RETURN(int64_t eos, meta.Int("tokenizer.ggml.eos_token_id", 2));
  c.bos_id = int(bos);
  c.eos_id = int(eos);
  QL_ASSIGN_OR_RETURN(std::string tok_model, meta.Str("tokenizer.ggml.model", std::string()));
  if (tok_model == "llama") {
    const GgufValue* tokens = meta.Array("tokenizer.ggml.tokens");
    const GgufValue* scores = meta.Array("tokenizer.ggml.scores");
    const GgufValue* types = meta.Array("tokenizer.ggml.token_type");
    if (!tokens || tokens->elem != GgufType::kString)
      return Status::Errorf("{}: tokenizer.ggml.tokens must be a string array", path);
    SpmVocab v;
    for (const GgufValue& t : tokens->items) v.pieces.push_back(t.s);
    if (scores) {
      for (const GgufValue& s : scores->items) {
        auto x = s.AsFloat();
        if (!x) return Status::Errorf("{}: tokenizer.ggml.scores must be numbers", path);
        v.scores.push_back(float(*x));
      }
    } else {
      v.scores.assign(v.pieces.size(), 0.0f);
    }
    if (types) {
      for (const GgufValue& t : types->items) {
        auto x = t.AsInt();
        if (!x) return Status::Errorf("{}: tokenizer.ggml.token_type must be integers", path);
        v.token_types.push_back(int32_t(*x));
      }
    }
    auto id = [&](const char* key) -> StatusOr<int> {
      QL_ASSIGN_OR_RETURN(int64_t x, meta.Int(key, -1));
      return x >= int64_t(v.pieces.size()) || x < 0 ? -1 : int(x);  // 0xFFFFFFFF (llama.cpp "none") -> -1
    };
    QL_ASSIGN_OR_RETURN(v.bos_id, id("tokenizer.ggml.bos_token_id"));
    QL_ASSIGN_OR_RETURN(v.eos_id, id("tokenizer.ggml.eos_token_id"));
    QL_ASSIGN_OR_RETURN(v.unk_id, id("tokenizer.ggml.unknown_token_id"));
    if (const GgufValue* sp = f.Find("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = sp->u != 0;
    QL_ASSIGN_OR_RETURN(auto tok, SpmBpeTokenizer::Create(std::move(v), path + " (tokenizer.ggml.*)"));
    if (tok->vocab_size() != c.vocab_size)
      return Status::Errorf("{}: the tokenizer has {} tokens but token_embd.weight has {} rows", path,
                            tok->vocab_size(), c.vocab_size);
    m.tokenizer = std::shared_ptr<const Tokenizer>(std::move(tok));
  } else if (tok_model == "gpt2") {
    // Byte-level BPE: tokens in GPT-2's byte alphabet, merges "left right" in rank order.
    const GgufValue* tokens = meta.Array("tokenizer.ggml.tokens");
    const GgufValue* merges = meta.Array("tokenizer.ggml.merges");
    const GgufValue* types = meta.Array("tokenizer.ggml.token_type");
    if (!tokens || tokens->elem != GgufType::kString)
      return Status::Errorf("{}: tokenizer.ggml.tokens must be a string array", path);
    if (!merges || merges->elem != GgufType::kString)
      return Status::Errorf("{}: a 'gpt2' tokenizer needs the string array tokenizer.ggml.merges", path);
    if (types && types->items.size() != tokens->items.size())
      return Status::Errorf("{}: tokenizer.ggml.token_type has {} entries for {} tokens", path, types->items.size(),
                            tokens->items.size());
    ByteBpeSpec spec;
    for (size_t id = 0; id < tokens->items.size(); ++id) {
      const std::string& piece = tokens->items[id].s;
      const int64_t type = types ? types->items[id].AsInt().value_or(1) : 1;
      if (type == 3 || type == 4) {  // CONTROL -> special added token, USER_DEFINED -> plain added token
        spec.vocab.push_back(piece);
        spec.added_tokens.push_back({int(id), piece, type == 3});
      } else if (type == 5) {        // UNUSED (padding rows such as Qwen2's [PAD...]): a hole
        spec.vocab.push_back("");
      } else {
        spec.vocab.push_back(piece);
      }
    }
    for (size_t k = 0; k < merges->items.size(); ++k) {
      const std::string& mg = merges->items[k].s;
      const size_t sp = mg.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == mg.size())
        return Status::Errorf("{}: tokenizer.ggml.merges[{}] = {} is not 'left right'", path, k, Quoted(mg));
      spec.merges.emplace_back(mg.substr(0, sp), mg.substr(sp + 1));
    }
    QL_ASSIGN_OR_RETURN(std::string pre, meta.Str("tokenizer.ggml.pre", std::string("gpt-2")));
    QL_ASSIGN_OR_RETURN(spec.pre_tokenizer, PreTokenizerNameFromGguf(pre));
    spec.ignore_merges = spec.pre_tokenizer == "llama3";
    const GgufValue* add_bos = f.Find("tokenizer.ggml.add_bos_token");
    const int n_tok = int(tokens->items.size());
    spec.bos_id = add_bos && add_bos->u && bos >= 0 && bos < n_tok ? int(bos) : -1;
    spec.eos_id = eos >= 0 && eos < n_tok ? int(eos) : -1;
    auto tok = ByteBpeTokenizer::Create(std::move(spec));
    if (!tok.ok()) return Status::Errorf("{} (tokenizer.ggml.*): {}", path, tok.status().message());
    if (tok.value()->vocab_size() > c.vocab_size)
      return Status::Errorf("{}: the tokenizer has {} tokens but token_embd.weight has {} rows", path,
                            tok.value()->vocab_size(), c.vocab_size);
    m.tokenizer = std::shared_ptr<const Tokenizer>(std::move(tok.value()));
  } else if (!tok_model.empty()) {
    return Status::Errorf("{}: tokenizer.ggml.model '{}' is not supported (llama, gpt2)", path, tok_model);
  }
  QL_RETURN_IF_ERROR(CheckDeclaredSizes(c, m.weights, path, keys));
  QL_RETURN_IF_ERROR(m.Validate(path));
  return m;
}

Status WriteGgufFile(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv,
                     const std::vector<GgufTensorBlob>& tensors, uint32_t alignment) {
  QL_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "alignment {} must be a power of two", alignment);
  FileWriter w;
  QL_RETURN_IF_ERROR(w.Open(path));
  auto str = [&](const std::string& s) {
    w.WritePod(uint64_t(s.size()));
    w.Write(s.data(), s.size());
  };
  std::function<void(const GgufValue&)> value = [&](const GgufValue& v) {
    switch (v.type) {
      case GgufType::kU8: w.WritePod(uint8_t(v.u)); break;
      case GgufType::kI8: w.WritePod(int8_t(v.i)); break;
      case GgufType::kU16: w.WritePod(uint16_t(v.u)); break;
      case GgufType::kI16: w.WritePod(int16_t(v.i)); break;
      case GgufType::kU32: w.WritePod(uint32_t(v.u)); break;
      case GgufType::kI32: w.WritePod(int32_t(v.i)); break;
      case GgufType::kU64: w.WritePod(uint64_t(v.u)); break;
      case GgufType::kI64: w.WritePod(int64_t(v.i)); break;
      case GgufType::kF32: w.WritePod(float(v.f)); break;
      case GgufType::kF64: w.WritePod(double(v.f)); break;
      case GgufType::kBool: w.WritePod(uint8_t(v.u ? 1 : 0)); break;
      case GgufType::kString: str(v.s); break;
      case GgufType::kArray:
        w.WritePod(uint32_t(v.elem));
        w.WritePod(uint64_t(v.items.size()));
        for (const GgufValue& x : v.items) {
          QL_CHECK(x.type == v.elem, "array element type {} != declared {}", GgufTypeName(x.type),
                   GgufTypeName(v.elem));
          value(x);
        }
        break;
    }
  };
  w.WritePod(kGgufMagic);
  w.WritePod(uint32_t(3));
  w.WritePod(uint64_t(tensors.size()));
  w.WritePod(uint64_t(kv.size()));
  for (const auto& [k, v] : kv) {
    str(k);
    w.WritePod(uint32_t(v.type));
    value(v);
  }
  uint64_t offset = 0;
  for (const GgufTensorBlob& t : tensors) {
    str(t.name);
    w.WritePod(uint32_t(t.ne.size()));
    for (uint64_t d : t.ne) w.WritePod(d);
    w.WritePod(t.type);
    w.WritePod(offset);
    offset = AlignUp(offset + t.data.size(), alignment);
  }
  const std::vector<uint8_t> zeros(alignment, 0);
  w.Write(zeros.data(), AlignUp(w.pos(), alignment) - w.pos());
  const uint64_t data_start = w.pos();
  for (const GgufTensorBlob& t : tensors) {
    w.Write(t.data.data(), t.data.size());
    w.Write(zeros.data(), AlignUp(w.pos() - data_start, alignment) - (w.pos() - data_start));
  }
  return w.Close();
}

StatusOr<std::vector<std::pair<std::string, GgufValue>>> GgufModelMetadata(const std::string& path, const Model& model,
                                                                          uint32_t file_type, uint32_t alignment) {
  const ModelConfig& c = model.config;
  const std::string a = c.arch + ".";
  using V = GgufValue;
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.architecture", V::Str(c.arch)},
      {"general.name", V::Str("quantlab export")},
      {"general.alignment", V::U32(alignment)},
      {"general.file_type", V::U32(file_type)},  // llama_ftype
      {a + "vocab_size", V::U32(uint32_t(c.vocab_size))},
      {a + "context_length", V::U32(uint32_t(c.max_seq_len))},
      {a + "embedding_length", V::U32(uint32_t(c.dim))},
      {a + "block_count", V::U32(uint32_t(c.n_layers))},
      {a + "feed_forward_length", V::U32(uint32_t(c.hidden_dim))},
      {a + "rope.dimension_count", V::U32(uint32_t(c.head_dim))},
      {a + "rope.freq_base", V::F32(c.rope_theta)},
      {a + "attention.head_count", V::U32(uint32_t(c.n_heads))},
      {a + "attention.head_count_kv", V::U32(uint32_t(c.n_kv_heads))},
      {a + "attention.layer_norm_rms_epsilon", V::F32(c.norm_eps)},
  };
  if (c.head_dim * c.n_heads != c.dim) {
    kv.push_back({a + "attention.key_length", V::U32(uint32_t(c.head_dim))});
    kv.push_back({a + "attention.value_length", V::U32(uint32_t(c.head_dim))});
  }
  // GGUF has one bos/eos pair: the tokenizer's where it defines them, else the config's.
  const Tokenizer* tk = model.tokenizer.get();
  kv.push_back({"tokenizer.ggml.bos_token_id", V::U32(uint32_t(tk && tk->bos_id() >= 0 ? tk->bos_id() : c.bos_id))});
  kv.push_back({"tokenizer.ggml.eos_token_id", V::U32(uint32_t(tk && tk->eos_id() >= 0 ? tk->eos_id() : c.eos_id))});
  if (const auto* spm = dynamic_cast<const SpmBpeTokenizer*>(model.tokenizer.get())) {
    std::vector<V> tokens, scores, types;
    for (int id = 0; id < spm->vocab_size(); ++id) {
      tokens.push_back(V::Str(spm->Piece(id)));
      scores.push_back(V::F32(spm->Score(id)));
      types.push_back(V::I32(int32_t(spm->Type(id))));
    }
    kv.push_back({"tokenizer.ggml.model", V::Str("llama")});
    kv.push_back({"tokenizer.ggml.tokens", V::Array(GgufType::kString, std::move(tokens))});
    kv.push_back({"tokenizer.ggml.scores", V::Array(GgufType::kF32, std::move(scores))});
    kv.push_back({"tokenizer.ggml.token_type", V::Array(GgufType::kI32, std::move(types))});
    if (spm->unk_id() >= 0) kv.push_back({"tokenizer.ggml.unknown_token_id", V::U32(uint32_t(spm->unk_id()))});
  } else if (const auto* bpe = dynamic_cast<const ByteBpeTokenizer*>(model.tokenizer.get())) {
    // llama.cpp's names for our pre-tokenizers (inverse of PreTokenizerNameFromGguf).
    static const std::map<std::string, std::string> kPre = {
        {"gpt2", "gpt-2"}, {"llama3", "llama-bpe"}, {"qwen2", "qwen2"}, {"smollm", "smollm"}};
    auto pre = kPre.find(bpe->pre_tokenizer().name());
    if (pre == kPre.end())
      return Status::Errorf("{}: pre-tokenizer '{}' has no GGUF name", path, bpe->pre_tokenizer().name());
    std::vector<int> type(size_t(bpe->vocab_size()), 1);  // NORMAL
    for (const AddedToken& t : bpe->added_tokens()) type[size_t(t.id)] = t.special ? 3 : 4;
    std::vector<V> tokens, types, merges;
    for (int id = 0; id < bpe->vocab_size(); ++id) {
      const std::string piece = bpe->Piece(id);
      if (piece.empty()) type[size_t(id)] = 5;  // a hole in the vocabulary: UNUSED
      tokens.push_back(V::Str(piece));
      types.push_back(V::I32(type[size_t(id)]));
    }
    for (const auto& [l, r] : bpe->merges()) merges.push_back(V::Str(l + " " + r));
    kv.push_back({"tokenizer.ggml.model", V::Str("gpt2")});
    kv.push_back({"tokenizer.ggml.pre", V::Str(pre->second)});
    kv.push_back({"tokenizer.ggml.tokens", V::Array(GgufType::kString, std::move(tokens))});
    kv.push_back({"tokenizer.ggml.token_type", V::Array(GgufType::kI32, std::move(types))});
    kv.push_back({"tokenizer.ggml.merges", V::Array(GgufType::kString, std::move(merges))});
    kv.push_back({"tokenizer.ggml.add_bos_token", V::Bool(bpe->bos_id() >= 0)});
  } else if (model.tokenizer) {
    return Status::Errorf("{}: writing a '{}' tokenizer to GGUF is not supported", path, model.tokenizer->kind());
  }
  return kv;
}

Status WriteGguf(const std::string& path, const Model& model, FloatDtype dtype, uint32_t alignment) {
  QL_RETURN_IF_ERROR(model.Validate(path));
  const ModelConfig& c = model.config;
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "qwen3")
    return Status::Errorf("{}: cannot write architecture '{}' as GGUF (llama, qwen2, qwen3)", path, c.arch);
  const Model* src = &model;
  Model converted;
  const bool want_interleaved = c.arch == "llama";
  if (c.rope_interleaved != want_interleaved) {
    converted = model;
    SetRopeLayout(&converted, want_interleaved);
    src = &converted;
  }
  // llama_ftype: 0 all F32, 1 mostly F16, 32 mostly BF16
  const uint32_t file_type = dtype == FloatDtype::kF32 ? 0 : dtype == FloatDtype::kF16 ? 1 : 32;
  QL_ASSIGN_OR_RETURN(auto kv, GgufModelMetadata(path, model, file_type, alignment));
  std::vector<GgufTensorBlob> blobs;
  for (const auto& [hf, shape] : src->ExpectedTensors()) {
    const Tensor& t = src->W(hf);
    GgufTensorBlob b;
    b.name = HfToGgufName(hf);
    QL_CHECK(!b.name.empty(), "no GGUF name for {}", hf);
    b.ne.assign(t.shape.rbegin(), t.shape.rend());
    const FloatDtype d = t.shape.size() >= 2 ? dtype : FloatDtype::kF32;  // norms/biases stay F32 (llama.cpp)
    b.type = d == FloatDtype::kF32 ? 0 : d == FloatDtype::kF16 ? 1 : 30;
    EncodeFloats(t.data.data(), t.numel(), d, &b.data);
    blobs.push_back(std::move(b));
  }
  return WriteGgufFile(path, kv, blobs, alignment);
}

}  // namespace ql::io
