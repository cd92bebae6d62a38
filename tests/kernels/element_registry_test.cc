// The element-codec registry (kernels/format_list.cc): every registered codec, looked up by name and
// alias, round-trips every code; unknown names produce errors that list the valid names.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "kernels/format.h"

namespace ql {
namespace {

std::string Upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

TEST(ElementRegistry, ListsTheNamedCodecsOnce) {
  std::set<std::string> names;
  for (const ElementCodec* c : ElementCodecs()) {
    EXPECT_TRUE(names.insert(c->name()).second) << "duplicate " << c->name();
    EXPECT_FALSE(c->description().empty()) << c->name();
    EXPECT_FALSE(c->nan_policy().empty()) << c->name();
  }
  // The DB names promised by the format headers (never renamed).
  for (const char* n : {"int2", "int4", "int8", "uint4", "uint8", "fp16", "bf16", "fp8_e4m3", "fp8_e4m3fnuz",
                        "fp8_e5m2", "fp8_e5m2fnuz", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0"})
    EXPECT_EQ(names.count(n), 1u) << n;
}

TEST(ElementRegistry, EveryCodecIsFoundByNameInAnyCase) {
  for (const ElementCodec* c : ElementCodecs()) {
    StatusOr<const ElementCodec*> a = FindElementCodec(c->name());
    StatusOr<const ElementCodec*> b = FindElementCodec(Upper(c->name()));
    ASSERT_TRUE(a.ok() && b.ok()) << c->name();
    EXPECT_EQ(*a, c);
    EXPECT_EQ(*b, c);
  }
}

TEST(ElementRegistry, EveryNonNanCodeRoundTrips) {
  for (const ElementCodec* c : ElementCodecs()) {
    SCOPED_TRACE(c->name());
    ASSERT_LE(c->bits(), 16);
    int nan_codes = 0;
    for (uint32_t code = 0; code < (1u << c->bits()); ++code) {
      const float v = c->Decode(code);
      if (std::isnan(v)) {
        ++nan_codes;
        continue;
      }
      EXPECT_EQ(c->Encode(v), code) << "code " << code << " value " << v;
      if (std::isfinite(v)) {
        EXPECT_LE(v, c->max_finite());
        EXPECT_GE(v, c->min_value());
      }
    }
    // Every format reaches its stated extremes.
    EXPECT_EQ(c->Round(c->max_finite()), c->max_finite());
    EXPECT_EQ(c->Round(c->min_value()), c->min_value());
    if (c->kind() == FormatKind::kInt) {
      EXPECT_EQ(nan_codes, 0);
    }
  }
}

TEST(ElementRegistry, KindsAndNames) {
  EXPECT_EQ(FormatKindName(FormatKind::kInt), "int");
  EXPECT_EQ(FormatKindName(FormatKind::kFloat), "float");
  EXPECT_EQ(FormatKindName(FormatKind::kCodebook), "codebook");
  EXPECT_EQ(FormatKindName(FormatKind::kScale), "scale");
  EXPECT_EQ(FormatKindName(FormatKind::kBlock), "block");
  EXPECT_EQ((*FindElementCodec("int4"))->kind(), FormatKind::kInt);
  EXPECT_EQ((*FindElementCodec("fp8"))->kind(), FormatKind::kFloat);
  EXPECT_EQ((*FindElementCodec("e8m0"))->kind(), FormatKind::kScale);
}

TEST(ElementRegistry, Aliases) {
  const std::pair<const char*, const char*> kAliases[] = {
      {"e4m3", "fp8_e4m3"},    {"E4M3", "fp8_e4m3"},         {"fp8", "fp8_e4m3"},       {"e4m3fn", "fp8_e4m3"},
      {"float8_e4m3fn", "fp8_e4m3"}, {"e4m3fnuz", "fp8_e4m3fnuz"}, {"e5m2", "fp8_e5m2"}, {"E5M2FNUZ", "fp8_e5m2fnuz"},
      {"e2m1", "fp4_e2m1"},    {"fp4", "fp4_e2m1"},          {"FP4", "fp4_e2m1"},       {"e2m3", "fp6_e2m3"},
      {"e3m2", "fp6_e3m2"},    {"half", "fp16"},             {"f16", "fp16"},           {"Half", "fp16"},
      {"bfloat16", "bf16"},    {"BFloat16", "bf16"},         {"ue8m0", "e8m0"},         {"float8_e8m0fnu", "e8m0"}};
  for (auto [alias, name] : kAliases) {
    StatusOr<const ElementCodec*> c = FindElementCodec(alias);
    ASSERT_TRUE(c.ok()) << alias << ": " << c.status().message();
    EXPECT_EQ((*c)->name(), name) << alias;
  }
}

TEST(ElementRegistry, UnknownNamesListTheValidOnes) {
  for (const char* bad : {"foo", "int9", "int1", "uint0", "fp5", "", "nf4x"}) {
    StatusOr<const ElementCodec*> c = FindElementCodec(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find(std::string("'") + bad + "'"), std::string::npos) << c.status().message();
  }
  const std::string msg = FindElementCodec("foo").status().message();
  for (const char* want : {"fp8_e4m3", "fp4_e2m1", "int4", "uint8", "bf16", "e8m0", "int<b>", "e<E>m<M>", "half"})
    EXPECT_NE(msg.find(want), std::string::npos) << want << " missing from: " << msg;
  EXPECT_NE(FindElementCodec("int9").status().message().find("2..8"), std::string::npos);
}

TEST(BlockRegistry, UnknownNameIsAnError) {
  StatusOr<const BlockCodec*> c = FindBlockCodec("no_such_block_format");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("no_such_block_format"), std::string::npos);
  for (const BlockCodec* b : BlockCodecs()) {  // whatever block codecs are registered are found by name
    StatusOr<const BlockCodec*> f = FindBlockCodec(Upper(b->name()));
    ASSERT_TRUE(f.ok()) << b->name();
    EXPECT_EQ(*f, b);
  }
}

}  // namespace
}  // namespace ql
