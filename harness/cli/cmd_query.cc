// `quantlab query` (plain SQL over a results directory), `quantlab compare` (the comparison table for
// a terminal, a paper or a script), `quantlab merge` (combine shard stores) and `quantlab report`.
#include <fstream>
#include <iostream>
#include <sstream>

#include "harness/cli/commands.h"
#include "harness/sweep/experiment.h"
#include "harness/sweep/runner.h"
#include "harness/sweep/window_records.h"
#include "results/compare.h"
#include "results/report.h"
#include "results/store.h"
#include "results/table_format.h"

namespace ql::cli {

void AddQueryCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("query", "Run one SQL statement against a results database (schema: results/README.md)");
  struct Opts {
    std::string sql, dir = "quantlab-results";
    bool csv = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("sql", o->sql, "SQL, e.g. \"SELECT weight_scheme, ppl FROM cells JOIN metrics ON id = cell_id\"")->required();
  cmd->add_option("--results", o->dir, "results directory (holds results.sqlite)")->capture_default_str();
  auto* csv = cmd->add_flag("--csv", o->csv, "print CSV");
  cmd->add_flag("--json", o->json, "print a JSON array of row objects")->excludes(csv);
  cmd->callback([o] {
    auto store = ResultStore::OpenReadOnly(o->dir);
    if (!store.ok()) return Fail("query", store.status());
    auto r = (*store)->Query(o->sql);
    if (!r.ok()) return Fail("query", r.status());
    std::cout << (o->csv ? FormatCsv(*r) : o->json ? FormatJson(*r) : FormatTable(*r));
  });
}

void AddMergeCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "Merge the results directories of sweep shards into one (no loss, no duplicates)");
  auto dest = std::make_shared<std::string>();
  auto srcs = std::make_shared<std::vector<std::string>>();
  cmd->add_option("dest", *dest, "destination results directory (created if missing)")->required();
  cmd->add_option("sources", *srcs, "results directories to merge in")->required();
  cmd->callback([dest, srcs] {
    std::vector<std::string> warnings;
    Status s = ResultStore::Merge(*dest, *srcs, &warnings);
    if (s.ok()) s = MergeWindowRecords(*dest, *srcs);  // so the merged store's refinement resumes cells
    if (!s.ok()) return Fail("merge", s);
    for (const std::string& w : warnings) std::cerr << "quantlab merge: warning: " << w << "\n";
    auto store = ResultStore::OpenReadOnly(*dest);
    if (!store.ok()) return Fail("merge", store.status());
    auto n = (*store)->Query("SELECT count(*) FROM cells");
    std::cout << "merged " << srcs->size() << " store(s) into " << *dest << ": "
              << (n.ok() ? SqlValueToString(n->rows[0][0]) : "?") << " cells\n";
  });
}

void AddStatusCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("status", "Cells done / failed / diverged / missing per experiment of a results "
                                           "directory (what to check after a job array)");
  struct Opts {
    std::string dir, experiment;
    bool list = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("results", o->dir, "results directory")->required();
  cmd->add_option("experiment", o->experiment, "experiment YAML: only its cells (default: every experiment in the store)");
  cmd->add_flag("--list", o->list, "name every failed, diverged and missing cell");
  cmd->callback([o] {
    auto store = ResultStore::OpenReadOnly(o->dir);
    if (!store.ok()) return Fail("status", store.status());
    std::string id;
    if (!o->experiment.empty()) {
      auto e = LoadExperiment(o->experiment);
      if (!e.ok()) return Fail("status", e.status());
      id = ExperimentId(*e);
    }
    auto progress = (*store)->Progress(id);
    if (!progress.ok()) return Fail("status", progress.status());
    if (!id.empty() && progress->empty())
      return Fail("status", Status::Errorf("{}: experiment {} was never run into this store (run quantlab sweep {})",
                                           o->dir, id, o->experiment));
    bool complete = true;
    for (const auto& e : *progress) {
      std::cout << fmt::format("{}: {} cells: {} ok, {} failed, {} diverged, {} missing\n", e.experiment_id, e.planned,
                               e.ok, e.failed.size(), e.diverged.size(), e.missing.size());
      complete &= e.failed.empty() && e.missing.empty();
      if (!o->list) continue;
      for (const auto& [what, v] : {std::pair{"failed", &e.failed}, {"diverged", &e.diverged}, {"missing", &e.missing}})
        for (const auto& c : *v) std::cout << fmt::format("  {:<8} {:>4}  {}  {}\n", what, c.index, c.id, c.label);
    }
    if (!complete) ExitCode() = 3;
  });
}

}  // namespace ql::cli

namespace ql::cli {

void AddCompareCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "Cells against their baseline, sorted by ΔPPL or KLD, with bits per weight; "
                                            "fits the terminal (--wide: every column), or Markdown / LaTeX for a paper");
  struct Opts {
    std::string dir = "quantlab-results", experiment, sort = "dppl", columns;
    bool csv = false, json = false, markdown = false, latex = false, wide = false;
    int width = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--results", o->dir, "results directory")->capture_default_str();
  cmd->add_option("--experiment", o->experiment, "experiment id (default: all; see SELECT id FROM experiments)");
  cmd->add_option("--sort", o->sort, "dppl | kld | bits")->check(CLI::IsMember({"dppl", "kld", "bits"}))->capture_default_str();
  std::string keys;
  for (const auto& k : CompareColumnKeys()) keys += (keys.empty() ? "" : ",") + k;
  cmd->add_option("--columns", o->columns,
                  "comma-separated columns, in order (default: the usual set); from " + keys +
                      "; or a task column TASK[.CONVENTION].METRIC (e.g. --columns kld,piqa.acc_norm: Δ in points "
                      "and McNemar p; an unknown name lists the store's task columns; docs/tasks.md)");
  auto* csv = cmd->add_flag("--csv", o->csv, "print CSV");
  auto* json = cmd->add_flag("--json", o->json, "print JSON")->excludes(csv);
  auto* md = cmd->add_flag("--markdown", o->markdown, "print a Markdown (GitHub) table")->excludes(csv, json);
  auto* tex = cmd->add_flag("--latex", o->latex, "print a LaTeX booktabs tabular")->excludes(csv, json, md);
  cmd->add_flag("--wide", o->wide, "terminal table with every column at full width")->excludes(csv, json, md, tex);
  cmd->add_option("--width", o->width, "terminal table width (default: the terminal's, 80 when not a terminal)");
  cmd->callback([o] {
    auto store = ResultStore::OpenReadOnly(o->dir);
    if (!store.ok()) return Fail("compare", store.status());
    CompareOptions copt{o->experiment, o->sort, {}};
    std::stringstream cols(o->columns);
    for (std::string c; std::getline(cols, c, ',');)
      if (!c.empty()) copt.columns.push_back(c);
    auto t = CompareTable(**store, copt);
    if (!t.ok()) return Fail("compare", t.status());
    if (o->csv) std::cout << FormatCsv(TableToQuery(*t));
    else if (o->json) std::cout << FormatJson(TableToQuery(*t));
    else if (o->markdown) std::cout << FormatMarkdown(*t);
    else if (o->latex) std::cout << FormatLatex(*t);
    else std::cout << FormatTerminal(*t, o->wide ? 0 : o->width > 0 ? o->width : TerminalColumns());
    std::cerr << NumericsNote(**store, o->experiment);  // "" unless the store mixes numerics versions
  });
}

void AddReportCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Write one self-contained HTML page with plots from a results directory "
                                           "(and each plot as SVG/PNG with --figures)");
  struct Opts {
    std::string dir = "quantlab-results", out, experiment, title = "quantlab report", figures;
    bool no_png = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--results", o->dir, "results directory")->capture_default_str();
  auto* out = cmd->add_option("--out", o->out, "HTML file to write");
  auto* fig = cmd->add_option("--figures", o->figures, "directory to write every plot to as <experiment>-<plot>.svg, "
                                                       "and .png when chromium is installed");
  cmd->add_flag("--no-png", o->no_png, "with --figures: SVG only, even when chromium is installed");
  cmd->add_option("--experiment", o->experiment, "only this experiment id");
  cmd->add_option("--title", o->title, "page title")->capture_default_str();
  cmd->callback([o, out, fig] {
    if (out->count() == 0 && fig->count() == 0)
      return Fail("report", Status::Error("nothing to write: give --out FILE.html and/or --figures DIR"));
    auto store = ResultStore::OpenReadOnly(o->dir);
    if (!store.ok()) return Fail("report", store.status());
    auto rep = RenderReport(**store, {o->experiment, o->title});
    if (!rep.ok()) return Fail("report", rep.status());
    if (!o->out.empty()) {
      std::ofstream f(o->out, std::ios::binary);
      if (!(f << rep->html)) return Fail("report", Status::Errorf("{}: cannot write the report", o->out));
      std::cout << "wrote " << o->out << " (" << rep->html.size() << " bytes)\n";
    }
    if (o->figures.empty()) return;
    const std::string chromium = o->no_png ? "" : FindChromium();
    auto files = WriteFigures(*rep, o->figures, chromium);
    if (!files.ok()) return Fail("report", files.status());
    std::cout << "wrote " << files->size() << " figure files to " << o->figures
              << (!chromium.empty() ? " (SVG and PNG)" : o->no_png ? " (SVG only)" : " (SVG only: no chromium on PATH)") << "\n";
  });
}

}  // namespace ql::cli
