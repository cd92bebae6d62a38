// End-to-end test of `quantlab inspect` on stories260K: config and tensor list from the JSON output,
// and the size estimates against byte counts worked out by hand from the README's shapes.
#include <sys/wait.h>
#include "tests/test_paths.h"

#include <cstdio>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"
#include <nlohmann/json.hpp>

namespace {

const std::string kModels = std::string(QL_SHARED_DIR) + "/models/stories260K/";

using InspectRun = qltest::CommandResult;
InspectRun Inspect(const std::string& args) {
  return qltest::RunCommand(std::string("'") + QL_QUANTLAB_BIN + "' inspect " + args + " 2>&1");
}

TEST(InspectCliTest, Stories260KBin) {
  const InspectRun r = Inspect(kModels + "stories260K.bin --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "llama2.c v0");
  EXPECT_EQ(j["config"]["dim"], 64);
  EXPECT_EQ(j["config"]["n_kv_heads"], 4);
  EXPECT_EQ(j["config"]["tied_embeddings"], true);
  EXPECT_EQ(j["parameters"], 260032);  // README: 264128 floats minus the two RoPE tables (512 x 8)
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 512);
  // emb, 5 x (rms_att wq wk wv wo rms_ffn w1 w2 w3), rms_final, freq_cis_real, freq_cis_imag
  EXPECT_EQ(j["tensors"].size(), 1u + 5u * 9u + 1u + 2u);
  EXPECT_EQ(j["stored_tensor_bytes"], 4 * 264128);
  // Per layer the linear weights are q [64,64], k/v [32,64], o [64,64], gate/up [172,64], down [64,172]:
  // 45312 weights x 5 layers = 226560; the other 33472 parameters (embedding, norms) stay bf16 = 66944 B.
  //   int4 g128 fp16: 226560/2 + 2 B x (64+32+32+64+172+172+64*2) groups x 5 = 113280 + 6640 -> 186864
  //   nf4 (64-blocks of 36 B, down rows padded to 192): 36 x (64+32+32+64+172+172+64*3) x 5 = 131040 -> 197984
  //   mxfp4 (32-blocks of 17 B): 17 x (128+64+64+128+344+344+64*6) x 5 = 123760 -> 190704
  std::map<std::string, uint64_t> bytes;
  for (const auto& e : j["size_estimates"]) bytes[e["scheme"]] = e["bytes"];
  EXPECT_EQ(bytes["bf16"], 520064u);
  EXPECT_EQ(bytes["fp8_e4m3:tensor"], 226560u + 35u * 4u + 66944u);
  EXPECT_EQ(bytes["int8:channel:s=fp16"], 226560u + 2u * (64 + 32 + 32 + 64 + 172 + 172 + 64) * 5u + 66944u);
  EXPECT_EQ(bytes["int4:g128:s=fp16"], 186864u);
  EXPECT_EQ(bytes["nf4"], 197984u);
  EXPECT_EQ(bytes["mxfp4"], 190704u);
}

TEST(InspectCliTest, GgufTextAndBadPath) {
  const InspectRun ok = Inspect(kModels + "stories260K.gguf");
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(ok.out.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos);
  const InspectRun bad = Inspect(kModels + "tok512.bin");  // a tokenizer, not a model
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("quantlab inspect: "), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("tok512.bin"), std::string::npos) << bad.out;
}

}  // namespace
