// Tensor quantizer: per-tile scale/zero computation, integer and element-codec rounding, bit packing.
// Scalar code on quantlab's threads (kernels/parallel.h, no OpenMP); a tile's parameters are computed
// once and shared by Quantize and FakeQuantize so the two agree bit for bit. Cost: one pass for min/max (two with packing), x80 for the mse search.
#include "kernels/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/codec_tables.h"
#include "kernels/half.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

// Round to nearest, ties to even, for |v| < 2^22 (callers clamp first): adding 1.5*2^23 pushes the
// fraction bits out under the default round-to-nearest-even mode.
inline float RoundEven(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;  // exact under IEEE semantics (no -ffast-math in this project)
}

// How one scheme maps values to codes.
struct Plan {
  const ElementCodec* codec = nullptr;
  bool is_int = false;
  bool scaled = true;
  int bits = 0;
  int qmin = 0, qmax = 0;     // integer code range
  float range_div = 1.0f;     // s = range / range_div
  float elem_lo = 0, elem_hi = 0;  // float/codebook: x/s is clamped here before Encode
  IntMode mode = IntMode::kSym;
  ScaleDtype sdt = ScaleDtype::kFp32;
  const ElementCodec* e4m3 = nullptr;  // scale codec for s=e4m3
  const CodecTables* tables = nullptr;  // float/codebook codecs
};

struct TileParams {
  float scale = 0;   // stored scale, decoded
  int32_t zero = 0;  // asym zero point
  uint32_t scale_bits = 0;  // the stored scale's bits in its dtype
};

StatusOr<Plan> MakePlan(const Scheme& s) {
  Plan p;
  QL_ASSIGN_OR_RETURN(p.codec, FindElementCodec(s.format));
  p.bits = p.codec->bits();
  p.is_int = p.codec->kind() == FormatKind::kInt;
  p.scaled = s.granularity != Granularity::kNone;
  p.mode = s.int_mode;
  p.sdt = s.scale_dtype;
  if (p.is_int) {
    if (p.bits < 2 || p.bits > 16)
      return Status::Errorf("scheme {}: integer codes of {} bits are not supported", ToString(s), p.bits);
    const int half = 1 << (p.bits - 1);
    if (!p.scaled) {  // direct cast onto the codec's own grid
      p.qmin = int(p.codec->min_value());
      p.qmax = int(p.codec->max_finite());
    } else if (p.mode == IntMode::kSym) {
      p.qmin = -(half - 1);
      p.qmax = half - 1;
      p.range_div = float(half - 1);
    } else if (p.mode == IntMode::kSymFull) {
      p.qmin = -half;
      p.qmax = half - 1;
      p.range_div = float(half) - 0.5f;
    } else {
      p.qmin = 0;
      p.qmax = 2 * half - 1;
      p.range_div = float(2 * half - 1);
    }
  } else {
    if (p.bits > 16)
      return Status::Errorf("scheme {}: element codes of {} bits are not supported", ToString(s), p.bits);
    p.range_div = p.codec->max_finite();
    p.elem_lo = p.codec->min_value();
    p.elem_hi = p.codec->max_finite();
    p.tables = &CodecTables::For(p.codec);
  }
  if (p.sdt == ScaleDtype::kE4m3) {
    QL_ASSIGN_OR_RETURN(p.e4m3, FindElementCodec("fp8_e4m3"));
  }
  return p;
}

// Rounds a non-negative raw scale to the scale dtype; returns the decoded value and its bits.
float StoreScale(const Plan& p, float s, uint32_t* bits) {
  switch (p.sdt) {
    case ScaleDtype::kFp32:
      *bits = F32Bits(s);
      return s;
    case ScaleDtype::kFp16: {
      const uint16_t h = F32ToF16(std::min(s, 65504.0f));
      *bits = h;
      return F16ToF32(h);
    }
    case ScaleDtype::kBf16: {
      const uint16_t h = F32ToBf16(std::min(s, BitsF32(0x7F7F0000u)));  // largest finite bf16
      *bits = h;
      return Bf16ToF32(h);
    }
    case ScaleDtype::kE8m0: {
      // 2^ceil(log2 s), exponent clamped to [-127, 127]; byte = exponent + 127 (docs/formats.md §1.1). s = 0
      // stores 0x00 (2^-127): the tile's codes are all 0, so it still dequantizes to 0.
      int e = -127;
      if (s > 0) {
        int e2 = 0;
        const float m = std::frexp(s, &e2);  // s = m * 2^e2, m in [0.5, 1)
        e = (m == 0.5f) ? e2 - 1 : e2;
        e = std::clamp(e, -127, 127);
      }
      *bits = uint32_t(e + 127);
      return std::ldexp(1.0f, e);
    }
    case ScaleDtype::kE4m3: {
      const uint32_t c = p.e4m3->Encode(std::min(s, p.e4m3->max_finite()));
      *bits = c;
      return p.e4m3->Decode(c);
    }
  }
  return s;
}

// Parameters of one tile whose (clipped) range is [lo, hi].
TileParams ParamsForRange(const Plan& p, float lo, float hi) {
  TileParams t;
  if (!p.scaled) {
    t.scale = 1.0f;
    return t;
  }
  if (p.is_int && p.mode == IntMode::kAsym) {
    const float lo0 = std::min(lo, 0.0f), hi0 = std::max(hi, 0.0f);
    t.scale = StoreScale(p, (hi0 - lo0) / p.range_div, &t.scale_bits);
    if (t.scale > 0 && std::isfinite(t.scale)) {
      const float z = RoundEven(std::clamp(-lo0 / t.scale, 0.0f, float(p.qmax)));
      t.zero = int32_t(z);
    }
    return t;
  }
  const float amax = std::max(std::fabs(lo), std::fabs(hi));
  t.scale = StoreScale(p, amax / p.range_div, &t.scale_bits);
  return t;
}

// Value -> code (as an integer: signed for int sym modes), and code -> value.
inline int32_t QuantInt(const Plan& p, const TileParams& t, float x) {
  if (!(t.scale > 0)) return t.zero;
  const float v = std::clamp(x / t.scale, float(p.qmin - t.zero), float(p.qmax - t.zero));
  return int32_t(RoundEven(v)) + t.zero;
}
inline float DequantInt(const TileParams& t, int32_t q) { return float(q - t.zero) * t.scale; }
inline uint32_t QuantElem(const Plan& p, const TileParams& t, float x) {
  if (!p.scaled) return p.tables->Encode(x);
  if (!(t.scale > 0)) return p.tables->Encode(0.0f);
  return p.tables->Encode(std::clamp(x / t.scale, p.elem_lo, p.elem_hi));  // saturate, never Inf
}
inline float DequantElem(const Plan& p, const TileParams& t, uint32_t c) {
  return p.scaled ? p.tables->Decode(c) * t.scale : p.tables->Decode(c);
}
inline float RoundTrip(const Plan& p, const TileParams& t, float x) {
  return p.is_int ? DequantInt(t, QuantInt(p, t, x)) : DequantElem(p, t, QuantElem(p, t, x));
}

// Linear-interpolated percentile (numpy's default) of v; reorders v.
float Percentile(std::vector<float>& v, double pct) {
  const double pos = pct / 100.0 * double(v.size() - 1);
  const size_t k = size_t(pos);
  const double frac = pos - double(k);
  std::nth_element(v.begin(), v.begin() + k, v.end());
  const float a = v[k];
  if (frac == 0 || k + 1 >= v.size()) return a;
  const float b = *std::min_element(v.begin() + k + 1, v.end());
  return float(double(a) + frac * (double(b) - double(a)));
}

// Parameters of tile t by percentile or MSE clipping (gathers the tile's values).
TileParams SearchTileParams(const Scheme& s, const Plan& p, const TileShape& ts, const float* x, int64_t rows,
                            int64_t cols, int64_t t) {
  const bool asym = p.is_int && p.mode == IntMode::kAsym;
  const int64_t r0 = (t / ts.grid_cols) * ts.tile_rows, r1 = std::min(rows, r0 + ts.tile_rows);
  const int64_t c0 = (t % ts.grid_cols) * ts.tile_cols, c1 = std::min(cols, c0 + ts.tile_cols);
  std::vector<float> v;  // [tile elements], row by row
  v.reserve(size_t((r1 - r0) * (c1 - c0)));
  for (int64_t r = r0; r < r1; ++r) v.insert(v.end(), x + r * cols + c0, x + r * cols + c1);
  if (s.clip == ClipRule::kPercentile) {
    if (asym) {
      std::vector<float> w = v;
      const float hi = Percentile(v, s.percentile);
      const float lo = Percentile(w, 100.0 - s.percentile);
      return ParamsForRange(p, lo, hi);
    }
    for (float& a : v) a = std::fabs(a);
    const float a = Percentile(v, s.percentile);
    return ParamsForRange(p, -a, a);
  }
  // MSE: shrink factors 1.00, 0.99, ..., 0.21 on the full range; least squared error wins.
  const float lo = *std::min_element(v.begin(), v.end());
  const float hi = *std::max_element(v.begin(), v.end());
  const float amax = std::max(std::fabs(lo), std::fabs(hi));
  double best_err = std::numeric_limits<double>::infinity();
  TileParams best;
  for (int i = 0; i < 80; ++i) {
    const float shrink = 1.0f - float(i) / 100.0f;
    const TileParams cand = asym ? ParamsForRange(p, lo * shrink, hi * shrink)
                                 : ParamsForRange(p, -amax * shrink, amax * shrink);
    double err = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      const double d = double(v[k]) - double(RoundTrip(p, cand, v[k]));
      err += d * d;
      if ((k & 31) == 31 && err >= best_err) break;  // cannot win any more (errors only grow)
    }
    if (err < best_err) {
      best_err = err;
      best = cand;
    }
  }
  return best;
}

// Per-tile parameters for the whole tensor: [grid_rows, grid_cols].
std::vector<TileParams> ComputeParams(const Scheme& s, const Plan& p, const TileShape& ts,
                                      const float* x, int64_t rows, int64_t cols) {
  const int64_t nt = ts.num_tiles();
  std::vector<TileParams> params(size_t(std::max<int64_t>(nt, 0)));
  if (!p.scaled || nt == 0) return params;
  if (s.clip == ClipRule::kMax) {
    std::vector<float> lo(nt, 0.0f), hi(nt, 0.0f);
    std::vector<char> seen(nt, 0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      const int64_t tile_row = (r / ts.tile_rows) * ts.grid_cols;
      for (int64_t gc = 0; gc < ts.grid_cols; ++gc) {
        const int64_t c0 = gc * ts.tile_cols, c1 = std::min(cols, c0 + ts.tile_cols);
        float mn = row[c0], mx = row[c0];
        for (int64_t c = c0 + 1; c < c1; ++c) {
          mn = std::min(mn, row[c]);
          mx = std::max(mx, row[c]);
        }
        const int64_t t = tile_row + gc;
        if (!seen[t]) {
          lo[t] = mn, hi[t] = mx, seen[t] = 1;
        } else {
          lo[t] = std::min(lo[t], mn), hi[t] = std::max(hi[t], mx);
        }
      }
    }
    for (int64_t t = 0; t < nt; ++t) params[t] = ParamsForRange(p, lo[t], hi[t]);
    return params;
  }
  // Percentile and MSE: tiles are independent, so any thread count gives the same parameters.
  const int threads = nt > 1 && rows * cols >= (int64_t(1) << 16) ? NumThreads() : 1;
  const int64_t tiles_per_item = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, ts.tile_rows * ts.tile_cols));
  ParallelForChunks(nt, tiles_per_item, threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) params[size_t(t)] = SearchTileParams(s, p, ts, x, rows, cols, t);
  });
  return params;
}

// Little-endian bit stream of b-bit codes.
class BitWriter {
 public:
  BitWriter(uint8_t* out, int bits) : out_(out), bits_(bits) {}
  void Put(uint32_t code) {
    acc_ |= uint64_t(code) << fill_;
    fill_ += bits_;
    while (fill_ >= 8) {
      *out_++ = uint8_t(acc_);
      acc_ >>= 8;
      fill_ -= 8;
    }
  }
  void Flush() {
    if (fill_ > 0) *out_++ = uint8_t(acc_);
    acc_ = 0;
    fill_ = 0;
  }

 private:
  uint8_t* out_;
  int bits_;
  uint64_t acc_ = 0;
  int fill_ = 0;
};

class BitReader {
 public:
  BitReader(const uint8_t* in, int bits, int64_t start_index) : in_(in), bits_(bits) {
    const int64_t bit = start_index * bits;
    in_ += bit / 8;
    const int skip = int(bit % 8);
    if (skip) {
      acc_ = uint64_t(*in_++) >> skip;
      fill_ = 8 - skip;
    }
  }
  uint32_t Get() {
    while (fill_ < bits_) {
      acc_ |= uint64_t(*in_++) << fill_;
      fill_ += 8;
    }
    const uint32_t c = uint32_t(acc_ & ((uint64_t(1) << bits_) - 1));
    acc_ >>= bits_;
    fill_ -= bits_;
    return c;
  }

 private:
  const uint8_t* in_;
  int bits_;
  uint64_t acc_ = 0;
  int fill_ = 0;
};

size_t PackedBytes(int64_t n, int bits) { return size_t((n * bits + 7) / 8); }

// Calls fn(c0, c1, params) for each run of row r whose elements share one tile (noscale: one run).
template <typename F>
inline void ForEachRun(const TileShape& ts, bool scaled, int64_t r, int64_t cols,
                       const std::vector<TileParams>& params, F&& fn) {
  static const TileParams kUnscaled{1.0f, 0, 0};
  if (!scaled) {
    fn(int64_t(0), cols, kUnscaled);
    return;
  }
  const int64_t tile_row = (r / ts.tile_rows) * ts.grid_cols;
  for (int64_t gc = 0; gc < ts.grid_cols; ++gc) {
    const int64_t c0 = gc * ts.tile_cols;
    fn(c0, std::min(cols, c0 + ts.tile_cols), params[size_t(tile_row + gc)]);
  }
}

// Rule: a stored scale whose largest code would dequantize past the fp32 range is an error, never an
// Inf in the output. Only a scale dtype that rounds up can get there (e8m0 takes 2^ceil(log2 s)):
// int4:g2:s=e8m0 on 3e38 needs s = 2^126, and 7 x 2^126 > FLT_MAX.
Status CheckScalesFinite(const Scheme& s, const Plan& p, const std::vector<TileParams>& params) {
  if (!p.scaled) return Status::Ok();
  // |q - zero| <= qmax in asym mode (q and zero are both in [0, qmax]).
  const float max_code = p.is_int ? float(std::max(-p.qmin, p.qmax)) : std::fabs(p.elem_hi);
  for (size_t t = 0; t < params.size(); ++t) {
    const float biggest = max_code * params[t].scale;
    if (!std::isfinite(biggest)) {
      return Status::Errorf("quantize {}: tile {} needs scale {:g}, and its largest code ({:g} x scale) "
                            "overflows fp32; use s=fp32 or scale the tensor down",
                            ToString(s), t, params[t].scale, max_code);
    }
  }
  return Status::Ok();
}

// True when no value of x[0, n) is Inf or NaN (exponent bits all ones): one branch-free pass.
bool AllFinite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= uint32_t((F32Bits(x[i]) & 0x7F800000u) == 0x7F800000u);
  return bad == 0;
}

Status CheckInput(const Scheme& s, const float* x, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0)
    return Status::Errorf("quantize {}: bad shape [{}, {}]", ToString(s), rows, cols);
  const int64_t n = rows * cols;
  if (n > 0 && x == nullptr) return Status::Errorf("quantize {}: null input", ToString(s));
  const bool scaled = s.is_block || s.granularity != Granularity::kNone;
  if (AllFinite(x, n)) return Status::Ok();
  for (int64_t i = 0; i < n; ++i) {
    if (std::isfinite(x[i])) continue;
    if (std::isnan(x[i]))
      return Status::Errorf("quantize {}: NaN at flat index {} (row {}, col {}); clean the input first",
                            ToString(s), i, i / cols, i % cols);
    if (scaled)
      return Status::Errorf("quantize {}: {} at flat index {} (row {}, col {}); a scaled scheme needs "
                            "finite inputs", ToString(s), x[i] > 0 ? "+Inf" : "-Inf", i, i / cols,
                            i % cols);
  }
  return Status::Ok();
}

}  // namespace

size_t QuantizedTensor::Bytes() const {
  if (scheme.is_block) return blocks.total_bytes();
  return codes.size() + scales.size() + zeros.size();
}

double QuantizedTensor::BitsPerWeight() const {
  return rows * cols == 0 ? 0.0 : 8.0 * double(Bytes()) / double(rows * cols);
}

uint32_t QuantizedTensor::RawCode(int64_t i) const {
  QL_CHECK(!scheme.is_block && i >= 0 && i < rows * cols);
  return BitReader(codes.data(), code_bits, i).Get();
}

int32_t QuantizedTensor::Code(int64_t i) const {
  const uint32_t c = RawCode(i);
  auto codec = FindElementCodec(scheme.format);
  QL_CHECK(codec.ok());
  const bool is_signed_int = (*codec)->kind() == FormatKind::kInt &&
                             !(scheme.int_mode == IntMode::kAsym && scheme.granularity != Granularity::kNone) &&
                             (*codec)->min_value() < 0;
  if (!is_signed_int) return int32_t(c);
  const uint32_t sign = 1u << (code_bits - 1);
  return int32_t(c ^ sign) - int32_t(sign);  // sign-extend b bits
}

float QuantizedTensor::Scale(int64_t t) const {
  QL_CHECK(!scheme.is_block && t >= 0 && t < tiles.num_tiles());
  const int w = ScaleDtypeBytes(scheme.scale_dtype);
  uint32_t b = 0;
  for (int k = 0; k < w; ++k) b |= uint32_t(scales[size_t(t * w + k)]) << (8 * k);
  switch (scheme.scale_dtype) {
    case ScaleDtype::kFp32: return BitsF32(b);
    case ScaleDtype::kFp16: return F16ToF32(uint16_t(b));
    case ScaleDtype::kBf16: return Bf16ToF32(uint16_t(b));
    case ScaleDtype::kE8m0: return std::ldexp(1.0f, int(b) - 127);
    case ScaleDtype::kE4m3: {
      auto c = FindElementCodec("fp8_e4m3");
      QL_CHECK(c.ok());
      return (*c)->Decode(b);
    }
  }
  return 0;
}

int32_t QuantizedTensor::ZeroPoint(int64_t t) const {
  QL_CHECK(!scheme.is_block && t >= 0 && t < tiles.num_tiles());
  if (zeros.empty()) return 0;
  return int32_t(BitReader(zeros.data(), code_bits, t).Get());
}

void QuantizedTensor::Dequantize(float* out) const {
  if (scheme.is_block) {
    auto codec = FindBlockCodec(scheme.format);
    QL_CHECK(codec.ok(), "{}", codec.status().message());
    (*codec)->Dequantize(blocks, out);
    return;
  }
  auto plan_or = MakePlan(scheme);
  QL_CHECK(plan_or.ok(), "{}", plan_or.status().message());
  const Plan& p = *plan_or;
  std::vector<TileParams> params(size_t(tiles.num_tiles()));
  for (int64_t t = 0; t < tiles.num_tiles(); ++t) {
    params[t].scale = Scale(t);
    params[t].zero = ZeroPoint(t);
  }
  BitReader rd(codes.data(), code_bits, 0);
  const uint32_t sign = 1u << (code_bits - 1);
  const bool signed_codes = p.is_int && p.qmin < 0;
  for (int64_t r = 0; r < rows; ++r) {
    float* y = out + r * cols;
    ForEachRun(tiles, p.scaled, r, cols, params, [&](int64_t c0, int64_t c1, const TileParams& t) {
      if (p.is_int) {
        for (int64_t c = c0; c < c1; ++c) {
          const uint32_t code = rd.Get();
          y[c] = DequantInt(t, signed_codes ? int32_t(code ^ sign) - int32_t(sign) : int32_t(code));
        }
      } else {
        for (int64_t c = c0; c < c1; ++c) y[c] = DequantElem(p, t, rd.Get());
      }
    });
  }
}

StatusOr<QuantizedTensor> Quantize(const Scheme& scheme, const float* x, int64_t rows, int64_t cols) {
  QL_RETURN_IF_ERROR(CheckInput(scheme, x, rows, cols));
  QuantizedTensor q;
  q.scheme = scheme;
  q.rows = rows;
  q.cols = cols;
  if (scheme.is_block) {
    QL_ASSIGN_OR_RETURN(const BlockCodec* codec, FindBlockCodec(scheme.format));
    QL_ASSIGN_OR_RETURN(q.blocks, codec->Quantize(x, rows, cols, scheme.block));
    return q;
  }
  QL_ASSIGN_OR_RETURN(Plan p, MakePlan(scheme));
  q.code_bits = p.bits;
  q.tiles = TilesFor(scheme, rows, cols);
  const std::vector<TileParams> params = ComputeParams(scheme, p, q.tiles, x, rows, cols);
  QL_RETURN_IF_ERROR(CheckScalesFinite(scheme, p, params));

  const int64_t nt = q.tiles.num_tiles();
  const int sw = ScaleDtypeBytes(scheme.scale_dtype);
  if (p.scaled) {
    q.scales.resize(size_t(nt * sw));
    for (int64_t t = 0; t < nt; ++t)
      for (int k = 0; k < sw; ++k) q.scales[size_t(t * sw + k)] = uint8_t(params[t].scale_bits >> (8 * k));
    if (p.is_int && p.mode == IntMode::kAsym) {
      q.zeros.assign(PackedBytes(nt, p.bits), 0);
      BitWriter zw(q.zeros.data(), p.bits);
      for (int64_t t = 0; t < nt; ++t) zw.Put(uint32_t(params[t].zero));
      zw.Flush();
    }
  }

  q.codes.assign(PackedBytes(rows * cols, p.bits), 0);
  BitWriter w(q.codes.data(), p.bits);
  const uint32_t mask = (1u << p.bits) - 1;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    ForEachRun(q.tiles, p.scaled, r, cols, params, [&](int64_t c0, int64_t c1, const TileParams& t) {
      if (p.is_int) {
        for (int64_t c = c0; c < c1; ++c) w.Put(uint32_t(QuantInt(p, t, xr[c])) & mask);
      } else {
        for (int64_t c = c0; c < c1; ++c) w.Put(QuantElem(p, t, xr[c]));
      }
    });
  }
  w.Flush();
  return q;
}

StatusOr<int64_t> QuantizedBytes(const Scheme& scheme, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) return Status::Errorf("bad shape [{}, {}] for {}", rows, cols, ToString(scheme));
  if (scheme.is_block) {
    QL_ASSIGN_OR_RETURN(const BlockCodec* codec, FindBlockCodec(scheme.format));
    return codec->PackedBytes(rows, cols, scheme.block);
  }
  QL_ASSIGN_OR_RETURN(Plan p, MakePlan(scheme));
  int64_t bytes = int64_t(PackedBytes(rows * cols, p.bits));  // the codes, as Quantize packs them
  if (!p.scaled) return bytes;
  const int64_t nt = TilesFor(scheme, rows, cols).num_tiles();
  bytes += nt * ScaleDtypeBytes(scheme.scale_dtype);
  if (p.is_int && p.mode == IntMode::kAsym) bytes += int64_t(PackedBytes(nt, p.bits));
  return bytes;
}

Status FakeQuantize(const Scheme& scheme, const float* x, int64_t rows, int64_t cols, float* out) {
  QL_RETURN_IF_ERROR(CheckInput(scheme, x, rows, cols));
  if (scheme.is_block) {
    QL_ASSIGN_OR_RETURN(QuantizedTensor q, Quantize(scheme, x, rows, cols));
    q.Dequantize(out);
    return Status::Ok();
  }
  QL_ASSIGN_OR_RETURN(Plan p, MakePlan(scheme));
  const TileShape ts = TilesFor(scheme, rows, cols);
  const std::vector<TileParams> params = ComputeParams(scheme, p, ts, x, rows, cols);
  QL_RETURN_IF_ERROR(CheckScalesFinite(scheme, p, params));
  const int threads = rows > 1 && rows * cols >= (int64_t(1) << 18) ? NumThreads() : 1;
  const int64_t rows_per_item = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, cols));
  ParallelForChunks(rows, rows_per_item, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* y = out + r * cols;
      ForEachRun(ts, p.scaled, r, cols, params, [&](int64_t c0, int64_t c1, const TileParams& t) {
        if (p.is_int) {
          for (int64_t c = c0; c < c1; ++c) y[c] = DequantInt(t, QuantInt(p, t, xr[c]));
        } else {
          for (int64_t c = c0; c < c1; ++c) y[c] = DequantElem(p, t, QuantElem(p, t, xr[c]));
        }
      });
    }
  });  // rows are independent: any thread count gives the same values
  return Status::Ok();
}

ErrorStats ComputeErrorStats(const float* ref, const float* approx, int64_t n) {
  ErrorStats e;
  e.n = n;
  if (n <= 0) return e;
  double se = 0, sp = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(ref[i]) - double(approx[i]);
    se += d * d;
    sp += double(ref[i]) * double(ref[i]);
    if (std::fabs(d) > e.max_abs || e.max_abs_index < 0) {
      e.max_abs = std::fabs(d);
      e.max_abs_index = i;
    }
  }
  e.mse = se / double(n);
  e.signal_power = sp / double(n);
  if (se == 0) e.sqnr_db = std::numeric_limits<double>::infinity();
  else if (sp == 0) e.sqnr_db = -std::numeric_limits<double>::infinity();
  else e.sqnr_db = 10.0 * std::log10(sp / se);
  return e;
}

}  // namespace ql
