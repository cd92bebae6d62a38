// safetensors reader/writer (docs/formats.md §5.1). Layout:
//   u64 N (LE) | N bytes UTF-8 JSON {"name": {"dtype", "shape", "data_offsets": [begin, end)}, ...,
//   "__metadata__": {str: str}} | byte buffer (offsets relative to byte 8 + N, tiling it exactly).
#include "harness/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "kernels/half.h"

namespace ql::io {
namespace {

static_assert(std::endian::native == std::endian::little, "checkpoint readers assume a little-endian host");

constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;  // safetensors' N_MAX (100 MB)

using nlohmann::json;

}  // namespace

int SafetensorsDtypeBits(const std::string& d) {
  static const std::map<std::string, int> kBits = {
      {"BOOL", 8},     {"U8", 8},           {"I8", 8},           {"U16", 16},      {"I16", 16},
      {"U32", 32},     {"I32", 32},         {"U64", 64},         {"I64", 64},      {"F16", 16},
      {"BF16", 16},    {"F32", 32},         {"F64", 64},         {"C64", 64},      {"F8_E4M3", 8},
      {"F8_E5M2", 8},  {"F8_E4M3FNUZ", 8},  {"F8_E5M2FNUZ", 8},  {"F8_E8M0", 8},   {"F6_E2M3", 6},
      {"F6_E3M2", 6},  {"F4", 4}};
  auto it = kBits.find(d);
  return it == kBits.end() ? 0 : it->second;
}

StatusOr<SafetensorsHeader> ReadSafetensorsHeader(const std::string& path) {
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  SafetensorsHeader h;
  h.path = path;
  h.file_size = r.size();
  uint64_t n = 0;
  QL_RETURN_IF_ERROR(r.ReadPod(&n, "the 8-byte header length"));
  if (n > kMaxHeaderBytes)
    return Status::Errorf("{}: safetensors header length {} exceeds the 100 MB limit (not a safetensors file?)",
                          path, n);
  if (n > r.remaining())
    return Status::Errorf("{}: truncated: the header claims {} bytes but only {} follow the length field", path, n,
                          r.remaining());
  std::string text(n, '\0');
  QL_RETURN_IF_ERROR(r.Read(text.data(), n, "the JSON header"));
  if (text.empty() || text[0] != '{')
    return Status::Errorf("{}: safetensors header must start with '{{' (got {}); not a safetensors file", path,
                          Quoted(text.substr(0, 8)));
  h.data_start = 8 + n;
  const uint64_t buffer_size = h.file_size - h.data_start;

  // Duplicate top-level names are disallowed; the parser callback sees every key before it is merged.
  std::string duplicate;
  std::set<std::string> seen;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1) {
      const std::string k = parsed.get<std::string>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb);
  } catch (const json::exception& e) {
    return Status::Errorf("{}: the safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!duplicate.empty()) return Status::Errorf("{}: tensor '{}' appears twice in the header", path, duplicate);
  if (!j.is_object()) return Status::Errorf("{}: the safetensors header is not a JSON object", path);

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return Status::Errorf("{}: __metadata__ must be an object of strings", path);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          return Status::Errorf("{}: __metadata__['{}'] must be a string", path, m.key());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](std::string_view why) {
      return Status::Errorf("{}: header entry for tensor '{}' is invalid: {}", path, name, why);
    };
    if (!v.is_object()) return bad("not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) return bad("missing string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) return bad("missing array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      return bad("'data_offsets' must be [begin, end]");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = v["dtype"].get<std::string>();
    const int bits = SafetensorsDtypeBits(e.dtype);
    if (bits == 0) return bad(fmt::format("unknown dtype '{}'", e.dtype));
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) return bad("shape entries must be non-negative integers");
      const uint64_t x = d.get<uint64_t>();
      if (x != 0 && numel > (uint64_t(1) << 60) / x) return bad("shape is too large");
      numel *= x;
      e.shape.push_back(int64_t(x));
    }
    for (const json& o : v["data_offsets"])
      if (!o.is_number_unsigned()) return bad("data_offsets must be non-negative integers");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.end < e.begin) return bad(fmt::format("data_offsets [{}, {}) end before begin", e.begin, e.end));
    if ((numel * bits) % 8 != 0) return bad(fmt::format("{} elements of {} do not fill whole bytes", numel, e.dtype));
    if (e.end - e.begin != numel * bits / 8)
      return bad(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}) hold {}", ShapeString(e.shape),
                             e.dtype, numel * bits / 8, e.begin, e.end, e.end - e.begin));
    h.tensors.push_back(std::move(e));
  }

  // Offsets must tile [0, buffer_size) contiguously: sorted by begin, each begins where the last ended.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  std::string prev = "(start of buffer)";
  for (const SafetensorsEntry& e : h.tensors) {
    if (e.begin < at)
      return Status::Errorf("{}: tensor '{}' bytes [{}, {}) overlap the previous tensor '{}' (ends at {})", path,
                            e.name, e.begin, e.end, prev, at);
    if (e.begin > at)
      return Status::Errorf("{}: gap in the data buffer: tensor '{}' starts at {} but '{}' ends at {} (offsets must "
                            "tile the buffer)",
                            path, e.name, e.begin, prev, at);
    at = e.end;
    prev = e.name;
  }
  if (at < buffer_size)
    return Status::Errorf("{}: {} bytes after the last tensor are not covered by any tensor (offsets must tile "
                          "the buffer)",
                          path, buffer_size - at);
  if (at > buffer_size)
    return Status::Errorf("{}: truncated: tensor data needs {} bytes after the header but the file holds {}", path,
                          at, buffer_size);
  return h;
}

StatusOr<std::map<std::string, Tensor>> ReadSafetensors(const std::string& path, const std::vector<std::string>* only,
                                                        CheckpointInfo* info) {
  QL_ASSIGN_OR_RETURN(SafetensorsHeader h, ReadSafetensorsHeader(path));
  std::set<std::string> wanted;
  if (only) wanted.insert(only->begin(), only->end());
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  std::map<std::string, Tensor> out;
  std::vector<uint8_t> buf;
  for (const SafetensorsEntry& e : h.tensors) {
    if (only && !wanted.count(e.name)) continue;
    if (info) info->tensors.push_back({e.name, e.name, e.shape, e.dtype, e.end - e.begin});
    if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16")
      return Status::Errorf("{}: tensor '{}' is stored as {}; only F32, F16 and BF16 tensors can be loaded", path,
                            e.name, e.dtype);
    Tensor t;
    t.shape = e.shape;
    const int64_t n = t.numel();
    t.data.resize(size_t(n));
    buf.resize(e.end - e.begin);
    QL_RETURN_IF_ERROR(r.ReadAt(h.data_start + e.begin, buf.data(), buf.size(), "tensor '" + e.name + "'"));
    if (e.dtype == "F32") {
      if (!buf.empty()) std::memcpy(t.data.data(), buf.data(), buf.size());
    } else {
      const bool f16 = e.dtype == "F16";
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, buf.data() + 2 * i, 2);
        t.data[i] = f16 ? F16ToF32(v) : Bf16ToF32(v);
      }
    }
    out.emplace(e.name, std::move(t));
  }
  if (only) {
    for (const std::string& name : *only)
      if (!out.count(name)) return Status::Errorf("{}: tensor '{}' is not in this file", path, name);
  }
  if (info) info->files.push_back(path);
  return out;
}

StatusOr<std::map<std::string, Tensor>> ReadSafetensorsIndex(const std::string& index_path, CheckpointInfo* info) {
  QL_ASSIGN_OR_RETURN(std::string text, ReadTextFile(index_path));
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Status::Errorf("{}: not valid JSON: {}", index_path, e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return Status::Errorf("{}: a safetensors index needs an object 'weight_map' {{tensor: file}}", index_path);
  std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> tensor names
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      return Status::Errorf("{}: weight_map['{}'] must be a file name", index_path, it.key());
    const std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard == "..")
      return Status::Errorf("{}: shard name '{}' must be a plain file name in the same directory", index_path, shard);
    by_shard[shard].push_back(it.key());
  }
  if (by_shard.empty()) return Status::Errorf("{}: weight_map is empty", index_path);
  const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  std::map<std::string, Tensor> out;
  for (const auto& [shard, names] : by_shard) {
    const std::string shard_path = (dir / shard).string();
    QL_ASSIGN_OR_RETURN(SafetensorsHeader h, ReadSafetensorsHeader(shard_path));
    // A tensor stored in a shard other than the one the index names would silently be a duplicate.
    std::set<std::string> mapped(names.begin(), names.end());
    for (const SafetensorsEntry& e : h.tensors) {
      if (!mapped.count(e.name)) {
        auto wm = j["weight_map"];
        if (!wm.contains(e.name))
          return Status::Errorf("{}: tensor '{}' is in shard {} but missing from the index weight_map", index_path,
                                e.name, shard);
        return Status::Errorf("{}: tensor '{}' is in shard {} but the index maps it to {}", index_path, e.name, shard,
                              wm[e.name].get<std::string>());
      }
    }
    QL_ASSIGN_OR_RETURN(auto part, ReadSafetensors(shard_path, &names, info));
    for (auto& [name, t] : part) out.emplace(name, std::move(t));
  }
  return out;
}

Status WriteSafetensors(const std::string& path, const std::map<std::string, Tensor>& tensors, FloatDtype dtype,
                        const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t at = 0;
  for (const auto& [name, t] : tensors) {
    QL_CHECK(int64_t(t.data.size()) == t.numel(), "tensor {} holds {} values for shape {}", name, t.data.size(),
             ShapeString(t.shape));
    const uint64_t bytes = uint64_t(t.numel()) * FloatDtypeBytes(dtype);
    header[name] = {{"dtype", FloatDtypeName(dtype)}, {"shape", t.shape}, {"data_offsets", {at, at + bytes}}};
    at += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data buffer starts 8-byte aligned
  FileWriter w;
  QL_RETURN_IF_ERROR(w.Open(path));
  w.WritePod(uint64_t(text.size()));
  w.Write(text.data(), text.size());
  std::vector<uint8_t> buf;
  for (const auto& [name, t] : tensors) {  // std::map order = the order offsets were assigned
    buf.clear();
    EncodeFloats(t.data.data(), t.numel(), dtype, &buf);
    w.Write(buf.data(), buf.size());
  }
  return w.Close();
}

Status WriteSafetensorsSharded(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                               FloatDtype dtype, uint64_t max_shard_bytes) {
  std::vector<std::map<std::string, Tensor>> shards(1);
  uint64_t in_shard = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t bytes = uint64_t(t.numel()) * FloatDtypeBytes(dtype);
    if (in_shard > 0 && in_shard + bytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().emplace(name, t);
    in_shard += bytes;
  }
  json weight_map = json::object();
  uint64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    QL_RETURN_IF_ERROR(WriteSafetensors((std::filesystem::path(dir) / file).string(), shards[i], dtype));
    for (const auto& [name, t] : shards[i]) {
      weight_map[name] = file;
      total += uint64_t(t.numel()) * FloatDtypeBytes(dtype);
    }
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  return WriteTextFile((std::filesystem::path(dir) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace ql::io
