// The two kinds of number format quantlab knows, as abstract traits, and the registry that lists them.
// A format says how numbers are *stored*; which values get stored is an algorithm's business (harness/quant).
//
//  * ElementCodec: one element <-> one code of `bits()` bits, in the format's own units (no scale).
//    Integers, ExMy minifloats (FP8/FP6/FP4/FP16/BF16/generic), the NF4 codebook, E8M0.
//    A Scheme (kernels/scheme.h) adds granularity and a scale rule on top of an element codec.
//  * BlockCodec: a self-scaling block format whose scales are part of the format itself:
//    MX (E8M0 per k), NVFP4 (E4M3 per 16 + FP32 tensor scale), NF4 (absmax per 64), GGUF Q* blocks.
//
// Adding a format: one trait (a class in its own header/.cc) plus one line in kernels/format_list.cc.
// The CLI, the scheme parser and the table-driven tests all walk that list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/status.h"

namespace ql {

enum class FormatKind { kInt, kFloat, kCodebook, kScale, kBlock };
std::string_view FormatKindName(FormatKind k);

// ---------------------------------------------------------------------------------------------
// Element codecs
// ---------------------------------------------------------------------------------------------
class ElementCodec {
 public:
  virtual ~ElementCodec() = default;
  // Canonical name as stored in the results database; never renamed ("int4", "fp8_e4m3", "e3m4").
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  virtual FormatKind kind() const = 0;
  virtual int bits() const = 0;
  // Largest finite magnitude; an absmax scale maps amax onto it (s = amax / max_finite()).
  virtual float max_finite() const = 0;
  // Smallest representable value (ints: qmin, e.g. -8 for full-range int4; floats: -max_finite()).
  virtual float min_value() const = 0;
  // Value -> code (low bits() bits). Round to nearest, ties to even; finite values beyond the range
  // saturate to +-max (a "saturating cast"). NaN/Inf inputs follow nan_policy().
  virtual uint32_t Encode(float v) const = 0;
  // Code -> value, exact (every code of a <= 16-bit format is exactly representable in fp32).
  virtual float Decode(uint32_t code) const = 0;
  // How NaN and +-Inf inputs are encoded and which codes decode to NaN/Inf, in one line.
  virtual std::string nan_policy() const = 0;
  // Encode-then-decode in one call.
  float Round(float v) const { return Decode(Encode(v)); }
};

// ---------------------------------------------------------------------------------------------
// Block codecs
// ---------------------------------------------------------------------------------------------
enum class MxScaleRounding { kFloor, kCeil, kEven };   // docs/formats.md §2: floor is the OCP spec rule
enum class NvFp4Convention { kModelOpt, kCompressedTensors };  // docs/formats.md §3

struct BlockOptions {
  int block_size = 0;  // 0: the format's default; fixed-layout formats (GGUF) reject other sizes
  MxScaleRounding mx_rounding = MxScaleRounding::kFloor;
  NvFp4Convention nvfp4 = NvFp4Convention::kModelOpt;
  bool nf4_double_quant = false;
  bool nf4_argmin = false;  // nf4 codes by bitsandbytes' torch/CPU argmin rule instead of its CUDA tree
  // Optional importance of each input column ([cols], not owned; e.g. a llama.cpp imatrix row). GGUF codecs
  // then choose codes as ggml does with quant_weights; codecs without a weighted rule reject it.
  const float* importance = nullptr;
};

// Packed storage of a [rows, cols] row-major tensor quantized by a BlockCodec. Blocks run along
// cols (the reduction / input dimension); each row is quantized independently and the last block of
// a row may be partial (it is stored as a full block, zero-padded, and its padding is counted in
// bytes). `bytes` is exactly what would be written to disk, scales included.
struct PackedBlocks {
  int64_t rows = 0, cols = 0;
  int block_size = 0;
  std::vector<uint8_t> bytes;        // all blocks, row by row, in the format's on-disk layout
  std::vector<uint8_t> extra;        // tensor-level data (e.g. NVFP4 FP32 tensor scale, NF4 DQ state)
  size_t total_bytes() const { return bytes.size() + extra.size(); }
  double bits_per_weight() const {
    return rows * cols == 0 ? 0.0 : 8.0 * double(total_bytes()) / double(rows * cols);
  }
};

class BlockCodec {
 public:
  virtual ~BlockCodec() = default;
  virtual std::string name() const = 0;        // "mxfp4", "nvfp4", "nf4", "q4_k", ...
  virtual std::string description() const = 0;
  virtual int default_block_size() const = 0;
  virtual bool block_size_fixed() const = 0;   // true: only default_block_size() is valid
  virtual int element_bits() const = 0;        // bits of one element code
  virtual std::string scale_type() const = 0;  // e.g. "e8m0 per block", "e4m3 per block + fp32 per tensor"
  // Codecs fitted over a whole row or tensor (codebooks: lut<b>, vq2x8) have no block size
  // (default_block_size() 0, PackedBlocks.block_size = cols) and name their one granularity here
  // ("channel", "tensor"); the scheme's canonical form spells it ("lut4:channel"). Empty for the others.
  virtual std::string_view granularity() const { return {}; }
  // Bits per weight of a full block at block size bs (scales included, tensor-level data excluded).
  virtual double nominal_bits_per_weight(int block_size) const = 0;
  virtual StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                          const BlockOptions& opt) const = 0;
  // PackedBlocks::total_bytes() of Quantize(x, rows, cols, opt), from the shape and options alone (the
  // storage of every codec depends on nothing else); for a shape or option Quantize rejects, any value.
  virtual int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions& opt) const = 0;
  virtual void Dequantize(const PackedBlocks& p, float* y) const = 0;  // y: [rows, cols]
};

// ---------------------------------------------------------------------------------------------
// Registry (the one list lives in kernels/format_list.cc)
// ---------------------------------------------------------------------------------------------
const std::vector<const ElementCodec*>& ElementCodecs();
const std::vector<const BlockCodec*>& BlockCodecs();

// Finds a registered element codec by name or alias (case-insensitive), and also builds the
// parametric ones on demand: "int<b>" (b = 2..8), "uint<b>", generic minifloats "e<E>m<M>"
// (E = 1..8, M = 0..10). Unknown names give an error that lists what is allowed.
StatusOr<const ElementCodec*> FindElementCodec(std::string_view name);
StatusOr<const BlockCodec*> FindBlockCodec(std::string_view name);

}  // namespace ql
