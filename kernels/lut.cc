// lut<b> codec (see kernels/lut.h).
#include "kernels/lut.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/half.h"
#include "kernels/kmeans.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

int64_t CodeBytes(int64_t cols, int bits) { return (cols * bits + 7) / 8; }

uint32_t GetCode(const uint8_t* codes, int64_t i, int bits) {
  const int64_t bit = i * bits;
  uint32_t v = codes[bit / 8];
  if ((bit % 8) + bits > 8) v |= uint32_t(codes[bit / 8 + 1]) << 8;  // b <= 4: at most two bytes
  return (v >> (bit % 8)) & ((1u << bits) - 1);
}

void PutCode(uint8_t* codes, int64_t i, int bits, uint32_t c) {
  const int64_t bit = i * bits;
  const uint32_t v = c << (bit % 8);
  codes[bit / 8] |= uint8_t(v);
  if ((bit % 8) + bits > 8) codes[bit / 8 + 1] |= uint8_t(v >> 8);
}

// Fits one row xr [cols] and writes its 2^b fp16 centroids and codes into row [2^b·2 + code bytes].
void FitRow(const float* xr, const float* w, int64_t cols, int bits, uint8_t* row) {
  const int k = 1 << bits;
  const KMeans1DResult km = KMeans1D(xr, w, cols, k);
  float cent[16];
  for (int j = 0; j < k; ++j) {
    const uint16_t h = F32ToF16(std::clamp(float(km.centroids[j]), -65504.0f, 65504.0f));
    row[2 * j] = uint8_t(h), row[2 * j + 1] = uint8_t(h >> 8);
    cent[j] = F16ToF32(h);
  }
  for (int64_t c = 0; c < cols; ++c) PutCode(row + 2 * k, c, bits, Nearest1D(cent, k, xr[c]));
}

}  // namespace

std::string LutCodec::description() const {
  return fmt::format("non-uniform codebook: {} fp16 centroids per row (weighted k-means), {}-bit codes",
                     1 << bits_, bits_);
}

double LutCodec::nominal_bits_per_weight(int row) const {
  if (row <= 0) return double(bits_);
  return 8.0 * double(2 * (1 << bits_) + CodeBytes(row, bits_)) / double(row);
}

StatusOr<PackedBlocks> LutCodec::Quantize(const float* x, int64_t rows, int64_t cols, const BlockOptions& opt) const {
  if (opt.block_size != 0)
    return Status::Errorf("{}: one codebook per row; block size {} does not apply", name(), opt.block_size);
  if (rows < 0 || cols < 0) return Status::Errorf("{}: bad shape [{}, {}]", name(), rows, cols);
  const float* w = opt.importance;
  if (w)
    for (int64_t c = 0; c < cols; ++c)
      if (!(w[c] >= 0) || !std::isfinite(w[c]))
        return Status::Errorf("{}: importance of column {} is {}; weights must be finite and >= 0", name(), c, w[c]);
  const int k = 1 << bits_;
  const int64_t rb = 2 * k + CodeBytes(cols, bits_);
  PackedBlocks p;
  p.rows = rows;
  p.cols = cols;
  p.block_size = int(cols);
  p.bytes.assign(size_t(rows * rb), 0);
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(x[i])) return Status::Errorf("{}: non-finite value {} at [{}, {}]", name(), x[i], i / cols, i % cols);
  // Rows are independent: 64-row items, each row's bytes written by one thread (bitwise any thread count).
  const int64_t kRowsPerItem = 64;
  ParallelFor(int((rows + kRowsPerItem - 1) / kRowsPerItem), NumThreads(), [&](int item, int) {
    for (int64_t r = item * kRowsPerItem; r < std::min(rows, (item + 1) * kRowsPerItem); ++r)
      FitRow(x + r * cols, w, cols, bits_, p.bytes.data() + r * rb);
  });
  return p;
}

int64_t LutCodec::PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const {
  return rows * (2 * (int64_t(1) << bits_) + CodeBytes(cols, bits_));  // per row: fp16 codebook + codes
}

void LutCodec::Dequantize(const PackedBlocks& p, float* y) const {
  const int k = 1 << bits_;
  const int64_t rb = 2 * k + CodeBytes(p.cols, bits_);
  QL_CHECK(int64_t(p.bytes.size()) == p.rows * rb, "{}: {} bytes for [{}, {}]", name(), p.bytes.size(), p.rows, p.cols);
  float cent[16];
  for (int64_t r = 0; r < p.rows; ++r) {
    const uint8_t* row = p.bytes.data() + r * rb;
    for (int j = 0; j < k; ++j) cent[j] = F16ToF32(uint16_t(row[2 * j] | row[2 * j + 1] << 8));
    for (int64_t c = 0; c < p.cols; ++c) y[r * p.cols + c] = cent[GetCode(row + 2 * k, c, bits_)];
  }
}

const BlockCodec& Lut2Codec() {
  static const LutCodec c(2);
  return c;
}
const BlockCodec& Lut3Codec() {
  static const LutCodec c(3);
  return c;
}
const BlockCodec& Lut4Codec() {
  static const LutCodec c(4);
  return c;
}

}  // namespace ql
