// Generic ExMy minifloat element codec (sign + E exponent bits + M mantissa bits) and the named
// instances fp16, bf16, FP8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), FP6 (E2M3, E3M2), FP4 (E2M1).
// Not a block format: MX / NVFP4 scales live in block codecs that use these codecs for elements.
//
// Layout of a code (low 1+E+M bits): S | E exponent bits | M mantissa bits. With bias B and
// emin = 1 - B: exponent field e = 0 is subnormal, m * 2^(emin-M) (or +-0 only when subnormals are
// off); e > 0 is normal, (1 + m/2^M) * 2^(e-B). The special codes depend on the policy:
//   kIeee: e = all ones reserved: m = 0 is +-Inf, m != 0 NaN (E5M2, FP16, BF16). Needs E >= 2, M >= 1.
//   kFn:   no Inf; only S.1...1.1...1 (exponent and mantissa all ones) is NaN (E4M3FN).
//   kFnuz: no Inf, no -0; the single code 1.0...0.0...0 (S=1, rest 0, 0x80 for FP8) is NaN. Default
//          bias is 2^(E-1) (one more than IEEE): E4M3FNUZ, E5M2FNUZ.
//   kNone: every code is a finite number, +-0 kept (MX FP6/FP4).
//
// Encode (the "saturating cast" of docs/formats.md §1.1): round the exact input to the nearest representable
// value, ties to the even integer significand (exact integer arithmetic on the fp32 bits): for M >= 1
// that is the even mantissa LSB; for M = 0 a tie between 2^k and 2^(k+1) goes UP to 2^(k+1) (significand
// 1 vs 2, as microxcaling's round(a/2^e * 2^(mbits-2)) does) and a tie between 0 and 2^emin goes to 0.
// A finite input whose
// magnitude is >= max_finite encodes as +-max_finite. NOTE: PyTorch's raw float->float8_e4m3fn cast is
// NOT saturating (|x| >= 480 -> NaN, (464, 480) also -> NaN) and its E5M2 cast overflows to Inf;
// quantizers clamp to +-max before casting, which is what this codec does in one step (docs/formats.md §1.1).
// The fp16/bf16 codecs therefore differ from kernels/half.h (the IEEE cast, finite overflow -> Inf)
// exactly where half.h overflows: the codec gives +-max (65504 / bf16 0x7F7F) instead.
//   Inf input: +-Inf for kIeee (exactly representable), +-max_finite for the other policies.
//   NaN input: kIeee: S.1..1.10..0 (quiet NaN, input sign kept: fp16 0x7E00, bf16 0x7FC0, E5M2 0x7E);
//              kFn: S.1..1.1..1 (sign kept: E4M3FN 0x7F/0xFF); kFnuz: the NaN code (0x80);
//              kNone: +0 (the format has no NaN; the choice loses the NaN, stated in nan_policy()).
//   +-0 and values that round to zero keep their sign where the format has -0; kFnuz gives +0.
//   Subnormals off: inputs below the min normal 2^emin round to 0 or 2^emin (the tie 2^(emin-1) goes
//   to 0), exponent-0 codes with m != 0 decode to +-0 (non-canonical, never produced by Encode).
// Decode is exact (the constructor rejects specs whose values do not all fit fp32 exactly).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/format.h"

namespace ql {

enum class MinifloatPolicy { kIeee, kFn, kFnuz, kNone };
std::string_view MinifloatPolicyName(MinifloatPolicy p);  // "ieee", "fn", "fnuz", "none"

struct MinifloatSpec {
  static constexpr int kDefaultBias = -1000000;
  std::string name;         // DB name ("fp8_e4m3", "e3m4_fn")
  std::string description;  // one line; empty: generated from the parameters
  int exp_bits = 4;         // E, 1..8
  int man_bits = 3;         // M, 0..10
  int bias = kDefaultBias;  // kDefaultBias: 2^(E-1)-1, or 2^(E-1) for kFnuz
  bool subnormals = true;
  MinifloatPolicy policy = MinifloatPolicy::kNone;

  int ResolvedBias() const;
};

// Checks that a spec is a usable format: E in 1..8, M in 0..10, kIeee needs E >= 2 and M >= 1, at least
// one positive finite value, and every value exactly representable in fp32 (max finite <= FLT_MAX,
// smallest positive value >= 2^-149). The error names the spec and the violated limit.
Status ValidateMinifloatSpec(const MinifloatSpec& spec);

// Parses a generic minifloat name (case-insensitive) into a spec with a canonical name. Grammar:
//   e<E>m<M>[_ieee|_fn|_fnuz|_none][_b<bias>][_nosub]      (suffixes in any order, each at most once)
// Defaults: policy none (every code finite, +-0, like MX FP6/FP4), bias 2^(E-1)-1 (2^(E-1) for fnuz),
// subnormals on. Canonical name: e<E>m<M>, then _ieee/_fn/_fnuz if not none, then _b<bias> if not the
// default, then _nosub: "E3M4_None" -> "e3m4", "e4m3_b7_fn" -> "e4m3_fn". The named formats and their
// aliases (e4m3 -> fp8_e4m3 = E4M3FN, e5m2 -> fp8_e5m2 = IEEE-like) are resolved before this grammar
// by FindElementCodec, so "e4m3" means fp8_e4m3 while "e4m3_none" is the all-finite variant.
// FindElementCodec returns the named codec when the parsed parameters equal a named format
// ("e4m3_fn" -> fp8_e4m3, "e2m1_none" -> fp4_e2m1, "e5m10_ieee" -> fp16), and spells the policy out
// when the bare canonical name is an alias of a different format ("e4m3_none", "e5m2_none").
StatusOr<MinifloatSpec> ParseMinifloatName(std::string_view name);

class MinifloatCodec final : public ElementCodec {
 public:
  explicit MinifloatCodec(MinifloatSpec spec);  // QL_CHECKs ValidateMinifloatSpec

  std::string name() const override { return spec_.name; }
  std::string description() const override { return description_; }
  FormatKind kind() const override { return FormatKind::kFloat; }
  int bits() const override { return 1 + spec_.exp_bits + spec_.man_bits; }
  float max_finite() const override { return max_finite_; }
  float min_value() const override { return -max_finite_; }
  uint32_t Encode(float v) const override;
  float Decode(uint32_t code) const override;
  std::string nan_policy() const override;

  const MinifloatSpec& spec() const { return spec_; }
  int bias() const { return bias_; }
  bool IsNanCode(uint32_t code) const;
  bool IsInfCode(uint32_t code) const;
  float min_normal() const;     // 2^emin
  float min_subnormal() const;  // smallest positive value (2^(emin-M), or 2^emin without subnormals)

 private:
  double DecodeMagnitude(uint32_t mag) const;  // mag = the low E+M bits of a finite code
  float DecodeUncached(uint32_t code) const;   // code masked to bits(); NaN codes give a (signed) NaN

  MinifloatSpec spec_;
  std::string description_;
  int bias_ = 0;
  int emin_ = 0;             // unbiased exponent of the min normal, 1 - bias
  uint32_t sign_bit_ = 0;    // 1 << (E+M)
  uint32_t max_mag_ = 0;     // E+M bit magnitude code of max_finite
  float max_finite_ = 0;
  std::vector<float> table_;  // code -> value for formats of <= 16 bits
};

// Named instances (DB names, never renamed). docs/formats.md §1.1 (FP8/FP6/FP4) and §1.2 (FP16/BF16).
//   fp16          S.EEEEE.MMMMMMMMMM     bias 15, max 65504, min normal 2^-14, min sub 2^-24, IEEE Inf/NaN
//   bf16          S.EEEEEEEE.MMMMMMM     bias 127, max 0x7F7F = (2-2^-7)*2^127, IEEE Inf/NaN
//   fp8_e4m3      S.EEEE.MMM  (E4M3FN)   bias 7, max 448 (0x7E), min normal 2^-6, min sub 2^-9,
//                                        no Inf, NaN 0x7F/0xFF, +-0
//   fp8_e4m3fnuz  S.EEEE.MMM  (FNUZ)     bias 8, max 240 (0x7F), min normal 2^-7, min sub 2^-10,
//                                        no Inf, NaN 0x80 only, +0 only
//   fp8_e5m2      S.EEEEE.MM             bias 15, max 57344 (0x7B), min normal 2^-14, min sub 2^-16,
//                                        Inf 0x7C/0xFC, NaN S.11111.{01,10,11}, +-0
//   fp8_e5m2fnuz  S.EEEEE.MM  (FNUZ)     bias 16, max 57344 (0x7F), min normal 2^-15, min sub 2^-17,
//                                        no Inf, NaN 0x80 only, +0 only
//   fp6_e2m3      S.EE.MMM    (MX)       bias 1, max 7.5, min normal 1, min sub 0.125, all finite, +-0
//   fp6_e3m2      S.EEE.MM    (MX)       bias 3, max 28, min normal 0.25, min sub 0.0625, all finite, +-0
//   fp4_e2m1      S.EE.M      (MX/NV)    bias 1, max 6, min normal 1, min sub 0.5, all finite, +-0;
//                                        |codes| 0..7 = 0, 0.5, 1, 1.5, 2, 3, 4, 6
MinifloatSpec Fp16Spec();
MinifloatSpec Bf16Spec();
MinifloatSpec Fp8E4m3Spec();
MinifloatSpec Fp8E4m3FnuzSpec();
MinifloatSpec Fp8E5m2Spec();
MinifloatSpec Fp8E5m2FnuzSpec();
MinifloatSpec Fp6E2m3Spec();
MinifloatSpec Fp6E3m2Spec();
MinifloatSpec Fp4E2m1Spec();

}  // namespace ql
