// OCP Microscaling (MX v1.0) block codecs: MXFP8 (E4M3, E5M2), MXFP6 (E2M3, E3M2), MXFP4 (E2M1), MXINT8.
// Storage format, quantizer (rows on threads, SIMD E2M1) beside its scalar reference, dequantizer; no
// choice of *which* values to store (that is an algorithm's business). Facts and citations:
// docs/formats.md §2 (microsoft/microxcaling).
//
// One block of k elements (k = 32 by default, any k >= 1 via BlockOptions.block_size):
//   value_i = 2^shared_exp * P_i,  shared_exp stored as one E8M0 byte X = shared_exp + 127
//   (0x00 = 2^-127, 0xFE = 2^127, 0xFF = NaN block).
// Shared exponent (BlockOptions.mx_rounding):
//   kFloor (OCP spec 6.3): floor(log2 amax) - emax_elem
//   kCeil:                 ceil(log2 amax)  - emax_elem
//   kEven (torchao EVEN):  floor(log2 round_m(amax)) - emax_elem, where round_m rounds amax's mantissa to the
//                          element's mantissa bits by adding half an element-ulp to the fp32 mantissa and
//                          truncating (so a carry bumps the exponent). MXINT8 uses its 6 fractional bits.
//   then < -127 -> -127 (E8M0 0x00); > 127 -> NaN (0xFF; reachable with Inf/NaN inputs, and with kCeil/kEven
//   for MXINT8 at amax near FLT_MAX). A NaN block decodes to all-NaN.
//   log2 is exact here (read from the fp32 exponent): microxcaling's float32 torch.log2 can round
//   up for amax just below a power of two (e.g. (2 - 2^-23)*2^100) and then differs by one.
//   amax = 0 -> X = 0x00 and every code 0 for all six formats (microxcaling gives MXINT8 an all-zero
//   block 0x01 = 2^-126, since -126 - emax_int8 = -126 needs no clamp; the decoded values are 0 either way).
// Elements (docs/formats.md §2 `_quantize_elemwise_core`): a = x / 2^shared_exp (exact), e = max(floor(log2|a|),
//   min_exp), a' = RNE(a / 2^e * 2^m) * 2^e / 2^m (m = stored mantissa bits), then clamp to +-max_norm (MX
//   always saturates; Inf/NaN never stored). Rounding is round-half-to-even (microxcaling round="even",
//   OCP-conformant); microxcaling's *default* round="nearest" is round-half-away-from-zero and gives a
//   different code on exact ties; we chose RNE. Underflow to zero keeps the sign bit (-0 code).
//   The element codecs of kernels/minifloat.h / int_codec.h do the rounding and the bits.
// Element bit layouts (sign in the top bit; MX never produces the E4M3/E5M2 Inf/NaN codes):
//   E4M3 S.EEEE.MMM bias 7 max 448 (0x7E) | E5M2 S.EEEEE.MM bias 15 max 57344 (0x7B)
//   E2M3 S.EE.MMM bias 1 max 7.5 (0x1F)   | E3M2 S.EEE.MM bias 3 max 28 (0x1F) | E2M1 S.EE.M bias 1 max 6 (0x7)
//   INT8: value k/64, k in [-127, 127], stored as the two's complement byte of k (OCP MX v1.0 INT8 with
//   implicit scale 2^-6; -128 is never produced, as in microxcaling's symmetric sign-magnitude emulation).
// Packed layout (PackedBlocks.bytes), row by row, block by block:
//   [1 byte E8M0][ceil(k*w/8) bytes of element codes], w = 8, 6 or 4 bits,
//   codes packed densely LSB-first: element i occupies bits [i*w, i*w + w) of the block's code bytes read
//   as one little-endian bit string (4-bit: element 2j in the low nibble of byte j, 2j+1 in the high nibble;
//   6-bit: 4 elements per 3 bytes). The last block of a row may be partial: its scale is computed over
//   the real elements only and the padding codes are 0 (stored, and counted in bits/weight).
// Bits/weight at k = 32: MXFP8 8.25, MXFP6 6.25, MXFP4 4.25, MXINT8 8.25.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/format.h"

namespace ql {

class CodecTables;

// One MX element format as microxcaling's `_get_format_params` describes it (docs/formats.md §2). Codes are
// produced by the registered element codec named `name` (kernels/minifloat.h, kernels/int_codec.h): its
// Encode is the RNE saturating cast, which equals the §2 `_quantize_elemwise_core` rule with round="even"
// and saturation (tests/kernels/mx_test.cc checks this against a scalar §2 oracle, ties included).
struct MxElementSpec {
  const char* name;  // element codec: "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "int8"
  int bits;          // code width
  bool is_int;       // MXINT8: codes are the int8 codec's codes of k = RNE(a * 64), clamped to [-127, 127]
  int mbits;         // stored mantissa bits (MXINT8: 6 fractional bits); used by kEven
  int emax;          // emax_elem: exponent of the largest normal
  double max_norm;   // largest finite magnitude
};

extern const MxElementSpec kMxE4M3, kMxE5M2, kMxE2M3, kMxE3M2, kMxE2M1, kMxInt8;

// The E8M0 byte of a block with absolute maximum amax (docs/formats.md §2 + the rounding modes above).
// amax = 0 -> 0x00; amax NaN/Inf -> 0xFF.
uint8_t MxScaleByte(const MxElementSpec& s, float amax, MxScaleRounding rounding);

// Dense LSB-first bit packing of w-bit codes (w in 1..8), shared by the 4/6/8-bit block formats.
void PackCodesLsbFirst(const uint32_t* codes, int n, int bits, uint8_t* out);  // out: ceil(n*bits/8) B, zeroed
uint32_t UnpackCodeLsbFirst(const uint8_t* in, int i, int bits);
inline int64_t PackedCodeBytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

class MxCodec : public BlockCodec {
 public:
  // QL_CHECKs that the element codec elem.name is registered.
  MxCodec(std::string name, const MxElementSpec& elem, std::string description);
  std::string name() const override { return name_; }
  std::string description() const override { return description_; }
  int default_block_size() const override { return 32; }
  bool block_size_fixed() const override { return false; }
  int element_bits() const override { return elem_.bits; }
  std::string scale_type() const override { return "e8m0 per block"; }
  double nominal_bits_per_weight(int block_size) const override;
  // Rows on quantlab's threads; the elements as EncodeElement gives them, by a SIMD or table-driven path.
  StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                  const BlockOptions& opt) const override;
  // The scalar oracle: EncodeElement on every element, one row after another. Bitwise Quantize.
  StatusOr<PackedBlocks> QuantizeRef(const float* x, int64_t rows, int64_t cols, const BlockOptions& opt) const;
  int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const override;
  void Dequantize(const PackedBlocks& p, float* y) const override;
  const MxElementSpec& element() const { return elem_; }
  const ElementCodec& element_codec() const { return *codec_; }
  // One element: x / 2^shared_exp -> code, and code -> value * 2^shared_exp (exact).
  uint32_t EncodeElement(float x, int shared_exp) const;
  float DecodeElement(uint32_t code, int shared_exp) const;
  int64_t block_bytes(int block_size) const { return 1 + PackedCodeBytes(block_size, elem_.bits); }

 private:
  static constexpr int kOverflow = 1 << 20;  // BlockScale's *shared when max_norm x 2^shared overflows
  StatusOr<int> CheckQuantize(int64_t rows, int64_t cols, const BlockOptions& opt) const;
  uint8_t BlockScale(const float* x, int n, MxScaleRounding rounding, float* amax, int* shared) const;
  Status OverflowError(int64_t r, int64_t b, float amax, int scale) const;
  int64_t QuantizeRow(const float* xr, int64_t cols, int bs, MxScaleRounding rounding, const CodecTables* tables,
                      uint8_t* row, uint32_t* codes, float* amax) const;
  std::string name_;
  const MxElementSpec& elem_;
  std::string description_;
  const ElementCodec* codec_ = nullptr;
  std::vector<float> decode_;  // code -> element value (MXINT8: k/64), 2^bits entries
};

const BlockCodec& MxFp8E4M3Codec();  // "mxfp8_e4m3"
const BlockCodec& MxFp8E5M2Codec();  // "mxfp8_e5m2"
const BlockCodec& MxFp6E2M3Codec();  // "mxfp6_e2m3"
const BlockCodec& MxFp6E3M2Codec();  // "mxfp6_e3m2"
const BlockCodec& MxFp4Codec();      // "mxfp4"
const BlockCodec& MxInt8Codec();     // "mxint8"

}  // namespace ql
