// GGUF / ggml block quantization types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
// IQ4_NL, IQ4_XS (docs/gguf.md): on-disk block structs, scalar reference quantizers/dequantizers bit-exact
// with what ggml's `quantize_<type>` (the function llama-quantize calls) and `dequantize_row_*` produce,
// both without and with an importance matrix (`quant_weights`), the ggml type-id table for the GGUF
// loader, and the BlockCodecs. Not the SIMD dot products, not the file reader.
//
// Bit layouts (all little-endian; `half` = IEEE binary16 via kernels/half.h, RNE like GGML_FP32_TO_FP16):
//   Q4_0  32 el, 18 B: half d; u8 qs[16]         x[j] = (lo(qs[j]) - 8)·d, x[j+16] = (hi(qs[j]) - 8)·d
//   Q4_1  32 el, 20 B: half d, m; u8 qs[16]      x[j] = lo(qs[j])·d + m,   x[j+16] = hi(qs[j])·d + m
//   Q5_0  32 el, 22 B: half d; u8 qh[4]; qs[16]  q = lo/hi nibble | bit (j or j+16) of u32 qh << 4; (q-16)·d
//   Q5_1  32 el, 24 B: half d, m; u8 qh[4]; qs[16]  as Q5_0 with q·d + m
//   Q8_0  32 el, 34 B: half d; i8 qs[32]         x[j] = qs[j]·d
//   IQ4_NL 32 el, 18 B: half d; u8 qs[16]        x[j] = d·K[lo(qs[j])], x[j+16] = d·K[hi(qs[j])], K = kIq4NlValues
//   Q2_K 256 el, 84 B: u8 scales[16]; u8 qs[64]; half d, dmin   (d LAST)
//         16 sub-blocks of 16; scales[s] = 4-bit scale (low) | 4-bit min (high); 2-bit q; element
//         e = 128h + 32k + l (l < 32) is bits 2k..2k+1 of qs[32h + l]; x = d·sc(e/16)·q - dmin·m(e/16)
//   Q3_K 256 el, 110 B: u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d
//         16 sub-blocks of 16 with 6-bit signed scales (stored +32: low 4 bits in scales[s%8] nibble s/8,
//         high 2 bits in scales[8 + s%4] bits 2(s/4)); 3-bit q = 2 low bits as in Q2_K + high bit
//         hmask[e%32] bit e/32; x = d·(sc-32)·(q_lo2 - (high bit ? 0 : 4))
//   Q4_K 256 el, 144 B: half d, dmin; u8 scales[12]; u8 qs[128]
//         8 sub-blocks of 32 with 6-bit scale sc and 6-bit min m (GetScaleMinK4); per 64-chunk c:
//         x[64c+l] = d·sc(2c)·lo(qs[32c+l]) - dmin·m(2c), x[64c+32+l] = d·sc(2c+1)·hi(qs[32c+l]) - dmin·m(2c+1)
//   Q5_K 256 el, 176 B: half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
//         as Q4_K plus a 5th bit: element 64c+l uses qh[l] bit 2c, element 64c+32+l uses qh[l] bit 2c+1
//   Q6_K 256 el, 210 B: u8 ql[128]; u8 qh[64]; i8 scales[16]; half d   (d LAST)
//         16 sub-blocks of 16 with int8 scale; 6-bit q = 4 low bits in ql + 2 high bits in qh, minus 32;
//         per 128-half h, l < 32: the four values at l, l+32, l+64, l+96 use ql[64h+l] lo, ql[64h+l+32] lo,
//         ql[64h+l] hi, ql[64h+l+32] hi and qh[32h+l] bits 0-1, 2-3, 4-5, 6-7; scale scales[8h + l/16 + 0/2/4/6].
//   Q8_K 256 el, 292 B: f32 d; i8 qs[256]; i16 bsums[16]  x = qs·d; bsums = sums of 16 codes (for dot products)
//   IQ4_XS 256 el, 136 B: half d; u16 scales_h; u8 scales_l[4]; u8 qs[128]
//         8 sub-blocks of 32, 6-bit scale ls = nibble s%2 of scales_l[s/2] | bits 2s..2s+1 of scales_h << 4;
//         x = d·(ls-32)·K[code], codes of a sub-block packed as IQ4_NL's.
//   (lo = & 0x0F = element j, hi = >> 4 = element j + 16 in the 32-blocks.)
//
// Partial last block (quantlab extension; ggml refuses rows that are not a multiple of the block): a row of
// any length is quantized block by block; the last, partial block is padded to the full block, quantized
// and stored as a full block (the padding is counted in the bytes), and dequantization returns only the
// real elements. The padding value is chosen so that it does not change the statistics the quantizer uses:
//   * Q8_0, Q4_0, Q5_0, Q3_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS pad with 0: the absmax (and the x² weights)
//     ignore zeros, so the real elements get exactly the codes they would get in a block of their own.
//   * Q4_1, Q5_1 pad by repeating the last real element: min and max are unchanged. Zeros would enter the
//     min (or max) and widen the range, e.g. a block of all-positive values would lose resolution.
//   * Q2_K (sub-blocks of 16), Q4_K and Q5_K (of 32) repeat the last real element inside the partially
//     filled sub-block (its min/max unchanged; the weighted fit counts that value a few more times) and
//     fill sub-blocks with no real element with 0 (an all-zero sub-block has scale 0 and min 0, which
//     never raises the super-block's max scale/min).
// Importance-weighted quantization (BlockOptions::importance) follows ggml, whose statistics span the whole
// row (Q4_0..Q5_1 use the row's mean x²), so it needs whole blocks: a partial row is an error there.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/format.h"
#include "kernels/status.h"

namespace ql {

static_assert(std::endian::native == std::endian::little, "GGUF blocks are little-endian on disk");

namespace gguf {

inline constexpr int kQK = 32;    // QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0
inline constexpr int kQKK = 256;  // QK_K, the super-block of the k-quants

struct BlockQ4_0 {
  uint16_t d;         // fp16 scale
  uint8_t qs[16];     // nibbles: low = element j, high = element j + 16
};
struct BlockQ4_1 {
  uint16_t d, m;      // fp16 scale and min
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];      // bit j of this u32 = 5th bit of element j
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_K {
  uint16_t d, dmin;   // fp16 super-block scale for the 6-bit scales / mins
  uint8_t scales[12]; // 8 × (6-bit scale, 6-bit min), packed: see GetScaleMinK4
  uint8_t qs[128];    // 4-bit quants, per 64 elements: 32 bytes, low nibbles first 32, high nibbles next 32
};
struct BlockQ6_K {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // 8-bit sub-block scales
  uint16_t d;         // fp16 super-block scale
};
struct BlockQ2_K {
  uint8_t scales[16]; // low nibble: 4-bit scale, high nibble: 4-bit min, per 16 elements
  uint8_t qs[64];     // 2-bit quants
  uint16_t d, dmin;   // fp16 super-block scales for the scales / mins (LAST)
};
struct BlockQ3_K {
  uint8_t hmask[32];  // high bit of each 3-bit quant
  uint8_t qs[64];     // low 2 bits
  uint8_t scales[12]; // 16 × 6-bit scales (+32), packed
  uint16_t d;         // fp16 super-block scale
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12]; // as Q4_K
  uint8_t qh[32];     // 5th bit
  uint8_t qs[128];    // low 4 bits, as Q4_K
};
struct BlockQ8_K {
  float d;            // fp32 scale (not fp16)
  int8_t qs[256];
  int16_t bsums[16];  // sum of each 16 consecutive codes
};
struct BlockIq4Nl {
  uint16_t d;
  uint8_t qs[16];     // 4-bit indices into kIq4NlValues, packed as Q4_0
};
struct BlockIq4Xs {
  uint16_t d;
  uint16_t scales_h;  // high 2 bits of the 8 sub-block scales
  uint8_t scales_l[4];// low 4 bits
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIq4Nl) == 18);
static_assert(sizeof(BlockIq4Xs) == 136);

// The 16-level non-uniform codebook of IQ4_NL / IQ4_XS (ggml kvalues_iq4nl), in units of the block scale.
inline constexpr int8_t kIq4NlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// ggml's nearest_int: adds 1.5·2^23 so the FPU rounds to nearest even; valid for |f| <= 4194303.
inline int NearestInt(float f) {
  float v = f + 12582912.f;
  int32_t i;
  static_assert(sizeof(v) == sizeof(i));
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// ggml GROUP_MAX_EPS: a group whose largest magnitude is below this counts as all zero.
inline constexpr float kGroupMaxEps = 1e-15f;

// The element of largest magnitude, with its sign (the first one on ties; 0 when every |x| is 0), as every
// ggml reference quantizer finds the value that maps to the extreme code.
inline float SignedAbsMax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Q4_K/Q5_K 6-bit scale/min packing (ggml get_scale_min_k4), j = sub-block 0..7:
//   j < 4: sc = q[j] & 63,                          m = q[j+4] & 63
//   j ≥ 4: sc = (q[j+4] & 15) | ((q[j-4] >> 6) << 4), m = (q[j+4] >> 4) | ((q[j] >> 6) << 4)
void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m);
// The inverse: writes all 12 bytes from 8 scales and 8 mins (each 0..63).
void PackScaleMinK4(const uint8_t sc[8], const uint8_t m[8], uint8_t q[12]);
// Q4_K / Q5_K: re-quantizes each 32-element sub-block of a super-block x[256] against the stored
// (rounded) scales and mins, codes clamped to [0, nmax]; a sub-block whose scale is 0 keeps L as fitted.
void RequantizeK(const float* x, const uint8_t* scales, uint16_t d16, uint16_t dmin16, int nmax, uint8_t* L);
// Q4_K / Q5_K without importance weights (ggml quantize_row_q4_K_ref / q5_K_ref): each sub-block fitted
// by make_qkx2_quants (weights av|x| + |x|, codes 0..nmax into L, rdelta 0.1; Q4_K: nmax 15, rmin -1, nstep
// 20; Q5_K: 31, -0.5, 15), then the 8 scales and 8 mins to 6 bits against their maxima (d, dmin in FP16).
void FitScaleMinK(const float* x, int nmax, float rmin, int nstep, uint8_t* L, uint8_t* scales12, uint16_t* d16,
                  uint16_t* dmin16);
// Where FitScaleMinK writes one super-block's packed scales and FP16 maxima.
struct ScaleMinK {
  uint8_t* scales12;
  uint16_t* d16;
  uint16_t* dmin16;
};
// FitScaleMinK on `blocks` (1 or 2) consecutive super-blocks x[blocks · 256], L[blocks · 256], out[blocks]:
// all 8 · blocks sub-block fits in one batch (two super-blocks fill a 16-lane target), bitwise the same
// as FitScaleMinK on each block.
void FitScaleMinKBlocks(int blocks, const float* x, int nmax, float rmin, int nstep, uint8_t* L,
                        const ScaleMinK* out);
// Q4_K codes L[256] (0..15) into qs[128]: element 64c + l in the low nibble of qs[32c + l], 64c + 32 + l
// in the high nibble.
void PackQ4K(const uint8_t* L, BlockQ4_K* y);

// One block, exactly as ggml's reference (x: block_elems floats).
void QuantizeBlockQ4_0(const float* x, BlockQ4_0* y);
void QuantizeBlockQ4_1(const float* x, BlockQ4_1* y);
void QuantizeBlockQ5_0(const float* x, BlockQ5_0* y);
void QuantizeBlockQ5_1(const float* x, BlockQ5_1* y);
void QuantizeBlockQ8_0(const float* x, BlockQ8_0* y);
void QuantizeBlockQ4_K(const float* x, BlockQ4_K* y);
// `blocks` (1 or 2) consecutive blocks x[blocks · 256] → y[blocks], every sub-block fit in one batch; bitwise
// one block at a time (QuantizeBlockQ4_K is blocks = 1).
void QuantizeBlocksQ4_K(int blocks, const float* x, BlockQ4_K* y);
void QuantizeBlockQ6_K(const float* x, BlockQ6_K* y);
void QuantizeBlockQ6_KWeighted(const float* x, const float* qw, BlockQ6_K* y);  // qw: 256 weights or nullptr
void QuantizeBlockQ2_K(const float* x, BlockQ2_K* y);
void QuantizeBlockQ3_K(const float* x, BlockQ3_K* y);
void QuantizeBlockQ5_K(const float* x, BlockQ5_K* y);
// `blocks` (1 or 2) consecutive blocks x[blocks · 256] → y[blocks], every sub-block fit in one batch; bitwise
// one block at a time (QuantizeBlockQ5_K is blocks = 1).
void QuantizeBlocksQ5_K(int blocks, const float* x, BlockQ5_K* y);
void QuantizeBlockQ8_K(const float* x, BlockQ8_K* y);
// IQ4_*: what ggml's quantize_iq4_nl / quantize_iq4_xs give without an imatrix (scale search over 15
// candidates, ntry = 7). ggml's quantize_row_iq4_nl_ref (ntry = -1) is a different, weaker path.
void QuantizeBlockIq4Nl(const float* x, BlockIq4Nl* y);
void QuantizeBlockIq4Xs(const float* x, BlockIq4Xs* y);
void DequantizeBlockQ4_0(const BlockQ4_0& b, float* y);
void DequantizeBlockQ4_1(const BlockQ4_1& b, float* y);
void DequantizeBlockQ5_0(const BlockQ5_0& b, float* y);
void DequantizeBlockQ5_1(const BlockQ5_1& b, float* y);
void DequantizeBlockQ8_0(const BlockQ8_0& b, float* y);
void DequantizeBlockQ4_K(const BlockQ4_K& b, float* y);
void DequantizeBlockQ6_K(const BlockQ6_K& b, float* y);
void DequantizeBlockQ2_K(const BlockQ2_K& b, float* y);
void DequantizeBlockQ3_K(const BlockQ3_K& b, float* y);
void DequantizeBlockQ5_K(const BlockQ5_K& b, float* y);
void DequantizeBlockQ8_K(const BlockQ8_K& b, float* y);
void DequantizeBlockIq4Nl(const BlockIq4Nl& b, float* y);
void DequantizeBlockIq4Xs(const BlockIq4Xs& b, float* y);

// Importance-weighted rows (ggml's quantize_row_*_impl with quant_weights): x and qw hold n floats, n a
// multiple of the block size; qw[j] is the importance of column j (llama.cpp imatrix: mean of the squared
// activations of input j). `out` receives n / block · block_bytes bytes. Q8_0 and Q8_K have none: ggml
// ignores the weights for them.
void QuantizeRowWeightedQ4_0(const float* x, int64_t n, const float* qw, BlockQ4_0* y);
void QuantizeRowWeightedQ4_1(const float* x, int64_t n, const float* qw, BlockQ4_1* y);
void QuantizeRowWeightedQ5_0(const float* x, int64_t n, const float* qw, BlockQ5_0* y);
void QuantizeRowWeightedQ5_1(const float* x, int64_t n, const float* qw, BlockQ5_1* y);
void QuantizeRowWeightedQ2_K(const float* x, int64_t n, const float* qw, BlockQ2_K* y);
void QuantizeRowWeightedQ3_K(const float* x, int64_t n, const float* qw, BlockQ3_K* y);
void QuantizeRowWeightedQ4_K(const float* x, int64_t n, const float* qw, BlockQ4_K* y);
void QuantizeRowWeightedQ5_K(const float* x, int64_t n, const float* qw, BlockQ5_K* y);
void QuantizeRowWeightedQ6_K(const float* x, int64_t n, const float* qw, BlockQ6_K* y);
void QuantizeRowWeightedIq4Nl(const float* x, int64_t n, const float* qw, BlockIq4Nl* y);
void QuantizeRowWeightedIq4Xs(const float* x, int64_t n, const float* qw, BlockIq4Xs* y);

// ggml's make_qkx2_quants (asymmetric 0..nmax fit with weights, min <= 0; returns scale, *the_min = -min)
// and make_qx_quants (symmetric -nmax..nmax-1 fit; rmse_type 1 = weights x², qw = nullptr only). Exposed
// for tests; L receives the codes (make_qx_quants: l + nmax).
float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);
float MakeQxQuantsRmse1(int n, int nmax, const float* x, int8_t* L);
// make_qx_quants with rmse_type 1 and explicit weights (qw = nullptr: x²).
float MakeQxQuants(int n, int nmax, const float* x, int8_t* L, const float* qw);
// make_qkx3_quants (as qkx2, weights = nullptr means x²), make_qp_quants (non-negative values -> 0..nmax
// codes, weighted fit of one scale), make_q3_quants (Q3_K's symmetric fit with coordinate descent).
float MakeQkx3Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);
float MakeQpQuants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights);
float MakeQ3Quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse);
// ggml's best_index_int8: index of the codebook value nearest to x (ties to the lower index).
int BestIndexInt8(int n, const int8_t* values, float x);

}  // namespace gguf

// ---------------------------------------------------------------------------------------------
// ggml type table (for the GGUF loader). docs/formats.md §4.1 ids; block_elems 1 for plain types.
// ---------------------------------------------------------------------------------------------
struct GgmlTypeInfo {
  int id;
  const char* name;   // ggml's name, e.g. "q4_K", "bf16"
  int block_elems;
  int block_bytes;
  bool supported;     // quantlab can dequantize (and quantize) it: F32 F16 BF16, every type with a BlockCodec
};
// Every ggml type id quantlab knows about (supported or not), in id order.
std::span<const GgmlTypeInfo> GgmlTypeTable();
// The entry for `type_id`, or nullptr for an id not in the table.
const GgmlTypeInfo* FindGgmlTypeInfo(int type_id);
// The entry for a *supported* type; an error naming the type (and the supported list) otherwise.
StatusOr<GgmlTypeInfo> SupportedGgmlType(int type_id);

// A row of n elements stored as ggml type `type_id` -> n floats. n must be a multiple of the type's block
// size (as in a GGUF tensor row); src holds n / block_elems · block_bytes bytes (no alignment needed).
Status DequantizeGgmlRow(int type_id, const uint8_t* src, int64_t n, float* dst);
// n floats -> the ggml reference encoding (F32/F16/BF16 conversion or block quantization). n must be a
// multiple of the block size; block types reject NaN/Inf inputs (ggml would run into undefined behaviour).
// qw (optional, n floats): importance weights, used as ggml's quantize_<type> uses its quant_weights.
StatusOr<std::vector<uint8_t>> QuantizeGgmlRow(int type_id, const float* x, int64_t n,
                                               const float* qw = nullptr);
// The ggml type id of a GGUF BlockCodec name ("q4_k" -> 12), or -1.
int GgmlTypeIdOfCodec(std::string_view codec_name);

// ---------------------------------------------------------------------------------------------
// BlockCodecs ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q6_k", "q2_k", "q3_k", "q5_k", "q8_k",
// "iq4_nl", "iq4_xs"); fixed block sizes 32 / 256. Quantize rejects NaN/Inf inputs with an error naming
// the row and column; BlockOptions::importance ([cols]) selects ggml's importance-weighted quantizer.
// ---------------------------------------------------------------------------------------------
const BlockCodec* GgufQ8_0Codec();
const BlockCodec* GgufQ4_0Codec();
const BlockCodec* GgufQ4_1Codec();
const BlockCodec* GgufQ5_0Codec();
const BlockCodec* GgufQ5_1Codec();
const BlockCodec* GgufQ4_KCodec();
const BlockCodec* GgufQ6_KCodec();
const BlockCodec* GgufQ2_KCodec();
const BlockCodec* GgufQ3_KCodec();
const BlockCodec* GgufQ5_KCodec();
const BlockCodec* GgufQ8_KCodec();
const BlockCodec* GgufIq4NlCodec();
const BlockCodec* GgufIq4XsCodec();
// All of them, in the order above (for table-driven tests that do not depend on the global registry).
std::span<const BlockCodec* const> GgufBlockCodecs();

}  // namespace ql
