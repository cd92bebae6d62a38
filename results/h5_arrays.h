// Writing and reading the float arrays of one run (per-token NLL, per-layer errors, histograms) as an
// HDF5 file. One file per cell, written to a temporary name and renamed into place, so a killed
// sweep never leaves a half-written file that a finished cell's row points to.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kernels/status.h"

namespace ql {

// name -> values; a name may contain '/' to make groups ("hist/model.layers.0.mlp.down_proj").
using ArrayMap = std::map<std::string, std::vector<float>>;

// Writes every array as a 1-D float32 dataset (gzip-compressed when larger than 4096 values) and
// the attributes as string attributes of the root group. Atomic: path.tmp then rename().
Status WriteH5Arrays(const std::string& path, const ArrayMap& arrays,
                     const std::map<std::string, std::string>& attributes = {});
StatusOr<std::vector<float>> ReadH5Array(const std::string& path, const std::string& name);

}  // namespace ql
