// SpinQuant (Liu et al., "SpinQuant: LLM Quantization with Learned Rotations", arXiv:2405.16406) as an
// algorithm: the rotation algorithm's R1 (residual stream, dim × dim) and per-layer R2 (head_dim × head_dim on
// v_proj / o_proj) are learned by Cayley SGD on the calibration windows' next-token cross-entropy of the
// rotated network with its weights quantized in the loop (straight-through estimator), starting from the
// Hadamard ones; then fused into the weights exactly as rotation.h does, R4 stays the fixed online Hadamard,
// and the cell's weights are quantized by RTN or GPTQ. Weight-only in the loop: the cell's activation / KV
// schemes apply at evaluation, not while learning. docs/algorithms.md §12.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/quant/algorithm.h"
#include "kernels/scheme.h"

namespace ql {

struct CalibrationSet;

// The rotations being learned, row-major, in double: R1 [dim, dim] (empty: R1 off) and one R2
// [head_dim, head_dim] per layer (empty: R2 off).
struct SpinRotations {
  std::vector<double> r1;
  std::vector<std::vector<double>> r2;
};

// One Cayley SGD step (Li, Sun and Todorovic, "Efficient Riemannian Optimization on the Stiefel Manifold via
// the Cayley Transform", arXiv:2002.01113; no momentum, as SpinQuant runs it) on an orthogonal r [n, n] with
// Euclidean gradient g = dL/dR [n, n]:
//   W = ½(RᵀG − GᵀR) (skew),  α = min(lr, 1/(‖W‖₁ + 1e-8)),  R ← R·(I + α/2·W)⁻¹(I − α/2·W).
// To first order R moves by −α·½(G − R·Gᵀ·R), minus the Riemannian gradient. The Cayley factor is solved
// exactly (LU with partial pivoting, double), so R stays orthogonal to rounding error. Returns α.
double CayleyStep(std::vector<double>* r, const std::vector<double>& g, int n, double lr);

// What the loss needs: the model with the function-preserving parts already done (tied head untied, RMSNorm
// weights fused into the next linears, down_proj ← W·R4ᵀ when R4 is on) and the weights quantized in the loop.
struct SpinQuantProblem {
  Model base;
  std::vector<float> r4;                     // [F, F] R4 (down_proj's online Hadamard), empty when off
  std::map<std::string, Scheme> quantized;   // weight name ("model.layers.0.mlp.up_proj.weight") -> scheme
  bool identity_rounding = false;            // tests: Q(w) = w, the smooth surrogate whose gradient is the STE's
  Model teacher;                             // the model as given (unrotated, unquantized): the kd loss's target
};

// module_schemes: (module path, scheme text) of the cell. With r4 and a hidden size without a Hadamard
// construction, R4 is skipped and *note says why (as rotation does).
StatusOr<SpinQuantProblem> MakeSpinQuantProblem(const Model& model,
                                                const std::vector<std::pair<std::string, std::string>>& module_schemes,
                                                bool r4, std::string* note);

// Mean next-token cross-entropy of the network rotated by `rot` with the quantized weights rounded, on
// windows tokens [b, t + 1] (inputs columns 0..t−1, targets 1..t); with teacher_probs ([b·t, V], the
// teacher's next-token distributions, TeacherProbs) the mean KL(teacher || network) instead. With grad
// non-null: dL/dR1 and dL/dR2 (same shapes as rot, overwritten) by the straight-through estimator
// d Q(w)/dw := 1.
StatusOr<double> SpinQuantLoss(const SpinQuantProblem& p, const SpinRotations& rot, const int* tokens, int b, int t,
                               SpinRotations* grad, const float* teacher_probs = nullptr);
// p.teacher's softmax outputs on tokens [b, t + 1] (columns 0..t−1): [b·t, V].
StatusOr<std::vector<float>> TeacherProbs(const SpinQuantProblem& p, const int* tokens, int b, int t);

struct SpinQuantOptions {
  int iters = 100;       // Cayley SGD steps (the reference code's max_steps)
  double lr = 1.5;       // peak learning rate, cosine decay to 0 without warm-up (the reference code's)
  int batch = 8;         // calibration windows per step (the reference's 8 GPUs × 1 sequence)
  bool distill = false;  // loss: false = next-token cross-entropy (the paper's); true = KL to the unquantized model
  uint64_t seed = 0;     // which windows each step draws
  ProgressFn progress;   // optional: steps done
};

struct SpinQuantLog {
  std::vector<double> loss;  // training loss per step, before that step's update
};

// Learns rot in place (start: the rotations it holds, e.g. the Hadamard ones).
Status LearnRotations(const SpinQuantProblem& p, const CalibrationSet& data, const SpinQuantOptions& o,
                      SpinRotations* rot, SpinQuantLog* log);

AlgorithmInfo SpinQuantAlgorithm();

}  // namespace ql
