// Small deterministic hashes shared by the seeded generators (random models, trainer init, LoRA
// dropout masks, adapter init): SplitMix64's mixer (Steele, Lea & Flood 2014) and FNV-1a 64 over bytes.
#pragma once

#include <cstdint>
#include <string_view>

namespace ql {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a's 64-bit offset basis, and the one the trainer, qlora and LoRA dropout started from: the
// basis with its last digit lost (1469598103934665603 for 14695981039346656037). Still a fine seed
// mix, and kept because their initial weights and masks (and so the recorded numbers) depend on it.
inline constexpr uint64_t kFnvOffsetBasis = 0xCBF29CE484222325ull;
inline constexpr uint64_t kTrainerFnvBasis = 1469598103934665603ull;

inline uint64_t Fnv1a64(std::string_view s, uint64_t basis = kFnvOffsetBasis) {
  uint64_t h = basis;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

}  // namespace ql
