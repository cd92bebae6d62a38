// The ggml side of the interop tests: quantizes and dequantizes rows with the ggml library llama.cpp links
// (libggml-base from scripts/llama-cpp.sh), through its public API only. Compiled as C against ggml.h so
// nothing of quantlab is involved in these answers.
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "ggml_oracle.h"

// Q8_K is an activation format: ggml-base's type traits carry no to_float / from_float_ref for it, so the
// row functions of ggml-quants.c are called directly.
void quantize_row_q8_K_ref(const float* x, void* y, int64_t k);
void dequantize_row_q8_K(const void* x, float* y, int64_t k);

size_t QlGgmlQuantize(int type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                      const float* imatrix) {
  // What llama-quantize calls per chunk of rows (quantize_<type>, with the imatrix or NULL).
  return ggml_quantize_chunk((enum ggml_type)type, src, dst, 0, nrows, n_per_row, imatrix);
}

void QlGgmlQuantizeRef(int type, const float* src, void* dst, int64_t n) {
  const struct ggml_type_traits* t = ggml_get_type_traits((enum ggml_type)type);
  memset(dst, 0, (size_t)(n / t->blck_size) * t->type_size);  // Q8_K leaves bsums of all-zero blocks unset
  if (type == GGML_TYPE_Q8_K) {
    quantize_row_q8_K_ref(src, dst, n);
  } else {
    t->from_float_ref(src, dst, n);
  }
}

void QlGgmlDequantize(int type, const void* src, float* dst, int64_t n) {
  if (type == GGML_TYPE_Q8_K) {
    dequantize_row_q8_K(src, dst, n);
  } else if (type == GGML_TYPE_F32) {  // no to_float in ggml's F32 traits
    memcpy(dst, src, sizeof(float) * (size_t)n);
  } else {
    ggml_get_type_traits((enum ggml_type)type)->to_float(src, dst, n);
  }
}

size_t QlGgmlRowSize(int type, int64_t n) { return ggml_row_size((enum ggml_type)type, n); }

int QlGgmlMulMat(int type, const void* w, int64_t in, int64_t out, const float* x, int64_t T, float* y,
                 int threads) {
  // Tensor data lives in the context's pool (no_alloc = false): weights, input, output and the graph; the
  // work buffer is allocated by ggml_graph_compute_with_ctx inside the same pool.
  const size_t wbytes = ggml_row_size((enum ggml_type)type, in) * (size_t)out;
  const size_t pool = wbytes + sizeof(float) * (size_t)(in * T + out * T) * 2 + 64 * 1024 * 1024;
  ggml_cpu_init();  // fp16 tables and CPU feature detection; idempotent
  struct ggml_init_params params = {pool, NULL, false};
  struct ggml_context* ctx = ggml_init(params);
  if (!ctx) return 1;
  struct ggml_tensor* tw = ggml_new_tensor_2d(ctx, (enum ggml_type)type, in, out);
  struct ggml_tensor* tx = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, in, T);
  memcpy(tw->data, w, wbytes);
  memcpy(tx->data, x, sizeof(float) * (size_t)(in * T));
  struct ggml_tensor* ty = ggml_mul_mat(ctx, tw, tx);  // [out, T] in ggml's order: row t holds y[t, :]
  struct ggml_cgraph* gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, ty);
  const int rc = ggml_graph_compute_with_ctx(ctx, gf, threads) == GGML_STATUS_SUCCESS ? 0 : 2;
  if (rc == 0) memcpy(y, ty->data, sizeof(float) * (size_t)(out * T));
  ggml_free(ctx);
  return rc;
}
