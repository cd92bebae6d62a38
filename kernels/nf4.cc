// NF4 reference quantizer/dequantizer with optional double quantization (docs/formats.md §1.3). See kernels/nf4.h.
#include "kernels/nf4.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ql {
namespace {

constexpr uint32_t kZeroCode = 7;       // kNf4Codebook[7] == 0.0
constexpr int kDqGroup = 256;           // absmaxes per second-level block (bitsandbytes blocksize=256)
constexpr uint8_t kDynamicZero = 127;   // Nf4DynamicMap()[127] == 0.0

int64_t CodeBytes(int bs) { return (int64_t(bs) + 1) / 2; }

void PutF32(uint8_t* dst, float v) { std::memcpy(dst, &v, 4); }  // little-endian host (x86-64/arm64)
float GetF32(const uint8_t* src) {
  float v;
  std::memcpy(&v, src, 4);
  return v;
}

}  // namespace

const std::array<float, 15>& Nf4Thresholds() {
  // bitsandbytes dQuantizeNF4 (csrc/kernels.cu) compares against these decimal literals with an `f`
  // suffix: the double midpoints of adjacent codebook entries, printed shortest and then rounded to fp32.
  // Four of them (indices 0, 8, 12, 14) land one fp32 ulp below the fp32 rounding of the exact midpoint
  // (the exact midpoint of two fp32 codebook values is often itself a tie in fp32), so we keep the
  // literals rather than recompute them.
  static const std::array<float, 15> t = {
      -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
      -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
      0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
      0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
  return t;
}

uint32_t Nf4Code(float normalized) {
  const auto& t = Nf4Thresholds();
  uint32_t q = 0;
  for (int i = 0; i < 15; ++i) q += normalized > t[i] ? 1u : 0u;  // strict: ties -> lower code
  return q;
}

uint32_t Nf4CodeArgmin(float normalized) {
  uint32_t best = 0;
  float best_d = std::fabs(normalized - kNf4Codebook[0]);
  for (uint32_t i = 1; i < 16; ++i) {
    const float d = std::fabs(normalized - kNf4Codebook[i]);  // fp32, as torch on an fp32 tensor
    if (d < best_d) {  // strict: torch.argmin returns the first minimum
      best_d = d;
      best = i;
    }
  }
  return best;
}

const std::array<float, 256>& Nf4DynamicMap() {
  static const std::array<float, 256> map = [] {
    std::vector<double> v;
    for (int i = 0; i < 7; ++i) {
      const int n = (1 << i) + 1;  // linspace(0.1, 1, n)
      const double p = std::pow(10.0, i - 6);
      for (int k = 0; k + 1 < n; ++k) {
        const double lo = 0.1 + 0.9 * k / (n - 1), hi = 0.1 + 0.9 * (k + 1) / (n - 1);
        const double mean = (lo + hi) / 2.0;
        v.push_back(p * mean);
        v.push_back(-p * mean);
      }
    }
    v.push_back(0.0);
    v.push_back(1.0);
    std::sort(v.begin(), v.end());
    QL_CHECK(v.size() == 256);
    std::array<float, 256> r{};
    for (int i = 0; i < 256; ++i) r[i] = float(v[i]);
    return r;
  }();
  return map;
}

uint8_t DynamicMapCode(const std::array<float, 256>& map, float x) {
  // bitsandbytes dQuantize<STOCHASTIC=0>: a 7-step binary search from the middle, then the midpoint rule.
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = map[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (upper_pivot == 255) upper = map[upper_pivot];
  if (lower_pivot == 0) lower = map[lower_pivot];
  if (x > val) {
    const float mid = (upper + val) * 0.5f;
    return uint8_t(x > mid ? upper_pivot : pivot);
  }
  const float mid = (lower + val) * 0.5f;
  return uint8_t(x < mid ? lower_pivot : pivot);
}

double Nf4Codec::nominal_bits_per_weight(int block_size) const {
  return 8.0 * double(4 + CodeBytes(block_size)) / double(block_size);
}

StatusOr<PackedBlocks> Nf4Codec::Quantize(const float* x, int64_t rows, int64_t cols,
                                          const BlockOptions& opt) const {
  if (opt.importance != nullptr)
    return Status::Errorf("nf4: has no importance-weighted quantizer; drop the importance matrix or use a GGUF type");
  if (opt.block_size < 0)
    return Status::Errorf("nf4: block size {} is negative; use 0 (default 64) or a positive size",
                          opt.block_size);
  if (rows < 0 || cols < 0) return Status::Errorf("nf4: bad shape [{}, {}]", rows, cols);
  const int bs = opt.block_size == 0 ? default_block_size() : opt.block_size;
  const bool dq = opt.nf4_double_quant;
  const int64_t nb = (cols + bs - 1) / bs;
  const int64_t scale_bytes = dq ? 1 : 4;
  const int64_t bb = scale_bytes + CodeBytes(bs);
  PackedBlocks p;
  p.rows = rows;
  p.cols = cols;
  p.block_size = bs;
  p.bytes.assign(size_t(rows * nb * bb), 0);
  std::vector<float> absmax(size_t(rows * nb));  // [rows * nb], flattened block order
  std::vector<uint8_t> q(bs + 1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;  // [cols]
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * bs;
      const int n = int(std::min<int64_t>(bs, cols - c0));
      float amax = 0.0f;
      for (int i = 0; i < n; ++i) {
        if (!std::isfinite(xr[c0 + i]))
          return Status::Errorf("nf4: non-finite value {} at [{}, {}]", xr[c0 + i], r, c0 + i);
        amax = std::max(amax, std::fabs(xr[c0 + i]));
      }
      absmax[r * nb + b] = amax;
      std::fill(q.begin(), q.end(), uint8_t(kZeroCode));
      if (amax > 0.0f) {
        const float inv = 1.0f / amax;
        for (int i = 0; i < n; ++i)
          q[i] = uint8_t(opt.nf4_argmin ? Nf4CodeArgmin(xr[c0 + i] * inv) : Nf4Code(xr[c0 + i] * inv));
      }
      uint8_t* blk = p.bytes.data() + (r * nb + b) * bb;
      if (!dq) PutF32(blk, amax);
      uint8_t* codes = blk + scale_bytes;
      for (int j = 0; j < CodeBytes(bs); ++j) codes[j] = uint8_t(q[2 * j] << 4 | q[2 * j + 1]);
    }
  }
  if (dq) {
    const int64_t total = rows * nb;
    double sum = 0.0;
    for (float a : absmax) sum += a;
    const float offset = total ? float(sum / double(total)) : 0.0f;
    const int64_t groups = (total + kDqGroup - 1) / kDqGroup;
    p.extra.resize(size_t(4 + 4 * groups));
    PutF32(p.extra.data(), offset);
    const auto& map = Nf4DynamicMap();
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t i0 = g * kDqGroup, i1 = std::min<int64_t>(total, i0 + kDqGroup);
      float amax2 = 0.0f;
      for (int64_t i = i0; i < i1; ++i) amax2 = std::max(amax2, std::fabs(absmax[i] - offset));
      PutF32(p.extra.data() + 4 + 4 * g, amax2);
      const float inv = amax2 > 0.0f ? 1.0f / amax2 : 0.0f;
      for (int64_t i = i0; i < i1; ++i)
        p.bytes[size_t(i * bb)] = amax2 > 0.0f ? DynamicMapCode(map, (absmax[i] - offset) * inv) : kDynamicZero;
    }
  }
  return p;
}

int64_t Nf4Codec::PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const {
  const int bs = opt.block_size <= 0 ? default_block_size() : opt.block_size;
  const int64_t blocks = rows * ((cols + bs - 1) / bs);
  if (!opt.nf4_double_quant) return blocks * (4 + CodeBytes(bs));
  return blocks * (1 + CodeBytes(bs)) + 4 + 4 * ((blocks + kDqGroup - 1) / kDqGroup);  // + offset, absmax2s
}

void Nf4Codec::Dequantize(const PackedBlocks& p, float* y) const {
  const int bs = p.block_size;
  const bool dq = !p.extra.empty();
  const int64_t nb = (p.cols + bs - 1) / bs;
  const int64_t scale_bytes = dq ? 1 : 4;
  const int64_t bb = scale_bytes + CodeBytes(bs);
  QL_CHECK(int64_t(p.bytes.size()) == p.rows * nb * bb, "nf4: {} bytes for [{}, {}] block {}",
           p.bytes.size(), p.rows, p.cols, bs);
  QL_CHECK(!dq || int64_t(p.extra.size()) == 4 + 4 * ((p.rows * nb + kDqGroup - 1) / kDqGroup),
           "nf4: double-quant state of {} bytes", p.extra.size());
  const auto& map = Nf4DynamicMap();
  for (int64_t r = 0; r < p.rows; ++r) {
    float* yr = y + r * p.cols;  // [cols]
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t i = r * nb + b;
      const uint8_t* blk = p.bytes.data() + i * bb;
      float amax;
      if (dq) {
        const float amax2 = GetF32(p.extra.data() + 4 + 4 * (i / kDqGroup));
        // Two fp32 roundings as in bitsandbytes (product, then + offset); volatile keeps -march=native
        // builds from fusing them into one FMA.
        volatile float scaled = map[blk[0]] * amax2;
        amax = scaled + GetF32(p.extra.data());
      } else {
        amax = GetF32(blk);
      }
      const uint8_t* codes = blk + scale_bytes;
      const int64_t c0 = b * bs;
      const int n = int(std::min<int64_t>(bs, p.cols - c0));
      for (int k = 0; k < n; ++k) {
        const uint32_t qk = (codes[k / 2] >> ((k & 1) ? 0 : 4)) & 0xF;  // first element in the high nibble
        yr[c0 + k] = kNf4Codebook[qk] * amax;
      }
    }
  }
}

const BlockCodec& Nf4BlockCodec() {
  static const Nf4Codec c;
  return c;
}

}  // namespace ql
