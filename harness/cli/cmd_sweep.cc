// `quantlab sweep`: run an experiment file's grid, resumably, and print its comparison table
// (the same as `quantlab compare`, in cmd_query.cc).
#include <iostream>

#include "harness/cli/commands.h"
#include "harness/sweep/runner.h"
#include "results/compare.h"
#include "results/store.h"

namespace ql::cli {

void AddSweepCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Run every cell of an experiment file against the model's baseline; "
                                          "re-running resumes (finished cells are skipped)");
  struct Opts {
    std::string file, shard, results, model, data, calib;
    bool dry_run = false, no_table = false, retry_failed = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("file", o->file, "experiment YAML (see experiments/)")->required();
  cmd->add_option("--shard", o->shard, "run slice i of N (i/N, 0-based), e.g. for a Slurm job array");
  cmd->add_option("--results", o->results, "results directory (default: the file's 'results:')");
  cmd->add_option("--model", o->model, "model path (default: the file's 'model:')");
  cmd->add_option("--data", o->data, "evaluation text (default: the file's 'data:')");
  cmd->add_option("--calib", o->calib, "calibration text (default: the file's 'calibration: data:')");
  cmd->add_flag("--dry-run", o->dry_run, "validate the file and list the cells without running them");
  cmd->add_flag("--no-table", o->no_table, "do not print the comparison table at the end");
  cmd->add_flag("--retry-failed", o->retry_failed, "run cells recorded as failed again (ok and diverged ones stay)");
  cmd->callback([o] {
    auto e = LoadExperiment(o->file);
    if (!e.ok()) return Fail("sweep", e.status());
    if (!o->data.empty()) e->data = o->data;
    if (!o->calib.empty()) {
      if (!e->calibration) return Fail("sweep", Status::Errorf("{}: --calib given but the file has no calibration: section", o->file));
      e->calibration->data = o->calib;
    }
    if (o->dry_run) {
      auto cells = ExpandGrid(*e);
      if (!o->shard.empty()) {
        auto sh = ParseShard(o->shard);
        if (!sh.ok()) return Fail("sweep", sh.status());
        cells = ShardCells(cells, sh->first, sh->second);
      }
      std::cout << e->name << ": " << cells.size() << " cells\n";
      for (const auto& c : cells) std::cout << "  " << c.index << "  " << c.Label() << "\n";
      return;
    }
    SweepOptions opt;
    opt.shard = o->shard;
    opt.results = o->results;
    opt.model = o->model;
    opt.retry_failed = o->retry_failed;
    auto sum = RunSweep(*e, opt, std::cout);
    if (!sum.ok()) return Fail("sweep", sum.status());
    if (!o->no_table) {
      auto store = ResultStore::OpenReadOnly(sum->results_dir);
      if (!store.ok()) return Fail("sweep", store.status());
      auto t = CompareTable(**store, {sum->experiment_id, "dppl", {}});
      if (!t.ok()) return Fail("sweep", t.status());
      std::cout << "\n" << FormatTerminal(*t, TerminalColumns()) << NumericsNote(**store, sum->experiment_id);
    }
    if (sum->failed > 0 || sum->diverged > 0) ExitCode() = 3;  // the sweep went on, but say so to scripts
  });
}

}  // namespace ql::cli
