// GGUF / ggml block quantization types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K (docs/formats.md §4): on-disk block
// structs, scalar reference quantizers/dequantizers bit-exact with ggml's `quantize_row_*_ref` /
// `dequantize_row_*`, the ggml type-id table for the GGUF loader, and the BlockCodecs. Not the
// importance-matrix quantizers (`quantize_row_*_impl`), not the SIMD dot products, not the file reader.
//
// Bit layouts (all little-endian; `half` = IEEE binary16 via kernels/half.h, RNE like GGML_FP32_TO_FP16):
//   Q4_0  32 el, 18 B: half d; u8 qs[16]         x[j] = (lo(qs[j]) - 8)·d, x[j+16] = (hi(qs[j]) - 8)·d
//   Q4_1  32 el, 20 B: half d, m; u8 qs[16]      x[j] = lo(qs[j])·d + m,   x[j+16] = hi(qs[j])·d + m
//   Q5_0  32 el, 22 B: half d; u8 qh[4]; qs[16]  q = lo/hi nibble | bit (j or j+16) of u32 qh << 4; (q-16)·d
//   Q5_1  32 el, 24 B: half d, m; u8 qh[4]; qs[16]  as Q5_0 with q·d + m
//   Q8_0  32 el, 34 B: half d; i8 qs[32]         x[j] = qs[j]·d
//   Q4_K 256 el, 144 B: half d, dmin; u8 scales[12]; u8 qs[128]
//         8 sub-blocks of 32 with 6-bit scale sc and 6-bit min m (GetScaleMinK4); per 64-chunk c:
//         x[64c+l] = d·sc(2c)·lo(qs[32c+l]) - dmin·m(2c), x[64c+32+l] = d·sc(2c+1)·hi(qs[32c+l]) - dmin·m(2c+1)
//   Q6_K 256 el, 210 B: u8 ql[128]; u8 qh[64]; i8 scales[16]; half d   (d LAST)
//         16 sub-blocks of 16 with int8 scale; 6-bit q = 4 low bits in ql + 2 high bits in qh, minus 32;
//         per 128-half h, l < 32: the four values at l, l+32, l+64, l+96 use ql[64h+l] lo, ql[64h+l+32] lo,
//         ql[64h+l] hi, ql[64h+l+32] hi and qh[32h+l] bits 0-1, 2-3, 4-5, 6-7; scale scales[8h + l/16 + 0/2/4/6].
//   (lo = & 0x0F = element j, hi = >> 4 = element j + 16 in the 32-blocks.)
//
// Partial last block (quantlab extension; ggml refuses rows that are not a multiple of the block): a row of
// any length is quantized block by block; the last, partial block is padded to the full block, quantized
// and stored as a full block (the padding is counted in the bytes), and dequantization returns only the
// real elements. The padding value is chosen so that it does not change the statistics the quantizer uses:
//   * Q8_0, Q4_0, Q5_0, Q6_K pad with 0: the absmax (and Q6_K's x² weights) ignore zeros, so the real
//     elements get exactly the codes they would get in a block of their own.
//   * Q4_1, Q5_1 pad by repeating the last real element: min and max are unchanged. Zeros would enter the
//     min (or max) and widen the range, e.g. a block of all-positive values would lose resolution.
//   * Q4_K repeats the last real element inside the partially filled 32-sub-block (its min/max unchanged;
//     the weighted fit counts that value a few more times) and fills sub-blocks with no real element with 0
//     (an all-zero sub-block has scale 0 and min 0, which never raises the super-block's max scale/min).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
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
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);

// ggml's nearest_int: adds 1.5·2^23 so the FPU rounds to nearest even; valid for |f| <= 4194303.
inline int NearestInt(float f) {
  float v = f + 12582912.f;
  int32_t i;
  static_assert(sizeof(v) == sizeof(i));
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Q4_K/Q5_K 6-bit scale/min packing (ggml get_scale_min_k4), j = sub-block 0..7:
//   j < 4: sc = q[j] & 63,                          m = q[j+4] & 63
//   j ≥ 4: sc = (q[j+4] & 15) | ((q[j-4] >> 6) << 4), m = (q[j+4] >> 4) | ((q[j] >> 6) << 4)
void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m);
// The inverse: writes all 12 bytes from 8 scales and 8 mins (each 0..63).
void PackScaleMinK4(const uint8_t sc[8], const uint8_t m[8], uint8_t q[12]);

// One block, exactly as ggml's reference (x: block_elems floats).
void QuantizeBlockQ4_0(const float* x, BlockQ4_0* y);
void QuantizeBlockQ4_1(const float* x, BlockQ4_1* y);
void QuantizeBlockQ5_0(const float* x, BlockQ5_0* y);
void QuantizeBlockQ5_1(const float* x, BlockQ5_1* y);
void QuantizeBlockQ8_0(const float* x, BlockQ8_0* y);
void QuantizeBlockQ4_K(const float* x, BlockQ4_K* y);
void QuantizeBlockQ6_K(const float* x, BlockQ6_K* y);
void DequantizeBlockQ4_0(const BlockQ4_0& b, float* y);
void DequantizeBlockQ4_1(const BlockQ4_1& b, float* y);
void DequantizeBlockQ5_0(const BlockQ5_0& b, float* y);
void DequantizeBlockQ5_1(const BlockQ5_1& b, float* y);
void DequantizeBlockQ8_0(const BlockQ8_0& b, float* y);
void DequantizeBlockQ4_K(const BlockQ4_K& b, float* y);
void DequantizeBlockQ6_K(const BlockQ6_K& b, float* y);

// ggml's make_qkx2_quants (asymmetric 0..nmax fit with weights, min <= 0; returns scale, *the_min = -min)
// and make_qx_quants (symmetric -nmax..nmax-1 fit; rmse_type 1 = weights x², qw = nullptr only). Exposed
// for tests; L receives the codes (make_qx_quants: l + nmax).
float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);
float MakeQxQuantsRmse1(int n, int nmax, const float* x, int8_t* L);

}  // namespace gguf

// ---------------------------------------------------------------------------------------------
// ggml type table (for the GGUF loader). docs/formats.md §4.1 ids; block_elems 1 for plain types.
// ---------------------------------------------------------------------------------------------
struct GgmlTypeInfo {
  int id;
  const char* name;   // ggml's name, e.g. "q4_K", "bf16"
  int block_elems;
  int block_bytes;
  bool supported;     // quantlab can dequantize (and quantize) it: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q6_K
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
StatusOr<std::vector<uint8_t>> QuantizeGgmlRow(int type_id, const float* x, int64_t n);

// ---------------------------------------------------------------------------------------------
// BlockCodecs ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q6_k"); fixed block sizes 32 / 256.
// Quantize rejects NaN/Inf inputs with an error naming the row and column.
// ---------------------------------------------------------------------------------------------
const BlockCodec* GgufQ8_0Codec();
const BlockCodec* GgufQ4_0Codec();
const BlockCodec* GgufQ4_1Codec();
const BlockCodec* GgufQ5_0Codec();
const BlockCodec* GgufQ5_1Codec();
const BlockCodec* GgufQ4_KCodec();
const BlockCodec* GgufQ6_KCodec();
// All seven, in the order above (for table-driven tests that do not depend on the global registry).
std::span<const BlockCodec* const> GgufBlockCodecs();

}  // namespace ql
