// Structural checks of a loaded YAML tree (see yaml_check.h).
#include "harness/sweep/yaml_check.h"

#include <map>
#include <vector>

namespace ql {
namespace {

// Aliases share nodes, so a small file can describe an exponentially large tree ("billion laughs").
constexpr long kMaxNodes = 1'000'000;
constexpr int kMaxDepth = 64;

const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Null: return "empty (null)";
    default: return "a scalar";
  }
}

class TreeCheck {
 public:
  explicit TreeCheck(const std::string& origin) : origin_(origin) {}

  Status Visit(const YAML::Node& n, int depth) {
    if (++visited_ > kMaxNodes) {
      return Status::Errorf("{}: the YAML tree has more than {} nodes (aliases expanding?)", origin_, kMaxNodes);
    }
    if (depth > kMaxDepth) {
      return Status::Errorf("{}:{}: YAML nesting deeper than {} levels", origin_, n.Mark().line + 1, kMaxDepth);
    }
    if (n.IsSequence()) {
      for (const YAML::Node& item : n) QL_RETURN_IF_ERROR(Visit(item, depth + 1));
    } else if (n.IsMap()) {
      QL_RETURN_IF_ERROR(VisitMap(n, depth));
    }
    return Status::Ok();
  }

 private:
  Status VisitMap(const YAML::Node& n, int depth) {
    std::map<std::string, int> first_line;  // key -> 1-based line of its first occurrence
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node& key = it->first;
      const int line = key.Mark().line + 1;
      if (!key.IsScalar()) {
        return Status::Errorf("{}:{}: a map key is {}; keys must be plain names (a '? [..]' or '? {{..}}' "
                              "complex key is not allowed)",
                              origin_, line, KindName(key));
      }
      auto [at, inserted] = first_line.emplace(key.Scalar(), line);
      if (!inserted) {
        return Status::Errorf("{}:{}: duplicate key '{}' at line {} (first at line {}); remove one", origin_, line,
                              key.Scalar(), line, at->second);
      }
      QL_RETURN_IF_ERROR(Visit(it->second, depth + 1));
    }
    return Status::Ok();
  }

  const std::string& origin_;
  long visited_ = 0;
};

}  // namespace

Status CheckYamlTree(const YAML::Node& root, const std::string& origin) {
  TreeCheck check(origin);
  return check.Visit(root, 0);
}

}  // namespace ql
