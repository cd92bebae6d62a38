// Non-uniform scalar codebook format lut<b> (b = 2..4), one codebook per output row ("lut4:channel"):
// 2^b fp16 centroids per row, fitted by (weighted) 1-D k-means (kernels/kmeans.h), and a b-bit code per
// weight naming its nearest centroid. The SqueezeLLM storage (Kim et al. 2023, "SqueezeLLM: Dense-and-Sparse
// Quantization", its dense part); the sensitivity weights come from BlockOptions::importance ([cols], one per
// input column, e.g. the calibration inputs' mean x², harness/quant/squeezellm.h), unweighted without it.
//
// Fit per row: the optimal weighted 1-D k-means KMeans1D(row, importance, 2^b centroids); centroids
// rounded to fp16 (clamped to +-65504); then every code is the nearest fp16 centroid (exact distances, the
// lower index on a tie), so the stored codes are exact for the stored centroids.
// Layout (PackedBlocks.bytes), row by row: [2^b x fp16 centroid, little-endian, in index order]
//   [ceil(cols·b / 8) bytes: codes as a little-endian bit stream, element i in bits [i·b, (i+1)·b)].
//   Bits per weight: b + 16·2^b / cols (+ the row's byte padding); lut4 on 768 columns: 4.333.
// The block is the row: PackedBlocks.block_size = cols; default_block_size() is 0 ("the row").
#pragma once

#include "kernels/format.h"

namespace ql {

class LutCodec : public BlockCodec {
 public:
  explicit LutCodec(int bits) : bits_(bits) {}
  std::string name() const override { return "lut" + std::to_string(bits_); }
  std::string description() const override;
  int default_block_size() const override { return 0; }
  bool block_size_fixed() const override { return true; }
  std::string_view granularity() const override { return "channel"; }
  int element_bits() const override { return bits_; }
  std::string scale_type() const override { return "2^b fp16 centroids per row (k-means)"; }
  double nominal_bits_per_weight(int row) const override;  // row = cols; 0: the limit b
  StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                  const BlockOptions& opt) const override;
  int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const override;
  void Dequantize(const PackedBlocks& p, float* y) const override;

 private:
  int bits_;
};

const BlockCodec& Lut2Codec();
const BlockCodec& Lut3Codec();
const BlockCodec& Lut4Codec();

}  // namespace ql
