// Interop test helper: two GGUF files compared tensor by tensor (by name: type, shape, data bytes) and
// key by key (metadata), for the tests that check `quantlab export` against llama-quantize.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "harness/io/gguf.h"

namespace ql::interop {

struct GgufComparison {
  int tensors = 0;                                // reference tensors with a same-typed counterpart
  int identical = 0;                              // of those, byte-identical data
  int64_t bytes = 0;                              // data bytes of the `tensors`
  std::map<std::string, int> identical_by_type;   // "q4_0" -> count
  std::string meta_diff;                          // " key: quantlab a vs llama b" ..., empty when equal
};

inline std::vector<uint8_t> TensorBytes(const io::GgufFile& f, const io::GgufTensorInfo& t) {
  std::ifstream in(f.path, std::ios::binary);
  in.seekg(std::streamoff(f.data_start + t.offset));
  std::vector<uint8_t> b(t.nbytes);
  in.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size()));
  return b;
}

// A missing tensor, a different type or shape and different data are test failures; the metadata
// differences are only listed (the tools write different provenance keys).
inline GgufComparison CompareGgufFiles(const std::string& ours_path, const std::string& theirs_path) {
  GgufComparison c;
  StatusOr<io::GgufFile> ours = io::ReadGgufHeader(ours_path), theirs = io::ReadGgufHeader(theirs_path);
  EXPECT_TRUE(ours.ok() && theirs.ok()) << ours_path << " / " << theirs_path;
  if (!ours.ok() || !theirs.ok()) return c;
  std::map<std::string, const io::GgufTensorInfo*> by_name;
  for (const io::GgufTensorInfo& t : ours->tensors) by_name[t.name] = &t;
  EXPECT_EQ(ours->tensors.size(), theirs->tensors.size());
  for (const io::GgufTensorInfo& t : theirs->tensors) {
    auto it = by_name.find(t.name);
    if (it == by_name.end()) {
      ADD_FAILURE() << t.name << " missing from " << ours_path;
      continue;
    }
    EXPECT_EQ(io::GgmlTypeName(it->second->type), io::GgmlTypeName(t.type)) << t.name;
    EXPECT_EQ(it->second->ne, t.ne) << t.name;
    if (it->second->type != t.type) continue;
    const bool same = TensorBytes(*ours, *it->second) == TensorBytes(*theirs, t);
    EXPECT_TRUE(same) << t.name << " (" << io::GgmlTypeName(t.type) << ") data differs";
    if (same) ++c.identical_by_type[io::GgmlTypeName(t.type)];
    c.identical += same;
    ++c.tensors;
    c.bytes += int64_t(t.nbytes);
  }
  std::map<std::string, std::string> a, b;
  for (const auto& [k, v] : ours->kv) a[k] = v.ToString(4);
  for (const auto& [k, v] : theirs->kv) b[k] = v.ToString(4);
  for (const auto& [k, v] : b) {
    if (!a.count(k)) c.meta_diff += fmt::format(" only-llama:{}={}", k, v);
    else if (a[k] != v) c.meta_diff += fmt::format(" {}: quantlab {} vs llama {}", k, a[k], v);
  }
  for (const auto& [k, v] : a)
    if (!b.count(k)) c.meta_diff += fmt::format(" only-quantlab:{}={}", k, v);
  return c;
}

}  // namespace ql::interop
