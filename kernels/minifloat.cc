// Generic ExMy minifloat codec: exact RNE encode on the fp32 bits, saturating, and exact decode
// (see minifloat.h for the layout and policies; docs/formats.md §1.1, §1.2).
#include "kernels/minifloat.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "kernels/half.h"

namespace ql {

std::string_view MinifloatPolicyName(MinifloatPolicy p) {
  switch (p) {
    case MinifloatPolicy::kIeee: return "ieee";
    case MinifloatPolicy::kFn: return "fn";
    case MinifloatPolicy::kFnuz: return "fnuz";
    case MinifloatPolicy::kNone: return "none";
  }
  return "?";
}

int MinifloatSpec::ResolvedBias() const {
  if (bias != kDefaultBias) return bias;
  return policy == MinifloatPolicy::kFnuz ? (1 << (exp_bits - 1)) : (1 << (exp_bits - 1)) - 1;
}

namespace {

// E+M bit magnitude code of the largest finite value under each policy.
uint32_t MaxMagnitudeCode(int e, int m, MinifloatPolicy p) {
  const uint32_t all_ones = (1u << (e + m)) - 1u;
  switch (p) {
    case MinifloatPolicy::kIeee: return ((((1u << e) - 1u)) << m) - 1u;  // just below the Inf code
    case MinifloatPolicy::kFn: return all_ones - 1u;                    // all ones is NaN
    case MinifloatPolicy::kFnuz:
    case MinifloatPolicy::kNone: return all_ones;
  }
  return 0;
}

}  // namespace

Status ValidateMinifloatSpec(const MinifloatSpec& s) {
  const std::string who = s.name.empty() ? fmt::format("e{}m{}", s.exp_bits, s.man_bits) : s.name;
  if (s.exp_bits < 1 || s.exp_bits > 8)
    return Status::Errorf("minifloat '{}': exponent bits {} not in 1..8", who, s.exp_bits);
  if (s.man_bits < 0 || s.man_bits > 10)
    return Status::Errorf("minifloat '{}': mantissa bits {} not in 0..10", who, s.man_bits);
  if (s.policy == MinifloatPolicy::kIeee && (s.exp_bits < 2 || s.man_bits < 1))
    return Status::Errorf("minifloat '{}': the ieee policy needs E >= 2 and M >= 1 to have Inf and NaN codes; "
                          "use _fn or _none", who);
  const int bias = s.ResolvedBias();
  const int emin = 1 - bias;
  if (emin - s.man_bits < -149)
    return Status::Errorf("minifloat '{}': bias {} makes the smallest value 2^{} < 2^-149, not exact in fp32; "
                          "use a smaller bias", who, bias, emin - s.man_bits);
  const uint32_t max_mag = MaxMagnitudeCode(s.exp_bits, s.man_bits, s.policy);
  const int max_field = int(max_mag >> s.man_bits);
  if (max_mag == 0 || (!s.subnormals && max_field == 0))
    return Status::Errorf("minifloat '{}': no positive finite value under policy {}{}", who,
                          MinifloatPolicyName(s.policy), s.subnormals ? "" : " without subnormals");
  if (std::max(max_field, 1) - bias > 127)
    return Status::Errorf("minifloat '{}': max exponent 2^{} overflows fp32; use a larger bias", who,
                          std::max(max_field, 1) - bias);
  return Status::Ok();
}

MinifloatCodec::MinifloatCodec(MinifloatSpec spec) : spec_(std::move(spec)) {
  const Status st = ValidateMinifloatSpec(spec_);
  QL_CHECK(st.ok(), "{}", st.message());
  const int e = spec_.exp_bits, m = spec_.man_bits;
  bias_ = spec_.ResolvedBias();
  emin_ = 1 - bias_;
  sign_bit_ = 1u << (e + m);
  max_mag_ = MaxMagnitudeCode(e, m, spec_.policy);
  max_finite_ = float(DecodeMagnitude(max_mag_));
  description_ = spec_.description.empty()
                     ? fmt::format("E{}M{} minifloat: bias {}, max {}, policy {}, subnormals {}", e, m, bias_,
                                   max_finite_, MinifloatPolicyName(spec_.policy), spec_.subnormals ? "on" : "off")
                     : spec_.description;
  if (bits() <= 16) {  // decode table, 2^bits floats (256 KiB for fp16/bf16)
    std::vector<float> t(size_t(1) << bits());
    for (uint32_t c = 0; c < t.size(); ++c) t[c] = DecodeUncached(c);
    table_ = std::move(t);
  }
}

float MinifloatCodec::DecodeUncached(uint32_t code) const {
  float v;
  if (IsNanCode(code)) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (IsInfCode(code)) {
    v = std::numeric_limits<float>::infinity();
  } else {
    v = float(DecodeMagnitude(code & (sign_bit_ - 1u)));
  }
  return (code & sign_bit_) ? -v : v;
}

double MinifloatCodec::DecodeMagnitude(uint32_t mag) const {
  const int m = spec_.man_bits;
  const uint32_t e = mag >> m;
  const uint32_t frac = mag & ((1u << m) - 1u);
  if (e == 0) return spec_.subnormals ? std::ldexp(double(frac), emin_ - m) : 0.0;
  return std::ldexp(double((1u << m) | frac), int(e) - bias_ - m);  // (1 + frac/2^M) * 2^(e-bias)
}

bool MinifloatCodec::IsNanCode(uint32_t code) const {
  code &= (sign_bit_ << 1) - 1u;
  const uint32_t mag = code & (sign_bit_ - 1u);
  const int m = spec_.man_bits;
  switch (spec_.policy) {
    case MinifloatPolicy::kIeee: return (mag >> m) == (1u << spec_.exp_bits) - 1u && (mag & ((1u << m) - 1u)) != 0;
    case MinifloatPolicy::kFn: return mag == sign_bit_ - 1u;
    case MinifloatPolicy::kFnuz: return code == sign_bit_;
    case MinifloatPolicy::kNone: return false;
  }
  return false;
}

bool MinifloatCodec::IsInfCode(uint32_t code) const {
  if (spec_.policy != MinifloatPolicy::kIeee) return false;
  return (code & (sign_bit_ - 1u)) == ((1u << spec_.exp_bits) - 1u) << spec_.man_bits;
}

float MinifloatCodec::min_normal() const { return std::ldexp(1.0f, emin_); }
float MinifloatCodec::min_subnormal() const {
  return spec_.subnormals ? std::ldexp(1.0f, emin_ - spec_.man_bits) : min_normal();
}

std::string MinifloatCodec::nan_policy() const {
  switch (spec_.policy) {
    case MinifloatPolicy::kIeee:
      return fmt::format("ieee: NaN -> 0x{:x} (quiet, sign kept), +-Inf -> +-Inf 0x{:x}; finite overflow "
                         "saturates to +-max",
                         ((1u << (spec_.exp_bits + 1)) - 1u) << (spec_.man_bits - 1),
                         ((1u << spec_.exp_bits) - 1u) << spec_.man_bits);
    case MinifloatPolicy::kFn:
      return fmt::format("fn: no Inf; NaN -> 0x{:x} (sign kept), +-Inf and overflow saturate to +-max",
                         sign_bit_ - 1u);
    case MinifloatPolicy::kFnuz:
      return fmt::format("fnuz: no Inf, no -0; NaN -> 0x{:x} (the only NaN code), +-Inf and overflow saturate "
                         "to +-max, -0 -> +0",
                         sign_bit_);
    case MinifloatPolicy::kNone:
      return "none: no NaN/Inf codes; NaN -> +0 (NaN is lost), +-Inf and overflow saturate to +-max";
  }
  return "";
}

uint32_t MinifloatCodec::Encode(float v) const {
  const uint32_t u = F32Bits(v);
  const uint32_t sign = (u >> 31) ? sign_bit_ : 0u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const int m = spec_.man_bits;
  if (a > 0x7F800000u) {  // NaN
    switch (spec_.policy) {
      case MinifloatPolicy::kIeee:
        return sign | (((1u << (spec_.exp_bits + 1)) - 1u) << (m - 1));
      case MinifloatPolicy::kFn: return sign | (sign_bit_ - 1u);
      case MinifloatPolicy::kFnuz: return sign_bit_;
      case MinifloatPolicy::kNone: return 0u;
    }
  }
  if (a == 0x7F800000u && spec_.policy == MinifloatPolicy::kIeee)
    return sign | (((1u << spec_.exp_bits) - 1u) << m);
  uint32_t mag;
  if (BitsF32(a) >= max_finite_) {  // includes Inf for the policies without Inf
    mag = max_mag_;
  } else if (a == 0) {
    mag = 0;
  } else {
    // |v| = mant * 2^exp2 exactly.
    uint32_t mant;
    int exp2;
    if (a >> 23) {
      mant = (a & 0x7FFFFFu) | 0x800000u;
      exp2 = int(a >> 23) - 150;
    } else {
      mant = a;
      exp2 = -149;
    }
    const int e_unb = (31 - std::countl_zero(mant)) + exp2;  // floor(log2 |v|)
    if (!spec_.subnormals && e_unb < emin_) {
      // Between 0 and the min normal 2^emin: above the midpoint 2^(emin-1) -> min normal, else 0.
      mag = (e_unb == emin_ - 1 && (mant & (mant - 1u)) != 0) ? (1u << m) : 0u;
    } else {
      const int eq = std::max(e_unb, emin_);   // exponent of the binade (subnormals share emin)
      const int shift = (eq - m) - exp2;       // >= 0: ValidateMinifloatSpec keeps emin - M >= -149
      uint64_t r;
      if (shift >= 40) {
        r = 0;  // mant < 2^24 is far below half a quantum
      } else if (shift == 0) {
        r = mant;
      } else {
        r = uint64_t(mant) >> shift;
        const uint64_t rem = uint64_t(mant) & ((uint64_t(1) << shift) - 1u);
        const uint64_t half = uint64_t(1) << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) ++r;  // ties to even
      }
      // r in [2^M, 2^(M+1)] for normals (r = 2^(M+1) carries into the next binade) or [0, 2^M] for
      // subnormals (r = 2^M is the min normal): the code is monotone in the value.
      const uint64_t full = (uint64_t(eq - emin_) << m) + r;
      mag = uint32_t(std::min<uint64_t>(full, max_mag_));
    }
  }
  if (mag == 0 && spec_.policy == MinifloatPolicy::kFnuz) return 0u;  // no -0
  return sign | mag;
}

float MinifloatCodec::Decode(uint32_t code) const {
  code &= (sign_bit_ << 1) - 1u;
  return table_.empty() ? DecodeUncached(code) : table_[code];
}

StatusOr<MinifloatSpec> ParseMinifloatName(std::string_view name) {
  std::string s(name);
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  const auto bad = [&](std::string_view why) {
    return Status::Errorf("'{}' is not a minifloat name ({}); grammar: e<E>m<M>[_ieee|_fn|_fnuz|_none]"
                          "[_b<bias>][_nosub], E = 1..8, M = 0..10, e.g. e3m4, e3m4_fn, e5m2_fnuz, e3m4_b5_nosub",
                          name, why);
  };
  size_t i = 0;
  const auto read_int = [&](int* out) {
    size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i || j - i > 4) return false;
    *out = std::stoi(s.substr(i, j - i));
    i = j;
    return true;
  };
  MinifloatSpec spec;
  if (i >= s.size() || s[i] != 'e') return bad("must start with e<E>");
  ++i;
  if (!read_int(&spec.exp_bits)) return bad("missing exponent bits after 'e'");
  if (i >= s.size() || s[i] != 'm') return bad("missing 'm<M>'");
  ++i;
  if (!read_int(&spec.man_bits)) return bad("missing mantissa bits after 'm'");
  bool seen_policy = false, seen_bias = false, seen_nosub = false;
  while (i < s.size()) {
    if (s[i] != '_') return bad(fmt::format("unexpected '{}'", s.substr(i)));
    ++i;
    size_t j = s.find('_', i);
    const std::string tok = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (tok == "ieee" || tok == "fn" || tok == "fnuz" || tok == "none") {
      if (seen_policy) return bad("more than one policy suffix");
      seen_policy = true;
      spec.policy = tok == "ieee" ? MinifloatPolicy::kIeee
                    : tok == "fn" ? MinifloatPolicy::kFn
                    : tok == "fnuz" ? MinifloatPolicy::kFnuz
                                    : MinifloatPolicy::kNone;
      i += tok.size();
    } else if (tok == "nosub") {
      if (seen_nosub) return bad("_nosub given twice");
      seen_nosub = true;
      spec.subnormals = false;
      i += tok.size();
    } else if (tok.size() > 1 && tok[0] == 'b') {
      if (seen_bias) return bad("more than one _b<bias>");
      seen_bias = true;
      ++i;
      if (!read_int(&spec.bias) || (i < s.size() && s[i] != '_')) return bad("bias must be _b<digits>");
    } else {
      return bad(fmt::format("unknown suffix '_{}'", tok));
    }
  }
  if (spec.exp_bits < 1 || spec.exp_bits > 8) {
    // Checked here too: ResolvedBias() below shifts by exp_bits (fuzzer: "e38m80_b16").
    return Status::Errorf("minifloat '{}': exponent bits {} not in 1..8", std::string(s), spec.exp_bits);
  }
  if (spec.bias != MinifloatSpec::kDefaultBias) {
    MinifloatSpec with_default = spec;
    with_default.bias = MinifloatSpec::kDefaultBias;
    if (spec.bias == with_default.ResolvedBias()) spec.bias = MinifloatSpec::kDefaultBias;
  }
  spec.name = fmt::format("e{}m{}", spec.exp_bits, spec.man_bits);
  if (spec.policy != MinifloatPolicy::kNone) spec.name += fmt::format("_{}", MinifloatPolicyName(spec.policy));
  if (spec.bias != MinifloatSpec::kDefaultBias) spec.name += fmt::format("_b{}", spec.bias);
  if (!spec.subnormals) spec.name += "_nosub";
  QL_RETURN_IF_ERROR(ValidateMinifloatSpec(spec));
  return spec;
}

namespace {
MinifloatSpec Named(std::string name, std::string desc, int e, int m, MinifloatPolicy p, int bias) {
  MinifloatSpec s;
  s.name = std::move(name);
  s.description = std::move(desc);
  s.exp_bits = e;
  s.man_bits = m;
  s.policy = p;
  s.bias = bias;
  return s;
}
}  // namespace

MinifloatSpec Fp16Spec() {
  return Named("fp16", "IEEE binary16 S.5.10, bias 15, max 65504, saturating cast (docs/formats.md §1.2)", 5, 10,
               MinifloatPolicy::kIeee, 15);
}
MinifloatSpec Bf16Spec() {
  return Named("bf16", "bfloat16 S.8.7, bias 127, max 3.39e38, saturating cast (docs/formats.md §1.2)", 8, 7,
               MinifloatPolicy::kIeee, 127);
}
MinifloatSpec Fp8E4m3Spec() {
  return Named("fp8_e4m3", "FP8 E4M3FN (OCP) S.4.3, bias 7, max 448, no Inf, NaN 0x7F/0xFF (docs/formats.md §1.1)", 4, 3,
               MinifloatPolicy::kFn, 7);
}
MinifloatSpec Fp8E4m3FnuzSpec() {
  return Named("fp8_e4m3fnuz", "FP8 E4M3FNUZ S.4.3, bias 8, max 240, NaN 0x80 only, no -0 (docs/formats.md §1.1)", 4, 3,
               MinifloatPolicy::kFnuz, 8);
}
MinifloatSpec Fp8E5m2Spec() {
  return Named("fp8_e5m2", "FP8 E5M2 S.5.2, bias 15, max 57344, IEEE Inf/NaN (docs/formats.md §1.1)", 5, 2,
               MinifloatPolicy::kIeee, 15);
}
MinifloatSpec Fp8E5m2FnuzSpec() {
  return Named("fp8_e5m2fnuz", "FP8 E5M2FNUZ S.5.2, bias 16, max 57344, NaN 0x80 only, no -0 (docs/formats.md §1.1)", 5, 2,
               MinifloatPolicy::kFnuz, 16);
}
MinifloatSpec Fp6E2m3Spec() {
  return Named("fp6_e2m3", "FP6 E2M3 (MX) S.2.3, bias 1, max 7.5, all codes finite (docs/formats.md §1.1)", 2, 3,
               MinifloatPolicy::kNone, 1);
}
MinifloatSpec Fp6E3m2Spec() {
  return Named("fp6_e3m2", "FP6 E3M2 (MX) S.3.2, bias 3, max 28, all codes finite (docs/formats.md §1.1)", 3, 2,
               MinifloatPolicy::kNone, 3);
}
MinifloatSpec Fp4E2m1Spec() {
  return Named("fp4_e2m1", "FP4 E2M1 (MX/NVFP4) S.2.1, bias 1, max 6, all codes finite (docs/formats.md §1.1)", 2, 1,
               MinifloatPolicy::kNone, 1);
}

}  // namespace ql
