// C interface of tests/interop/ggml_oracle.c: ggml's own quantizers, for the interop tests.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ggml_quantize_chunk: nrows rows of n_per_row floats -> bytes; imatrix (n_per_row floats) or NULL.
size_t QlGgmlQuantize(int type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                      const float* imatrix);
// The type's from_float_ref (quantize_row_<type>_ref) on n floats.
void QlGgmlQuantizeRef(int type, const float* src, void* dst, int64_t n);
// The type's to_float (dequantize_row_<type>) on n elements.
void QlGgmlDequantize(int type, const void* src, float* dst, int64_t n);
size_t QlGgmlRowSize(int type, int64_t n);
// ggml-cpu's matrix product, as llama.cpp's CPU backend runs it (ggml_mul_mat on a one-node graph, plain
// buffers so no repacked layout): w = `out` rows of `in` elements of `type` (ggml row bytes), x [T, in]
// F32 -> y [T, out] F32. Returns 0 on success.
int QlGgmlMulMat(int type, const void* w, int64_t in, int64_t out, const float* x, int64_t T, float* y,
                 int threads);

#ifdef __cplusplus
}
#endif
