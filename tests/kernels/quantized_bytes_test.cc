// QuantizedBytes (the storage of a scheme on a shape, without quantizing) against the bytes Quantize
// really packs, for every registered block codec and a spread of element schemes, on shapes with
// partial blocks, partial groups and partial 2-D tiles.
#include "kernels/quantizer.h"

#include <random>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "kernels/format.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

std::vector<float> Values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  return x;
}

// [rows, cols]: whole and partial 32/256-blocks, one element, a single row, an odd column count.
const std::pair<int64_t, int64_t> kShapes[] = {{9, 70}, {1, 1}, {3, 273}, {2, 512}, {5, 33}, {1, 768}, {17, 256}};

// Checks every shape Quantize accepts; returns how many it compared.
int CompareOnShapes(const std::string& text) {
  StatusOr<Scheme> s = ParseScheme(text);
  EXPECT_TRUE(s.ok()) << text << ": " << s.status().message();
  if (!s.ok()) return 0;
  int compared = 0;
  for (const auto& [rows, cols] : kShapes) {
    const std::vector<float> x = Values(rows * cols, uint32_t(rows * 1000 + cols));
    StatusOr<QuantizedTensor> q = Quantize(*s, x.data(), rows, cols);
    if (!q.ok()) continue;  // a shape the scheme rejects (e.g. a fixed block wider than the row) has no storage
    StatusOr<int64_t> b = QuantizedBytes(*s, rows, cols);
    EXPECT_TRUE(b.ok()) << text;
    if (b.ok()) {
      EXPECT_EQ(*b, int64_t(q->Bytes())) << text << " on [" << rows << ", " << cols << "]";
    }
    ++compared;
  }
  return compared;
}

TEST(QuantizedBytes, EveryBlockCodecMatchesWhatQuantizePacks) {
  int n = 0;
  for (const BlockCodec* c : BlockCodecs()) {
    const int compared = CompareOnShapes(c->name());
    EXPECT_GT(compared, 0) << c->name() << ": no shape was accepted, nothing was compared";
    n += compared;
  }
  // Options that change the layout: block size, NF4 double quantization, the NVFP4 convention.
  for (const char* t : {"mxfp4:g16", "mxfp8_e4m3:g64", "nf4:dq", "nf4:g32:dq", "nf4:g128", "nvfp4:ct", "nvfp4:g32"}) {
    if (!ParseScheme(t).ok()) continue;  // a codec this build does not register
    n += CompareOnShapes(t);
  }
  EXPECT_GT(n, int(BlockCodecs().size()));
}

TEST(QuantizedBytes, ElementSchemesMatchWhatQuantizePacks) {
  std::vector<std::string> schemes = {"bf16", "fp16", "fp8_e4m3:noscale", "int8:noscale", "int4:noscale"};
  for (const char* g : {"tensor", "channel", "channel_in", "g32", "g48", "b4x16", "token"})
    for (const char* f : {"int2", "int3", "int4", "int5", "int8", "fp8_e4m3", "fp4_e2m1", "e3m4"})
      for (const char* tail : {"", ":asym", ":s=fp16", ":s=e8m0", ":asym:s=bf16"}) {
        const std::string t = fmt::format("{}:{}{}", f, g, tail);
        if (ParseScheme(t).ok()) schemes.push_back(t);  // float formats have no asym mode
      }
  ASSERT_GT(schemes.size(), size_t(150));
  for (const std::string& t : schemes) EXPECT_EQ(CompareOnShapes(t), int(std::size(kShapes))) << t;
}

TEST(QuantizedBytes, BadShapeIsAnError) {
  StatusOr<int64_t> b = QuantizedBytes(*ParseScheme("int4:g32"), -1, 32);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("bad shape"), std::string::npos) << b.status().message();
}

}  // namespace
}  // namespace ql
