// Algorithm parameters that name a file (e.g. imatrix's `file`): resolved against the experiment file's
// directory when parsed (experiment.cc), and entered into a cell's identity by the file's content hash
// (cell_pipeline.cc DescribeCell), so replacing the file under the same name makes new cells.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ql {

// (parameter name, path) for every file-valued parameter `params` of algorithm `algorithm` sets.
std::vector<std::pair<std::string, std::string>> AlgorithmFiles(const std::string& algorithm,
                                                                const nlohmann::json& params);

}  // namespace ql
