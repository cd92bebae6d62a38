// Tests for the quantized GGUF export (harness/io/gguf_export.h) on stories260K.gguf (dim 64, hidden 172):
// types per tensor, carried-over metadata, the written blocks equal to the codec's, the refusal that lists
// the offending tensors, and a llama.cpp mix with its F16 fallback for rows of 172 (not whole 32-blocks).
#include "harness/io/gguf_export.h"
#include "tests/temp_dir.h"
#include "tests/test_paths.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "harness/io/gguf.h"
#include "harness/quant/llama_mixes.h"
#include "kernels/gguf_blocks.h"

namespace ql::io {
namespace {

const std::string kStories = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.gguf";

// Files of this process only: two suites running at once (two worktrees) must not share paths.
std::string TmpPath(const std::string& name) {
  static const qltest::TempDir dir("ql_gguf_export_test");
  return dir.sub(name);
}

GgufTypeChooser Fixed(const std::string& scheme) {
  return [scheme](const std::string&, int64_t, int64_t) -> StatusOr<std::string> { return scheme; };
}

std::vector<uint8_t> Bytes(const GgufFile& f, const GgufTensorInfo& t) {
  std::ifstream in(f.path, std::ios::binary);
  in.seekg(std::streamoff(f.data_start + t.offset));
  std::vector<uint8_t> b(t.nbytes);
  in.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size()));
  return b;
}

TEST(GgufExport, Q8_0RefusesRowsThatAreNotWholeBlocksAndListsThem) {
  StatusOr<Model> m = ReadGguf(kStories);
  ASSERT_TRUE(m.ok()) << m.status().message();
  GgufExportOptions opt;
  opt.type_of = Fixed("q8_0");
  const Status st = ExportGguf(TmpPath("refused.gguf"), *m, opt);
  ASSERT_FALSE(st.ok());
  // The five down_proj weights have rows of 172 columns.
  EXPECT_NE(st.message().find("5 tensor(s)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("model.layers.0.mlp.down_proj.weight (q8_0: rows of 172"), std::string::npos);
  opt.type_of = Fixed("int4:g32");
  const Status bad = ExportGguf(TmpPath("refused.gguf"), *m, opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("no GGUF type"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("and 30 more"), std::string::npos) << bad.message();  // 36 2-D weights
  EXPECT_EQ(bad.message().find('\n'), std::string::npos);
  EXPECT_EQ(GgufTypeOfScheme("q8_k"), -1);  // an activation format, not a weight type
}

TEST(GgufExport, LlamaMixCarriesMetadataAndWritesTheCodecsBytes) {
  StatusOr<Model> m = ReadGguf(kStories);
  StatusOr<GgufFile> src = ReadGgufHeader(kStories);
  ASSERT_TRUE(m.ok() && src.ok());
  GgufExportOptions opt;
  opt.file_type = uint32_t(LlamaMixFileType("Q8_0"));
  opt.source = &*src;
  const ModelConfig cfg = m->config;
  opt.type_of = [cfg](const std::string& hf, int64_t rows, int64_t cols) {
    return LlamaMixScheme("Q8_0", cfg, hf, rows, cols);
  };
  const std::string out = TmpPath("stories-q8_0.gguf");
  ASSERT_TRUE(ExportGguf(out, *m, opt).ok());
  StatusOr<GgufFile> f = ReadGgufHeader(out);
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::map<std::string, int> types;
  for (const GgufTensorInfo& t : f->tensors) ++types[GgmlTypeName(t.type)];
  // 5 layers × 6 linears in Q8_0 + tied token_embd (output rule: Q8_0); 5 down_proj fall back to F16
  // (172 is not a multiple of 32); the 11 norms stay F32.
  EXPECT_EQ(types, (std::map<std::string, int>{{"q8_0", 31}, {"f16", 5}, {"f32", 11}}));
  EXPECT_EQ(f->Find("general.file_type")->u, 7u);
  EXPECT_EQ(f->Find("general.quantization_version")->u, 2u);
  for (const auto& [k, v] : src->kv) {  // everything else verbatim
    if (k == "general.file_type" || k == "general.quantization_version") continue;
    ASSERT_NE(f->Find(k), nullptr) << k;
    EXPECT_EQ(f->Find(k)->ToString(1000), v.ToString(1000)) << k;
  }
  // The blocks are the codec's (QuantizeGgmlRow) on the model's weights, row by row.
  for (const GgufTensorInfo& t : f->tensors) {
    if (t.name != "blk.2.attn_q.weight") continue;
    const Tensor& w = m->W("model.layers.2.self_attn.q_proj.weight");
    std::vector<uint8_t> want;
    for (int64_t r = 0; r < w.rows(); ++r) {
      StatusOr<std::vector<uint8_t>> row = QuantizeGgmlRow(8, w.data.data() + r * w.cols(), w.cols());
      ASSERT_TRUE(row.ok());
      want.insert(want.end(), row->begin(), row->end());
    }
    EXPECT_EQ(Bytes(*f, t), want);
  }
  // And quantlab reads its own export back (dequantized Q8_0 is within half a step of the original).
  StatusOr<Model> back = ReadGguf(out);
  ASSERT_TRUE(back.ok()) << back.status().message();
  const Tensor& a = m->W("model.layers.2.mlp.up_proj.weight");
  const Tensor& b = back->W("model.layers.2.mlp.up_proj.weight");
  ASSERT_EQ(a.data.size(), b.data.size());
  for (size_t i = 0; i < a.data.size(); ++i) ASSERT_NEAR(a.data[i], b.data[i], 0.01f) << i;
  std::remove(out.c_str());
}

}  // namespace
}  // namespace ql::io
