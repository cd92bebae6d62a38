// llama.cpp imatrix files (harness/io/imatrix.h): both layouts round-trip, a hand-assembled legacy .dat reads
// as its bytes say, llama-quantize's normalization (sum / count, legacy value / ncall, count 0 -> 1), and
// hostile files (every truncation, huge claimed sizes, bad values, missing tensors or keys) give a Status.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "harness/io/gguf.h"
#include "harness/io/imatrix.h"
#include "tests/harness/io_testing.h"

namespace ql {
namespace {
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;

// Two dense weights and one with two matrices, one of them without data (count 0).
io::Imatrix Sample() {
  io::Imatrix m;
  m.entries["blk.0.attn_q.weight"] = {{2.0f, 8.0f, 0.5f}, {4}};
  m.entries["blk.0.ffn_down.weight"] = {{1.0f, 3.0f, 6.0f, 9.0f}, {6}};
  m.entries["blk.0.ffn_up_exps.weight"] = {{4.0f, 2.0f, 0.0f, 0.0f}, {2, 0}};
  m.datasets = {"calib.txt"};
  m.chunk_count = 1;
  m.chunk_size = 4;
  return m;
}

void ExpectSame(const io::Imatrix& a, const io::Imatrix& b) {
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (const auto& [name, e] : a.entries) {
    ASSERT_TRUE(b.entries.count(name)) << name;
    EXPECT_EQ(e.sums, b.entries.at(name).sums) << name;
    EXPECT_EQ(e.counts, b.entries.at(name).counts) << name;
  }
  EXPECT_EQ(a.datasets, b.datasets);
  EXPECT_EQ(a.chunk_count, b.chunk_count);
  EXPECT_EQ(a.chunk_size, b.chunk_size);
  EXPECT_EQ(a.legacy, b.legacy);
}

std::string Le32(int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string F32(float v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

TEST(ImatrixFile, GgufRoundTripAndLayout) {
  TempDir d;
  const io::Imatrix m = Sample();
  ASSERT_TRUE(io::WriteImatrixGguf(d / "m.gguf", m).ok());
  StatusOr<io::Imatrix> back = io::ReadImatrix(d / "m.gguf");
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectSame(m, *back);
  // The tensors llama-imatrix writes: in_sum2 [in] (or [in, n_mat]) then counts [1] ([1, n_mat]), name order.
  StatusOr<io::GgufFile> f = io::ReadGgufHeader(d / "m.gguf");
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->tensors.size(), 6u);
  EXPECT_EQ(f->tensors[0].name, "blk.0.attn_q.weight.in_sum2");
  EXPECT_EQ(f->tensors[0].ne, (std::vector<uint64_t>{3}));
  EXPECT_EQ(f->tensors[1].name, "blk.0.attn_q.weight.counts");
  EXPECT_EQ(f->tensors[1].ne, (std::vector<uint64_t>{1}));
  EXPECT_EQ(f->tensors[4].ne, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(f->tensors[5].ne, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(f->Find("general.type")->s, "imatrix");
  EXPECT_EQ(f->Find("imatrix.chunk_size")->u, 4u);
}

TEST(ImatrixFile, ImportanceIsSumOverCount) {
  const io::Imatrix m = Sample();
  const auto imp = io::ImatrixImportances(m);
  EXPECT_EQ(imp.at("blk.0.attn_q.weight"), (std::vector<float>{0.5f, 2.0f, 0.125f}));
  EXPECT_EQ(imp.at("blk.0.ffn_down.weight"), (std::vector<float>{1.0f / 6, 0.5f, 1.0f, 1.5f}));
  EXPECT_EQ(imp.at("blk.0.ffn_up_exps.weight"), (std::vector<float>{2.0f, 1.0f, 1.0f, 1.0f}));  // count 0: 1s
}

TEST(ImatrixFile, DatFromGgufLayoutAsLlamaImatrixWritesIt) {
  TempDir d;
  const io::Imatrix m = Sample();
  ASSERT_TRUE(io::WriteImatrixDat(d / "m.dat", m).ok());
  // attn_q: count 4, chunk 4 -> ncall 1, values sum / 4 · 1; ffn_down: count 6 -> ncall ceil(6/4) = 2.
  std::string expect = Le32(3);
  expect += Le32(19) + "blk.0.attn_q.weight" + Le32(1) + Le32(3) + F32(0.5f) + F32(2.0f) + F32(0.125f);
  expect += Le32(21) + "blk.0.ffn_down.weight" + Le32(2) + Le32(4);
  for (float v : {1.0f, 3.0f, 6.0f, 9.0f}) expect += F32((v / 6.0f) * 2.0f);
  expect += Le32(24) + "blk.0.ffn_up_exps.weight" + Le32(1) + Le32(4) + F32(2.0f) + F32(1.0f) + F32(1.0f) + F32(1.0f);
  expect += Le32(1) + Le32(9) + "calib.txt";
  EXPECT_EQ(ReadBytes(d / "m.dat"), expect);
  StatusOr<io::Imatrix> back = io::ReadImatrix(d / "m.dat");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->legacy);
  EXPECT_EQ(back->chunk_count, 1);
  EXPECT_EQ(back->datasets, (std::vector<std::string>{"calib.txt"}));
  EXPECT_EQ(back->entries.at("blk.0.ffn_down.weight").counts, (std::vector<int64_t>{2}));
  // llama-quantize divides the stored values by ncall.
  const auto imp = io::ImatrixImportances(*back);
  EXPECT_EQ(imp.at("blk.0.attn_q.weight"), (std::vector<float>{0.5f, 2.0f, 0.125f}));
  EXPECT_EQ(imp.at("blk.0.ffn_down.weight")[3], (9.0f / 6.0f) * 2.0f / 2.0f);
  // A legacy imatrix is written back byte for byte; as GGUF it is refused (no token counts).
  ASSERT_TRUE(io::WriteImatrixDat(d / "again.dat", *back).ok());
  EXPECT_EQ(ReadBytes(d / "again.dat"), expect);
  EXPECT_FALSE(io::WriteImatrixGguf(d / "x.gguf", *back).ok());
}

TEST(ImatrixFile, DatWithoutTrailerReads) {
  TempDir d;
  WriteBytes(d / "t.dat", Le32(1) + Le32(1) + "w" + Le32(3) + Le32(2) + F32(3.0f) + F32(6.0f));
  StatusOr<io::Imatrix> m = io::ReadImatrix(d / "t.dat");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->chunk_count, 0);
  EXPECT_TRUE(m->datasets.empty());
  EXPECT_EQ(io::ImatrixImportances(*m).at("w"), (std::vector<float>{1.0f, 2.0f}));
}

TEST(ImatrixFile, EveryTruncationIsAnError) {
  TempDir d;
  const io::Imatrix m = Sample();
  ASSERT_TRUE(io::WriteImatrixDat(d / "m.dat", m).ok());
  ASSERT_TRUE(io::WriteImatrixGguf(d / "m.gguf", m).ok());
  for (const char* name : {"m.dat", "m.gguf"}) {
    const std::string bytes = ReadBytes(d / name);
    const bool dat = std::string(name) == "m.dat";
    // A .dat cut exactly after the last entry is valid (the trailer is optional): skip that length. A GGUF
    // cut inside the alignment padding after the last tensor's data is complete.
    const size_t entries_end = bytes.size() - 4 - 4 - 9;
    size_t end = bytes.size();
    if (!dat) {
      StatusOr<io::GgufFile> f = io::ReadGgufHeader(d / name);
      ASSERT_TRUE(f.ok());
      end = f->data_start + f->tensors.back().offset + f->tensors.back().nbytes;
    }
    for (size_t n = 0; n < end; ++n) {
      if (dat && n == entries_end) continue;
      WriteBytes(d / "cut", bytes.substr(0, n));
      EXPECT_FALSE(io::ReadImatrix(d / "cut").ok()) << name << " cut at " << n;
    }
  }
}

TEST(ImatrixFile, HostileDatFieldsAreErrors) {
  TempDir d;
  auto check = [&](const std::string& bytes, const std::string& needle) {
    WriteBytes(d / "h.dat", bytes);
    StatusOr<io::Imatrix> m = io::ReadImatrix(d / "h.dat");
    ASSERT_FALSE(m.ok()) << needle;
    EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status().message();
  };
  const std::string entry = Le32(1) + "w" + Le32(1) + Le32(1) + F32(1.0f);
  check(Le32(0x7fffffff) + entry, "entries claimed");
  check(Le32(0) + entry, "entries claimed");
  check(Le32(1) + Le32(0x7fffffff) + "w" + Le32(1) + Le32(1) + F32(1.0f), "claims");
  check(Le32(1) + Le32(1) + "w" + Le32(1) + Le32(0x40000000) + F32(1.0f), "claims 1073741824 values");
  check(Le32(1) + Le32(1) + "w" + Le32(1) + Le32(-5) + F32(1.0f), "claims -5 values");
  check(Le32(1) + Le32(1) + "w" + Le32(-1) + Le32(1) + F32(1.0f), "ncall -1");
  check(Le32(1) + Le32(1) + "w" + Le32(1) + Le32(1) + F32(-1.0f), "finite and >= 0");
  check(Le32(1) + Le32(1) + "w" + Le32(1) + Le32(1) + F32(NAN), "finite and >= 0");
  check(Le32(2) + entry + entry, "appears twice");
  check(Le32(1) + entry + Le32(1) + Le32(1) + "xJUNK", "bytes after");
}

TEST(ImatrixFile, HostileGgufContentsAreErrors) {
  TempDir d;
  auto blob = [](std::string name, std::vector<uint64_t> ne, uint32_t type, std::vector<float> v) {
    io::GgufTensorBlob b{std::move(name), std::move(ne), type, {}};
    b.data.resize(v.size() * 4);
    std::memcpy(b.data.data(), v.data(), b.data.size());
    return b;
  };
  const std::vector<std::pair<std::string, io::GgufValue>> meta = {
      {"imatrix.datasets", io::GgufValue::Array(io::GgufType::kString, {io::GgufValue::Str("t")})},
      {"imatrix.chunk_count", io::GgufValue::U32(1)},
      {"imatrix.chunk_size", io::GgufValue::U32(4)}};
  auto check = [&](const std::vector<std::pair<std::string, io::GgufValue>>& kv,
                   const std::vector<io::GgufTensorBlob>& t, const std::string& needle) {
    ASSERT_TRUE(io::WriteGgufFile(d / "h.gguf", kv, t).ok());
    StatusOr<io::Imatrix> m = io::ReadImatrix(d / "h.gguf");
    ASSERT_FALSE(m.ok()) << needle;
    EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status().message();
  };
  const auto sums = blob("w.in_sum2", {2}, 0, {1, 2});
  const auto counts = blob("w.counts", {1}, 0, {4});
  ASSERT_TRUE(io::WriteGgufFile(d / "ok.gguf", meta, {sums, counts}).ok());
  ASSERT_TRUE(io::ReadImatrix(d / "ok.gguf").ok());
  check(meta, {sums}, "no counts");
  check(meta, {counts}, "no in_sum2");
  check(meta, {sums, blob("w.counts", {2}, 0, {4, 4})}, "do not fit");
  check(meta, {sums, blob("w.counts", {1}, 0, {-4})}, "finite and >= 0");
  check(meta, {sums, blob("w.counts", {1}, 0, {1e30f})}, "1e15");
  check(meta, {blob("w.in_sum2", {2}, 0, {1, INFINITY}), counts}, "finite and >= 0");
  io::GgufTensorBlob f16{"w.in_sum2", {2}, 1, {0, 0, 0, 0}};
  check(meta, {f16, counts}, "must be f32");
  check(meta, {blob("x.other", {1}, 0, {1})}, "no data");
  check({meta[0], meta[1]}, {sums, counts}, "imatrix.chunk_size");
  check({meta[1], meta[2]}, {sums, counts}, "imatrix.datasets");
  check({meta[0], meta[1], {"imatrix.chunk_size", io::GgufValue::I32(-3)}}, {sums, counts}, "[0, 2^31)");
}

}  // namespace
}  // namespace ql
