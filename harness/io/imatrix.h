// llama.cpp importance-matrix files (what llama-imatrix writes and llama-quantize --imatrix reads), both
// layouts: the GGUF-based one (tensors "<weight>.in_sum2" and "<weight>.counts", keys imatrix.*) and the
// legacy .dat. Reading is hardened: a hostile or truncated file gives a Status, no allocation is sized by an
// unchecked field. Not the collection (harness/quant/imatrix.h); docs/gguf.md describes the statistic.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness/io/gguf.h"
#include "kernels/status.h"

namespace ql::io {

// One weight's statistic. Dense linears have one matrix (n_mat = 1); a 3-D expert tensor has one per expert.
struct ImatrixEntry {
  std::vector<float> sums;      // [n_mat, in]: GGUF layout Σ x_j² over the tokens seen; legacy: mean · ncall
  std::vector<int64_t> counts;  // [n_mat]: GGUF layout tokens seen; legacy: {ncall}
  int64_t in() const { return counts.empty() ? 0 : int64_t(sums.size() / counts.size()); }
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by GGUF weight name, "blk.0.attn_q.weight"
  std::vector<std::string> datasets;            // text files it was computed on
  int32_t chunk_count = 0;                      // chunks processed (imatrix.chunk_count / the .dat trailer)
  int32_t chunk_size = 0;                       // tokens per chunk (imatrix.chunk_size; 0 for a .dat)
  bool legacy = false;                          // read from / meant for the .dat layout (see ImatrixEntry)
};

// Either layout, told apart by the "GGUF" magic (as llama.cpp's loader does). The GGUF layout must carry
// imatrix.chunk_count, imatrix.chunk_size and imatrix.datasets (llama-quantize refuses a file without them).
StatusOr<Imatrix> ReadImatrix(const std::string& path);

// GGUF layout, as llama-imatrix's save_imatrix: keys general.type, imatrix.datasets, imatrix.chunk_count,
// imatrix.chunk_size; per weight in name order "<name>.in_sum2" (F32, ne {in, n_mat}) then "<name>.counts"
// (F32, ne {1, n_mat}), trailing 1-dimensions dropped as ggml_n_dims does. A legacy imatrix is refused (it
// has no token counts).
Status WriteImatrixGguf(const std::string& path, const Imatrix& m);

// Legacy .dat, as llama-imatrix's save_imatrix_legacy: int32 n_entries; per entry (name order) int32 len,
// name, int32 ncall, int32 nval, float[nval]; then int32 chunk_count, int32 len, dataset name. From the GGUF
// layout each value is (sum / count) · ncall with ncall = ceil(max count / chunk_size), count 0 -> value 1.
Status WriteImatrixDat(const std::string& path, const Imatrix& m);

// The per-column importance llama-quantize hands to ggml ([n_mat, in]): GGUF layout sum / count in float
// (a matrix with count 0 gets 1s); legacy: value / ncall (ncall 0: the value).
std::vector<float> ImatrixImportance(const Imatrix& m, const ImatrixEntry& e);

// Every entry's importance, by weight name.
std::map<std::string, std::vector<float>> ImatrixImportances(const Imatrix& m);

// llama-imatrix --in-file: adds file `in` (read from `source`) to `into` as its IMatrixCollector::load_imatrix
// does, so that `into` always holds raw sums and token counts (GGUF layout, legacy = false):
// - GGUF layout: sums += in.sums (float), counts += in.counts; a matrix count of 1 in `into` is first broadcast
//   to `in`'s count of matrices; other size differences are errors naming the entry.
// - legacy .dat (mean · ncall, {ncall}): sums += value · chunk_size (float), every count += ncall · chunk_size,
//   chunk_size being the merging run's (its --ctx): the file does not record its own.
// Then datasets are appended and chunk_count = (the largest count of any matrix) / chunk_size; chunk_size is set.
Status MergeImatrix(const Imatrix& in, const std::string& source, int32_t chunk_size, Imatrix* into);

// The metadata llama-quantize --imatrix writes into the quantized file: quantize.imatrix.file (the path as
// given, "" = left out), .dataset (the first dataset), .entries_count (the importances used), .chunks_count
// (when > 0); strings cut to 127 bytes as llama-quantize does.
std::vector<std::pair<std::string, GgufValue>> ImatrixQuantizeKeys(const std::string& file, const Imatrix& m,
                                                                   size_t entries);

}  // namespace ql::io
