// Exact table-driven encode/decode of an element codec of <= 8 bits (the codec's own answers, cached
// per codec for the process). Used wherever a hot loop rounds to a small float grid (the tensor
// quantizer, NVFP4's E2M1 elements and E4M3 scales). Not a rounding rule of its own.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/format.h"
#include "kernels/half.h"

namespace ql {

// * decode: code -> value, every code.
// * Encode, exact and table-driven for codecs of <= 8 bits: an fp32 value's rounding is decided by its
//   top 16 bits (sign, exponent, 7 mantissa bits; 65536 buckets) except exactly at a bucket's first
//   value, where the midpoints of a grid with <= 6 mantissa bits fall. Per bucket we store the codec's
//   code for the first value and, when the codec gives the same code for the second and the last value
//   of the bucket (so, rounding being monotone, for all values between), that code; any other bucket
//   (Inf/NaN, or a midpoint inside it) calls the codec. No rounding rule is re-implemented here: every
//   table entry is the codec's own answer. Codecs of more bits: Encode calls the codec.
class CodecTables {
 public:
  explicit CodecTables(const ElementCodec* c);
  // The tables of codec c, built on first use (thread-safe) and kept for the life of the process.
  static const CodecTables& For(const ElementCodec* c);

  uint32_t Encode(float v) const {
    if (start_.empty()) return codec_->Encode(v);
    const uint32_t u = F32Bits(v);
    const uint16_t e = (u & 0xFFFFu) ? interior_[u >> 16] : start_[u >> 16];
    return e != kSlow ? e : codec_->Encode(v);
  }
  float Decode(uint32_t code) const { return decode_[code]; }

 private:
  static constexpr uint16_t kSlow = 0xFFFF;
  const ElementCodec* codec_;
  std::vector<float> decode_;              // [2^bits]
  std::vector<uint16_t> start_, interior_;  // [65536] each, indexed by the top 16 bits of an fp32
};

}  // namespace ql
