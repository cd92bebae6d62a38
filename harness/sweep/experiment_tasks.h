// The `tasks:` key of an experiment file: a list of task files scored beside perplexity for the
// baseline and every cell. Parsing and the canonical form only; reading and scoring the files is
// harness/sweep/cell_tasks.h's.
//
//   tasks:
//     - {name: piqa, file: piqa.jsonl, convention: both, limit: 500, seed: 1}
//     - {name: arc_easy, file: arc_easy.jsonl}          # convention lmeval, every item
//
// name: [A-Za-z0-9_-]+, unique (it names store rows, array paths and compare columns); file: a
// JSONL task file (datasets/tasks.h), relative to the YAML file; convention: lmeval (default),
// llamacpp or both; limit: items kept (0 = all); seed: with limit, a seeded sample (0 = first N).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "harness/sweep/experiment.h"
#include "kernels/status.h"

namespace ql {

// Errors name the file and line of the bad entry and the fix.
StatusOr<std::vector<TaskSpec>> ParseTaskSpecs(const std::string& origin, const YAML::Node& node,
                                               const std::string& base_dir);

// [{name, conventions, limit}] in file order: what of the tasks determines a cell's numbers apart
// from the files' contents (no paths).
nlohmann::json TaskSpecsJson(const std::vector<TaskSpec>& tasks);

}  // namespace ql
