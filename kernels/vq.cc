// vq2x8 codec (see kernels/vq.h).
#include "kernels/vq.h"

#include <algorithm>
#include <cmath>

#include "kernels/half.h"
#include "kernels/kmeans.h"

namespace ql {

StatusOr<PackedBlocks> Vq2x8Codec::Quantize(const float* x, int64_t rows, int64_t cols, const BlockOptions& opt) const {
  if (opt.importance != nullptr)
    return Status::Errorf("vq2x8: has no importance-weighted fit; drop the importance or use lut<b>");
  if (opt.block_size != 0)
    return Status::Errorf("vq2x8: one codebook per tensor; block size {} does not apply", opt.block_size);
  if (rows < 0 || cols < 0) return Status::Errorf("vq2x8: bad shape [{}, {}]", rows, cols);
  const int64_t pc = (cols + 1) / 2, n = rows * pc;  // pairs per row, pairs in all
  std::vector<float> pairs(size_t(2 * n), 0.0f);   // [n, 2], odd rows padded with 0
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = x[r * cols + c];
      if (!std::isfinite(v)) return Status::Errorf("vq2x8: non-finite value {} at [{}, {}]", v, r, c);
      pairs[size_t(2 * (r * pc) + c)] = v;
    }
  const int64_t stride = std::max<int64_t>(1, (n + kMaxFitPairs - 1) / kMaxFitPairs);
  std::vector<float> fit;
  fit.reserve(size_t(2 * (n / stride + 1)));
  for (int64_t i = 0; i < n; i += stride) fit.insert(fit.end(), {pairs[2 * i], pairs[2 * i + 1]});
  const KMeans2DResult km = KMeans2D(fit.data(), int64_t(fit.size() / 2), kCentroids, kIters, kSeed);
  PackedBlocks p;
  p.rows = rows;
  p.cols = cols;
  p.block_size = int(cols);
  p.extra.resize(size_t(4 * kCentroids));
  std::vector<float> cent(static_cast<size_t>(2 * kCentroids));  // [256, 2], the stored fp16 values
  for (int j = 0; j < 2 * kCentroids; ++j) {
    const uint16_t h = F32ToF16(std::clamp(float(km.centroids[j]), -65504.0f, 65504.0f));
    p.extra[2 * j] = uint8_t(h), p.extra[2 * j + 1] = uint8_t(h >> 8);
    cent[j] = F16ToF32(h);
  }
  p.bytes.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) p.bytes[i] = uint8_t(Nearest2D(cent.data(), kCentroids, pairs[2 * i], pairs[2 * i + 1]));
  return p;
}

int64_t Vq2x8Codec::PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const {
  return rows * ((cols + 1) / 2) + 4 * kCentroids;  // one code per pair + the fp16 [256, 2] codebook
}

void Vq2x8Codec::Dequantize(const PackedBlocks& p, float* y) const {
  const int64_t pc = (p.cols + 1) / 2;
  QL_CHECK(int64_t(p.bytes.size()) == p.rows * pc && p.extra.size() == size_t(4 * kCentroids),
           "vq2x8: {} + {} bytes for [{}, {}]", p.bytes.size(), p.extra.size(), p.rows, p.cols);
  float cent[2 * kCentroids];
  for (int j = 0; j < 2 * kCentroids; ++j) cent[j] = F16ToF32(uint16_t(p.extra[2 * j] | p.extra[2 * j + 1] << 8));
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c < p.cols; ++c) y[r * p.cols + c] = cent[2 * p.bytes[r * pc + c / 2] + (c & 1)];
}

const BlockCodec& Vq2x8BlockCodec() {
  static const Vq2x8Codec c;
  return c;
}

}  // namespace ql
