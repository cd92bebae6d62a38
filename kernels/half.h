// IEEE binary16 and bfloat16 <-> float32 bit conversions, round to nearest even (docs/formats.md §1.2).
//   fp16: S.EEEEE.MMMMMMMMMM, bias 15, max 65504, subnormals down to 2^-24, |x| >= 65520 -> Inf.
//   bf16: the upper 16 bits of fp32 (S.EEEEEEEE.MMMMMMM); NaN -> 0x7FC0; overflow rounds to Inf.
// Header-only so file loaders, GGUF blocks and element codecs share one definition.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace ql {

inline uint32_t F32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsF32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t F32ToBf16(float f) {
  uint32_t u = F32Bits(f);
  if (std::isnan(f)) return 0x7FC0 | ((u >> 16) & 0x8000);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
inline float Bf16ToF32(uint16_t h) { return BitsF32(uint32_t(h) << 16); }

inline float F16ToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t man = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in fp32
    float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return BitsF32(sign | 0x7F800000u | (man << 13));  // Inf / NaN (payload kept)
  return BitsF32(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t F32ToF16(float f) {
  uint32_t u = F32Bits(f);
  const uint16_t sign = (u >> 16) & 0x8000;
  u &= 0x7FFFFFFF;
  if (u > 0x7F800000u) return sign | 0x7E00;          // NaN (quiet)
  if (u >= 0x477FF000u) return sign | 0x7C00;         // >= 65520 (incl. Inf) -> Inf
  if (u >= 0x38800000u) {                              // normal in fp16 (>= 2^-14)
    uint32_t r = u + 0xFFF + ((u >> 13) & 1);          // RNE on the 13 dropped bits
    return sign | uint16_t((r - (112u << 23)) >> 13);
  }
  // subnormal or zero in fp16: value / 2^-24, rounded to nearest even integer
  float a = BitsF32(u);
  float q = std::nearbyint(a * 16777216.0f);           // 2^24, exact scaling; default FE_TONEAREST
  return sign | uint16_t(q);                           // q == 1024 becomes the min normal, correctly
}

}  // namespace ql
