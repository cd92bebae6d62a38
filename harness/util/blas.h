// OpenBLAS as quantlab uses it: LAPACK factorizations and a few products in the rotations, SpinQuant and
// QLoRA's LoftQ (GPTQ, GPTAQ and the calibration Hessian use kernels/spd.h and kernels/gemm.h instead). Its results depend on the kernels its CPU detection picks (OPENBLAS_CORETYPE,
// read once when the library loads) and, in its threaded paths, on its thread count; quantlab pins the
// count to one and records the kernels' name with every run, so that a rotation's number says which BLAS made it.
#pragma once

#include <string>

namespace ql {

// One OpenBLAS thread for the rest of the process (quantlab's own kernels do the parallel work).
// Every entry point that quantizes calls it: the CLI and OpenSession.
void UseOneBlasThread();

// The kernels OpenBLAS chose ("Haswell", "Cooperlake", "Zen", ...): openblas_get_corename().
std::string BlasCoreName();

// When OpenBLAS did not recognise the CPU and fell back to its SSE-era kernels ("Prescott", "Core2", ...)
// on a machine with at least 8 float lanes (AVX2 or wider): one line saying so and how to pick fast
// kernels (OPENBLAS_CORETYPE=Haswell; read when the library loads). "" otherwise. Seen on Intel Emerald
// Rapids with Debian 12's OpenBLAS 0.3.21, which names it Prescott.
std::string BlasFallbackNote(const std::string& core, int simd_float_lanes);
std::string BlasFallbackNote();  // for this process's core and SIMD width

// "host · AVX3 f32x16 · OpenBLAS Haswell": what a cell's numbers depend on besides code and config.
std::string MachineDescription();

}  // namespace ql
