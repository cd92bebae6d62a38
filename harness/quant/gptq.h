// GPTQ (docs/algorithms.md §1): weight quantization that corrects each column's rounding error in the columns
// not yet quantized, weighted by the inverse Hessian of the layer's calibration inputs. Works with any
// weight scheme of kernels/scheme.h through ColumnQuantizer. Not the rounding rule itself (the scheme's).
#pragma once

#include <cstdint>
#include <vector>

#include "harness/quant/algorithm.h"
#include "kernels/format.h"
#include "kernels/scheme.h"
#include "kernels/status.h"

namespace ql {

// The scheme seen one column at a time, as GPTQ needs it. Two cases:
//  * element-codec schemes: per-row scale/zero are fixed for a "group" of columns when it starts
//    (FindParams on the current weights of the group, GPTQ's find_params(W[:, g:g+gs])), and every
//    column of the group is rounded with them. Group width: g<N> → N, b<R>x<C> → C, channel_in → 1,
//    channel/token/tensor → all columns (parameters found once, on the whole matrix), noscale → none.
//  * block-codec schemes (MX, NVFP4, NF4, GGUF): the codec's scales are internal, so column k of a
//    block is rounded by quantizing the block as it currently stands — its already-quantized columns
//    (their final values) followed by the current, error-corrected values of columns k.. — and taking
//    column k. The block's scale thus follows the updated weights while its columns are chosen; a final
//    pass of the codec over the result (Finalize) makes the stored tensor exactly representable.
class ColumnQuantizer {
 public:
  static StatusOr<ColumnQuantizer> Make(const Scheme& scheme, int64_t rows, int64_t cols);

  bool is_block() const { return block_ != nullptr; }
  int64_t group_cols() const { return group_cols_; }  // element schemes; 0 = one set for the matrix
  int64_t block_cols() const { return block_cols_; }  // block codecs

  // Element schemes: parameters of every row from the columns [c0, c0 + width) of w ([rows, ld] row-major).
  Status FindParams(const float* w, int64_t ld, int64_t c0, int64_t width);
  // Element schemes: rounds one column (values of every row) with the current parameters.
  void QuantizeColumn(const float* col, float* q) const;
  // Element schemes: rounds value x of row r with the current parameters.
  void RoundOne(int64_t r, float x, float* q) const;
  // Block codecs: blk is the current block state, column-major [width][rows] (column k..: current
  // values, columns < k: already quantized); writes the rounded column k to q.
  Status QuantizeBlockColumn(const float* blk_colmajor, int64_t width, int64_t k, float* q);
  // Block codecs: the codec's fake quantization of the final [rows, cols] tensor (idempotent when the
  // per-column choices are consistent).
  Status Finalize(float* w, int64_t rows, int64_t cols) const;

  // Current per-row parameters (element schemes), for static groups.
  struct Params {
    std::vector<float> scale;
    std::vector<int32_t> zero;
  };
  const Params& params() const { return p_; }
  void set_params(const Params& p) { p_ = p; }

  // GPTQ's `mse` option (IST-DASLab gptq quant.py find_params, AutoGPTQ / GPTQModel): after the scheme's
  // own range is found, each row's range is shrunk by p = 1 - i/grid, i < maxshrink·grid, and the p whose
  // parameters (the scheme's scale rule on the shrunk range) give the least Σ |Q(w) − w|^norm over the row's
  // slice wins (ties: the larger p). Element schemes with max clipping only.
  struct MseSearch {
    bool on = false;
    double norm = 2.4;
    int grid = 100;
    double maxshrink = 0.8;
  };
  Status set_mse(const MseSearch& m);

 private:
  Scheme scheme_;
  int64_t rows_ = 0, cols_ = 0;
  const ElementCodec* codec_ = nullptr;
  const BlockCodec* block_ = nullptr;
  bool is_int_ = false, scaled_ = true;
  int qmin_ = 0, qmax_ = 0;
  float lo_ = 0, hi_ = 0;
  int64_t group_cols_ = 0, block_cols_ = 0;
  Params p_;
  MseSearch mse_;
  std::vector<float> scratch_, scratch_q_;
  // The mse search on the slice in scratch_ ([rows, width]), replacing p_ row by row.
  Status SearchMse(int64_t width);
};

struct GptqOptions {
  double percdamp = 0.01;
  int blocksize = 128;
  bool act_order = false;
  bool static_groups = false;
  ColumnQuantizer::MseSearch mse;  // off by default: the scheme's own range
  // When set (block schemes): w ([rows, cols]) just before the final pass of the block codec's own rounding,
  // whose codes are the result (AlgorithmRuntime::rounding_inputs).
  std::vector<float>* rounding_input = nullptr;
  // GPTAQ (harness/quant/gptaq.h): P [cols, cols] in the factor's column order; each column's pre-rounding
  // value w_q then also adds w_q·P[q, later columns] (the asymmetric residual). Null: GPTQ.
  const std::vector<float>* asym_p = nullptr;
};

// Quantizes one weight w ([rows, cols] row-major, in place) with the Hessian h = (2/n)·Σ x xᵀ
// ([cols, cols], double). Returns the GPTQ loss Σ (w − q)² / d² / 2.
StatusOr<double> GptqQuantizeWeight(const Scheme& scheme, float* w, int64_t rows, int64_t cols,
                                    std::vector<double> h, const GptqOptions& opt);

// What GPTQ derives from the Hessian alone, so modules reading the same input (q/k/v, gate/up) share
// one factorization: bitwise the same as factorizing per module.
struct GptqFactor {
  int64_t cols = 0;
  std::vector<char> dead;     // [cols] inputs never non-zero (H[i,i] = 0): their weight columns are zeroed
  std::vector<int64_t> perm;  // [cols] column order: descending H[i,i] with act_order, else identity
  std::vector<float> U;       // [cols, cols] row-major upper Cholesky factor of the damped, permuted H⁻¹
};
StatusOr<GptqFactor> GptqFactorize(std::vector<double> h, int64_t cols, const GptqOptions& opt);
StatusOr<double> GptqQuantizeWeight(const Scheme& scheme, float* w, int64_t rows, int64_t cols,
                                    const GptqFactor& factor, const GptqOptions& opt);

// The lazy batch's update of the later columns: Wt[i2:, :] += sign · P[i1:i2, i2:]ᵀ · E, with P [cols, cols]
// row-major (GPTQ's U, or GPTAQ's P), E [i2 - i1, rows] and Wt [cols, rows]; one quantlab GEMM (kernels/gemm.h:
// FP32, deterministic for any thread count), the product then added to Wt.
struct LazyBatchScratch {
  std::vector<float> pt, prod;
};
void LazyBatchUpdate(const std::vector<float>& p, int64_t cols, int64_t rows, int64_t i1, int64_t i2, const float* e,
                     float sign, float* wt, LazyBatchScratch* scratch);

AlgorithmInfo GptqAlgorithm();

// The model-level GPTQ driver (true-sequential over the layers) with the gptq parameters `params` (defaults
// filled in). asym (GPTAQ) may be null: plain GPTQ.
class GptaqStream;
Status RunGptq(Model& model, const AlgorithmContext& ctx, const nlohmann::json& params, GptaqStream* asym);

}  // namespace ql
