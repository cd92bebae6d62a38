// Task file readers (datasets/tasks.h): JSON lines -> TaskItems, with line-numbered errors and the
// first-N / seeded-sample document limit. nlohmann::json is used in its non-throwing forms only.
#include "datasets/tasks.h"

#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/io/file_io.h"

namespace ql {
namespace {

using nlohmann::json;

// "where: problem" with where = origin:line.
struct LineRef {
  const std::string& origin;
  int line;
  Status Error(const std::string& what) const { return Status::Errorf("{}:{}: {}", origin, line, what); }
};

std::string_view JsonTypeName(const json& v) { return v.type_name(); }

StatusOr<std::string> GetString(const json& obj, const char* key, const LineRef& at, bool allow_empty) {
  auto it = obj.find(key);
  if (it == obj.end()) return at.Error(fmt::format("missing field \"{}\"", key));
  if (!it->is_string())
    return at.Error(fmt::format("field \"{}\" is a {}, expected a string", key, JsonTypeName(*it)));
  std::string s = it->get<std::string>();
  if (!allow_empty && s.empty()) return at.Error(fmt::format("field \"{}\" is empty", key));
  return s;
}

StatusOr<std::vector<std::string>> GetStrings(const json& obj, const char* key, const LineRef& at) {
  auto it = obj.find(key);
  if (it == obj.end()) return at.Error(fmt::format("missing field \"{}\"", key));
  if (!it->is_array())
    return at.Error(fmt::format("field \"{}\" is a {}, expected an array of strings", key, JsonTypeName(*it)));
  if (it->size() < 2) return at.Error(fmt::format("field \"{}\" has {} entries, need at least 2", key, it->size()));
  std::vector<std::string> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    if (!e.is_string())
      return at.Error(fmt::format("{}[{}] is a {}, expected a string", key, i, JsonTypeName(e)));
    out.push_back(e.get<std::string>());
    if (out.back().empty()) return at.Error(fmt::format("{}[{}] is empty (an empty candidate cannot be scored)", key, i));
  }
  return out;
}

StatusOr<int> GetGold(const json& obj, int n_candidates, const char* what, const LineRef& at) {
  auto it = obj.find("gold");
  if (it == obj.end()) return at.Error("missing field \"gold\"");
  if (!it->is_number_integer())
    return at.Error(fmt::format("field \"gold\" is a {}, expected an integer", JsonTypeName(*it)));
  const int64_t g = it->get<int64_t>();
  if (g < 0 || g >= n_candidates)
    return at.Error(fmt::format("gold {} is out of range for {} {} (use 0..{})", g, n_candidates, what,
                                n_candidates - 1));
  return int(g);
}

TaskShape ShapeOf(const json& obj) {
  if (obj.contains("context_options")) return TaskShape::kPartialContext;
  if (obj.contains("choices") || obj.contains("query")) return TaskShape::kMultipleChoice;
  return TaskShape::kCloze;
}

StatusOr<TaskItem> ParseItem(const json& obj, TaskShape shape, const LineRef& at) {
  TaskItem item;
  item.line = at.line;
  switch (shape) {
    case TaskShape::kMultipleChoice: {
      QL_ASSIGN_OR_RETURN(std::string q, GetString(obj, "query", at, /*allow_empty=*/true));
      QL_ASSIGN_OR_RETURN(item.continuations, GetStrings(obj, "choices", at));
      QL_ASSIGN_OR_RETURN(item.gold, GetGold(obj, int(item.continuations.size()), "choices", at));
      item.contexts = {std::move(q)};
      break;
    }
    case TaskShape::kPartialContext: {
      QL_ASSIGN_OR_RETURN(item.contexts, GetStrings(obj, "context_options", at));
      QL_ASSIGN_OR_RETURN(std::string cont, GetString(obj, "continuation", at, false));
      QL_ASSIGN_OR_RETURN(item.gold, GetGold(obj, int(item.contexts.size()), "context options", at));
      item.continuations = {std::move(cont)};
      break;
    }
    case TaskShape::kCloze: {
      QL_ASSIGN_OR_RETURN(std::string ctx, GetString(obj, "context", at, true));
      QL_ASSIGN_OR_RETURN(std::string cont, GetString(obj, "continuation", at, false));
      item.contexts = {std::move(ctx)};
      item.continuations = {std::move(cont)};
      break;
    }
  }
  return item;
}

bool Blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::string_view TaskShapeName(TaskShape shape) {
  switch (shape) {
    case TaskShape::kMultipleChoice: return "multiple_choice";
    case TaskShape::kPartialContext: return "partial_context";
    case TaskShape::kCloze: return "cloze";
  }
  return "?";
}

std::string TaskLimit::Canonical() const {
  if (count <= 0) return "all";
  return seed == 0 ? fmt::format("first{}", count) : fmt::format("sample{}:seed{}", count, seed);
}

std::vector<int64_t> SelectItems(int64_t n, const TaskLimit& limit) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (limit.count <= 0 || limit.count >= n) return idx;
  if (limit.seed == 0) {
    idx.resize(limit.count);
    return idx;
  }
  // Partial Fisher-Yates: position i takes a uniform pick of [i, n). The pick maps a 64-bit draw to
  // the range by a 128-bit multiply (bias < n / 2^64), identical on every platform.
  uint64_t state = limit.seed;
  for (int64_t i = 0; i < limit.count; ++i) {
    const uint64_t span = uint64_t(n - i);
    const uint64_t j = uint64_t((static_cast<unsigned __int128>(SplitMix64(&state)) * span) >> 64);
    std::swap(idx[i], idx[i + int64_t(j)]);
  }
  idx.resize(limit.count);
  std::sort(idx.begin(), idx.end());
  return idx;
}

StatusOr<TaskSet> ParseTaskText(std::string_view text, const std::string& name, const std::string& origin,
                                const TaskLimit& limit) {
  TaskSet set;
  set.name = name;
  set.path = origin;
  set.limit = limit;
  std::vector<TaskItem> all;
  bool have_shape = false;
  int line_no = 0;
  for (size_t pos = 0; pos <= text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (Blank(line)) continue;
    const LineRef at{origin, line_no};
    const json obj = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded()) return at.Error("not valid JSON (one JSON object a line expected)");
    if (!obj.is_object()) return at.Error(fmt::format("a JSON {}, expected an object", JsonTypeName(obj)));
    const TaskShape shape = ShapeOf(obj);
    if (!have_shape) {
      set.shape = shape;
      have_shape = true;
    } else if (shape != set.shape) {
      return at.Error(fmt::format("a {} item in a {} file (every line must have the fields of the first)",
                                  TaskShapeName(shape), TaskShapeName(set.shape)));
    }
    QL_ASSIGN_OR_RETURN(TaskItem item, ParseItem(obj, set.shape, at));
    all.push_back(std::move(item));
  }
  if (all.empty()) return Status::Errorf("{}: no task items (one JSON object a line expected)", origin);
  set.items_in_file = int64_t(all.size());
  for (int64_t i : SelectItems(int64_t(all.size()), limit)) set.items.push_back(std::move(all[i]));
  return set;
}

StatusOr<TaskSet> ReadTaskFile(const std::string& path, const std::string& name, const TaskLimit& limit) {
  QL_ASSIGN_OR_RETURN(std::string text, io::ReadTextFile(path));
  return ParseTaskText(text, name, path, limit);
}

}  // namespace ql
