// Integer element codecs int<b> (signed two's complement) and uint<b> (unsigned, used with a zero
// point), b = 2..8. Codes only: the scale / zero point and symmetric-range choice belong to a Scheme.
//
//   int<b>:  value range [-2^(b-1), 2^(b-1)-1] (int4: [-8,7], int8: [-128,127]); the code is the low b
//            bits of the value's two's complement (int4 -1 -> 0xF). docs/formats.md §1.4 ("compressed-tensors int
//            sym" grid). The restricted symmetric grid +-(2^(b-1)-1) used by ggml Q8_0, SmoothQuant and
//            LLM.int8 (docs/formats.md §1.4) is a Scheme choice: it clamps to +-RestrictedMax(b) before Encode.
//   uint<b>: value range [0, 2^b-1] (uint4: [0,15]); the code is the value (GPTQ / AWQ q, docs/formats.md §1.4).
//
// Encode: round to nearest, ties to even (2.5 -> 2, 3.5 -> 4, -2.5 -> -2), then clamp to the range;
// +-Inf saturate to qmax / qmin; NaN encodes as the code of value 0 (code 0), stated by nan_policy().
#pragma once

#include <cstdint>
#include <string>

#include "kernels/format.h"

namespace ql {

inline int IntQmin(int bits, bool is_signed) { return is_signed ? -(1 << (bits - 1)) : 0; }
inline int IntQmax(int bits, bool is_signed) { return is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }
// Largest magnitude of the restricted symmetric signed grid [-RestrictedMax, RestrictedMax].
inline int RestrictedMax(int bits) { return (1 << (bits - 1)) - 1; }

// Round-to-nearest-even of a finite double to an integer (exact: no dependence on the FP rounding
// mode). Shared with the tests' expectations only through its documented behaviour.
double RoundHalfEven(double x);

class IntCodec final : public ElementCodec {
 public:
  // bits in [2, 8] (QL_CHECKed; FindElementCodec validates user input first).
  IntCodec(int bits, bool is_signed);

  std::string name() const override { return name_; }
  std::string description() const override;
  FormatKind kind() const override { return FormatKind::kInt; }
  int bits() const override { return bits_; }
  float max_finite() const override { return float(qmax_); }
  float min_value() const override { return float(qmin_); }
  uint32_t Encode(float v) const override;
  float Decode(uint32_t code) const override;
  std::string nan_policy() const override;

  bool is_signed() const { return signed_; }
  int qmin() const { return qmin_; }
  int qmax() const { return qmax_; }
  // Integer value -> code / code -> integer value (no rounding), for packing code.
  uint32_t CodeOf(int q) const { return uint32_t(q) & mask_; }
  int ValueOf(uint32_t code) const;

 private:
  int bits_;
  bool signed_;
  int qmin_, qmax_;
  uint32_t mask_;
  std::string name_;
};

}  // namespace ql
