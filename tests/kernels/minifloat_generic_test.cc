// Generic ExMy names (kernels/minifloat.h grammar) and the fp16/bf16 codecs against kernels/half.h.
#include "kernels/minifloat.h"

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/format.h"
#include "kernels/half.h"

namespace ql {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

const ElementCodec* Get(std::string_view name) {
  StatusOr<const ElementCodec*> c = FindElementCodec(name);
  EXPECT_TRUE(c.ok()) << name << ": " << c.status().message();
  return c.ok() ? *c : nullptr;
}
bool SameFloat(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

// Floats spread over every binade: every 4099th fp32 bit pattern plus both signs of a few specials.
std::vector<float> SweepFloats() {
  std::vector<float> xs;
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099) xs.push_back(std::bit_cast<float>(uint32_t(u)));
  for (float f : {0.0f, -0.0f, kInf, -kInf, 448.0f, 464.0f, 65504.0f, 65519.0f, 65520.0f, 1e-8f})
    xs.push_back(f);
  return xs;
}

// Two codecs are the same format: every code decodes alike and every swept float encodes alike.
void ExpectSameFormat(const ElementCodec* a, const ElementCodec* b) {
  ASSERT_EQ(a->bits(), b->bits());
  EXPECT_EQ(a->max_finite(), b->max_finite());
  for (uint32_t code = 0; code < (1u << a->bits()); ++code)
    EXPECT_TRUE(SameFloat(a->Decode(code), b->Decode(code))) << a->name() << " code " << code;
  int mismatches = 0;
  for (float x : SweepFloats()) mismatches += a->Encode(x) != b->Encode(x);
  EXPECT_EQ(mismatches, 0) << a->name() << " vs " << b->name();
}

TEST(GenericMinifloat, StandardParametersGiveTheNamedFormats) {
  // Direct construction from the parsed spec (a separate instance) must equal the named format ...
  const std::pair<const char*, const char*> kPairs[] = {
      {"e4m3_fn", "fp8_e4m3"},     {"e5m2_ieee", "fp8_e5m2"},  {"e4m3_fnuz", "fp8_e4m3fnuz"},
      {"e5m2_fnuz", "fp8_e5m2fnuz"}, {"e2m3_none", "fp6_e2m3"}, {"e3m2", "fp6_e3m2"},
      {"e2m1_none", "fp4_e2m1"},   {"e5m10_ieee", "fp16"},     {"e8m7_ieee", "bf16"},
      {"e4m3_fn_b7", "fp8_e4m3"},  {"e4m3_fnuz_b8", "fp8_e4m3fnuz"}};
  for (auto [generic, named] : kPairs) {
    SCOPED_TRACE(generic);
    StatusOr<MinifloatSpec> spec = ParseMinifloatName(generic);
    ASSERT_TRUE(spec.ok()) << spec.status().message();
    const MinifloatCodec separate(*spec);
    ExpectSameFormat(&separate, Get(named));
    // ... and the lookup returns the registered codec itself, so the DB sees one name.
    EXPECT_EQ(Get(generic), Get(named));
  }
}

TEST(GenericMinifloat, E3m4ByHand) {
  // e3m4: S.EEE.MMMM, bias 3, policy none: min sub 2^-2/16 = 2^-6, min normal 2^-2, max 2^4*31/16 = 31.
  const ElementCodec* c = Get("e3m4");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name(), "e3m4");
  EXPECT_EQ(c->bits(), 8);
  EXPECT_EQ(c->Decode(0x01), 0.015625f);
  EXPECT_EQ(c->Decode(0x0F), 15.0f / 64);
  EXPECT_EQ(c->Decode(0x10), 0.25f);
  EXPECT_EQ(c->Decode(0x30), 1.0f);
  EXPECT_EQ(c->Decode(0x31), 1.0625f);
  EXPECT_EQ(c->Decode(0x7F), 31.0f);
  EXPECT_EQ(c->Decode(0xFF), -31.0f);
  EXPECT_TRUE(SameFloat(c->Decode(0x80), -0.0f));
  EXPECT_EQ(c->max_finite(), 31.0f);
  EXPECT_EQ(c->Encode(1.03125f), 0x30u);  // tie 1.0 (m=0000) / 1.0625 (m=0001) -> even
  EXPECT_EQ(c->Encode(1.09375f), 0x32u);  // tie m=0001 / m=0010 -> m=0010
  EXPECT_EQ(c->Encode(40.0f), 0x7Fu);
  EXPECT_EQ(c->Encode(kInf), 0x7Fu);
  EXPECT_EQ(c->Encode(std::nanf("")), 0x00u);  // policy none: NaN -> +0

  const ElementCodec* fn = Get("e3m4_fn");  // all-ones is NaN: max = 0x7E = 16*30/16
  EXPECT_EQ(fn->max_finite(), 30.0f);
  EXPECT_TRUE(std::isnan(fn->Decode(0x7F)));
  EXPECT_EQ(fn->Encode(std::nanf("")), 0x7Fu);
  EXPECT_EQ(fn->Encode(31.0f), 0x7Eu);

  const ElementCodec* ieee = Get("e3m4_ieee");  // exponent 7 reserved: max 2^3*31/16, 0x70 = Inf
  EXPECT_EQ(ieee->max_finite(), 15.5f);
  EXPECT_EQ(ieee->Decode(0x70), kInf);
  EXPECT_TRUE(std::isnan(ieee->Decode(0x71)));
  EXPECT_EQ(ieee->Encode(100.0f), 0x6Fu);
  EXPECT_EQ(ieee->Encode(kInf), 0x70u);
  EXPECT_EQ(ieee->Encode(-kInf), 0xF0u);

  const ElementCodec* fnuz = Get("e3m4_fnuz");  // bias 4: max 2^3*31/16, min sub 2^-3/16
  EXPECT_EQ(fnuz->max_finite(), 15.5f);
  EXPECT_EQ(fnuz->Decode(0x01), std::ldexp(1.0f, -7));
  EXPECT_TRUE(std::isnan(fnuz->Decode(0x80)));
  EXPECT_EQ(fnuz->Encode(-0.0f), 0x00u);

  const ElementCodec* b5 = Get("e3m4_b5");  // bias 5: max 2^2*31/16, min sub 2^-4/16
  EXPECT_EQ(b5->name(), "e3m4_b5");
  EXPECT_EQ(b5->max_finite(), 7.75f);
  EXPECT_EQ(b5->Decode(0x01), std::ldexp(1.0f, -8));

  const ElementCodec* nosub = Get("e3m4_nosub");  // exponent-0 codes are zeros; min positive 0.25
  EXPECT_EQ(nosub->Decode(0x01), 0.0f);
  EXPECT_TRUE(SameFloat(nosub->Decode(0x81), -0.0f));
  EXPECT_EQ(nosub->Decode(0x10), 0.25f);
  EXPECT_EQ(nosub->Encode(0.125f), 0x00u);  // the tie 2^(emin-1) goes to 0
  EXPECT_EQ(nosub->Encode(0.126f), 0x10u);
  EXPECT_EQ(nosub->Encode(0.1f), 0x00u);
  EXPECT_EQ(nosub->Encode(-0.2f), 0x90u);
  EXPECT_EQ(nosub->Encode(0.015625f), 0x00u);
}

TEST(GenericMinifloat, NamesAreCanonicalAndPointersStable) {
  EXPECT_EQ(Get("E3M4_None"), Get("e3m4"));
  EXPECT_EQ(Get("e3m4_nosub_b5_fn")->name(), "e3m4_fn_b5_nosub");
  EXPECT_EQ(Get("e3m4_b3")->name(), "e3m4");         // default bias dropped
  EXPECT_EQ(Get("e3m4_fnuz_b4")->name(), "e3m4_fnuz");
  EXPECT_EQ(Get("e4m3_none")->name(), "e4m3_none");  // bare e4m3 means fp8_e4m3 (FN)
  EXPECT_EQ(Get("e4m3_none"), Get("E4M3_NONE"));
  EXPECT_NE(Get("e4m3_none"), Get("e4m3"));
  EXPECT_EQ(Get("e4m3_none")->max_finite(), 480.0f);  // 2^8 * 1.875
  EXPECT_EQ(Get("e5m2_none")->name(), "e5m2_none");
  // Every name a generic codec reports finds the same codec again.
  for (const char* n : {"e3m4", "e3m4_fn", "e4m3_none", "e6m1_b20_nosub", "e2m5_fnuz", "e8m10_ieee"}) {
    const ElementCodec* c = Get(n);
    EXPECT_EQ(Get(c->name()), c) << n;
  }
  // Concurrent first lookups of a new name all get one instance.
  std::vector<const ElementCodec*> got(8, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&got, t] { got[t] = *FindElementCodec("e3m5_b2_fn"); });
  for (auto& th : threads) th.join();
  for (const ElementCodec* p : got) EXPECT_EQ(p, got[0]);
  EXPECT_EQ(got[0], Get("e3m5_fn_b2"));
}

TEST(GenericMinifloat, WideFormatsWithoutATable) {
  // e8m10_ieee (19 bits): values of bf16 with 3 more mantissa bits; spot values by hand.
  const ElementCodec* c = Get("e8m10_ieee");
  EXPECT_EQ(c->bits(), 19);
  EXPECT_EQ(c->Decode(127u << 10), 1.0f);
  EXPECT_EQ(c->Decode((127u << 10) | 1u), 1.0f + 1.0f / 1024);
  EXPECT_EQ(c->Decode(1u), std::ldexp(1.0f, -136));
  EXPECT_EQ(c->Decode(255u << 10), kInf);
  EXPECT_EQ(c->Encode(1.0f + 1.0f / 2048), 127u << 10);           // tie -> even
  EXPECT_EQ(c->Encode(1.0f + 3.0f / 2048), (127u << 10) | 2u);    // tie -> even
  EXPECT_EQ(c->Encode(std::numeric_limits<float>::max()), (254u << 10) | 1023u);  // saturates
  for (uint32_t code = 0; code < (255u << 10); code += 7) {
    EXPECT_EQ(c->Encode(c->Decode(code)), code) << code;
    EXPECT_EQ(c->Encode(c->Decode(code | (1u << 18))), code | (1u << 18)) << code;
  }
}

TEST(GenericMinifloat, BadNamesExplainTheGrammar) {
  for (const char* bad : {"e9m1", "e4m11", "e2m0_ieee", "e3m4_fn_fn", "e3m4_xyz", "e8m7", "e8m10_b200",
                          "e3m4_b", "e3", "e3m", "e3m4_", "e1m0_fn", "e3m4_nosub_nosub", "e3m4_b3_b4"}) {
    StatusOr<const ElementCodec*> c = FindElementCodec(bad);
    EXPECT_FALSE(c.ok()) << bad;
    if (!c.ok()) {
      EXPECT_NE(c.status().message().find(bad), std::string::npos) << c.status().message();
    }
  }
  EXPECT_NE(FindElementCodec("e3m4_xyz").status().message().find("e<E>m<M>"), std::string::npos);
  EXPECT_NE(FindElementCodec("e8m7").status().message().find("overflows fp32"), std::string::npos);
}

// ---- fp16 / bf16 against the IEEE casts of kernels/half.h (docs/formats.md §1.2) ----
TEST(HalfCodecs, DecodeEqualsHalfHOnAllCodes) {
  const ElementCodec* f16 = Get("fp16");
  const ElementCodec* b16 = Get("bf16");
  EXPECT_EQ(f16->max_finite(), 65504.0f);
  EXPECT_EQ(b16->max_finite(), Bf16ToF32(0x7F7F));
  for (uint32_t h = 0; h < 65536; ++h) {
    EXPECT_TRUE(SameFloat(f16->Decode(h), F16ToF32(uint16_t(h)))) << h;
    EXPECT_TRUE(SameFloat(b16->Decode(h), Bf16ToF32(uint16_t(h)))) << h;
    if (!std::isnan(F16ToF32(uint16_t(h)))) {
      EXPECT_EQ(f16->Encode(F16ToF32(uint16_t(h))), h);
    }
    if (!std::isnan(Bf16ToF32(uint16_t(h)))) {
      EXPECT_EQ(b16->Encode(Bf16ToF32(uint16_t(h))), h);
    }
  }
}

TEST(HalfCodecs, EncodeEqualsHalfHExceptFiniteOverflowSaturates) {
  const ElementCodec* f16 = Get("fp16");
  const ElementCodec* b16 = Get("bf16");
  int f16_sat = 0, b16_sat = 0, mismatches = 0;
  for (float x : SweepFloats()) {
    const uint32_t sign = std::signbit(x) ? 0x8000u : 0u;
    uint32_t want = F32ToF16(x);
    if (std::isfinite(x) && (want & 0x7FFFu) == 0x7C00u) {  // half.h overflowed to Inf: codec saturates
      want = sign | 0x7BFFu;
      ++f16_sat;
    }
    mismatches += f16->Encode(x) != want;
    want = F32ToBf16(x);
    if (std::isfinite(x) && (want & 0x7FFFu) == 0x7F80u) {
      want = sign | 0x7F7Fu;
      ++b16_sat;
    }
    mismatches += b16->Encode(x) != want;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(f16_sat, 1000);  // the sweep does reach the overflow region
  EXPECT_GT(b16_sat, 0);
  EXPECT_EQ(f16->Encode(65520.0f), 0x7BFFu);  // half.h: 0x7C00 (Inf)
  EXPECT_EQ(f16->Encode(-1e6f), 0xFBFFu);
  EXPECT_EQ(f16->Encode(kInf), 0x7C00u);      // Inf itself stays Inf (ieee policy)
  EXPECT_EQ(f16->Encode(std::nanf("")), 0x7E00u);
  EXPECT_EQ(b16->Encode(std::nanf("")), 0x7FC0u);
  EXPECT_EQ(b16->Encode(std::numeric_limits<float>::max()), 0x7F7Fu);  // half.h rounds it to Inf
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7F80u);
}

}  // namespace
}  // namespace ql
