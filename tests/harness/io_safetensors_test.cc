// safetensors tests: a file assembled byte by byte from docs/formats.md §5.1, writer output checked at the byte
// level, every header check of the spec as a bad file, and sharded checkpoints via the index.
#include "harness/io/safetensors.h"

#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io_testing.h"

namespace ql {
namespace {

using testing::TempDir;

// u64 header length | header | data.
std::string Assemble(const std::string& header, const std::string& data) {
  std::string b(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  return b + header + data;
}
template <typename T>
std::string Bytes(std::initializer_list<T> v) {
  std::string s(v.size() * sizeof(T), '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

TEST(IoSafetensors, ReadsHandAssembledFile) {
  TempDir tmp;
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[],"data_offsets":[12,14]},)"
      R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[14,14]}})";
  // a = {1.5, -2}; b = fp16 {0x3C00 = 1, 0xC000 = -2}; c = bf16 0x3EAB = 0.333984375 (0.0101010112 x 2^-1).
  const std::string data = Bytes<float>({1.5f, -2.0f}) + Bytes<uint16_t>({0x3C00, 0xC000}) + Bytes<uint16_t>({0x3EAB});
  testing::WriteBytes(tmp / "a.safetensors", Assemble(header, data));
  auto h = io::ReadSafetensorsHeader(tmp / "a.safetensors");
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->data_start, 8 + header.size());
  auto t = io::ReadSafetensors(tmp / "a.safetensors");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->at("a").data, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(t->at("b").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(t->at("b").data, (std::vector<float>{1.0f, -2.0f}));
  EXPECT_TRUE(t->at("c").shape.empty());
  EXPECT_EQ(t->at("c").data, (std::vector<float>{0.333984375f}));
  EXPECT_EQ(t->at("e").data.size(), 0u);
}

TEST(IoSafetensors, WriterLayoutByteLevel) {
  TempDir tmp;
  std::map<std::string, Tensor> w;
  w["x"] = Tensor{{3}, {1.0f / 3.0f, -1.0f, 65504.0f}};
  w["y"] = Tensor{{1, 1}, {2.0f}};
  ASSERT_TRUE(io::WriteSafetensors(tmp / "w.safetensors", w, io::FloatDtype::kF16, {{"k", "v"}}).ok());
  const std::string b = testing::ReadBytes(tmp / "w.safetensors");
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // padded so the buffer is 8-byte aligned
  EXPECT_EQ(b[8], '{');
  const std::string header = b.substr(8, n);
  EXPECT_EQ(header.substr(header.rfind('}') + 1), std::string(n - header.rfind('}') - 1, ' '));  // pad = spaces
  auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["k"], "v");
  EXPECT_EQ(j["x"]["dtype"], "F16");
  EXPECT_EQ(j["x"]["data_offsets"], nlohmann::json({0, 6}));
  EXPECT_EQ(j["y"]["data_offsets"], nlohmann::json({6, 8}));
  ASSERT_EQ(b.size(), 8 + n + 8);
  uint16_t h[4];
  std::memcpy(h, b.data() + 8 + n, 8);
  EXPECT_EQ(h[0], 0x3555);  // 1/3 in fp16: 0.0101010101 x 2^-2, RNE
  EXPECT_EQ(h[1], 0xBC00);
  EXPECT_EQ(h[2], 0x7BFF);
  EXPECT_EQ(h[3], 0x4000);
  auto back = io::ReadSafetensors(tmp / "w.safetensors");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->at("x").data[0], F16ToF32(0x3555));
}

TEST(IoSafetensors, BadFilesGiveClearErrors) {
  TempDir tmp;
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8(8, '\0');
  struct Case {
    const char* name;
    std::string bytes;
    std::vector<std::string> want;
  };
  std::string huge(8, '\0');
  const uint64_t big = 200u * 1000u * 1000u;
  std::memcpy(huge.data(), &big, 8);
  std::string longer = Assemble("{" + ok_entry + "}", data8);
  const uint64_t claim = 4096;
  std::memcpy(longer.data(), &claim, 8);
  const std::vector<Case> cases = {
      {"short", "abc", {"truncated", "header length"}},
      {"huge", huge + "{}", {"100 MB"}},
      {"longer", longer, {"truncated", "4096"}},
      {"notbrace", Assemble("[1,2]   ", ""), {"start with '{'"}},
      {"badjson", Assemble("{\"a\": ", ""), {"not valid JSON"}},
      {"gap", Assemble(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8), {"gap", "'a'"}},
      {"overlap",
       Assemble(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                data8),
       {"overlap"}},
      {"tail", Assemble("{" + ok_entry + "}", data8 + "xxxx"), {"4 bytes after the last tensor"}},
      {"shortdata", Assemble("{" + ok_entry + "}", "1234"), {"truncated"}},
      {"size", Assemble(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8), {"'a'", "needs 12 bytes"}},
      {"dtype", Assemble(R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", data8), {"unknown dtype 'F17'"}},
      {"dup", Assemble("{" + ok_entry + "," + ok_entry + "}", data8), {"'a' appears twice"}},
      {"negshape", Assemble(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8), {"non-negative"}},
      {"offsets", Assemble(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data8), {"end before begin"}},
      {"meta", Assemble(R"({"__metadata__":{"x":1},)" + ok_entry + "}", data8), {"__metadata__['x']"}},
      {"int", Assemble(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", data8), {"I32", "only F32"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = tmp / (std::string(c.name) + ".safetensors");
    testing::WriteBytes(p, c.bytes);
    std::vector<std::string> want = c.want;
    want.push_back(p);
    auto r = io::ReadSafetensors(p);
    ASSERT_FALSE(r.ok());
    for (const std::string& s : want)
      EXPECT_NE(r.status().message().find(s), std::string::npos) << r.status().message() << " lacks " << s;
  }
}

TEST(IoSafetensors, ShardedIndex) {
  TempDir tmp;
  std::map<std::string, Tensor> w;
  for (int i = 0; i < 5; ++i) {
    Tensor t{{10, 10}, std::vector<float>(100)};
    for (int k = 0; k < 100; ++k) t.data[k] = i * 1000 + k + 0.125f;
    w[fmt::format("t{}", i)] = t;
  }
  ASSERT_TRUE(io::WriteSafetensorsSharded(tmp.str(), w, io::FloatDtype::kF32, 900).ok());  // 2 tensors per shard
  EXPECT_TRUE(std::filesystem::exists(tmp / "model-00003-of-00003.safetensors"));
  io::CheckpointInfo info;
  auto back = io::ReadSafetensorsIndex(tmp / "model.safetensors.index.json", &info);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(info.files.size(), 3u);
  ASSERT_EQ(back->size(), 5u);
  for (const auto& [name, t] : w) EXPECT_EQ(back->at(name).data, t.data) << name;

  // The index names a tensor that its shard does not hold / a missing shard / a tensor it does not list.
  auto index = nlohmann::json::parse(testing::ReadBytes(tmp / "model.safetensors.index.json"));
  auto rewrite = [&](const nlohmann::json& j) {
    testing::WriteBytes(tmp / "model.safetensors.index.json", j.dump());
    return tmp / "model.safetensors.index.json";
  };
  {
    auto j = index;
    j["weight_map"]["t9"] = "model-00001-of-00003.safetensors";
    QL_EXPECT_ERROR(io::ReadSafetensorsIndex(rewrite(j)), "'t9'", "model-00001-of-00003.safetensors");
  }
  {
    auto j = index;
    j["weight_map"]["t0"] = "model-00009-of-00009.safetensors";
    j["weight_map"].erase("t1");
    QL_EXPECT_ERROR(io::ReadSafetensorsIndex(rewrite(j)), "model-00009-of-00009.safetensors", "cannot open");
  }
  {
    auto j = index;
    j["weight_map"].erase("t1");
    QL_EXPECT_ERROR(io::ReadSafetensorsIndex(rewrite(j)), "'t1'", "missing from the index");
  }
  {
    auto j = index;
    j.erase("weight_map");
    QL_EXPECT_ERROR(io::ReadSafetensorsIndex(rewrite(j)), "weight_map");
  }
  testing::WriteBytes(tmp / "model.safetensors.index.json", "{not json");
  QL_EXPECT_ERROR(io::ReadSafetensorsIndex(tmp / "model.safetensors.index.json"), "index.json", "not valid JSON");
}

}  // namespace
}  // namespace ql
