// The tensor quantizer: applies a Scheme to a row-major [rows, cols] fp32 tensor and keeps the result
// in real packed storage (QuantizedTensor), or fake-quantizes in place of a packed round trip.
// Not an algorithm (GPTQ/AWQ choose values; they call this for the rounding step) and not a GEMM.
//
// Element-codec schemes store, for a [rows, cols] tensor with tiles [gr, gc] (kernels/scheme.h):
//   codes  : rows*cols codes of `code_bits` bits each, a little-endian bit stream, element i in bits
//            [i*b, (i+1)*b) (so 4-bit element 0 is the low nibble of byte 0, 3-bit codes share bytes).
//            Integer sym/symfull codes are two's complement, asym codes are unsigned; float/codebook
//            codes are the element codec's code.
//   scales : gr*gc scales in the scheme's scale dtype, row-major over tiles, little-endian
//            (fp32 4 B, fp16/bf16 2 B, e8m0/e4m3 1 B). None for noscale.
//   zeros  : asym only, gr*gc zero points of `code_bits` bits, a bit stream like the codes.
// Bytes() = codes + scales + zeros, each rounded up to whole bytes. Block-codec schemes keep the
// BlockCodec's PackedBlocks instead.
//
// Scale rules (per tile, after clipping to the range [lo, hi] chosen by the ClipRule):
//   int sym     s = amax/qmax (int8: /127),  q = clamp(rne(x/s), -qmax, qmax)
//   int symfull s = amax/(qmax+0.5) (int4: /7.5), q = clamp(rne(x/s), -2^(b-1), qmax)  (docs/formats.md §1.4)
//   int asym    lo' = min(lo,0), hi' = max(hi,0), s = (hi'-lo')/(2^b-1), z = clamp(rne(-lo'/s), 0, 2^b-1),
//               q = clamp(rne(x/s)+z, 0, 2^b-1), x^ = (q-z)*s    (GPTQ find_params, AWQ; docs/algorithms.md §1/§2)
//   float/codebook  s = amax/max_finite, code = Encode(x/s) (saturating), x^ = Decode(code)*s
// s is rounded to its scale dtype first (fp16/bf16/e4m3: nearest-even after clamping to the dtype's
// max; e8m0: rounded UP to a power of two so that amax is not clipped) and the codes use that stored
// scale. A tile whose scale is 0 (all zeros, or a scale that underflows its dtype) gets codes of
// value 0 and dequantizes to 0, never NaN. NaN inputs (and +-Inf for scaled schemes) are rejected
// with a Status naming the flat index.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/format.h"
#include "kernels/scheme.h"
#include "kernels/status.h"

namespace ql {

struct QuantizedTensor {
  Scheme scheme;
  int64_t rows = 0, cols = 0;  // the original tensor is [rows, cols]

  // Element-codec schemes (see the layout above).
  int code_bits = 0;
  TileShape tiles;
  std::vector<uint8_t> codes;
  std::vector<uint8_t> scales;
  std::vector<uint8_t> zeros;

  // Block-codec schemes.
  PackedBlocks blocks;

  size_t Bytes() const;          // exact storage: codes + scales + zero points (or PackedBlocks)
  double BitsPerWeight() const;  // 8 * Bytes() / (rows * cols)
  int64_t num_scales() const { return scheme.is_block ? 0 : tiles.num_tiles(); }

  // Element-codec schemes only.
  uint32_t RawCode(int64_t i) const;   // the packed bits of flat element i
  int32_t Code(int64_t i) const;       // int sym/symfull: signed value; asym: unsigned; float: raw
  float Scale(int64_t tile) const;     // the stored scale, decoded to fp32
  int32_t ZeroPoint(int64_t tile) const;  // asym only; 0 otherwise

  void Dequantize(float* out) const;   // out: [rows, cols]
};

StatusOr<QuantizedTensor> Quantize(const Scheme& scheme, const float* x, int64_t rows, int64_t cols);

// Quantize(scheme, x, rows, cols).Bytes() for any x that Quantize accepts, from the scheme and shape alone
// (no pass over the values): what storage accounting needs without quantizing a second time.
StatusOr<int64_t> QuantizedBytes(const Scheme& scheme, int64_t rows, int64_t cols);

// out = Dequantize(Quantize(x)) bit for bit, without packing (element schemes); out may alias x.
Status FakeQuantize(const Scheme& scheme, const float* x, int64_t rows, int64_t cols, float* out);

// Quantization error of `approx` against `ref` (both n values).
struct ErrorStats {
  int64_t n = 0;
  double mse = 0;            // mean squared error
  double max_abs = 0;        // largest |ref - approx|
  int64_t max_abs_index = -1;
  double signal_power = 0;   // mean ref^2
  double sqnr_db = 0;        // 10 log10(sum ref^2 / sum err^2); +inf when exact, -inf when ref == 0
};
ErrorStats ComputeErrorStats(const float* ref, const float* approx, int64_t n);

}  // namespace ql
