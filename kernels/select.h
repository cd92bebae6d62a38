// Selection in a row of floats (a 49k-vocabulary logit row is scored this way once per token): the
// index of the largest (Highway SIMD beside the scalar loop it must equal) and the k largest.
//
// ArgMaxF32
// Semantics, those of the scalar loop `best = 0; for i: if (x[i] > x[best]) best = i`: the FIRST index
// of the maximum; NaNs after x[0] are skipped (no comparison with them is true); a NaN x[0] gives 0;
// -0 and +0 tie (the first of them wins).
#pragma once

#include <cstddef>

namespace ql {

size_t ArgMaxF32(const float* x, size_t n);     // n >= 1
size_t ArgMaxF32Ref(const float* x, size_t n);  // the scalar loop above

// out[0..k) = indices of the k largest of x[0..n) by (value descending, index ascending), in that order:
// exactly what std::partial_sort of all n indices under that rule gives (the rule is a total order
// on NaN-free rows; with NaNs the partial_sort is undefined). O(n + k log k · (hits)) with one scan and
// a k-heap; ~0.05 ms for a 49k row where the partial_sort takes ~0.3 ms. 0 <= k <= n.
void TopKF32(const float* x, int n, int k, int* out);
void TopKF32Ref(const float* x, int n, int k, int* out);  // the partial_sort

}  // namespace ql
