// `quantlab sensitivity` (quantize one unit at a time, measure each against the baseline, rank the
// proxies) and `quantlab search` (choose one scheme per unit under a budget, a KLD or a ΔPPL target from
// that scan, verify it as a real cell, write a recipe). The logic is harness/sweep/sensitivity.h.
#include <fstream>
#include <iostream>

#include "harness/cli/commands.h"
#include "harness/sweep/sensitivity.h"

namespace ql::cli {
namespace {

struct ScanFlags {
  std::string file, units, shard, results, model;
  std::vector<std::string> schemes;
  int64_t prefix_mb = 1024;
  bool full = false;
};

void AddScanFlags(CLI::App* cmd, ScanFlags* f) {
  cmd->add_option("file", f->file, "experiment YAML with a sensitivity: block (or pass --units/--candidates)")->required();
  cmd->add_option("--units", f->units, "module | layer | type | layer_type (default: the file's, else module)")
      ->check(CLI::IsMember({"module", "layer", "type", "layer_type"}));
  cmd->add_option("--candidates", f->schemes, "candidate weight schemes (default: the file's sensitivity.schemes)");
  cmd->add_option("--results", f->results, "results directory (default: the file's 'results:')");
  cmd->add_option("--model", f->model, "model path (default: the file's 'model:')");
  cmd->add_option("--prefix-mb", f->prefix_mb, "memory for the baseline's block inputs (prefix reuse: units start at "
                                               "their first block, bitwise the same numbers); 0 = off")
      ->capture_default_str();
  cmd->add_flag("--full", f->full, "evaluate every unit on every window (ignore the file's sensitivity.adaptive)");
}

StatusOr<std::unique_ptr<Scan>> Load(const ScanFlags& f, std::ostream& log) {
  QL_ASSIGN_OR_RETURN(Experiment e, LoadExperiment(f.file));
  ScanOptions o;
  o.spec = e.sensitivity.value_or(SensitivitySpec{});
  if (!f.units.empty()) o.spec.units = f.units;
  if (!f.schemes.empty()) o.spec.schemes = f.schemes;
  if (o.spec.schemes.empty())
    return Status::Errorf("{}: no candidate schemes (add sensitivity: {{units: module, schemes: [int4:g32]}} or --candidates)",
                          f.file);
  for (auto& sc : o.spec.schemes) {
    QL_ASSIGN_OR_RETURN(Scheme parsed, ParseScheme(sc));
    sc = ToString(parsed);
  }
  if (f.full) o.spec.adaptive.reset();
  o.prefix_budget_mb = f.prefix_mb;
  o.sweep.shard = f.shard;
  o.sweep.results = f.results;
  o.sweep.model = f.model;
  return RunSensitivity(e, o, log);
}

}  // namespace

void AddSensitivityCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("sensitivity", "Quantize one unit (module, layer, module type) at a time with each "
                                                "candidate scheme; ΔKLD/ΔPPL/top-1 per unit, proxies and their rank "
                                                "correlation; resumable, --shard like sweep");
  auto f = std::make_shared<ScanFlags>();
  auto json = std::make_shared<bool>(false);
  AddScanFlags(cmd, f.get());
  cmd->add_option("--shard", f->shard, "run slice i of N (i/N) of the scan's cells");
  cmd->add_flag("--json", *json, "print the table as JSON");
  cmd->callback([f, json] {
    auto scan = Load(*f, *json ? std::cerr : std::cout);
    if (!scan.ok()) return Fail("sensitivity", scan.status());
    std::cout << (*json ? SensitivityJson((*scan)->table).dump(1) + "\n" : FormatSensitivity((*scan)->table));
  });
}

void AddSearchCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("search", "Choose one scheme per unit (or keep baseline precision) from the "
                                           "sensitivity scan: exact knapsack, verified as a real cell; a missed "
                                           "--target-kld / --target-dppl is solved again at a target rescaled by the "
                                           "measured additivity, then repaired greedily; writes a YAML recipe");
  auto f = std::make_shared<ScanFlags>();
  auto o = std::make_shared<SearchOptions>();
  auto out = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  AddScanFlags(cmd, f.get());
  auto* b = cmd->add_option("--budget-bpw", o->budget_bpw, "bits per weight over the units' tensors, scales included");
  auto* k = cmd->add_option("--target-kld", o->target_kld, "mean KLD target (fewest bytes that reach it)");
  auto* d = cmd->add_option("--target-dppl", o->target_dppl,
                            "ΔPPL target in perplexity points (fewest bytes that reach it; units add up as Δ ln PPL)");
  b->excludes(k), b->excludes(d), k->excludes(d);
  cmd->add_option("--dppl-bound", o->dppl_bound, "with --target-dppl: what must be <= D, the verified cell's paired 95% "
                                                "interval's upper end, its point estimate, or its lower end")
      ->check(CLI::IsMember({"upper", "point", "lower"}))
      ->capture_default_str();
  cmd->add_option("--shard", f->shard, "run slice i of N (i/N) of the scan's cells and stop; `quantlab merge` the "
                                       "shards' results, then search the merged directory without --shard");
  cmd->add_option("--schemes", o->schemes, "restrict the choice to these of the scan's schemes (plus bf16)");
  cmd->add_option("--rescale-rounds", o->rescale_rounds, "after a missed target: solves at the target × "
                                                        "predicted / measured of the last verified cell")
      ->capture_default_str();
  cmd->add_option("--max-rounds", o->max_rounds, "greedy repair rounds (one unit each) after the rescaled solves")
      ->capture_default_str();
  cmd->add_option("--refine-z", o->refine_z, "after an adaptive scan, re-measure on every window the options whose "
                                            "interval (z standard errors) could change the choice; 0 = off")
      ->capture_default_str();
  cmd->add_option("--refine-slack", o->refine_slack, "with --refine-z: prices of a byte within this factor of the "
                                                    "solution's count as possible")
      ->capture_default_str();
  cmd->add_flag("--refine-unpaired{false}", o->refine_paired,
                "with --refine-z: bound each option by its own interval instead of comparing a unit's options "
                "paired on the windows both ran");
  cmd->add_flag("--refine-doubling", o->refine_doubling,
                "with --refine-z: extend each decision option in steps (--refine-growth) and decide again after "
                "each, instead of measuring it on every window at once (see docs/sensitivity.md)");
  cmd->add_option("--refine-growth", o->refine_growth,
                  "with --refine-doubling: each step takes an option of n windows to max(n + 1, growth * n)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 16.0));
  cmd->add_flag("--refine-price-slack{false}", o->refine_exchange,
                "with --refine-z and a byte budget: measure the options that could beat a unit's pick at prices "
                "within --refine-slack (the rule a target uses) instead of certifying the choice against every "
                "exchange of units the bounds allow");
  cmd->add_option("--out", *out, "write the recipe (an experiment YAML) here");
  cmd->add_flag("--json", *json, "print the report as JSON");
  cmd->callback([f, o, out, json] {
    if (o->budget_bpw < 0 && o->target_kld < 0 && o->target_dppl < 0)
      return Fail("search", Status::Error("give --budget-bpw B, --target-kld K or --target-dppl D"));
    auto scan = Load(*f, std::cerr);
    if (!scan.ok()) return Fail("search", scan.status());
    if (!f->shard.empty() && !ScanComplete((*scan)->table)) {
      std::cerr << "quantlab search: shard " << f->shard << " of the scan recorded in " << (*scan)->results_dir
                << "; merge the shards (quantlab merge DEST DIR...) and run search on DEST without --shard\n";
      return;
    }
    for (auto& sc : o->schemes) {
      auto parsed = ParseScheme(sc);
      if (!parsed.ok()) return Fail("search", parsed.status());
      sc = ToString(*parsed);
    }
    auto r = RunSearch(**scan, *o, std::cerr);
    if (!r.ok()) return Fail("search", r.status());
    std::cout << (*json ? r->report.dump(1) + "\n" : r->text);
    if (!out->empty()) {
      std::ofstream(*out) << r->recipe;
      if (!*json) std::cout << "recipe: " << *out << "\n";
    }
  });
}

}  // namespace ql::cli
