// Readers of zero-shot evaluation task files (one JSON object a line) into TaskSets: multiple choice,
// partial-context (WinoGrande) and cloze (LAMBADA). Text only: tokenizing and scoring the items is
// harness/eval/tasks.h's business, and so is the rule for items longer than the context window.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/status.h"

namespace ql {

// The shape of a task file, decided by the fields of its first line; every line must match it.
//   multiple_choice: {"query": str, "choices": [str, ...] (>= 2, none empty), "gold": int}
//   partial_context: {"context_options": [str, ...] (>= 2, none empty), "continuation": str, "gold": int}
//                    (the continuation is fixed, the contexts differ: WinoGrande's partial scoring)
//   cloze:           {"context": str, "continuation": str (not empty)} (LAMBADA: the target is the
//                    continuation; there is one candidate and gold is 0)
// Other fields are ignored.
enum class TaskShape { kMultipleChoice, kPartialContext, kCloze };
std::string_view TaskShapeName(TaskShape shape);  // "multiple_choice", "partial_context", "cloze"

// One question. Candidate c is the text pair (Context(c), Continuation(c)): the continuation is what
// gets scored, the context what it is conditioned on. How the two are joined (a space) and tokenized
// is the scoring convention's rule (harness/eval/tasks.h).
struct TaskItem {
  int line = 0;  // 1-based line number in the file
  std::vector<std::string> contexts;       // multiple choice, cloze: [1]; partial: [candidates]
  std::vector<std::string> continuations;  // multiple choice: [candidates]; partial, cloze: [1]
  int gold = 0;                            // index of the right candidate

  int num_candidates() const { return int(std::max(contexts.size(), continuations.size())); }
  const std::string& Context(int c) const { return contexts.size() == 1 ? contexts[0] : contexts[c]; }
  const std::string& Continuation(int c) const {
    return continuations.size() == 1 ? continuations[0] : continuations[c];
  }
};

// Which items of a file to keep. count 0 keeps every item. Otherwise `count` items: the first ones
// (seed 0), or a sample without replacement drawn with SplitMix64 from `seed` (seed != 0), kept in
// file order. The same (file, count, seed) always gives the same items on every machine.
struct TaskLimit {
  int64_t count = 0;
  uint64_t seed = 0;
  std::string Canonical() const;  // "all", "first500", "sample500:seed7"
};

struct TaskSet {
  std::string name;         // as given by the user ("piqa")
  std::string path;         // the file read (or the origin given to ParseTaskText)
  TaskShape shape = TaskShape::kMultipleChoice;
  int64_t items_in_file = 0;
  TaskLimit limit;
  std::vector<TaskItem> items;
};

// Parses a whole file's text. Errors name the origin, the 1-based line and the problem, e.g.
// "piqa.jsonl:12: gold 3 is out of range for 2 choices (use 0..1)". Empty and blank lines are
// skipped (their numbers still count); a file without items is an error.
StatusOr<TaskSet> ParseTaskText(std::string_view text, const std::string& name, const std::string& origin,
                                const TaskLimit& limit = {});
StatusOr<TaskSet> ReadTaskFile(const std::string& path, const std::string& name, const TaskLimit& limit = {});

// The indices [0, n) that `limit` keeps, ascending (exposed for tests).
std::vector<int64_t> SelectItems(int64_t n, const TaskLimit& limit);

}  // namespace ql
