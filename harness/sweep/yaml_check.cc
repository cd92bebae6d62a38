// Structural checks of a loaded YAML tree (see yaml_check.h).
#include "harness/sweep/yaml_check.h"

#include <cstdint>
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

// Byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates, > U+10FFFF included), or
// npos. YAML text is Unicode; downstream JSON (cell identities) cannot hold anything else.
size_t InvalidUtf8At(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return std::string::npos;
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
    if (n.IsScalar()) {
      if (size_t at = InvalidUtf8At(n.Scalar()); at != std::string::npos) {
        return Status::Errorf("{}:{}: invalid UTF-8 at byte {} of a value; YAML files are Unicode text", origin_,
                              n.Mark().line + 1, at);
      }
    } else if (n.IsSequence()) {
      for (const YAML::Node& item : n) QL_RETURN_IF_ERROR(Visit(item, depth + 1));
    } else if (n.IsMap()) {
      QL_RETURN_IF_ERROR(VisitMap(n, depth));
    }
    return Status::Ok();
  }

 private:
  Status VisitMap(const YAML::Node& n, int depth) {
    std::map<std::string, int> first_line;  // key -> 1-based line of its first occurrence
    for (YAML::const_iterator it = n.begin(); it != n.end(); ++it) {
      // By value: yaml-cpp's iterator hands out a temporary pair (a reference would dangle).
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const int line = key.Mark().line + 1;
      if (!key.IsScalar()) {
        return Status::Errorf("{}:{}: a map key is {}; keys must be plain names (a '? [..]' or '? {{..}}' "
                              "complex key is not allowed)",
                              origin_, line, KindName(key));
      }
      if (InvalidUtf8At(key.Scalar()) != std::string::npos) {
        return Status::Errorf("{}:{}: a map key is not valid UTF-8; YAML files are Unicode text", origin_, line);
      }
      auto [at, inserted] = first_line.emplace(key.Scalar(), line);
      if (!inserted) {
        return Status::Errorf("{}:{}: duplicate key '{}' at line {} (first at line {}); remove one", origin_, line,
                              key.Scalar(), line, at->second);
      }
      QL_RETURN_IF_ERROR(Visit(value, depth + 1));
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
