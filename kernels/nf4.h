// NF4 block codec (QLoRA / bitsandbytes, docs/formats.md §1.3): 4-bit NormalFloat codes times an absmax per block,
// with optional double quantization of the absmaxes. Storage + reference scalar quantizer/dequantizer.
//
// Codebook (kNf4Codebook): bitsandbytes `create_normal_map(offset=0.9677083, use_extra_value=True)`:
//   v1 = norm.ppf(linspace(offset, 0.5, 9)[:-1]) (8 positive), 0, v3 = -norm.ppf(linspace(offset, 0.5, 8)[:-1])
//   (7 negative); sorted; divided by the max. The 16 fp32 values below are bitsandbytes' NF4 table.
// Quantize (bitsandbytes kQuantizeBlockwise + dQuantizeNF4): absmax = max|x| over the block (fp32);
//   n = x * (1/absmax) (fp32 reciprocal, then multiply); code = number of midpoint thresholds t_i with
//   n > t_i (strict, so a value exactly on a midpoint gets the LOWER code; NaN -> code 0).
//   Option `argmin` ("nf4:argmin"): the code of bitsandbytes' torch/CPU path instead, argmin |n - code_i|
//   (Nf4CodeArgmin); same absmax, same layout.
//   absmax = 0: bitsandbytes computes 0 * Inf = NaN -> code 0 (-1.0) -> dequant -0; we store code 7 (0.0).
// Dequantize: y = codebook[q] * absmax (fp32).
// Blocks run along each row (default 64, any size >= 1); the last block of a row may be partial (absmax
//   over the real elements, padding codes 7 = 0.0). bitsandbytes blocks the flattened tensor instead;
//   the two agree whenever cols is a multiple of the block size.
// Layout (PackedBlocks.bytes), row by row, block by block; codes two per byte, FIRST element in the HIGH
//   nibble (byte j = q[2j] << 4 | q[2j+1], bitsandbytes packing):
//   without double quant: [fp32 absmax, little-endian][ceil(k/2) bytes codes]    -> 4 + 32/k bits/weight
//   with double quant:    [u8 quantized absmax][ceil(k/2) bytes codes]          -> 4 + 8/k bits/weight
//     extra = [fp32 offset][fp32 absmax2 per group of 256 block absmaxes (the flattened list of all blocks)]
//     (k = 64: 4.125 bits/weight + 32 bits per 16384 weights + 32 bits per tensor ~= 4.127)
// Double quantization (bitsandbytes quantize_4bit(compress_statistics=True)): offset = mean(absmax)
//   (computed in double, rounded to fp32; torch's fp32 reduction order may differ in the last bit);
//   c = absmax - offset (fp32); per 256: absmax2 = max|c|, q8 = dQuantize(c * (1/absmax2)) on the signed
//   8-bit dynamic map (kNf4DynamicMap), nearest with bitsandbytes' binary search and midpoint rule;
//   dequant absmax = map[q8] * absmax2 + offset (fp32). absmax2 = 0 -> q8 = 127 (0.0).
// nominal_bits_per_weight() reports the layout without double quant (4 + 32/k).
#pragma once

#include <array>

#include "kernels/format.h"

namespace ql {

// bitsandbytes NF4 codebook, index 0..15 (docs/formats.md §1.3).
inline constexpr float kNf4Codebook[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// The 15 decision thresholds of bitsandbytes dQuantizeNF4, ascending (within one fp32 ulp of the midpoints
// of adjacent codebook entries; see nf4.cc).
const std::array<float, 15>& Nf4Thresholds();
// NF4 code of a value already divided by the block absmax: bitsandbytes' CUDA dQuantizeNF4 decision tree
// (code = number of literal thresholds t_i with x > t_i; the default, "nf4").
uint32_t Nf4Code(float normalized);
// The same by bitsandbytes' torch/CPU path (backends/default quantize_4bit): argmin_i |x - code_i| in fp32,
// the first (lower) index on a tie ("nf4:argmin"). It differs from the tree exactly on four thresholds
// (t1, t3, t4, t8, whose literals round below the fp32 midpoint: the tree gives the lower code there, the
// argmin the upper); within +-2 ulp of every threshold the two agree everywhere else (tests/kernels/nf4_test.cc).
uint32_t Nf4CodeArgmin(float normalized);

// bitsandbytes `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`, sorted ascending
// (256 entries: 127 negative, 0 at index 127, 127 positive, 1.0 at index 255). For i = 0..6 the map takes
// the 2^i midpoints of linspace(0.1, 1, 2^i + 1), times 10^(i-6), with both signs. Computed here in
// double and rounded to fp32 (bitsandbytes computes in fp32 torch ops; entries may differ by an ulp).
const std::array<float, 256>& Nf4DynamicMap();
// bitsandbytes dQuantize<0>: binary search over the map + midpoint rule. x is in [-1, 1].
uint8_t DynamicMapCode(const std::array<float, 256>& map, float x);

class Nf4Codec : public BlockCodec {
 public:
  std::string name() const override { return "nf4"; }
  std::string description() const override {
    return "bitsandbytes NF4: 64 x 4-bit NormalFloat + fp32 absmax (optional 8-bit double quant)";
  }
  int default_block_size() const override { return 64; }
  bool block_size_fixed() const override { return false; }
  int element_bits() const override { return 4; }
  std::string scale_type() const override { return "fp32 absmax per block (or u8 double-quantized)"; }
  double nominal_bits_per_weight(int block_size) const override;
  StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                  const BlockOptions& opt) const override;
  int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const override;
  void Dequantize(const PackedBlocks& p, float* y) const override;
};

const BlockCodec& Nf4BlockCodec();  // "nf4"

}  // namespace ql
