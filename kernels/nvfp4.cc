// NVFP4 reference quantizer/dequantizer in the ModelOpt and compressed-tensors conventions (docs/formats.md §3),
// rows on quantlab's threads (kernels/parallel.h), E4M3 scales through the codec's exact table, E2M1
// elements by kernels/fp4_encode.h (SIMD, bitwise the codec's cast).
#include "kernels/nvfp4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/codec_tables.h"
#include "kernels/fp4_encode.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

constexpr float kE4m3Max = 448.0f;
constexpr float kE2m1Max = 6.0f;

// The registered E4M3 codec (kernels/minifloat.h): Encode is the RNE saturating cast (docs/formats.md §1.1),
// taken through its exact table (kernels/codec_tables.h: every entry is the codec's own answer).
const CodecTables& Tables(const char* name) {
  auto c = FindElementCodec(name);
  QL_CHECK(c.ok(), "nvfp4: {}", c.status().message());
  return CodecTables::For(*c);
}
const CodecTables& E4m3() {
  static const CodecTables& t = Tables("fp8_e4m3");
  return t;
}
uint8_t E4m3Code(float v) { return uint8_t(E4m3().Encode(v)); }  // v >= 0 here
float E4m3Value(uint8_t code) { return E4m3().Decode(code); }

int64_t BlockBytes(int bs) { return 1 + (int64_t(bs) + 1) / 2; }

// The first non-finite index of x[0, n), or -1, and max |x| over the finite prefix scanned (all of x
// when it returns -1). Chunks on quantlab's threads; max is exact in any order.
int64_t AbsMaxOrBadIndex(const float* x, int64_t n, float* amax) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<float> m(size_t(n_chunks), 0.0f);
  std::vector<int64_t> bad(size_t(n_chunks), -1);
  ParallelForChunks(n, kChunk, n >= 4 * kChunk ? NumThreads() : 1, [&](int64_t i0, int64_t i1) {
    float mx = 0.0f;
    uint32_t all = 0;  // OR of (exponent bits all ones) over the chunk: non-zero iff an Inf or NaN
    for (int64_t i = i0; i < i1; ++i) {
      mx = std::max(mx, std::fabs(x[i]));
      all |= uint32_t((F32Bits(x[i]) & 0x7F800000u) == 0x7F800000u);
    }
    if (all) {
      for (int64_t i = i0; i < i1 && bad[size_t(i0 / kChunk)] < 0; ++i)
        if (!std::isfinite(x[i])) bad[size_t(i0 / kChunk)] = i;
    }
    m[size_t(i0 / kChunk)] = mx;
  });
  *amax = 0.0f;
  for (size_t k = 0; k < m.size(); ++k) {
    if (bad[k] >= 0) return bad[k];
    *amax = std::max(*amax, m[k]);
  }
  return -1;
}

// One row of `cols` values into its nb blocks of bb bytes (zeroed by the caller).
void QuantizeRow(const float* xr, int64_t cols, int bs, bool modelopt, float tensor_scale, float amax, uint8_t* row) {
  const int64_t nb = (cols + bs - 1) / bs, bb = BlockBytes(bs);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * bs;
    const int n = int(std::min<int64_t>(bs, cols - c0));
    float bmax = 0.0f;
    for (int i = 0; i < n; ++i) bmax = std::max(bmax, std::fabs(xr[c0 + i]));
    uint8_t* blk = row + b * bb;
    float eff;  // effective per-element scale, fp32
    if (modelopt) {
      float s = bmax / (6.0f * tensor_scale);
      if (s == 0.0f) s = 1.0f;
      blk[0] = E4m3Code(s);
      eff = E4m3Value(blk[0]) * tensor_scale;
    } else {
      float s = tensor_scale * (bmax / kE2m1Max);
      s = std::clamp(s, -kE4m3Max, kE4m3Max);
      blk[0] = E4m3Code(s);
      if (E4m3Value(blk[0]) == 0.0f) blk[0] = E4m3Code(0.125f);
      eff = E4m3Value(blk[0]) / tensor_scale;
    }
    if (eff == 0.0f || amax == 0.0f) continue;  // block decodes to 0; codes stay 0 (see header)
    // q = E2M1(x / eff) (compressed-tensors clamps x / eff to ±6 first: the saturating cast gives the
    // same code), the sign rule of the header; even element in the low nibble (kernels/fp4_encode.h).
    E2m1EncodeRun(xr + c0, n, eff, modelopt ? E2m1ZeroSign::kNegativeInput : E2m1ZeroSign::kPositive, blk + 1);
  }
}

int64_t RowsPerItem(int64_t cols) { return std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, cols)); }
int ThreadsFor(int64_t elems) { return elems >= (int64_t(1) << 16) ? NumThreads() : 1; }

}  // namespace

double NvFp4Codec::nominal_bits_per_weight(int block_size) const {
  return 8.0 * double(BlockBytes(block_size)) / double(block_size);
}

StatusOr<PackedBlocks> NvFp4Codec::Quantize(const float* x, int64_t rows, int64_t cols,
                                            const BlockOptions& opt) const {
  if (opt.importance != nullptr)
    return Status::Errorf("nvfp4: has no importance-weighted quantizer; drop the importance matrix or use a GGUF type");
  if (opt.block_size < 0)
    return Status::Errorf("nvfp4: block size {} is negative; use 0 (default 16) or a positive size",
                          opt.block_size);
  if (rows < 0 || cols < 0) return Status::Errorf("nvfp4: bad shape [{}, {}]", rows, cols);
  const int bs = opt.block_size == 0 ? default_block_size() : opt.block_size;
  const bool modelopt = opt.nvfp4 == NvFp4Convention::kModelOpt;
  float amax = 0.0f;
  if (const int64_t i = AbsMaxOrBadIndex(x, rows * cols, &amax); i >= 0)
    return Status::Errorf("nvfp4: non-finite value {} at [{}, {}]; NVFP4 has no NaN/Inf codes", x[i],
                          i / cols, i % cols);
  // Tensor scale: ModelOpt scale_2 (multiplier) or compressed-tensors global_scale (divisor).
  float tensor_scale = 1.0f;  // amax == 0: see the header
  if (amax > 0.0f) tensor_scale = modelopt ? amax / (6.0f * kE4m3Max) : (6.0f * kE4m3Max) / amax;

  const int64_t row_bytes = (cols + bs - 1) / bs * BlockBytes(bs);
  PackedBlocks p;
  p.rows = rows;
  p.cols = cols;
  p.block_size = bs;
  p.bytes.assign(size_t(rows * row_bytes), 0);
  p.extra.resize(5);
  std::memcpy(p.extra.data(), &tensor_scale, 4);
  p.extra[4] = modelopt ? 0 : 1;
  // Rows are independent: any thread count gives the same bytes.
  ParallelForChunks(rows, RowsPerItem(cols), ThreadsFor(rows * cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      QuantizeRow(x + r * cols, cols, bs, modelopt, tensor_scale, amax, p.bytes.data() + r * row_bytes);
  });
  return p;
}

int64_t NvFp4Codec::PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const {
  const int bs = opt.block_size <= 0 ? default_block_size() : opt.block_size;
  return rows * ((cols + bs - 1) / bs) * BlockBytes(bs) + 5;  // + fp32 tensor scale and its convention byte
}

void NvFp4Codec::Dequantize(const PackedBlocks& p, float* y) const {
  const int bs = p.block_size;
  const int64_t nb = (p.cols + bs - 1) / bs;
  const int64_t bb = BlockBytes(bs);
  QL_CHECK(int64_t(p.bytes.size()) == p.rows * nb * bb && p.extra.size() == 5,
           "nvfp4: {} + {} bytes for [{}, {}] block {}", p.bytes.size(), p.extra.size(), p.rows, p.cols, bs);
  float tensor_scale;
  std::memcpy(&tensor_scale, p.extra.data(), 4);
  const bool modelopt = p.extra[4] == 0;
  auto row = [&](int64_t r) {
    float* yr = y + r * p.cols;  // [cols]
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = p.bytes.data() + (r * nb + b) * bb;
      const float s8 = E4m3Value(blk[0]);
      const float eff = modelopt ? s8 * tensor_scale : s8 / tensor_scale;
      const int64_t c0 = b * bs;
      const int n = int(std::min<int64_t>(bs, p.cols - c0));
      for (int i = 0; i < n; ++i) {
        const uint32_t q = (blk[1 + i / 2] >> ((i & 1) * 4)) & 0xF;
        yr[c0 + i] = kE2m1Values[q] * eff;
      }
    }
  };
  ParallelForChunks(p.rows, RowsPerItem(p.cols), ThreadsFor(p.rows * p.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) row(r);
  });
}

const BlockCodec& NvFp4BlockCodec() {
  static const NvFp4Codec c;
  return c;
}

}  // namespace ql
