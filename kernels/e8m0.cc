// E8M0 scale codec: decode 2^(x-127), encode round-toward-+inf to a power of two with saturation (e8m0.h).
#include "kernels/e8m0.h"

#include <bit>
#include <cmath>
#include <limits>

#include "kernels/half.h"

namespace ql {

float E8M0Codec::max_finite() const { return std::ldexp(1.0f, 127); }
float E8M0Codec::min_value() const { return std::ldexp(1.0f, -127); }

float E8M0Codec::Decode(uint32_t code) const {
  code &= 0xFFu;
  if (code == 0xFFu) return std::numeric_limits<float>::quiet_NaN();
  if (code == 0u) return BitsF32(0x00400000u);  // 2^-127 is an fp32 subnormal
  return BitsF32(code << 23);                    // exponent field = code, mantissa 0: 2^(code-127)
}

uint32_t E8M0Codec::Encode(float v) const {
  const uint32_t u = F32Bits(v);
  if (std::isnan(v)) return 0xFFu;
  if ((u >> 31) || v == 0.0f) return 0x00u;
  if (std::isinf(v)) return 0xFEu;
  // Exact: v = mant * 2^exp2; ceil(log2 v) = floor(log2 v) + (mant is not a power of two).
  uint32_t mant;
  int exp2;
  if (u >> 23) {
    mant = (u & 0x7FFFFFu) | 0x800000u;
    exp2 = int(u >> 23) - 150;
  } else {
    mant = u;
    exp2 = -149;
  }
  const int floor_log2 = (31 - std::countl_zero(mant)) + exp2;
  const int ceil_log2 = floor_log2 + ((mant & (mant - 1u)) != 0 ? 1 : 0);
  const int code = ceil_log2 + 127;
  if (code < 0) return 0x00u;
  if (code > 0xFE) return 0xFEu;
  return uint32_t(code);
}

}  // namespace ql
