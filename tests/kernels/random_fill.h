// Test helper: reproducible uniform and normal random inputs for the kernel tests (std::mt19937, so a seed gives the
// same values on every platform).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace ql::testing {

// n floats uniform in [lo, hi).
inline std::vector<float> RandomUniform(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// n floats from N(0, sd²).
inline std::vector<float> RandomNormal(size_t n, uint32_t seed, float sd = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

}  // namespace ql::testing
