// NVFP4 block codec (docs/formats.md §3): FP4 E2M1 elements, one FP8 E4M3 scale per 16, one FP32 scale per tensor.
// Storage format + reference scalar quantizer/dequantizer, in two selectable conventions (BlockOptions.nvfp4):
//
//  kModelOpt (NVIDIA ModelOpt nvfp4_tensor.py), fp32 arithmetic in this order:
//    scale_2 = amax(W) / 2688                      (2688 = 6 * 448, a multiplier, stored in extra)
//    bs      = amax_block / (6 * scale_2); bs == 0 -> 1.0; s8 = E4M3(bs)   (RNE; bs <= 448 by construction)
//    q       = E2M1(x / (s8 * scale_2))             (RNE, saturating at 6; sign bit = x < 0)
//    y       = e2m1(q) * (s8 * scale_2)
//  kCompressedTensors (compressed-tensors / llm-compressor, vLLM):
//    gs      = 2688 / amax(W)                       (weight_global_scale, a *divisor*, stored in extra)
//    s       = clamp(gs * (amax_block / 6), -448, 448); s8 = E4M3(s); s8 == 0 -> 0.125
//    q       = E2M1(clamp(x / (s8 / gs), -6, 6))   (RNE; sign bit = sign of the rounded value, so -0 -> 0x0)
//    y       = e2m1(q) * (s8 / gs)
//  The two conventions give different block scales for the same data (gs*(amax_b/6) vs amax_b/(6*scale_2)
//  round differently, and ModelOpt's 1.0 vs compressed-tensors' 0.125 for a zero block).
// Whole-tensor amax = 0 (or an all-zero tensor): both references divide by zero (ModelOpt 0/0 -> NaN
//   scales; compressed-tensors clamps amax to FLT_MIN and overflows gs to Inf). We store tensor scale 1.0
//   instead; every code is 0 and every value decodes to 0. NaN/Inf inputs are rejected with a Status.
// If s8 rounds to 0 in ModelOpt (amax_block/amax < ~2^-10/448) the reference divides by zero; the block
//   decodes to 0 either way (0 * anything), and we store codes 0 for it.
// Layout (PackedBlocks): bytes = per block [1 byte E4M3 scale][ceil(k/2) bytes codes], codes packed two per
//   byte with the EVEN element in the LOW nibble (byte j = q[2j] | q[2j+1] << 4, docs/formats.md §3); code = S.EE.M.
//   The last block of a row may be partial (scale over the real elements, padding codes 0).
//   extra = [fp32 tensor scale, little-endian][1 byte convention: 0 ModelOpt, 1 compressed-tensors].
// Bits/weight at k = 16: (8 + 16*4)/16 = 4.5, plus 40 bits per tensor.
#pragma once

#include "kernels/format.h"

namespace ql {

// E2M1 value table by code (bit 3 = sign), docs/formats.md §1.1.
inline constexpr float kE2m1Values[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

class NvFp4Codec : public BlockCodec {
 public:
  std::string name() const override { return "nvfp4"; }
  std::string description() const override {
    return "NVIDIA NVFP4: 16 x FP4 E2M1 + E4M3 block scale + FP32 tensor scale";
  }
  int default_block_size() const override { return 16; }
  bool block_size_fixed() const override { return false; }
  int element_bits() const override { return 4; }
  std::string scale_type() const override { return "e4m3 per block + fp32 per tensor"; }
  double nominal_bits_per_weight(int block_size) const override;
  StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                  const BlockOptions& opt) const override;
  int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const override;
  void Dequantize(const PackedBlocks& p, float* y) const override;
};

const BlockCodec& NvFp4BlockCodec();  // "nvfp4"

}  // namespace ql
