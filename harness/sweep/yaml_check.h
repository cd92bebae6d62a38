// One pre-pass over a parsed YAML tree that every experiment-file consumer relies on: map keys are
// plain scalars, no map repeats a key, and aliases do not expand the tree past a fixed node budget.
// Not a schema check: which keys are allowed where is the parser's business (experiment.cc).
#pragma once

#include <string>

#include <yaml-cpp/yaml.h>

#include "kernels/status.h"

namespace ql {

// Error messages name `origin` and 1-based lines: "duplicate key 'x' at line 7 (first at line 3)".
// yaml-cpp keeps every entry of a map with a repeated key when iterating (only lookup picks one), so
// the duplicates are found on the loaded tree.
Status CheckYamlTree(const YAML::Node& root, const std::string& origin);

}  // namespace ql
