// `quantlab tasks`: zero-shot task accuracy (multiple choice, WinoGrande-style, LAMBADA-style JSONL)
// of a model exactly as loaded (float32 weights, no quantization), by the lmeval and/or llamacpp
// convention (harness/eval/tasks.h). Quantized cells are scored by the one cell pipeline, not here.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "datasets/tasks.h"
#include "harness/cli/commands.h"
#include "harness/eval/tasks.h"
#include "harness/io/load.h"
#include "harness/util/progress.h"

namespace ql::cli {
namespace {

struct TasksOptions {
  std::string model;
  std::vector<std::string> tasks;  // NAME=FILE
  std::vector<std::string> conventions = {"lmeval"};
  int64_t limit = 0;
  uint64_t seed = 0;
  int ctx = 0;
  bool json = false;
  std::string items;  // per-item JSONL output, empty = none
  int pack_rows = TaskScoreOptions{}.pack_rows;
};

StatusOr<std::pair<std::string, std::string>> SplitTask(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    return Status::Errorf("--task '{}' is not NAME=FILE (e.g. --task piqa=piqa.jsonl)", spec);
  return std::make_pair(spec.substr(0, eq), spec.substr(eq + 1));
}

nlohmann::json ScoresJson(const TaskScores& s) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const TaskMetricValue& m : TaskMetrics(s)) metrics[m.name] = {{"value", m.value}, {"se", m.se}};
  return {{"task", s.task},           {"file", s.path},
          {"shape", TaskShapeName(s.shape)}, {"convention", TaskConventionName(s.convention)},
          {"limit", s.limit},         {"window", s.window},
          {"items", s.items.size()},  {"truncated_items", s.truncated_items()},
          {"metrics", metrics},       {"tokens_forwarded", s.tokens_forwarded},
          {"seconds", s.seconds},     {"items_per_s", s.items_per_s()},
          {"tokens_per_s", s.tokens_per_s()}};
}

// One JSON line per item: its line in the task file, gold, and for each metric the chosen candidate
// and whether it is right, with every candidate's log-likelihood and scored-token count.
Status WriteItems(std::FILE* f, const TaskScores& s) {
  const std::vector<TaskMetricSpec> specs = TaskMetricSpecs(s.shape, s.convention);
  for (const ItemScore& it : s.items) {
    nlohmann::json chosen = nlohmann::json::object(), correct = nlohmann::json::object();
    for (const TaskMetricSpec& m : specs) {
      chosen[std::string(m.name)] = it.Chosen(m.rule);
      correct[std::string(m.name)] = it.Correct(m.rule) ? 1 : 0;
    }
    nlohmann::json loglik = nlohmann::json::array(), tokens = nlohmann::json::array();
    for (const CandidateScore& c : it.candidates) loglik.push_back(c.loglik), tokens.push_back(c.n_tokens);
    const std::string line = nlohmann::json{{"task", s.task}, {"convention", TaskConventionName(s.convention)},
                                            {"line", it.line}, {"gold", it.gold}, {"chosen", chosen},
                                            {"correct", correct}, {"loglik", loglik}, {"tokens", tokens}}
                                 .dump();
    if (std::fprintf(f, "%s\n", line.c_str()) < 0) return Status::Error("--items: write failed (disk full?)");
  }
  return Status::Ok();
}

std::string ScoresLine(const TaskScores& s) {
  std::string metrics;
  for (const TaskMetricValue& m : TaskMetrics(s)) {
    if (m.name.rfind("acc", 0) == 0)
      metrics += fmt::format("  {} {:.2f} ± {:.2f}", m.name, 100 * m.value, 100 * m.se);
    else
      metrics += fmt::format("  {} {:.3f}", m.name, m.value);
  }
  return fmt::format("{:<14} {:<8} {:>5} items{}  | {:.1f} items/s, {:.0f} tok/s, {:.1f} s{}", s.task,
                     TaskConventionName(s.convention), s.items.size(), metrics, s.items_per_s(), s.tokens_per_s(),
                     s.seconds, s.truncated_items() ? fmt::format(", {} truncated", s.truncated_items()) : "");
}

Status RunTasks(const TasksOptions& o) {
  std::error_code ec;
  if (!std::filesystem::exists(o.model, ec))
    return Status::Errorf("model file '{}' does not exist (pass --model PATH)", o.model);
  std::vector<TaskConvention> conventions;
  for (const std::string& c : o.conventions) {
    QL_ASSIGN_OR_RETURN(TaskConvention tc, ParseTaskConvention(c));
    conventions.push_back(tc);
  }
  const TaskLimit limit{o.limit, o.seed};
  std::vector<TaskSet> sets;  // read every file before the (slow) scoring starts
  for (const std::string& spec : o.tasks) {
    QL_ASSIGN_OR_RETURN(auto name_file, SplitTask(spec));
    QL_ASSIGN_OR_RETURN(TaskSet set, ReadTaskFile(name_file.second, name_file.first, limit));
    sets.push_back(std::move(set));
  }
  QL_ASSIGN_OR_RETURN(Model model, LoadModel(o.model));
  if (!o.json)
    fmt::print("model {} (weights as loaded, float32), limit {}\n", o.model, limit.Canonical());
  nlohmann::json all = nlohmann::json::array();
  TaskScoreOptions opt;
  opt.window = o.ctx;
  opt.pack_rows = o.pack_rows;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> items(nullptr, &std::fclose);
  if (!o.items.empty()) {
    items.reset(std::fopen(o.items.c_str(), "w"));
    if (!items) return Status::Errorf("--items '{}': cannot open for writing (check the directory)", o.items);
  }
  for (const TaskSet& set : sets) {
    // One joint pass per task: a token sequence both conventions share runs once; the speed
    // printed is that pass's.
    ProgressMeter meter(ProgressStyle::ForStderr(&std::cerr), "task " + set.name, "items");
    opt.progress = meter.Fn();
    QL_ASSIGN_OR_RETURN(std::vector<TaskScores> scores, ScoreTaskConventions(model, set, conventions, opt));
    for (const TaskScores& s : scores) {
      if (items) QL_RETURN_IF_ERROR(WriteItems(items.get(), s));
      if (o.json) {
        all.push_back(ScoresJson(s));
        all.back()["conventions_in_pass"] = conventions.size();
      } else {
        fmt::print("{}\n", ScoresLine(s));
        std::fflush(stdout);
      }
    }
  }
  if (o.json) fmt::print("{}\n", nlohmann::json{{"model", o.model}, {"results", all}}.dump());
  return Status::Ok();
}

}  // namespace

void AddTasksCommand(CLI::App& app) {
  auto o = std::make_shared<TasksOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tasks", "Zero-shot task accuracy (multiple choice, WinoGrande, LAMBADA JSONL) of a model as loaded");
  cmd->add_option("--model", o->model, "model: HF directory, .gguf, or llama2.c .bin")->required();
  cmd->add_option("--task", o->tasks, "NAME=FILE, one JSON object a line (repeatable)")->required();
  cmd->add_option("--convention", o->conventions, "lmeval (default) and/or llamacpp (repeatable)");
  cmd->add_option("--limit", o->limit, "score at most N items per task (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "with --limit: a seeded sample instead of the first N (0 = first N)");
  cmd->add_option("--ctx", o->ctx, "window of fed positions (default: the model's context length)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "print one JSON object instead of text");
  cmd->add_option("--items", o->items, "also write one JSON line per item and convention to FILE (chosen, correct)");
  cmd->add_option("--pack-rows", o->pack_rows, "rows per packed forward call (0 = one item at a time on a KV cache)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o] {
    const Status s = RunTasks(*o);
    if (!s.ok()) Fail("tasks", s);
  });
}

}  // namespace ql::cli
