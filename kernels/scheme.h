// Quantization schemes: a number format plus granularity, integer mode, clipping rule, scale dtype and
// block options, with one canonical text form (ParseScheme <-> ToString). Not the quantizer itself
// (kernels/quantizer.h) and not activation/weight presets like "W4A16" (the sweep layer owns those).
//
// Grammar (README.md "Scheme grammar" has the full table and examples):
//   scheme  := FORMAT ( SEP OPTION )*          SEP := ':' | '-' | whitespace; case-insensitive
//   FORMAT  := block codec name | element codec name | alias (fp8, e4m3, e5m2, fp4, e2m1, uint<b>)
//   element-codec options (one of each kind at most):
//     granularity  noscale | tensor | channel | channel_in | token | g<N> | b<R>x<C>
//     int mode     sym (default) | symfull | asym          (integer formats only)
//     clipping     max (default; alias absmax, minmax) | pct<P> | mse
//     scale dtype  s=fp32 (default) | s=fp16 | s=bf16 | s=e8m0 | s=e4m3
//   block-codec options:
//     g<N> (alias k<N>) block size; floor (default) | ceil | even for mx*; modelopt (default) | ct
//     for nvfp4; dq (double quant) and argmin (bitsandbytes' torch/CPU rounding) for nf4.
// Canonical form: FORMAT, then granularity, int mode, clipping, scale dtype (block codecs: block size
// then codec options), defaults omitted. A narrow (< 16 bit) element format must name a granularity
// (or noscale), so "int8" alone is an error rather than a silent choice; "bf16"/"fp16" alone are casts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/format.h"
#include "kernels/status.h"

namespace ql {

// Which elements share one scale. Every granularity is a 2-D tiling of the [rows, cols] tensor
// (TileShape below): scales are laid out row-major over the [ceil(rows/tr), ceil(cols/tc)] tiles.
enum class Granularity {
  kNone,       // no scale: a direct (saturating) cast to the element format
  kTensor,     // one scale for the whole tensor
  kChannel,    // one per output row (axis 0)
  kChannelIn,  // one per input column (axis 1)
  kToken,      // one per row, computed at run time (activations); for a weight it equals kChannel
  kGroup,      // groups of group_size along the input dim (axis 1); the last group may be partial
  kBlock2d,    // tile_rows x tile_cols tiles; edge tiles may be partial
};

// How integer codes relate to the scale (docs/formats.md §1.4). Only for integer element formats.
enum class IntMode {
  kSym,      // restricted symmetric: q in [-(2^(b-1)-1), 2^(b-1)-1], s = amax / qmax (int8: /127)
  kSymFull,  // full symmetric grid q in [-2^(b-1), 2^(b-1)-1], s = amax / (qmax + 0.5) (int4: /7.5),
             // as compressed-tensors and GPTQ --sym
  kAsym,     // zero point: uint codes q in [0, 2^b-1], s = (max' - min') / (2^b - 1),
             // z = round(-min'/s), min' = min(min, 0), max' = max(max, 0) (GPTQ find_params)
};

// Which range the scale covers. kMax = the full range (absmax for symmetric, min..max for asym).
enum class ClipRule {
  kMax,
  kPercentile,  // clip at the P-th percentile of |x| (sym) or the (100-P)/P-th percentiles (asym)
  kMse,         // search shrink factors p = 1.00, 0.99, ..., 0.21 (80 values, GPTQ's grid) applied to
                // the range; keep the one with the least squared error in the tile (ties: larger p)
};

enum class ScaleDtype { kFp32, kFp16, kBf16, kE8m0, kE4m3 };

std::string_view GranularityName(Granularity g);  // "tensor", "g<N>" family shown as "group", ...
std::string_view IntModeName(IntMode m);
std::string_view ScaleDtypeName(ScaleDtype d);
int ScaleDtypeBytes(ScaleDtype d);

struct Scheme {
  std::string format;   // canonical codec name as registered ("int4", "fp8_e4m3", "mxfp4", ...)
  bool is_block = false;  // format names a BlockCodec; the element-codec fields below are unused

  // Element-codec schemes.
  Granularity granularity = Granularity::kNone;
  int64_t group_size = 0;               // kGroup
  int64_t tile_rows = 0, tile_cols = 0;  // kBlock2d
  IntMode int_mode = IntMode::kSym;
  ClipRule clip = ClipRule::kMax;
  double percentile = 100.0;            // kPercentile, in (0, 100)
  ScaleDtype scale_dtype = ScaleDtype::kFp32;

  // Block-codec schemes (block_size 0 = the codec's default).
  BlockOptions block;

  bool operator==(const Scheme& o) const;
  bool operator!=(const Scheme& o) const { return !(*this == o); }
};

// Parses any accepted spelling; the result is normalized so that ToString gives the canonical form.
// Errors are one line naming the bad token and what is allowed there.
StatusOr<Scheme> ParseScheme(std::string_view text);
std::string ToString(const Scheme& s);

// Tile shape of an element-codec scheme on a [rows, cols] tensor (kNone: 1x1, no scales stored).
struct TileShape {
  int64_t tile_rows = 1, tile_cols = 1;  // elements per tile
  int64_t grid_rows = 0, grid_cols = 0;  // tiles: [grid_rows, grid_cols]
  int64_t num_tiles() const { return grid_rows * grid_cols; }
};
TileShape TilesFor(const Scheme& s, int64_t rows, int64_t cols);

// Text of the options a scheme can use, for `quantlab formats` and error messages.
std::string_view GranularityHelp();
std::string_view ClipRuleHelp();

}  // namespace ql
