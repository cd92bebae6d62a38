// FP4 E2M1 element encoding of a run of values at one scale, vectorised (Highway, dispatched at run
// time): the inner loop of the NVFP4 block codec (kernels/nvfp4.cc). The rounding is the registered
// fp4_e2m1 codec's saturating round-to-nearest-even cast (docs/formats.md §1.1), written as the seven
// comparisons with the midpoints of the E2M1 grid {0, 0.5, 1, 1.5, 2, 3, 4, 6}: a midpoint between an
// even and an odd code rounds to the even one, so 0.25, 1.25, 2.5 and 5 round down, 0.75, 1.75 and 3.5
// up. E2m1EncodeRunRef is the scalar oracle (the codec's own Encode), tested against this everywhere.
#pragma once

#include <cstdint>

namespace ql {

// The code of a quotient whose magnitude rounds to 0 (every other code carries the quotient's sign):
enum class E2m1ZeroSign {
  kPositive,      // always 0x0 (compressed-tensors NVFP4)
  kNegativeInput, // 0x8 when the quotient is < 0 (ModelOpt NVFP4); -0 gives 0x0
  kSignBit,       // 0x8 when the quotient's sign bit is set, -0 included: the codec's own cast (MX)
};

// Codes of x[i] / scale for i in [0, n): the E2M1 code (bit 3 = sign) of the quotient, or of the
// quotient clamped to [-6, 6] when clamp6 (compressed-tensors; the code is the same, the clamp is kept
// for fidelity to the reference), zeros signed by `zero`. Packed two per byte, even element in the low
// nibble, OR-ed into out[0, (n + 1) / 2) (the caller zeroes it). scale > 0 and finite; x finite.
void E2m1EncodeRun(const float* x, int n, float scale, E2m1ZeroSign zero, uint8_t* out);
void E2m1EncodeRunRef(const float* x, int n, float scale, bool clamp6, E2m1ZeroSign zero, uint8_t* out);

const char* Fp4EncodeTarget();  // the Highway target E2m1EncodeRun dispatches to here

}  // namespace ql
