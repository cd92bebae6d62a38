// The `tasks:` key (see experiment_tasks.h).
#include "harness/sweep/experiment_tasks.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "datasets/tasks.h"

namespace ql {
namespace {

std::string At(const std::string& origin, const YAML::Node& n) {
  return n.Mark().line < 0 ? origin + ": " : fmt::format("{}:{}: ", origin, n.Mark().line + 1);
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

StatusOr<std::string> Scalar(const std::string& origin, const YAML::Node& entry, const char* key) {
  const YAML::Node n = entry[key];
  if (!n.IsScalar()) return Status::Error(At(origin, n) + fmt::format("tasks entry '{}' must be a string", key));
  return n.as<std::string>();
}

StatusOr<int64_t> NonNegative(const std::string& origin, const YAML::Node& entry, const char* key) {
  const YAML::Node n = entry[key];
  int64_t v = -1;
  try {
    if (n.IsScalar()) v = n.as<int64_t>();
  } catch (const YAML::Exception&) {
  }
  if (v < 0) return Status::Error(At(origin, n) + fmt::format("tasks entry '{}' must be an integer >= 0", key));
  return v;
}

StatusOr<std::vector<std::string>> Conventions(const std::string& origin, const YAML::Node& entry) {
  if (!entry["convention"]) return std::vector<std::string>{"lmeval"};
  QL_ASSIGN_OR_RETURN(std::string c, Scalar(origin, entry, "convention"));
  if (c == "both") return std::vector<std::string>{"lmeval", "llamacpp"};
  if (c == "lmeval" || c == "llamacpp") return std::vector<std::string>{c};
  return Status::Error(At(origin, entry["convention"]) +
                       fmt::format("task convention '{}' is not one of: lmeval, llamacpp, both", c));
}

StatusOr<TaskSpec> ParseEntry(const std::string& origin, const YAML::Node& entry, const std::string& base_dir) {
  if (!entry.IsMap())
    return Status::Error(At(origin, entry) + "a tasks entry is a map {name, file, convention, limit, seed}");
  for (const auto& kv : entry) {
    const std::string k = kv.first.as<std::string>();
    if (k != "name" && k != "file" && k != "convention" && k != "limit" && k != "seed")
      return Status::Error(At(origin, kv.first) + "unknown key '" + k +
                           "' in a tasks entry (allowed: name, file, convention, limit, seed)");
  }
  if (!entry["name"] || !entry["file"])
    return Status::Error(At(origin, entry) + "a tasks entry needs 'name' and 'file' (a JSONL task file)");
  TaskSpec t;
  QL_ASSIGN_OR_RETURN(t.name, Scalar(origin, entry, "name"));
  if (!ValidName(t.name))
    return Status::Error(At(origin, entry["name"]) +
                         fmt::format("task name '{}' must be 1-64 of [A-Za-z0-9_-] (it names columns)", t.name));
  QL_ASSIGN_OR_RETURN(std::string file, Scalar(origin, entry, "file"));
  const std::filesystem::path fp(file);
  t.file = fp.is_absolute() || file.empty() ? file : (std::filesystem::path(base_dir) / fp).lexically_normal().string();
  QL_ASSIGN_OR_RETURN(t.conventions, Conventions(origin, entry));
  if (entry["limit"]) { QL_ASSIGN_OR_RETURN(t.limit, NonNegative(origin, entry, "limit")); }
  if (entry["seed"]) {
    QL_ASSIGN_OR_RETURN(int64_t seed, NonNegative(origin, entry, "seed"));
    if (t.limit == 0 && seed != 0)
      return Status::Error(At(origin, entry["seed"]) + "a task 'seed' samples 'limit' items: give a limit too");
    t.seed = uint64_t(seed);
  }
  return t;
}

}  // namespace

StatusOr<std::vector<TaskSpec>> ParseTaskSpecs(const std::string& origin, const YAML::Node& node,
                                               const std::string& base_dir) {
  if (!node.IsSequence() || node.size() == 0)
    return Status::Error(At(origin, node) + "'tasks' must be a non-empty list of {name, file, convention, limit, seed}");
  std::vector<TaskSpec> out;
  std::set<std::string> names;
  for (const auto& entry : node) {
    QL_ASSIGN_OR_RETURN(TaskSpec t, ParseEntry(origin, entry, base_dir));
    if (!names.insert(t.name).second)
      return Status::Error(At(origin, entry) + fmt::format("task name '{}' appears twice (names must differ)", t.name));
    out.push_back(std::move(t));
  }
  return out;
}

nlohmann::json TaskSpecsJson(const std::vector<TaskSpec>& tasks) {
  nlohmann::json a = nlohmann::json::array();
  for (const TaskSpec& t : tasks)
    a.push_back({{"name", t.name}, {"conventions", t.conventions},
                 {"limit", TaskLimit{t.limit, t.seed}.Canonical()}});
  return a;
}

}  // namespace ql
