// Table-driven checks over every registered block codec (BlockCodecs()): round-trip error within the
// format's half-step bound per block, exact byte counts, determinism. A new codec is tested the day it is
// registered; the per-format bounds below come from the format definitions (docs/formats.md §1.3, §2, §3).
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/format.h"
#include "kernels/nf4.h"

namespace ql {
namespace {

// MX element parameters typed in from docs/formats.md §2 (emax, stored mantissa bits, min_exp, max_norm).
struct MxParams {
  int emax, mbits, min_exp;  // MXINT8: no exponent, step 2^-6 (mbits 6, min_exp 0)
  double max_norm;
};
const std::map<std::string, MxParams>& MxTable() {
  static const std::map<std::string, MxParams> t = {
      {"mxfp8_e4m3", {8, 3, -6, 448.0}}, {"mxfp8_e5m2", {15, 2, -14, 57344.0}},
      {"mxfp6_e2m3", {2, 3, 0, 7.5}},    {"mxfp6_e3m2", {4, 2, -2, 28.0}},
      {"mxfp4", {2, 1, 0, 6.0}},         {"mxint8", {0, 6, 0, 127.0 / 64}}};
  return t;
}

// Largest allowed |y - x| for element x of a block whose real elements have absolute maximum amax, in a
// tensor whose absolute maximum is tensor_amax.
double Bound(const BlockCodec& c, double tensor_amax, double amax, double x) {
  const double ax = std::fabs(x);
  const std::string name = c.name();
  if (amax == 0.0) return 0.0;
  if (auto it = MxTable().find(name); it != MxTable().end()) {
    const MxParams& m = it->second;
    int e;
    std::frexp(amax, &e);
    const int s = std::max(e - 1 - m.emax, -127);  // kFloor shared exponent, clamped
    const double a = std::ldexp(ax, -s);
    int ea = 0;
    if (a > 0) std::frexp(a, &ea);
    const int p = name == "mxint8" ? 0 : std::max(ea - 1, m.min_exp);
    const double half_step = std::ldexp(1.0, p - m.mbits - 1);
    return std::ldexp(std::max(half_step, a - m.max_norm), s);
  }
  if (name == "nvfp4") {
    // Effective scale eff = E4M3(448 amax / T) * T / 2688 ~ amax/6. E4M3 rounding error <= max(2^-4
    // relative, 2^-10 absolute (half its smallest subnormal)): small blocks in a tensor with a large amax
    // T get a coarse or even a zero scale (NVFP4's limited per-tensor dynamic range).
    const double eff = amax / 6.0;
    const double d = std::max(eff / 16, std::ldexp(tensor_amax / 2688.0, -10)) * (1 + 1e-5);
    const double eff_hi = eff + d, eff_lo = std::max(0.0, eff - d);
    // y = eff * E2M1(x / eff): E2M1 half-steps are 0.25 below 2, 0.5 in [2,4), 1 in [4,6], so the rounding
    // error is <= max(0.25 eff, |x|/4); beyond 6 eff it saturates.
    return std::max(0.25 * eff_hi, 0.25 * ax * (1 + 1e-5)) + std::max(0.0, ax - 6.0 * eff_lo);
  }
  if (name == "nf4") {
    const double n = ax / amax * (x < 0 ? -1 : 1);
    int i = 0;
    while (i < 14 && kNf4Codebook[i + 1] < n) ++i;
    return (double(kNf4Codebook[i + 1]) - kNf4Codebook[i]) / 2 * amax * (1 + 1e-5) + 1e-7 * amax;
  }
  // Codebook formats (lut<b>: a row is the block; vq2x8: one codebook per tensor): k-means centroids are
  // means of data, so inside the data's range; the nearest one is at most the range away.
  if (name.rfind("lut", 0) == 0) return 2 * amax * (1 + 1e-3) + 1e-7;
  if (name == "vq2x8") return 2 * tensor_amax * (1 + 1e-3) + 1e-7;
  // Codecs registered by other parts (e.g. GGUF blocks): a generic b-bit bound, amax * 2^(2-b).
  return amax * std::ldexp(1.0, 2 - c.element_bits());
}

std::vector<float> Data(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 15);
  std::vector<float> x(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = std::ldexp(1.0f, int(r % 5) * 3 - 6);  // rows at 2^-6 .. 2^6
    for (int64_t c = 0; c < cols; ++c) {
      float v = scale * n(rng);
      if (pick(rng) == 0) v *= 20.0f;  // outliers
      if (pick(rng) == 1) v = 0.0f;
      x[r * cols + c] = v;
    }
  }
  return x;
}

// Quantizes random data of several shapes (cols not a multiple of the block included) at several block
// sizes and checks shape fields, determinism, byte counts and the per-element error bound.
void CheckCodec(const BlockCodec& c, NvFp4Convention conv) {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 32}, {3, 40}, {4, 64}, {2, 17}, {5, 100},
                                                {1, 1},  {7, 33}, {2, 256}, {3, 300}, {6, 512}};
  std::vector<int> sizes = {0};
  if (!c.block_size_fixed()) sizes.insert(sizes.end(), {8, 24, 7});
  int checked_blocks = 0;
  for (int bs_opt : sizes) {
    for (auto [rows, cols] : shapes) {
      SCOPED_TRACE(c.name() + " block " + std::to_string(bs_opt) + " shape [" + std::to_string(rows) + ", " +
                   std::to_string(cols) + "]");
      const auto x = Data(rows, cols, uint32_t(rows * 1000 + cols));  // [rows, cols]
      BlockOptions o;
      o.block_size = bs_opt;
      o.nvfp4 = conv;
      auto r1 = c.Quantize(x.data(), rows, cols, o);
      const bool fitted = !c.granularity().empty();  // codebooks: the block is the row (kernels/format.h)
      const int bs = bs_opt ? bs_opt : fitted ? int(cols) : c.default_block_size();
      if (!r1.ok() && c.block_size_fixed() && cols % bs != 0) continue;  // fixed layouts may refuse
      ASSERT_TRUE(r1.ok()) << r1.status().message();
      const PackedBlocks& p = *r1;
      EXPECT_EQ(p.rows, rows);
      EXPECT_EQ(p.cols, cols);
      EXPECT_EQ(p.block_size, bs);
      // Deterministic.
      auto r2 = c.Quantize(x.data(), rows, cols, o);
      ASSERT_TRUE(r2.ok());
      EXPECT_EQ(p.bytes, r2->bytes);
      EXPECT_EQ(p.extra, r2->extra);
      // Bytes: every block (a partial last block is stored full) costs nominal_bits_per_weight * bs bits.
      const int64_t nblocks = rows * ((cols + bs - 1) / bs);
      if (!fitted) EXPECT_EQ(int64_t(p.bytes.size()), std::llround(c.nominal_bits_per_weight(bs) * double(nblocks * bs) / 8));
      if (cols % bs == 0 && !fitted) {
        EXPECT_EQ(int64_t(p.bytes.size()), std::llround(c.nominal_bits_per_weight(bs) * double(rows * cols) / 8));
      }
      // Round trip within the half-step bound, block by block.
      double tensor_amax = 0;
      for (float v : x) tensor_amax = std::max(tensor_amax, double(std::fabs(v)));
      std::vector<float> y(x.size(), std::nanf(""));  // [rows, cols]
      c.Dequantize(p, y.data());
      for (int64_t row = 0; row < rows; ++row) {
        for (int64_t c0 = 0; c0 < cols; c0 += bs) {
          const int64_t c1 = std::min(cols, c0 + bs);
          double amax = 0;
          for (int64_t k = c0; k < c1; ++k) amax = std::max(amax, double(std::fabs(x[row * cols + k])));
          for (int64_t k = c0; k < c1; ++k) {
            const double xv = x[row * cols + k], yv = y[row * cols + k];
            ASSERT_TRUE(std::isfinite(yv)) << "[" << row << ", " << k << "]";
            EXPECT_LE(std::fabs(yv - xv), Bound(c, tensor_amax, amax, xv))
                << "[" << row << ", " << k << "] x=" << xv << " y=" << yv << " amax=" << amax;
          }
          ++checked_blocks;
        }
      }
    }
  }
  // Coverage guard: the loops above really checked blocks. Fixed 256-wide layouts (Q4_K, Q6_K) only
  // run at their own size, so they see fewer blocks on the same shapes.
  // Codebook formats check one block per row (34 rows over the shapes).
  const bool fitted = !c.granularity().empty();
  EXPECT_GT(checked_blocks, fitted || (c.block_size_fixed() && c.default_block_size() >= 256) ? 30 : 50) << c.name();
}

TEST(BlockCodecs, RoundTripBytesDeterminism) {
  ASSERT_FALSE(BlockCodecs().empty());
  for (const BlockCodec* c : BlockCodecs()) CheckCodec(*c, NvFp4Convention::kModelOpt);
  // The other NVFP4 convention (the bound holds for either).
  CheckCodec(**FindBlockCodec("nvfp4"), NvFp4Convention::kCompressedTensors);
}

TEST(BlockCodecs, NamesAreUniqueAndFindable) {
  std::vector<std::string> names;
  for (const BlockCodec* c : BlockCodecs()) {
    names.push_back(c->name());
    auto f = FindBlockCodec(c->name());
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(*f, c);
    if (c->granularity().empty())  // codebooks: the codebook's share depends on the shape (kernels/lut.h, vq.h)
      EXPECT_GT(c->nominal_bits_per_weight(c->default_block_size()), double(c->element_bits()));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  for (const char* n : {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8", "nvfp4", "nf4"})
    EXPECT_TRUE(FindBlockCodec(n).ok()) << n;
}

}  // namespace
}  // namespace ql
