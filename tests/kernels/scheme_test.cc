// Tests of the scheme grammar: accepted spellings -> canonical form, parse/print round trips for a
// table of strings, every registered codec and an enumerated product of options, and rejections.
#include "kernels/scheme.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

struct Case {
  const char* input;
  const char* canonical;
};

// Hand-written: what a researcher types -> what the results DB stores.
const Case kCanonical[] = {
    {"int4:g128:asym", "int4:g128:asym"},
    {"INT4:G128", "int4:g128"},
    {"int4-g128-asym", "int4:g128:asym"},
    {"int4 g128 asym", "int4:g128:asym"},
    {"  int4 :  g128  ", "int4:g128"},
    {"uint4:g128", "int4:g128:asym"},
    {"uint8:tensor", "int8:tensor:asym"},
    {"int4:g128:minmax", "int4:g128:asym"},
    {"int4:g128:asym:minmax", "int4:g128:asym"},
    {"int8:channel", "int8:channel"},
    {"int8:per_channel:sym", "int8:channel"},
    {"int8:channel:absmax", "int8:channel"},
    {"int8:channel:max:s=fp32", "int8:channel"},
    {"int8:token", "int8:token"},
    {"int8:per_token", "int8:token"},
    {"int4:channel_in", "int4:channel_in"},
    {"int4:g128:symfull", "int4:g128:symfull"},
    {"int4:symfull:g128", "int4:g128:symfull"},
    {"int4:s=fp16:g128", "int4:g128:s=fp16"},
    {"int4:g128:scale=bf16", "int4:g128:s=bf16"},
    {"int4:g32:s=e8m0", "int4:g32:s=e8m0"},
    {"int4:g16:s=E4M3", "int4:g16:s=e4m3"},
    {"int4:k64", "int4:g64"},
    {"int4:b128x128", "int4:b128x128"},
    {"int4:B64X32:asym", "int4:b64x32:asym"},
    {"int4:g128:pct99.9", "int4:g128:pct99.9"},
    {"int4:pct99.90:g128", "int4:g128:pct99.9"},
    {"int4:g128:pct100", "int4:g128"},
    {"int3:channel:mse", "int3:channel:mse"},
    {"int3:mse:asym:channel", "int3:channel:asym:mse"},
    {"int2:g64:asym:mse:s=fp16", "int2:g64:asym:mse:s=fp16"},
    {"fp8_e4m3:tensor", "fp8_e4m3:tensor"},
    {"fp8:tensor", "fp8_e4m3:tensor"},
    {"FP8:TENSOR", "fp8_e4m3:tensor"},
    {"e4m3:channel", "fp8_e4m3:channel"},
    {"e5m2:tensor", "fp8_e5m2:tensor"},
    {"fp8_e4m3:tensor:sym", "fp8_e4m3:tensor"},
    {"fp8_e4m3:noscale", "fp8_e4m3:noscale"},
    {"fp8:cast", "fp8_e4m3:noscale"},
    {"fp8_e4m3:none", "fp8_e4m3:noscale"},
    {"fp4:g16:s=e4m3", "fp4_e2m1:g16:s=e4m3"},
    {"e2m1:g32:s=e8m0", "fp4_e2m1:g32:s=e8m0"},
    {"fp6_e2m3:g32", "fp6_e2m3:g32"},
    {"bf16", "bf16"},
    {"bfloat16", "bf16"},
    {"BF16:noscale", "bf16"},
    {"fp16", "fp16"},
    {"half", "fp16"},
    {"bf16:tensor", "bf16:tensor"},
    {"int8:noscale", "int8:noscale"},
};

TEST(SchemeTest, CanonicalForms) {
  for (const Case& c : kCanonical) {
    StatusOr<Scheme> s = ParseScheme(c.input);
    ASSERT_TRUE(s.ok()) << c.input << ": " << s.status().message();
    EXPECT_EQ(ToString(*s), c.canonical) << "input " << c.input;
    // Canonical strings parse back to the same scheme and print unchanged.
    StatusOr<Scheme> again = ParseScheme(ToString(*s));
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(*again, *s) << c.input;
    EXPECT_EQ(ToString(*again), c.canonical);
  }
}

TEST(SchemeTest, FieldsOfParsedSchemes) {
  Scheme s = *ParseScheme("uint4-g128");
  EXPECT_EQ(s.format, "int4");
  EXPECT_FALSE(s.is_block);
  EXPECT_EQ(s.granularity, Granularity::kGroup);
  EXPECT_EQ(s.group_size, 128);
  EXPECT_EQ(s.int_mode, IntMode::kAsym);
  EXPECT_EQ(s.clip, ClipRule::kMax);
  EXPECT_EQ(s.scale_dtype, ScaleDtype::kFp32);

  s = *ParseScheme("int4:b64x32:pct99.5:symfull:s=fp16");
  EXPECT_EQ(s.granularity, Granularity::kBlock2d);
  EXPECT_EQ(s.tile_rows, 64);
  EXPECT_EQ(s.tile_cols, 32);
  EXPECT_EQ(s.clip, ClipRule::kPercentile);
  EXPECT_DOUBLE_EQ(s.percentile, 99.5);
  EXPECT_EQ(s.int_mode, IntMode::kSymFull);
  EXPECT_EQ(s.scale_dtype, ScaleDtype::kFp16);

  s = *ParseScheme("fp8_e4m3:noscale");
  EXPECT_EQ(s.granularity, Granularity::kNone);
  s = *ParseScheme("bf16");
  EXPECT_EQ(s.granularity, Granularity::kNone);
}

// Every registered element codec (but the scale-only E8M0) round-trips with every granularity.
TEST(SchemeTest, EveryRegisteredElementCodecRoundTrips) {
  const std::vector<std::string> opts = {"tensor", "channel", "channel_in", "token", "g32",
                                         "b16x16", "noscale"};
  int n = 0;
  for (const ElementCodec* c : ElementCodecs()) {
    if (c->kind() == FormatKind::kScale) {
      EXPECT_FALSE(ParseScheme(c->name() + ":tensor").ok()) << c->name();
      continue;
    }
    for (const std::string& o : opts) {
      // uint<b> is int<b>:asym, which has a zero point and so no scale-free cast.
      if (o == "noscale" && c->name().rfind("uint", 0) == 0) {
        EXPECT_FALSE(ParseScheme(c->name() + ":" + o).ok());
        continue;
      }
      const std::string text = c->name() + ":" + o;
      StatusOr<Scheme> s = ParseScheme(text);
      ASSERT_TRUE(s.ok()) << text << ": " << s.status().message();
      StatusOr<Scheme> back = ParseScheme(ToString(*s));
      ASSERT_TRUE(back.ok()) << ToString(*s) << ": " << back.status().message();
      EXPECT_EQ(*back, *s) << text;
      ++n;
    }
  }
  EXPECT_GT(n, 50);
}

TEST(SchemeTest, EveryRegisteredBlockCodecRoundTrips) {
  for (const BlockCodec* c : BlockCodecs()) {
    StatusOr<Scheme> s = ParseScheme(c->name());
    ASSERT_TRUE(s.ok()) << c->name() << ": " << s.status().message();
    EXPECT_TRUE(s->is_block);
    if (!c->granularity().empty()) {  // codebook formats: the one granularity, spelled; no block size
      const std::string canon = c->name() + ":" + std::string(c->granularity());
      EXPECT_EQ(ToString(*s), canon);
      EXPECT_EQ(*ParseScheme(canon), *s);
      EXPECT_FALSE(ParseScheme(c->name() + ":g32").ok());
      EXPECT_FALSE(ParseScheme(canon + ":" + std::string(c->granularity())).ok());
      EXPECT_FALSE(ParseScheme(c->name() + (c->granularity() == "tensor" ? ":channel" : ":tensor")).ok());
      EXPECT_FALSE(ParseScheme(c->name() + ":asym").ok());
      continue;
    }
    EXPECT_EQ(ToString(*s), c->name());  // defaults are omitted
    // The default block size spelled out is still the bare name.
    StatusOr<Scheme> d = ParseScheme(c->name() + ":g" + std::to_string(c->default_block_size()));
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(ToString(*d), c->name());
    const std::string other = c->name() + ":g" + std::to_string(2 * c->default_block_size());
    StatusOr<Scheme> o = ParseScheme(other);
    if (c->block_size_fixed()) {
      EXPECT_FALSE(o.ok()) << other;
    } else {
      ASSERT_TRUE(o.ok()) << other << ": " << o.status().message();
      EXPECT_EQ(ToString(*o), other);
      EXPECT_EQ(*ParseScheme(ToString(*o)), *o);
    }
    // Element-scheme options do not apply to block formats.
    EXPECT_FALSE(ParseScheme(c->name() + ":asym").ok());
    EXPECT_FALSE(ParseScheme(c->name() + ":tensor").ok());
  }
}

// Parse(ToString(x)) == x over an enumerated product of options, built as structs (not strings).
TEST(SchemeTest, EnumeratedSchemesRoundTrip) {
  const char* formats[] = {"int2", "int3", "int4", "int8", "fp8_e4m3", "fp4_e2m1", "fp6_e3m2"};
  const Granularity grans[] = {Granularity::kTensor, Granularity::kChannel, Granularity::kChannelIn,
                               Granularity::kToken, Granularity::kGroup, Granularity::kBlock2d};
  const IntMode modes[] = {IntMode::kSym, IntMode::kSymFull, IntMode::kAsym};
  const ScaleDtype dts[] = {ScaleDtype::kFp32, ScaleDtype::kFp16, ScaleDtype::kBf16, ScaleDtype::kE8m0,
                            ScaleDtype::kE4m3};
  int n = 0;
  for (const char* f : formats) {
    const bool is_int = std::string(f).rfind("int", 0) == 0;
    for (Granularity g : grans)
      for (IntMode m : modes) {
        if (!is_int && m != IntMode::kSym) continue;
        for (int clip = 0; clip < 3; ++clip)
          for (ScaleDtype d : dts) {
            Scheme s;
            s.format = f;
            s.granularity = g;
            if (g == Granularity::kGroup) s.group_size = 48;
            if (g == Granularity::kBlock2d) s.tile_rows = 8, s.tile_cols = 128;
            s.int_mode = m;
            s.clip = clip == 0 ? ClipRule::kMax : clip == 1 ? ClipRule::kPercentile : ClipRule::kMse;
            if (s.clip == ClipRule::kPercentile) s.percentile = 99.99;
            s.scale_dtype = d;
            StatusOr<Scheme> back = ParseScheme(ToString(s));
            ASSERT_TRUE(back.ok()) << ToString(s) << ": " << back.status().message();
            EXPECT_EQ(*back, s) << ToString(s);
            ++n;
          }
      }
  }
  EXPECT_EQ(n, (4 * 6 * 3 + 3 * 6) * 3 * 5);
}

struct BadCase {
  const char* input;
  const char* must_mention;  // the offending token, or the missing piece
};

const BadCase kBad[] = {
    {"", "empty"},
    {"   ", "empty"},
    {"int9:tensor", "int9"},
    {"foo", "foo"},
    {"fp7:tensor", "fp7"},
    {"int4", "granularity"},
    {"fp8", "granularity"},
    {"int4:g0", "g0"},
    {"int4:g-1", "unknown"},
    {"int4:gx", "gx"},
    {"int4:b0x4", "b0x4"},
    {"int4:b4x", "b4x"},
    {"int4:g128:channel", "channel"},
    {"int4:tensor:tensor", "tensor"},
    {"int4:g128:asym:sym", "sym"},
    {"int4:g128:asym:absmax", "absmax"},
    {"int4:g128:sym:minmax", "minmax"},
    {"uint4:g128:sym", "sym"},
    {"int4:g128:pct50", "pct50"},
    {"int4:g128:pct101", "pct101"},
    {"int4:g128:pctx", "pctx"},
    {"int4:g128:mse:pct99", "pct99"},
    {"int4:g128:s=fp8x", "s=fp8x"},
    {"int4:g128:s=fp16:s=bf16", "scale dtype"},
    {"int4:g128:bogus", "bogus"},
    {"fp8_e4m3:tensor:asym", "asym"},
    {"fp8_e4m3:tensor:symfull", "symfull"},
    {"fp8_e4m3:tensor:minmax", "minmax"},
    {"fp8_e4m3:noscale:s=fp16", "noscale"},
    {"int8:noscale:asym", "noscale"},
    {"bf16:noscale:mse", "noscale"},
    {"e8m0:tensor", "scale format"},
    {"uint4", "granularity"},
};

TEST(SchemeTest, InvalidStringsGiveOneLineErrors) {
  for (const BadCase& b : kBad) {
    StatusOr<Scheme> s = ParseScheme(b.input);
    ASSERT_FALSE(s.ok()) << "'" << b.input << "' was accepted as " << ToString(*s);
    const std::string& m = s.status().message();
    EXPECT_NE(m.find(b.must_mention), std::string::npos) << "'" << b.input << "': " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  // Unknown tokens list what is allowed.
  const std::string m = ParseScheme("int4:g128:bogus").status().message();
  EXPECT_NE(m.find("g<N>"), std::string::npos) << m;
  EXPECT_NE(m.find("asym"), std::string::npos) << m;
  EXPECT_NE(m.find("s=fp32"), std::string::npos) << m;
  const std::string f = ParseScheme("foo:tensor").status().message();
  EXPECT_NE(f.find("fp8_e4m3"), std::string::npos) << f;
  EXPECT_NE(f.find("int<b>"), std::string::npos) << f;
}

TEST(SchemeTest, BlockCodecSpellings) {
  const Case cases[] = {
      {"MXFP4", "mxfp4"},           {"mxfp4:k32", "mxfp4"},        {"mxfp4:g32:floor", "mxfp4"},
      {"mxfp4:ceil:g16", "mxfp4:g16:ceil"}, {"mxfp8_e4m3:even", "mxfp8_e4m3:even"},
      {"nvfp4", "nvfp4"},           {"nvfp4:modelopt", "nvfp4"},   {"nvfp4:compressed_tensors", "nvfp4:ct"},
      {"nvfp4-ct", "nvfp4:ct"},     {"nf4", "nf4"},                {"nf4:g64:dq", "nf4:dq"},
      {"NF4:DQ:G128", "nf4:g128:dq"}, {"Q4_K", "q4_k"},            {"q4_k:g256", "q4_k"},
      {"q8_0", "q8_0"},
  };
  for (const Case& c : cases) {
    StatusOr<Scheme> s = ParseScheme(c.input);
    ASSERT_TRUE(s.ok()) << c.input << ": " << s.status().message();
    EXPECT_TRUE(s->is_block);
    EXPECT_EQ(ToString(*s), c.canonical) << c.input;
    EXPECT_EQ(*ParseScheme(ToString(*s)), *s);
  }
  const Scheme s = *ParseScheme("nf4:g128:dq");
  EXPECT_EQ(s.block.block_size, 128);
  EXPECT_TRUE(s.block.nf4_double_quant);
  EXPECT_EQ(ParseScheme("mxfp4:even")->block.mx_rounding, MxScaleRounding::kEven);
  EXPECT_EQ(ParseScheme("nvfp4:ct")->block.nvfp4, NvFp4Convention::kCompressedTensors);
  for (const char* bad : {"nvfp4:ceil", "q4_k:dq", "mxfp4:ct", "nf4:dq:dq", "q4_k:g64", "mxfp4:g0",
                          "mxfp4:channel", "nf4:s=fp16"}) {
    StatusOr<Scheme> b = ParseScheme(bad);
    EXPECT_FALSE(b.ok()) << bad << " accepted as " << ToString(*b);
  }
}

TEST(SchemeTest, TileShapes) {
  // [rows, cols] = [10, 172]
  TileShape t = TilesFor(*ParseScheme("int4:g128"), 10, 172);
  EXPECT_EQ(t.tile_rows, 1);
  EXPECT_EQ(t.tile_cols, 128);
  EXPECT_EQ(t.grid_rows, 10);
  EXPECT_EQ(t.grid_cols, 2);  // 128 + a partial 44
  t = TilesFor(*ParseScheme("int4:b4x64"), 10, 172);
  EXPECT_EQ(t.grid_rows, 3);
  EXPECT_EQ(t.grid_cols, 3);
  t = TilesFor(*ParseScheme("int8:channel"), 10, 172);
  EXPECT_EQ(t.grid_rows, 10);
  EXPECT_EQ(t.grid_cols, 1);
  t = TilesFor(*ParseScheme("int8:channel_in"), 10, 172);
  EXPECT_EQ(t.grid_rows, 1);
  EXPECT_EQ(t.grid_cols, 172);
  t = TilesFor(*ParseScheme("int8:tensor"), 10, 172);
  EXPECT_EQ(t.num_tiles(), 1);
  t = TilesFor(*ParseScheme("fp8_e4m3:noscale"), 10, 172);
  EXPECT_EQ(t.num_tiles(), 0);
}

}  // namespace
}  // namespace ql
