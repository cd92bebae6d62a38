// 2-D vector quantization vq2x8 ("vq2x8:tensor"): consecutive weight pairs (x[2j], x[2j+1]) of each row
// are replaced by the nearest of 256 fp16 2-D centroids shared by the whole tensor; 8 bits per pair = 4 bits
// per weight plus the codebook. What vector quantization buys over a scalar 4-bit code at the same rate
// (AQLM/QuIP#-style codebooks in their simplest form: one codebook, no residual stages, no scales).
//
// Fit: KMeans2D (kernels/kmeans.h) on at most 65536 pairs (every ceil(n/65536)-th pair of the row-major
// pair list), 256 centroids seeded by std::mt19937_64(0), 25 iterations; centroids rounded to fp16
// (clamped to +-65504); then every pair's code is the nearest fp16 centroid (exact squared distance, the
// lower index on a tie). A row with an odd number of columns pads its last pair with 0.
// Layout: bytes = rows x ceil(cols/2) one-byte codes, row by row; extra = the codebook, 256 x (fp16 x, fp16 y)
//   little-endian (1024 B per tensor). Bits per weight: 8·(rows·ceil(cols/2) + 1024) / (rows·cols).
#pragma once

#include "kernels/format.h"

namespace ql {

class Vq2x8Codec : public BlockCodec {
 public:
  std::string name() const override { return "vq2x8"; }
  std::string description() const override {
    return "2-D vector quantization: weight pairs -> 256 fp16 centroids per tensor (k-means), 4 bits/weight";
  }
  int default_block_size() const override { return 0; }
  bool block_size_fixed() const override { return true; }
  std::string_view granularity() const override { return "tensor"; }
  int element_bits() const override { return 4; }
  std::string scale_type() const override { return "256 fp16 2-D centroids per tensor (k-means)"; }
  double nominal_bits_per_weight(int) const override { return 4.0; }  // codebook: tensor-level extra
  StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                  const BlockOptions& opt) const override;
  int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const override;
  void Dequantize(const PackedBlocks& p, float* y) const override;

  static constexpr int kCentroids = 256, kIters = 25;
  static constexpr int64_t kMaxFitPairs = 65536;
  static constexpr uint64_t kSeed = 0;
};

const BlockCodec& Vq2x8BlockCodec();

}  // namespace ql
