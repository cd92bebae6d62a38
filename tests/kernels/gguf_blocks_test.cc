// Tests for the GGUF / ggml block quants (kernels/gguf_blocks.h, docs/formats.md §4): hand-computed blocks, golden
// fixtures produced by ggml's own C reference and cross-checked with gguf-py (tests/data/gguf/README.md),
// K-quant scale packing, partial last blocks, and table-driven error/determinism checks over all codecs.
#include "kernels/gguf_blocks.h"
#include "tests/test_paths.h"

#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/half.h"
#include "tests/kernels/hwy_targets.h"

namespace ql {
namespace {

using gguf::BlockQ4_0;
using gguf::BlockQ4_1;
using gguf::BlockQ4_K;
using gguf::BlockQ5_0;
using gguf::BlockQ5_1;
using gguf::BlockQ6_K;
using gguf::BlockQ8_0;

std::vector<uint8_t> ReadFixture(const std::string& name) {
  const std::string path = std::string(QL_SOURCE_DIR) + "/tests/data/gguf/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
std::vector<float> ReadF32(const std::string& name) {
  std::vector<uint8_t> b = ReadFixture(name);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}
template <typename Block>
std::vector<uint8_t> Bytes(const Block& b) {
  std::vector<uint8_t> v(sizeof(Block));
  std::memcpy(v.data(), &b, sizeof(Block));
  return v;
}
std::vector<uint8_t> Hex(const std::string& s) {  // "00 80 88" -> bytes
  std::vector<uint8_t> v;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == ' ') { ++i; continue; }
    v.push_back(uint8_t(std::stoi(s.substr(i, 2), nullptr, 16)));
    i += 2;
  }
  return v;
}
std::string Repeat(const std::string& byte_hex, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += byte_hex + " ";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------
TEST(GgufLayout, FieldOffsetsMatchGgmlCommon) {
  EXPECT_EQ(offsetof(BlockQ4_1, m), 2u);
  EXPECT_EQ(offsetof(BlockQ4_1, qs), 4u);
  EXPECT_EQ(offsetof(BlockQ5_0, qh), 2u);
  EXPECT_EQ(offsetof(BlockQ5_0, qs), 6u);
  EXPECT_EQ(offsetof(BlockQ5_1, qh), 4u);
  EXPECT_EQ(offsetof(BlockQ5_1, qs), 8u);
  EXPECT_EQ(offsetof(BlockQ8_0, qs), 2u);
  EXPECT_EQ(offsetof(BlockQ4_K, scales), 4u);
  EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
  EXPECT_EQ(offsetof(BlockQ6_K, qh), 128u);
  EXPECT_EQ(offsetof(BlockQ6_K, scales), 192u);
  EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);  // d last
}

TEST(GgufLayout, NearestIntIsRoundHalfEven) {
  EXPECT_EQ(gguf::NearestInt(0.5f), 0);
  EXPECT_EQ(gguf::NearestInt(1.5f), 2);
  EXPECT_EQ(gguf::NearestInt(2.5f), 2);
  EXPECT_EQ(gguf::NearestInt(-0.5f), 0);
  EXPECT_EQ(gguf::NearestInt(-1.5f), -2);
  EXPECT_EQ(gguf::NearestInt(-2.49f), -2);
  EXPECT_EQ(gguf::NearestInt(62.6f), 63);
  EXPECT_EQ(gguf::NearestInt(-4194303.f), -4194303);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed 32-element blocks. Byte strings: fp16 d (little-endian) first, as ggml-common.h.
// ---------------------------------------------------------------------------------------------
TEST(GgufHand, Q8_0) {
  float x[32] = {};
  BlockQ8_0 b;
  gguf::QuantizeBlockQ8_0(x, &b);  // all zero: d = 0/127 = +0, codes 0
  EXPECT_EQ(Bytes(b), Hex("00 00" + Repeat("00", 32)));

  x[5] = -254.f;  // outlier: d = 254/127 = 2 (0x4000), code -127 = 0x81
  gguf::QuantizeBlockQ8_0(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 40" + Repeat("00", 5) + "81" + Repeat("00", 26)));

  // Ramp x[j] = (j-16)·127/16, amax 127 -> d = 1; code = roundf((j-16)·7.9375): 8k for |k| <= 7,
  // ±63.5 -> ±64 (half away from zero), 8k - sign(k) for 9 <= |k| <= 16.
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16) * 127.f / 16.f;
  gguf::QuantizeBlockQ8_0(x, &b);
  const int8_t want[32] = {-127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
                           0,    8,    16,   24,   32,  40,  48,  56,  64,  71,  79,  87,  95,  103, 111, 119};
  EXPECT_EQ(b.d, 0x3C00);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b.qs[j], want[j]) << j;

  // Ties: roundf rounds half away from zero (RNE would give 62, 0, 0, 2).
  float t[32] = {127.f, 62.5f, -0.5f, 0.5f, 1.5f, 2.5f};
  gguf::QuantizeBlockQ8_0(t, &b);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], 63);
  EXPECT_EQ(b.qs[2], -1);
  EXPECT_EQ(b.qs[3], 1);
  EXPECT_EQ(b.qs[4], 2);
  EXPECT_EQ(b.qs[5], 3);
  float y[32];
  gguf::DequantizeBlockQ8_0(b, y);
  EXPECT_EQ(y[1], 63.f);
  EXPECT_EQ(y[2], -1.f);
}

TEST(GgufHand, Q4_0) {
  float x[32] = {};
  BlockQ4_0 b;
  gguf::QuantizeBlockQ4_0(x, &b);  // max = 0 -> d = 0/-8 = -0 (0x8000), id = 0, q = (int8)(8.5) = 8
  EXPECT_EQ(Bytes(b), Hex("00 80" + Repeat("88", 16)));

  x[5] = 8.f;  // outlier: d = 8/-8 = -1 (0xBC00); x5·id + 8.5 = 0.5 -> 0; low nibble = element 5
  gguf::QuantizeBlockQ4_0(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 BC" + Repeat("88", 5) + "80" + Repeat("88", 10)));
  x[5] = 0.f;
  x[20] = -4.f;  // negative outlier in the high half: d = 0.5 (0x3800), element 20 = high nibble of byte 4
  gguf::QuantizeBlockQ4_0(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 38" + Repeat("88", 4) + "08" + Repeat("88", 11)));
  float y[32];
  gguf::DequantizeBlockQ4_0(b, y);
  EXPECT_EQ(y[20], -4.f);  // (0 - 8)·0.5
  EXPECT_EQ(y[0], 0.f);

  // Ramp x[j] = j - 16: max = -16 (first largest |x|) -> d = 2 (0x4000), id = 0.5,
  // q = trunc(j/2 + 0.5) = (j+1)/2, and element 31 gives 16 -> MIN(15).
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16);
  gguf::QuantizeBlockQ4_0(x, &b);
  EXPECT_EQ(b.d, 0x4000);
  for (int j = 0; j < 16; ++j) {
    const int lo = (j + 1) / 2, hi = std::min(15, (j + 17) / 2);
    EXPECT_EQ(b.qs[j], lo | (hi << 4)) << j;
  }
  EXPECT_EQ(b.qs[0], 0x80);
  EXPECT_EQ(b.qs[15], 0xF8);
}

TEST(GgufHand, Q4_1) {
  float x[32] = {};
  BlockQ4_1 b;
  gguf::QuantizeBlockQ4_1(x, &b);  // min = max = 0: d = 0, m = 0, q = (int8)(0.5) = 0
  EXPECT_EQ(Bytes(b), Hex("00 00 00 00" + Repeat("00", 16)));

  x[7] = 7.5f;  // min 0, max 7.5: d = 0.5 (0x3800), m = 0; q7 = trunc(15 + 0.5) = 15
  gguf::QuantizeBlockQ4_1(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 38 00 00" + Repeat("00", 7) + "0F" + Repeat("00", 8)));

  // Ramp x[j] = (j mod 16) - 3: min -3 (m = 0xC200), max 12, d = 1 (0x3C00); q = j mod 16, so byte j = j·0x11.
  for (int j = 0; j < 32; ++j) x[j] = float(j % 16) - 3.f;
  gguf::QuantizeBlockQ4_1(x, &b);
  EXPECT_EQ(b.d, 0x3C00);
  EXPECT_EQ(b.m, 0xC200);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j * 0x11) << j;
  float y[32];
  gguf::DequantizeBlockQ4_1(b, y);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]) << j;

  // +0.5 then truncation is round half up: 2.5 -> 3 (RNE would give 2).
  x[1] = -0.5f;  // (x - min)·id = 2.5
  gguf::QuantizeBlockQ4_1(x, &b);
  EXPECT_EQ(b.qs[1] & 0x0F, 3);
}

TEST(GgufHand, Q5_0) {
  float x[32] = {};
  BlockQ5_0 b;
  gguf::QuantizeBlockQ5_0(x, &b);  // d = -0 (0x8000); q = 16 for all: low nibbles 0, every high bit set
  EXPECT_EQ(Bytes(b), Hex("00 80 FF FF FF FF" + Repeat("00", 16)));

  x[3] = 16.f;  // d = -1 (0xBC00): element 3 -> q 0 (bit 3 of qh clear), all others q 16
  gguf::QuantizeBlockQ5_0(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 BC F7 FF FF FF" + Repeat("00", 16)));

  // Ramp x[j] = j - 16: max -16 -> d = 1 (0x3C00), q = j: nibbles j & 15, qh = bits 16..31 = 00 00 FF FF.
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16);
  gguf::QuantizeBlockQ5_0(x, &b);
  std::string want = "00 3C 00 00 FF FF";
  for (int j = 0; j < 16; ++j) want += Repeat(fmt::format("{:02X}", j * 0x11), 1);
  EXPECT_EQ(Bytes(b), Hex(want));
  float y[32];
  gguf::DequantizeBlockQ5_0(b, y);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]) << j;
}

TEST(GgufHand, Q5_1) {
  float x[32] = {};
  BlockQ5_1 b;
  gguf::QuantizeBlockQ5_1(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 00 00 00 00 00 00 00" + Repeat("00", 16)));

  for (int j = 0; j < 32; ++j) x[j] = 1.f;
  x[30] = 32.f;  // min 1 (0x3C00), d = 31/31 = 1 (0x3C00): q30 = 31 = high nibble F of byte 14 + qh bit 30
  gguf::QuantizeBlockQ5_1(x, &b);
  EXPECT_EQ(Bytes(b), Hex("00 3C 00 3C 00 00 00 40" + Repeat("00", 14) + "F0 00"));

  // Ramp x[j] = j/4 - 2: min -2 (0xC000), max 5.75, d = 0.25 (0x3400), q = j.
  for (int j = 0; j < 32; ++j) x[j] = float(j) * 0.25f - 2.f;
  gguf::QuantizeBlockQ5_1(x, &b);
  std::string want = "00 34 00 C0 00 00 FF FF";
  for (int j = 0; j < 16; ++j) want += fmt::format("{:02X} ", j * 0x11);
  EXPECT_EQ(Bytes(b), Hex(want));
  float y[32];
  gguf::DequantizeBlockQ5_1(b, y);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]) << j;
}

// ---------------------------------------------------------------------------------------------
// K-quants: scale packing, hand-built blocks, properties (gguf-py has no K-quant quantizer; the golden
// quantize fixtures below come from ggml's C reference itself)
// ---------------------------------------------------------------------------------------------
TEST(GgufK, ScaleMinPackingHandBytes) {
  const uint8_t sc[8] = {1, 10, 33, 63, 5, 40, 17, 60};
  const uint8_t m[8] = {0, 63, 2, 31, 48, 7, 33, 1};
  // Bytes 0-3: sc0..3 | (sc4..7 >> 4) << 6; 4-7: m0..3 | (m4..7 >> 4) << 6; 8-11: sc4..7 & 15 | (m4..7 & 15) << 4.
  const std::vector<uint8_t> want = Hex("01 8A 61 FF C0 3F 82 1F 05 78 11 1C");
  uint8_t q[12];
  gguf::PackScaleMinK4(sc, m, q);
  EXPECT_EQ(std::vector<uint8_t>(q, q + 12), want);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, mm;
    gguf::GetScaleMinK4(j, want.data(), &s, &mm);
    EXPECT_EQ(s, sc[j]) << j;
    EXPECT_EQ(mm, m[j]) << j;
  }
}

TEST(GgufK, ScaleMinPackingRoundTripsAll64x64) {
  for (int j = 0; j < 8; ++j) {
    for (int s = 0; s < 64; ++s) {
      for (int mm = 0; mm < 64; ++mm) {
        uint8_t sc[8], m[8];
        for (int k = 0; k < 8; ++k) {  // neighbours hold other values so cross-talk would show
          sc[k] = uint8_t((13 * k + 7) & 63);
          m[k] = uint8_t((29 * k + 3) & 63);
        }
        sc[j] = uint8_t(s);
        m[j] = uint8_t(mm);
        uint8_t q[12];
        gguf::PackScaleMinK4(sc, m, q);
        for (int k = 0; k < 8; ++k) {
          uint8_t gs, gm;
          gguf::GetScaleMinK4(k, q, &gs, &gm);
          ASSERT_EQ(gs, sc[k]) << "j=" << j << " s=" << s << " m=" << mm << " k=" << k;
          ASSERT_EQ(gm, m[k]) << "j=" << j << " s=" << s << " m=" << mm << " k=" << k;
        }
      }
    }
  }
}

TEST(GgufK, Q4_KHandBuiltBlockDequantizes) {
  // d = 0.5, dmin = 0.25, the scales above; qs[32c + l] = (l & 15) | (15 - (l & 15)) << 4.
  const uint8_t sc[8] = {1, 10, 33, 63, 5, 40, 17, 60};
  const uint8_t m[8] = {0, 63, 2, 31, 48, 7, 33, 1};
  std::vector<uint8_t> bytes = Hex("00 38 00 34 01 8A 61 FF C0 3F 82 1F 05 78 11 1C");
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) bytes.push_back(uint8_t((l & 15) | ((15 - (l & 15)) << 4)));
  }
  ASSERT_EQ(bytes.size(), 144u);
  BlockQ4_K b;
  std::memcpy(&b, bytes.data(), 144);
  float y[256];
  gguf::DequantizeBlockQ4_K(b, y);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      // element 64c + l: low nibble, sub-block 2c; element 64c + 32 + l: high nibble, sub-block 2c + 1
      EXPECT_EQ(y[64 * c + l], 0.5f * sc[2 * c] * float(l & 15) - 0.25f * m[2 * c]) << c << "," << l;
      EXPECT_EQ(y[64 * c + 32 + l], 0.5f * sc[2 * c + 1] * float(15 - (l & 15)) - 0.25f * m[2 * c + 1]);
    }
  }
}

TEST(GgufK, Q6_KHandBuiltBlockDequantizes) {
  // d = 0.125 (0x3000, stored last); scales s[i] = 16 - 9i (int8, both signs); codes q(e) = 7e mod 64.
  // Layout: half h = e/128, g = (e mod 128)/32, l = e mod 32: ql[64h + l + 32·(g&1)] nibble (g>>1),
  // qh[32h + l] bits 2g..2g+1 = q >> 4; scale index 8h + l/16 + 2g.
  auto code = [](int e) { return (7 * e) % 64; };
  uint8_t ql[128] = {}, qh[64] = {};
  int8_t s[16];
  for (int i = 0; i < 16; ++i) s[i] = int8_t(16 - 9 * i);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32, q = code(e);
    ql[64 * h + l + 32 * (g & 1)] |= uint8_t((q & 15) << (4 * (g >> 1)));
    qh[32 * h + l] |= uint8_t((q >> 4) << (2 * g));
  }
  std::vector<uint8_t> bytes(ql, ql + 128);
  bytes.insert(bytes.end(), qh, qh + 64);
  for (int i = 0; i < 16; ++i) bytes.push_back(uint8_t(s[i]));
  bytes.push_back(0x00);
  bytes.push_back(0x30);
  BlockQ6_K b;
  std::memcpy(&b, bytes.data(), 210);
  float y[256];
  gguf::DequantizeBlockQ6_K(b, y);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    EXPECT_EQ(y[e], 0.125f * float(s[8 * h + l / 16 + 2 * g]) * float(code(e) - 32)) << e;
  }
  // Spot values worked out fully by hand: e = 0: q 0, s[0] = 16 -> 0.125·16·(-32) = -64.
  // e = 100: h 0, g 3, l 4, q = 700 mod 64 = 60, s[6] = -38 -> 0.125·(-38)·28 = -133.
  EXPECT_EQ(y[0], -64.f);
  EXPECT_EQ(y[100], -133.f);
}

TEST(GgufK, AllZeroSuperBlocksAreAllZeroBytes) {
  float x[256] = {};
  BlockQ4_K b4;
  gguf::QuantizeBlockQ4_K(x, &b4);
  EXPECT_EQ(Bytes(b4), std::vector<uint8_t>(144, 0));
  BlockQ6_K b6;
  gguf::QuantizeBlockQ6_K(x, &b6);
  EXPECT_EQ(Bytes(b6), std::vector<uint8_t>(210, 0));
}

// Two super-blocks fitted in one batch (16 sub-blocks: one pass of a 16-lane target, two of an 8-lane
// one) give each block's bytes exactly as one at a time, on every target: random, scaled, all-zero, flat
// and mixed pairs, and whole rows through the codec (the row loop takes pairs, an odd last block alone).
TEST(GgufK, PairedSuperBlocksAreBitwiseTheSingleBlocks) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<std::vector<float>> pairs;
  for (int trial = 0; trial < 24; ++trial) {
    std::vector<float> x(512);
    const float scale = std::ldexp(1.0f, trial % 12 - 6);
    for (float& v : x) v = scale * nd(rng);
    if (trial % 6 == 1) std::fill(x.begin(), x.begin() + 256, 0.0f);  // zero block beside a random one
    if (trial % 6 == 2) std::fill(x.begin() + 256, x.end(), 0.75f);   // flat second block
    if (trial % 6 == 3) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // one zero sub-block
    pairs.push_back(x);
  }
  ForEachTarget([&] {
    for (const auto& x : pairs) {
      BlockQ4_K one4[2], two4[2];
      gguf::QuantizeBlockQ4_K(x.data(), &one4[0]);
      gguf::QuantizeBlockQ4_K(x.data() + 256, &one4[1]);
      gguf::QuantizeBlocksQ4_K(2, x.data(), two4);
      ASSERT_EQ(std::memcmp(one4, two4, sizeof one4), 0);
      gguf::BlockQ5_K one5[2], two5[2];
      gguf::QuantizeBlockQ5_K(x.data(), &one5[0]);
      gguf::QuantizeBlockQ5_K(x.data() + 256, &one5[1]);
      gguf::QuantizeBlocksQ5_K(2, x.data(), two5);
      ASSERT_EQ(std::memcmp(one5, two5, sizeof one5), 0);
    }
    for (const BlockCodec* c : {GgufQ4_KCodec(), GgufQ5_KCodec()}) {  // 3 blocks: a pair, then a single
      std::vector<float> row(768);
      for (float& v : row) v = nd(rng);
      const auto whole = c->Quantize(row.data(), 1, 768, BlockOptions{});
      ASSERT_TRUE(whole.ok()) << whole.status().message();
      for (int b = 0; b < 3; ++b) {
        const auto single = c->Quantize(row.data() + 256 * b, 1, 256, BlockOptions{});
        ASSERT_TRUE(single.ok());
        const size_t n = single->bytes.size();
        ASSERT_EQ(std::memcmp(single->bytes.data(), whole->bytes.data() + b * n, n), 0) << c->name() << " block " << b;
      }
    }
  });
}

TEST(GgufK, Q4_KConstantBlockKeepsValue) {
  // All 1.0: each sub-block fits scale 1/15 with min 0 and codes 15; ls = 63 everywhere, so
  // y = fp16(1/15/63)·63·15, within fp16 rounding of 1.
  float x[256];
  for (float& v : x) v = 1.f;
  BlockQ4_K b;
  gguf::QuantizeBlockQ4_K(x, &b);
  float y[256];
  gguf::DequantizeBlockQ4_K(b, y);
  for (int i = 0; i < 256; ++i) ASSERT_NEAR(y[i], 1.f, 1e-3f) << i;
  for (int i = 0; i < 128; ++i) ASSERT_EQ(b.qs[i], 0xFF) << i;
}

TEST(GgufK, MakeQxQuantsPicksTheBestScaleOfTheGrid) {
  // Independent check of the Q6_K per-16 search: brute force over the same 19 candidate iscales,
  // weighted error Σ x²(x - s·l)² with the least-squares s for each; make_qx_quants keeps the best.
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int trial = 0; trial < 50; ++trial) {
    float x[16];
    for (float& v : x) v = nd(rng);
    int8_t L[16];
    const float scale = gguf::MakeQxQuantsRmse1(16, 32, x, L);
    auto err_of = [&](float s, const int8_t* codes) {
      double e = 0;
      for (int i = 0; i < 16; ++i) e += double(x[i]) * x[i] * std::pow(x[i] - s * (codes[i] - 32), 2);
      return e;
    };
    float amax = 0, mx = 0;
    for (float v : x) {
      if (std::fabs(v) > amax) { amax = std::fabs(v); mx = v; }
    }
    double best = 1e30;
    for (int is = -9; is <= 9; ++is) {
      const float iscale = -(32.f + 0.1f * float(is)) / mx;  // the candidate grid, in float as ggml
      int8_t c[16];
      double sxl = 0, sll = 0;
      for (int i = 0; i < 16; ++i) {
        const int l = std::max(-32, std::min(31, int(std::nearbyint(iscale * x[i]))));
        c[i] = int8_t(l + 32);
        sxl += double(x[i]) * x[i] * x[i] * l;
        sll += double(x[i]) * x[i] * l * l;
      }
      best = std::min(best, err_of(float(sxl / sll), c));
    }
    EXPECT_LE(err_of(scale, L), best * (1 + 1e-4) + 1e-12) << trial;
  }
}

// ---------------------------------------------------------------------------------------------
// Golden fixtures from ggml's C reference (see tests/data/gguf/README.md)
// ---------------------------------------------------------------------------------------------
struct FixtureType {
  const char* name;
  int type_id;
  int block_elems;
  int block_bytes;
};
constexpr FixtureType kFixtureTypes[] = {{"q8_0", 8, 32, 34},   {"q4_0", 2, 32, 18},   {"q4_1", 3, 32, 20},
                                         {"q5_0", 6, 32, 22},   {"q5_1", 7, 32, 24},   {"q4_k", 12, 256, 144},
                                         {"q6_k", 14, 256, 210}};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b, std::string* where) {
  if (a.size() != b.size()) {
    *where = fmt::format("size {} vs {}", a.size(), b.size());
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (F32Bits(a[i]) != F32Bits(b[i])) {
      *where = fmt::format("element {}: {} vs {}", i, a[i], b[i]);
      return false;
    }
  }
  return true;
}

TEST(GgufFixtures, QuantizeMatchesGgmlBitExact) {
  for (const FixtureType& t : kFixtureTypes) {
    SCOPED_TRACE(t.name);
    const std::vector<float> x = ReadF32(std::string(t.name) + ".input.f32");
    const std::vector<uint8_t> want = ReadFixture(std::string(t.name) + ".quant.bin");
    ASSERT_FALSE(x.empty());
    ASSERT_EQ(x.size() % t.block_elems, 0u);
    ASSERT_EQ(want.size(), x.size() / t.block_elems * t.block_bytes);
    StatusOr<std::vector<uint8_t>> got = QuantizeGgmlRow(t.type_id, x.data(), int64_t(x.size()));
    ASSERT_TRUE(got.ok()) << got.status().message();
    for (size_t blk = 0; blk < want.size() / t.block_bytes; ++blk) {
      const auto a = got->begin() + blk * t.block_bytes;
      const auto w = want.begin() + blk * t.block_bytes;
      EXPECT_TRUE(std::equal(w, w + t.block_bytes, a)) << "block " << blk;
    }
  }
}

TEST(GgufFixtures, DequantizeMatchesGgmlBitExact) {
  for (const FixtureType& t : kFixtureTypes) {
    for (const char* set : {"quant.bin", "rand_blocks.bin"}) {
      SCOPED_TRACE(std::string(t.name) + " " + set);
      const std::vector<uint8_t> blocks = ReadFixture(std::string(t.name) + "." + set);
      const std::vector<float> want =
          ReadF32(std::string(t.name) + (std::string(set) == "quant.bin" ? ".dequant.f32" : ".rand_dequant.f32"));
      ASSERT_EQ(blocks.size() / t.block_bytes * t.block_elems, want.size());
      std::vector<float> got(want.size());
      Status st = DequantizeGgmlRow(t.type_id, blocks.data(), int64_t(got.size()), got.data());
      ASSERT_TRUE(st.ok()) << st.message();
      std::string where;
      EXPECT_TRUE(SameBits(got, want, &where)) << where;
    }
  }
}

TEST(GgufFixtures, CodecQuantizeMatchesGgmlForWholeBlocks) {
  // The BlockCodec path: each fixture block as one row of a [nblocks, block] tensor, and the whole
  // input as one row; both must give ggml's bytes (no padding involved).
  for (size_t i = 0; i < std::size(kFixtureTypes); ++i) {
    const FixtureType& t = kFixtureTypes[i];
    const BlockCodec* c = GgufBlockCodecs()[i];
    ASSERT_EQ(c->name(), t.name);
    const std::vector<float> x = ReadF32(std::string(t.name) + ".input.f32");
    const std::vector<uint8_t> want = ReadFixture(std::string(t.name) + ".quant.bin");
    const int64_t nb = int64_t(x.size()) / t.block_elems;
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{nb, t.block_elems}, {1, int64_t(x.size())}}) {
      StatusOr<PackedBlocks> p = c->Quantize(x.data(), rows, cols, BlockOptions{});
      ASSERT_TRUE(p.ok()) << p.status().message();
      EXPECT_EQ(p->bytes, want) << t.name << " rows " << rows;
      std::vector<float> y(x.size());
      c->Dequantize(*p, y.data());
      std::string where;
      EXPECT_TRUE(SameBits(y, ReadF32(std::string(t.name) + ".dequant.f32"), &where)) << t.name << " " << where;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ggml type table and row API
// ---------------------------------------------------------------------------------------------
TEST(GgmlTypes, TableMatchesSpecs) {
  // (id, block elems, block bytes) from docs/formats.md §4.1 / ggml-common.h.
  const int want[][3] = {{0, 1, 4},      {1, 1, 2},      {2, 32, 18},    {3, 32, 20},   {6, 32, 22},
                         {7, 32, 24},    {8, 32, 34},    {10, 256, 84},  {11, 256, 110}, {12, 256, 144},
                         {13, 256, 176}, {14, 256, 210}, {15, 256, 292}, {30, 1, 2},     {39, 32, 17},
                         {40, 64, 36},   {9, 32, 36},    {20, 32, 18},  {23, 256, 136}};  // Q8_1: half d, s + 32 (gguf-py 0.19 still says 40)
  for (const auto& w : want) {
    const GgmlTypeInfo* info = FindGgmlTypeInfo(w[0]);
    ASSERT_NE(info, nullptr) << w[0];
    EXPECT_EQ(info->block_elems, w[1]) << info->name;
    EXPECT_EQ(info->block_bytes, w[2]) << info->name;
  }
  std::set<int> supported;
  for (const GgmlTypeInfo& t : GgmlTypeTable()) {
    if (t.supported) supported.insert(t.id);
  }
  EXPECT_EQ(supported, (std::set<int>{0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 15, 20, 23, 30}));
  EXPECT_EQ(FindGgmlTypeInfo(4), nullptr);  // removed Q4_2
}

TEST(GgmlTypes, UnsupportedAndUnknownIdsAreErrorsNamingTheType) {
  StatusOr<GgmlTypeInfo> iq2 = SupportedGgmlType(16);
  ASSERT_FALSE(iq2.ok());
  EXPECT_NE(iq2.status().message().find("iq2_xxs"), std::string::npos) << iq2.status().message();
  StatusOr<GgmlTypeInfo> unknown = SupportedGgmlType(99);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("99"), std::string::npos);
  float y[256];
  const uint8_t zeros[256] = {};
  Status st = DequantizeGgmlRow(16, zeros, 256, y);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("iq2_xxs"), std::string::npos);
  // Rows must be whole blocks for the ggml row API.
  st = DequantizeGgmlRow(2, zeros, 40, y);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("40"), std::string::npos);
  EXPECT_FALSE(QuantizeGgmlRow(12, y, 100).ok());
  // Block types reject non-finite input; plain types store it.
  float x[32] = {};
  x[31] = INFINITY;
  StatusOr<std::vector<uint8_t>> inf = QuantizeGgmlRow(8, x, 32);
  ASSERT_FALSE(inf.ok());
  EXPECT_NE(inf.status().message().find("column 31"), std::string::npos) << inf.status().message();
  EXPECT_TRUE(QuantizeGgmlRow(1, x, 32).ok());
}

TEST(GgmlTypes, PlainTypesRoundTrip) {
  const float x[4] = {1.f, -2.f, 0.5f, 65504.f};
  StatusOr<std::vector<uint8_t>> f16 = QuantizeGgmlRow(1, x, 4);
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ(*f16, Hex("00 3C 00 C0 00 38 FF 7B"));
  StatusOr<std::vector<uint8_t>> bf16 = QuantizeGgmlRow(30, x, 3);
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(*bf16, Hex("80 3F 00 C0 00 3F"));
  float y[4];
  ASSERT_TRUE(DequantizeGgmlRow(1, f16->data(), 4, y).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], x[i]);
  ASSERT_TRUE(DequantizeGgmlRow(30, bf16->data(), 3, y).ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(y[i], x[i]);
  StatusOr<std::vector<uint8_t>> f32 = QuantizeGgmlRow(0, x, 4);
  ASSERT_TRUE(f32.ok());
  ASSERT_TRUE(DequantizeGgmlRow(0, f32->data(), 4, y).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], x[i]);
}

// ---------------------------------------------------------------------------------------------
// Codecs: table-driven over all of them
// ---------------------------------------------------------------------------------------------
struct CodecExpect {
  const char* name;
  int block;
  int bytes;
  int bits;
  double bpw;
  double max_rel_rmse;  // on N(0,1) data; ≈ step/√12 / σ with step = range/levels (see comment below)
};
// Step sizes on Gaussian blocks: Q8_0 amax/127 ≈ 0.018σ -> rmse ≈ 0.006; Q4_0 amax/8 ≈ 0.28σ -> 0.08;
// Q4_1 range/15 ≈ 0.28σ -> 0.08; Q5_0 amax/16 -> 0.04; Q5_1 range/31 -> 0.04; Q4_K per-32 range/15 with a
// fitted scale -> ≈ 0.075; Q6_K per-16 amax/32 ≈ 0.055σ -> 0.016; Q2_K per-16 range/3 ≈ 1.2σ -> 0.34 (the
// MAD fit gives 0.30); Q3_K per-16 amax/4 ≈ 0.44σ -> 0.13 (measured 0.15: +max clamps to 3); Q5_K per-32
// range/31 ≈ 0.13σ -> 0.038; Q8_K amax₂₅₆/127 ≈ 0.022σ -> 0.0065; IQ4_* a 16-level codebook ≈ Q4 -> 0.078.
// Bounds leave ~30% headroom over the measured values.
constexpr CodecExpect kExpect[] = {
    {"q8_0", 32, 34, 8, 8.5, 0.009},    {"q4_0", 32, 18, 4, 4.5, 0.11},  {"q4_1", 32, 20, 4, 5.0, 0.11},
    {"q5_0", 32, 22, 5, 5.5, 0.055},    {"q5_1", 32, 24, 5, 6.0, 0.055}, {"q4_k", 256, 144, 4, 4.5, 0.10},
    {"q6_k", 256, 210, 6, 6.5625, 0.022},  {"q2_k", 256, 84, 2, 2.625, 0.39},  {"q3_k", 256, 110, 3, 3.4375, 0.20},
    {"q5_k", 256, 176, 5, 5.5, 0.047},     {"q8_k", 256, 292, 8, 9.125, 0.0095}, {"iq4_nl", 32, 18, 4, 4.5, 0.10},
    {"iq4_xs", 256, 136, 4, 4.25, 0.10}};

std::vector<float> Gaussian(size_t n, uint32_t seed, float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

double RelRmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += double(x[i] - y[i]) * (x[i] - y[i]);
    s += double(x[i]) * x[i];
  }
  return std::sqrt(e / s);
}

TEST(GgufCodecs, TraitsAndRegistry) {
  ASSERT_EQ(GgufBlockCodecs().size(), std::size(kExpect));
  for (size_t i = 0; i < std::size(kExpect); ++i) {
    const BlockCodec* c = GgufBlockCodecs()[i];
    const CodecExpect& e = kExpect[i];
    EXPECT_EQ(c->name(), e.name);
    EXPECT_EQ(c->default_block_size(), e.block);
    EXPECT_TRUE(c->block_size_fixed());
    EXPECT_EQ(c->element_bits(), e.bits);
    EXPECT_DOUBLE_EQ(c->nominal_bits_per_weight(e.block), e.bpw);
    EXPECT_DOUBLE_EQ(e.bpw, 8.0 * e.bytes / e.block);
    bool registered = false;
    for (const BlockCodec* r : BlockCodecs()) registered |= (r == c);
    EXPECT_TRUE(registered) << e.name << " missing from kernels/format_list.cc";
    std::string upper = e.name;
    for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    StatusOr<const BlockCodec*> found = FindBlockCodec(upper);
    ASSERT_TRUE(found.ok()) << found.status().message();
    EXPECT_EQ(*found, c);
  }
}

TEST(GgufCodecs, ErrorBoundsAndDeterminism) {
  const int64_t rows = 16, cols = 512;
  const std::vector<float> x = Gaussian(rows * cols, 1234);
  for (size_t i = 0; i < std::size(kExpect); ++i) {
    const BlockCodec* c = GgufBlockCodecs()[i];
    SCOPED_TRACE(c->name());
    StatusOr<PackedBlocks> p1 = c->Quantize(x.data(), rows, cols, BlockOptions{});
    StatusOr<PackedBlocks> p2 = c->Quantize(x.data(), rows, cols, BlockOptions{});
    ASSERT_TRUE(p1.ok() && p2.ok());
    EXPECT_EQ(p1->bytes, p2->bytes);
    EXPECT_EQ(p1->bytes.size(), size_t(rows * cols / kExpect[i].block * kExpect[i].bytes));
    EXPECT_DOUBLE_EQ(p1->bits_per_weight(), kExpect[i].bpw);
    std::vector<float> y(x.size());
    c->Dequantize(*p1, y.data());
    const double rel = RelRmse(x, y);
    EXPECT_LT(rel, kExpect[i].max_rel_rmse);
    EXPECT_GT(rel, 0.0);
    // Scale invariance up to fp16 rounding: ×4 input (a power of two) gives ×4 output, bit for bit,
    // because every scale is a product with the exact factor 4 and fp16 keeps it.
    std::vector<float> x4(x.size()), y4(x.size());
    for (size_t k = 0; k < x.size(); ++k) x4[k] = 4.f * x[k];
    StatusOr<PackedBlocks> p4 = c->Quantize(x4.data(), rows, cols, BlockOptions{});
    ASSERT_TRUE(p4.ok());
    c->Dequantize(*p4, y4.data());
    for (size_t k = 0; k < x.size(); ++k) ASSERT_EQ(y4[k], 4.f * y[k]) << k;
  }
}

TEST(GgufCodecs, LargeTensorEqualsRowByRow) {
  // 64 × 1100 = 70400 elements takes the multi-threaded path; each row must still be exactly what a
  // single-row quantization gives (1100 = 4·256 + 76 also has a partial block in every row).
  const int64_t rows = 64, cols = 1100;
  const std::vector<float> x = Gaussian(rows * cols, 77);
  for (const BlockCodec* c : GgufBlockCodecs()) {
    StatusOr<PackedBlocks> all = c->Quantize(x.data(), rows, cols, BlockOptions{});
    ASSERT_TRUE(all.ok());
    const size_t row_bytes = all->bytes.size() / rows;
    std::vector<float> y(x.size());
    c->Dequantize(*all, y.data());
    for (int64_t r = 0; r < rows; ++r) {
      StatusOr<PackedBlocks> one = c->Quantize(x.data() + r * cols, 1, cols, BlockOptions{});
      ASSERT_TRUE(one.ok());
      ASSERT_TRUE(std::equal(one->bytes.begin(), one->bytes.end(), all->bytes.begin() + r * row_bytes))
          << c->name() << " row " << r;
      std::vector<float> y1(cols);
      c->Dequantize(*one, y1.data());
      ASSERT_TRUE(std::equal(y1.begin(), y1.end(), y.begin() + r * cols)) << c->name() << " row " << r;
    }
  }
}

TEST(GgufCodecs, PerElementErrorBoundForThe32Blocks) {
  // |x - y| <= c·d + fp16 slack, d the block step: c = 0.5 for round-to-nearest, 1 for Q4_0/Q5_0 whose
  // positive extreme is clamped from code 16 (32) to 15 (31).
  const std::vector<float> x = Gaussian(64 * 32, 99, 0.05f);
  struct { const BlockCodec* c; double c_step; int levels; bool has_min; } cases[] = {
      {GgufQ8_0Codec(), 0.5, 127, false}, {GgufQ4_0Codec(), 1.0, 8, false}, {GgufQ5_0Codec(), 1.0, 16, false},
      {GgufQ4_1Codec(), 0.5, 15, true},   {GgufQ5_1Codec(), 0.5, 31, true}};
  for (const auto& k : cases) {
    StatusOr<PackedBlocks> p = k.c->Quantize(x.data(), 64, 32, BlockOptions{});
    ASSERT_TRUE(p.ok());
    std::vector<float> y(x.size());
    k.c->Dequantize(*p, y.data());
    for (int b = 0; b < 64; ++b) {
      float mn = x[b * 32], mx = x[b * 32], amax = 0;
      for (int j = 0; j < 32; ++j) {
        mn = std::min(mn, x[b * 32 + j]);
        mx = std::max(mx, x[b * 32 + j]);
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
      }
      const double step = k.has_min ? (mx - mn) / k.levels : amax / k.levels;
      const double slack = 2.0 / 2048 * (amax + std::fabs(mn)) + 1e-7;  // fp16 rounding of d (and m)
      for (int j = 0; j < 32; ++j) {
        ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), k.c_step * step + slack)
            << k.c->name() << " block " << b << " elem " << j;
      }
    }
  }
}

TEST(GgufCodecs, PartialLastBlock) {
  for (size_t i = 0; i < std::size(kExpect); ++i) {
    const BlockCodec* c = GgufBlockCodecs()[i];
    const CodecExpect& e = kExpect[i];
    for (int64_t cols : {172, 40}) {
      SCOPED_TRACE(fmt::format("{} cols {}", c->name(), cols));
      const int64_t rows = 3;
      const std::vector<float> x = Gaussian(rows * cols, uint32_t(cols));
      StatusOr<PackedBlocks> p = c->Quantize(x.data(), rows, cols, BlockOptions{});
      ASSERT_TRUE(p.ok()) << p.status().message();
      const int64_t blocks_per_row = (cols + e.block - 1) / e.block;
      EXPECT_EQ(p->bytes.size(), size_t(rows * blocks_per_row * e.bytes));
      EXPECT_EQ(p->rows, rows);
      EXPECT_EQ(p->cols, cols);
      std::vector<float> y(x.size(), 12345.f);
      c->Dequantize(*p, y.data());
      EXPECT_LT(RelRmse(x, y), e.max_rel_rmse * 1.3);  // few samples: a little more headroom
      // The full blocks of a row are exactly what the ggml row quantizer gives for them.
      const int64_t full = cols / e.block * e.block;
      if (full > 0) {
        StatusOr<std::vector<uint8_t>> ref = QuantizeGgmlRow(GgmlTypeIdOfCodec(e.name), x.data() + cols, full);
        ASSERT_TRUE(ref.ok());
        EXPECT_TRUE(std::equal(ref->begin(), ref->end(), p->bytes.begin() + blocks_per_row * e.bytes));
      }
    }
  }
}

TEST(GgufCodecs, PartialBlockPaddingKeepsTheMin) {
  // Q4_1 / Q5_1 pad by repeating the last real element, so a partial block of values in [1, 2] keeps
  // m = fp16(min of the real values); zero padding would have given m = 0.
  std::vector<float> x(40);
  for (int i = 0; i < 40; ++i) x[i] = 1.f + float((i * 37) % 40) / 40.f;
  float real_min = 2.f;
  for (int i = 32; i < 40; ++i) real_min = std::min(real_min, x[i]);
  for (const BlockCodec* c : {GgufQ4_1Codec(), GgufQ5_1Codec()}) {
    StatusOr<PackedBlocks> p = c->Quantize(x.data(), 1, 40, BlockOptions{});
    ASSERT_TRUE(p.ok());
    const size_t bb = p->bytes.size() / 2;
    uint16_t m;
    std::memcpy(&m, p->bytes.data() + bb + 2, 2);
    EXPECT_EQ(m, F32ToF16(real_min)) << c->name();
  }
  // Q4_K: 172 = 5 full sub-blocks + 12 elements; sub-blocks 6 and 7 hold only padding (zeros) and must
  // get scale 0 and min 0.
  const std::vector<float> g = Gaussian(172, 5);
  StatusOr<PackedBlocks> p = GgufQ4_KCodec()->Quantize(g.data(), 1, 172, BlockOptions{});
  ASSERT_TRUE(p.ok());
  BlockQ4_K b;
  std::memcpy(&b, p->bytes.data(), 144);
  for (int j = 6; j < 8; ++j) {
    uint8_t sc, mm;
    gguf::GetScaleMinK4(j, b.scales, &sc, &mm);
    EXPECT_EQ(sc, 0) << j;
    EXPECT_EQ(mm, 0) << j;
  }
  // Q6_K / Q8_0 pad with zeros: a partial block equals the ggml quantization of the zero-padded block.
  for (const BlockCodec* c : {GgufQ6_KCodec(), GgufQ8_0Codec(), GgufQ4_0Codec(), GgufQ5_0Codec()}) {
    const int bs = c->default_block_size();
    std::vector<float> padded(bs, 0.f);
    std::copy(g.begin(), g.begin() + 20, padded.begin());
    StatusOr<PackedBlocks> pp = c->Quantize(g.data(), 1, 20, BlockOptions{});
    StatusOr<PackedBlocks> full = c->Quantize(padded.data(), 1, bs, BlockOptions{});
    ASSERT_TRUE(pp.ok() && full.ok());
    EXPECT_EQ(pp->bytes, full->bytes) << c->name();
  }
}

TEST(GgufCodecs, BadInputsAreErrors) {
  float x[64] = {};
  for (const BlockCodec* c : GgufBlockCodecs()) {
    BlockOptions opt;
    opt.block_size = 64;
    if (c->default_block_size() != 64) {
      StatusOr<PackedBlocks> p = c->Quantize(x, 1, 64, opt);
      ASSERT_FALSE(p.ok()) << c->name();
      EXPECT_NE(p.status().message().find("fixed block size"), std::string::npos);
    }
    x[10] = std::nanf("");
    StatusOr<PackedBlocks> p = c->Quantize(x, 2, 32, BlockOptions{});
    ASSERT_FALSE(p.ok()) << c->name();
    EXPECT_NE(p.status().message().find("column 10"), std::string::npos) << p.status().message();
    x[10] = 0.f;
    StatusOr<PackedBlocks> empty = c->Quantize(x, 0, 0, BlockOptions{});
    ASSERT_TRUE(empty.ok());
    EXPECT_TRUE(empty->bytes.empty());
  }
}

}  // namespace
}  // namespace ql
