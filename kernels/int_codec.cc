// int<b> / uint<b> element codecs: RNE + clamp to the integer grid (see int_codec.h, docs/formats.md §1.4).
#include "kernels/int_codec.h"

#include <cmath>

#include <fmt/format.h>

namespace ql {

double RoundHalfEven(double x) {
  const double fl = std::floor(x);
  const double frac = x - fl;  // exact for |x| < 2^52
  if (frac > 0.5) return fl + 1.0;
  if (frac < 0.5) return fl;
  return std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;  // tie: the even neighbour
}

IntCodec::IntCodec(int bits, bool is_signed)
    : bits_(bits), signed_(is_signed), qmin_(IntQmin(bits, is_signed)), qmax_(IntQmax(bits, is_signed)),
      mask_((1u << bits) - 1u), name_(fmt::format("{}int{}", is_signed ? "" : "u", bits)) {
  QL_CHECK(bits >= 2 && bits <= 8, "int codec bits {} not in [2, 8]", bits);
}

std::string IntCodec::description() const {
  if (signed_)
    return fmt::format("signed {}-bit integer, two's complement code, range [{}, {}]", bits_, qmin_, qmax_);
  return fmt::format("unsigned {}-bit integer (use with a zero point), range [0, {}]", bits_, qmax_);
}

std::string IntCodec::nan_policy() const {
  return fmt::format("NaN -> code 0 (value 0); +Inf -> {}; -Inf -> {}; no code decodes to NaN/Inf", qmax_,
                     qmin_);
}

uint32_t IntCodec::Encode(float v) const {
  if (std::isnan(v)) return 0;
  const double x = v;
  int q;
  if (x >= qmax_) {
    q = qmax_;
  } else if (x <= qmin_) {
    q = qmin_;
  } else {
    q = int(RoundHalfEven(x));  // in (qmin-1, qmax+1) exclusive, rounding stays inside [qmin, qmax]
  }
  return CodeOf(q);
}

int IntCodec::ValueOf(uint32_t code) const {
  code &= mask_;
  if (signed_ && (code >> (bits_ - 1)) != 0) return int(code) - (1 << bits_);
  return int(code);
}

float IntCodec::Decode(uint32_t code) const { return float(ValueOf(code)); }

}  // namespace ql
