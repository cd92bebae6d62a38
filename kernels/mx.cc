// MX block codecs (docs/formats.md §2): shared-exponent rules, MX element rounding, packing. See kernels/mx.h.
// Quantize: rows on quantlab's threads, E2M1 elements SIMD (kernels/fp4_encode.h), the others through the
// element codec's exact tables; QuantizeRef is the scalar oracle (EncodeElement per element) it is tested against.
#include "kernels/mx.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/codec_tables.h"
#include "kernels/fp4_encode.h"
#include "kernels/half.h"
#include "kernels/parallel.h"

namespace ql {

//                              name      bits is_int mbits emax max_norm
const MxElementSpec kMxE4M3 = {"fp8_e4m3", 8, false, 3, 8, 448.0};  // 2^8 * 1.75 (S.1111.111 is NaN)
const MxElementSpec kMxE5M2 = {"fp8_e5m2", 8, false, 2, 15, 57344.0};
const MxElementSpec kMxE2M3 = {"fp6_e2m3", 6, false, 3, 2, 7.5};
const MxElementSpec kMxE3M2 = {"fp6_e3m2", 6, false, 2, 4, 28.0};
const MxElementSpec kMxE2M1 = {"fp4_e2m1", 4, false, 1, 2, 6.0};
const MxElementSpec kMxInt8 = {"int8", 8, true, 6, 0, 127.0 / 64.0};

MxCodec::MxCodec(std::string name, const MxElementSpec& elem, std::string description)
    : name_(std::move(name)), elem_(elem), description_(std::move(description)) {
  auto c = FindElementCodec(elem_.name);
  QL_CHECK(c.ok(), "{}: {}", name_, c.status().message());
  codec_ = *c;
  QL_CHECK(codec_->bits() == elem_.bits, "{}: element codec {} has {} bits", name_, elem_.name, codec_->bits());
  decode_.resize(size_t(1) << elem_.bits);
  for (uint32_t code = 0; code < decode_.size(); ++code)
    decode_[code] = elem_.is_int ? codec_->Decode(code) / 64.0f : codec_->Decode(code);  // exact
}

uint32_t MxCodec::EncodeElement(float x, int shared_exp) const {
  // x / 2^shared_exp is exact in double; as fp32 it can only lose bits below 2^-126, far under every
  // element's smallest subnormal, so the element rounding sees the exact value.
  const double a = std::ldexp(double(x), -shared_exp);
  if (elem_.is_int) return codec_->Encode(float(std::clamp(a * 64.0, -127.0, 127.0)));  // k/64, symmetric
  return codec_->Encode(float(a));  // RNE, saturating to +-max_norm
}

float MxCodec::DecodeElement(uint32_t code, int shared_exp) const {
  // Exact: element values have <= 8 significant bits, so v * 2^shared_exp >= 2^-143 is an fp32 (sub)normal.
  return decode_[code & ((1u << elem_.bits) - 1)] * std::ldexp(1.0f, shared_exp);
}

uint8_t MxScaleByte(const MxElementSpec& s, float amax, MxScaleRounding rounding) {
  if (!std::isfinite(amax)) return 0xFF;
  if (amax == 0.0f) return 0x00;
  float a = amax;
  if (rounding == MxScaleRounding::kEven) {
    // Add half an element-ulp to the fp32 mantissa, drop the mantissa (torchao EVEN). Cannot overflow to
    // Inf unless amax > (2 - 2^-(mbits+1)) * 2^127, where the exponent would be > 127 anyway.
    const uint32_t u = F32Bits(a) + (1u << (22 - s.mbits));
    a = BitsF32(u & 0x7F800000u);
    if (a == 0.0f) a = amax;  // a subnormal amax that did not carry: its floor(log2) is < -126 anyway
    if (std::isinf(a)) return 0xFF;
  }
  int e2;
  const float f = std::frexp(a, &e2);  // a = f * 2^e2, f in [0.5, 1); exact, subnormals included
  int lg = e2 - 1;                     // floor(log2 a)
  if (rounding == MxScaleRounding::kCeil && f != 0.5f) lg += 1;
  int shared = lg - s.emax;
  if (shared > 127) return 0xFF;
  if (shared < -127) shared = -127;
  return static_cast<uint8_t>(shared + 127);
}

void PackCodesLsbFirst(const uint32_t* codes, int n, int bits, uint8_t* out) {
  const uint32_t mask = (1u << bits) - 1;
  for (int i = 0; i < n; ++i) {
    const int64_t bit = int64_t(i) * bits;
    const uint32_t c = codes[i] & mask;
    out[bit >> 3] |= uint8_t(c << (bit & 7));
    if ((bit & 7) + bits > 8) out[(bit >> 3) + 1] |= uint8_t(c >> (8 - (bit & 7)));
  }
}

uint32_t UnpackCodeLsbFirst(const uint8_t* in, int i, int bits) {
  const int64_t bit = int64_t(i) * bits;
  uint32_t v = in[bit >> 3] >> (bit & 7);
  if ((bit & 7) + bits > 8) v |= uint32_t(in[(bit >> 3) + 1]) << (8 - (bit & 7));
  return v & ((1u << bits) - 1);
}

double MxCodec::nominal_bits_per_weight(int block_size) const {
  return 8.0 * double(block_bytes(block_size)) / double(block_size);
}

// Checks shared by Quantize and QuantizeRef; the block size to use.
StatusOr<int> MxCodec::CheckQuantize(int64_t rows, int64_t cols, const BlockOptions& opt) const {
  if (opt.importance != nullptr)
    return Status::Errorf("{}: has no importance-weighted quantizer; drop the importance matrix or use a GGUF type",
                          name_);
  if (opt.block_size < 0)
    return Status::Errorf("{}: block size {} is negative; use 0 (default {}) or a positive size", name_,
                          opt.block_size, default_block_size());
  if (rows < 0 || cols < 0) return Status::Errorf("{}: bad shape [{}, {}]", name_, rows, cols);
  return opt.block_size == 0 ? default_block_size() : opt.block_size;
}

// The E8M0 byte of the block x[0, n) (0xFF for a NaN or Inf in it); *shared = its exponent, or
// kOverflow when max_norm x 2^shared is not a finite fp32 (ceil/even can round the exponent up past
// fp32; the same rule as element schemes with s=e8m0, kernels/quantizer.cc: an error, never an Inf).
uint8_t MxCodec::BlockScale(const float* x, int n, MxScaleRounding rounding, float* amax_out, int* shared) const {
  float amax = 0.0f;
  bool nan = false;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    nan |= std::isnan(a);
    amax = std::max(amax, a);
  }
  if (nan) amax = std::numeric_limits<float>::quiet_NaN();  // -> scale 0xFF, a NaN block
  *amax_out = amax;
  const uint8_t scale = MxScaleByte(elem_, amax, rounding);
  *shared = int(scale) - 127;
  if (scale != 0xFF && amax != 0.0f && !std::isfinite(std::ldexp(float(elem_.max_norm), *shared)))
    *shared = kOverflow;
  return scale;
}

Status MxCodec::OverflowError(int64_t r, int64_t b, float amax, int scale) const {
  return Status::Errorf("{}: row {} block {} (amax {:g}) needs the shared scale 2^{}, and {} x 2^{} "
                        "overflows fp32; use the floor rounding or scale the tensor down",
                        name_, r, b, amax, scale - 127, elem_.max_norm, scale - 127);
}

StatusOr<PackedBlocks> MxCodec::QuantizeRef(const float* x, int64_t rows, int64_t cols,
                                            const BlockOptions& opt) const {
  QL_ASSIGN_OR_RETURN(const int bs, CheckQuantize(rows, cols, opt));
  const int64_t nb = (cols + bs - 1) / bs;  // blocks per row
  const int64_t bb = block_bytes(bs);
  PackedBlocks p;
  p.rows = rows;
  p.cols = cols;
  p.block_size = bs;
  p.bytes.assign(size_t(rows * nb * bb), 0);
  std::vector<uint32_t> codes(bs);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;  // [cols]
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * bs;
      const int n = int(std::min<int64_t>(bs, cols - c0));  // real elements (last block may be partial)
      uint8_t* blk = p.bytes.data() + (r * nb + b) * bb;
      float amax;
      int shared;
      blk[0] = BlockScale(xr + c0, n, opt.mx_rounding, &amax, &shared);
      if (shared == kOverflow) return OverflowError(r, b, amax, blk[0]);
      std::fill(codes.begin(), codes.end(), 0u);
      if (blk[0] != 0xFF && amax != 0.0f)
        for (int i = 0; i < n; ++i) codes[i] = EncodeElement(xr[c0 + i], shared);
      PackCodesLsbFirst(codes.data(), bs, elem_.bits, blk + 1);
    }
  }
  return p;
}

namespace {
int64_t MxRowsPerItem(int64_t cols) {
  return std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, cols));
}
int MxThreadsFor(int64_t elems) { return elems >= (int64_t(1) << 16) ? NumThreads() : 1; }
}  // namespace

// One row into its nb blocks (zeroed by the caller); the first overflowing block's index, or -1.
// E2M1 elements go through kernels/fp4_encode.h (SIMD; x / 2^shared is exact, so its quotient is
// EncodeElement's), the others through the element codec's exact tables (kernels/codec_tables.h) on
// EncodeElement's quotient (x · 2^-shared in double, a multiply by a power of two: exact).
// tables: the element codec's, or null for E2M1.
int64_t MxCodec::QuantizeRow(const float* xr, int64_t cols, int bs, MxScaleRounding rounding,
                             const CodecTables* tables, uint8_t* row, uint32_t* codes, float* amax_out) const {
  const int64_t nb = (cols + bs - 1) / bs, bb = block_bytes(bs);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * bs;
    const int n = int(std::min<int64_t>(bs, cols - c0));
    uint8_t* blk = row + b * bb;
    int shared;
    blk[0] = BlockScale(xr + c0, n, rounding, amax_out, &shared);
    if (shared == kOverflow) return b;
    if (blk[0] == 0xFF || *amax_out == 0.0f) continue;  // codes stay 0
    if (!tables) {
      E2m1EncodeRun(xr + c0, n, std::ldexp(1.0f, shared), E2m1ZeroSign::kSignBit, blk + 1);
      continue;
    }
    const double p2 = std::ldexp(1.0, -shared);
    if (elem_.is_int) {  // k/64, symmetric
      for (int i = 0; i < n; ++i)
        codes[i] = tables->Encode(float(std::clamp(double(xr[c0 + i]) * p2 * 64.0, -127.0, 127.0)));
    } else {
      for (int i = 0; i < n; ++i) codes[i] = tables->Encode(float(double(xr[c0 + i]) * p2));
    }
    std::fill(codes + n, codes + bs, 0u);
    PackCodesLsbFirst(codes, bs, elem_.bits, blk + 1);
  }
  return -1;
}

StatusOr<PackedBlocks> MxCodec::Quantize(const float* x, int64_t rows, int64_t cols, const BlockOptions& opt) const {
  QL_ASSIGN_OR_RETURN(const int bs, CheckQuantize(rows, cols, opt));
  const int64_t nb = (cols + bs - 1) / bs;
  const int64_t row_bytes = nb * block_bytes(bs);
  PackedBlocks p;
  p.rows = rows;
  p.cols = cols;
  p.block_size = bs;
  p.bytes.assign(size_t(rows * row_bytes), 0);
  std::vector<int64_t> bad(size_t(rows), -1);  // [rows] first overflowing block of each row
  std::vector<float> bad_amax(size_t(rows), 0.0f);
  const CodecTables* tables = elem_.bits == 4 && !elem_.is_int ? nullptr : &CodecTables::For(codec_);
  // Rows are independent: any thread count gives the same bytes.
  ParallelForChunks(rows, MxRowsPerItem(cols), MxThreadsFor(rows * cols), [&](int64_t r0, int64_t r1) {
    std::vector<uint32_t> codes(static_cast<size_t>(bs));
    for (int64_t r = r0; r < r1; ++r) {
      float amax = 0.0f;
      bad[r] = QuantizeRow(x + r * cols, cols, bs, opt.mx_rounding, tables, p.bytes.data() + r * row_bytes,
                           codes.data(), &amax);
      bad_amax[r] = amax;
    }
  });
  for (int64_t r = 0; r < rows; ++r)
    if (bad[r] >= 0)
      return OverflowError(r, bad[r], bad_amax[r], p.bytes[size_t(r * row_bytes + bad[r] * block_bytes(bs))]);
  return p;
}

int64_t MxCodec::PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const {
  const int bs = opt.block_size <= 0 ? default_block_size() : opt.block_size;
  return rows * ((cols + bs - 1) / bs) * block_bytes(bs);
}

void MxCodec::Dequantize(const PackedBlocks& p, float* y) const {
  const int bs = p.block_size;
  const int64_t nb = (p.cols + bs - 1) / bs;
  const int64_t bb = block_bytes(bs);
  QL_CHECK(int64_t(p.bytes.size()) == p.rows * nb * bb, "{}: {} bytes for [{}, {}] block {}", name_,
           p.bytes.size(), p.rows, p.cols, bs);
  auto row = [&](int64_t r) {
    float* yr = y + r * p.cols;  // [cols]
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = p.bytes.data() + (r * nb + b) * bb;
      const int64_t c0 = b * bs;
      const int n = int(std::min<int64_t>(bs, p.cols - c0));
      if (blk[0] == 0xFF) {  // NaN block
        for (int i = 0; i < n; ++i) yr[c0 + i] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      const float scale = std::ldexp(1.0f, int(blk[0]) - 127);  // 2^-127 .. 2^127, exact in fp32
      if (elem_.bits == 4) {
        for (int i = 0; i < n; ++i) yr[c0 + i] = decode_[(blk[1 + i / 2] >> ((i & 1) * 4)) & 0xF] * scale;
      } else {
        for (int i = 0; i < n; ++i) yr[c0 + i] = decode_[UnpackCodeLsbFirst(blk + 1, i, elem_.bits)] * scale;
      }
    }
  };
  // Rows are independent: any thread count gives the same values.
  ParallelForChunks(p.rows, MxRowsPerItem(p.cols), MxThreadsFor(p.rows * p.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) row(r);
  });
}

const BlockCodec& MxFp8E4M3Codec() {
  static const MxCodec c("mxfp8_e4m3", kMxE4M3, "OCP MX: 32 x FP8 E4M3 + E8M0 shared scale");
  return c;
}
const BlockCodec& MxFp8E5M2Codec() {
  static const MxCodec c("mxfp8_e5m2", kMxE5M2, "OCP MX: 32 x FP8 E5M2 + E8M0 shared scale");
  return c;
}
const BlockCodec& MxFp6E2M3Codec() {
  static const MxCodec c("mxfp6_e2m3", kMxE2M3, "OCP MX: 32 x FP6 E2M3 + E8M0 shared scale");
  return c;
}
const BlockCodec& MxFp6E3M2Codec() {
  static const MxCodec c("mxfp6_e3m2", kMxE3M2, "OCP MX: 32 x FP6 E3M2 + E8M0 shared scale");
  return c;
}
const BlockCodec& MxFp4Codec() {
  static const MxCodec c("mxfp4", kMxE2M1, "OCP MX: 32 x FP4 E2M1 + E8M0 shared scale");
  return c;
}
const BlockCodec& MxInt8Codec() {
  static const MxCodec c("mxint8", kMxInt8, "OCP MX: 32 x INT8 (k/64) + E8M0 shared scale");
  return c;
}

}  // namespace ql
