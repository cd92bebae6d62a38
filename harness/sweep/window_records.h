// Per-window token records of adaptive sensitivity cells, kept on disk (doubles, lossless) under the
// id of the same unit's full-window cell, so that cell — a search's refinement — evaluates only the
// windows the adaptive one skipped and takes the others' records as they were. Records are kept in
// window index order whatever order the windows ran in, so the resumed cell's numbers are bitwise a
// full run's (tests/sweep/window_records_test.cc). A cache, not results: a missing, foreign or
// damaged file only means its windows run again. `merge` copies them (MergeWindowRecords).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "datasets/protocol.h"
#include "harness/eval/metrics.h"
#include "kernels/status.h"

namespace ql {

// [windows] per window index the records of that window, where known.
using KnownWindows = std::vector<std::optional<TokenRecords>>;

// Writes the records of the windows `ran` (in index order; `rec` holds them concatenated in that
// order, as EvaluateWindows returns them) to `path`, atomically (path.tmp, then rename).
Status WriteWindowRecords(const std::string& path, const std::vector<Window>& windows, const std::vector<int>& ran,
                          const TokenRecords& rec);

// The windows `path` holds; every entry empty when the file is absent or does not fit `windows`
// (another window count or another window's scored-token count).
KnownWindows ReadWindowRecords(const std::string& path, const std::vector<Window>& windows);

// The records directory of a results directory: DIR/window-records.
std::string WindowRecordsDir(const std::string& results_dir);

// How many windows the file at `path` holds by its header (0 when absent or not a records file).
int64_t StoredWindowCount(const std::string& path);

// `quantlab merge`: copies every sources[i]/window-records/*.qlwr into dest's, so a merged store's
// refinement resumes cells as the shards' stores would. A file dest already has is replaced only by one
// holding more windows (each is a valid cache of the same cell; the larger saves more). Atomic per
// file (copy to .tmp, then rename).
Status MergeWindowRecords(const std::string& dest, const std::vector<std::string>& sources);

}  // namespace ql
