// E8M0: the unsigned power-of-two scale format of OCP MX (torch/ml_dtypes float8_e8m0fnu), docs/formats.md §1.1.
// A scale codec (kind kScale), not an element format for weights.
//
//   Layout: 8 exponent bits, no sign, no mantissa, bias 127. Code x in 0x00..0xFE decodes to 2^(x-127)
//   (0x00 = 2^-127, the smallest value: there is NO zero), 0xFF = NaN, no Inf. max 2^127 (0xFE).
//   Encode rule (chosen to match NVIDIA's float->__nv_fp8_e8m0 conversion with cudaRoundPosInf +
//   __NV_SATFINITE, docs/formats.md §1.1): a positive finite value rounds UP to the next power of two (a power
//   of two is kept), then saturates into [2^-127, 2^127]. So a scale never shrinks: v <= Decode(Encode(v))
//   for 0 < v <= 2^127. Special inputs: NaN -> 0xFF; +Inf -> 0xFE (satfinite); 0, -0 and negative
//   values (no zero, no sign in the format) -> 0x00, the smallest scale 2^-127.
//   (The MX block rule floor(log2 amax) - emax is computed by the MX block codec on the exponent, not
//   by this encoder.)
#pragma once

#include <cstdint>
#include <string>

#include "kernels/format.h"

namespace ql {

class E8M0Codec final : public ElementCodec {
 public:
  std::string name() const override { return "e8m0"; }
  std::string description() const override {
    return "E8M0 unsigned power-of-two scale, bias 127, 0x00 = 2^-127, 0xFF = NaN, no zero (docs/formats.md §1.1)";
  }
  FormatKind kind() const override { return FormatKind::kScale; }
  int bits() const override { return 8; }
  float max_finite() const override;  // 2^127
  float min_value() const override;   // 2^-127 (positive: the format has no zero and no sign)
  uint32_t Encode(float v) const override;
  float Decode(uint32_t code) const override;
  std::string nan_policy() const override {
    return "NaN -> 0xFF (the only NaN code); +Inf -> 0xFE (2^127, satfinite); 0/negative -> 0x00 (2^-127); "
           "positive values round up to a power of two";
  }
};

}  // namespace ql
