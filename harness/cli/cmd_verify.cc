// `quantlab verify RESULTS [--requeue]`: checks every row's arrays (results/verify.h); exit 0 when the
// store is sound, 1 with one stdout line per broken cell/baseline otherwise. --requeue deletes the broken
// ones (taking the writer lock) so that rerunning the sweep recomputes them.
#include <iostream>

#include "harness/cli/commands.h"
#include "results/verify.h"

namespace ql::cli {

void AddVerifyCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("verify", "Check that every result row points to complete arrays; --requeue "
                                           "deletes broken cells so a rerun recomputes them");
  struct Opts {
    std::string dir;
    bool requeue = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("results", o->dir, "results directory (holds results.sqlite)")->required();
  cmd->add_flag("--requeue", o->requeue, "delete broken cells and baselines (rows, arrays, .h5 files)");
  cmd->callback([o] {
    auto store = o->requeue ? ResultStore::Open(o->dir) : ResultStore::OpenReadOnly(o->dir);
    if (!store.ok()) return Fail("verify", store.status());
    auto rep = VerifyStore(**store);
    if (!rep.ok()) return Fail("verify", rep.status());
    for (const VerifyProblem& p : rep->problems) std::cout << p.kind << " " << p.owner << ": " << p.what << "\n";
    std::cout << fmt::format("verify {}: {} cells, {} baselines, {} arrays checked, {} broken", o->dir,
                             rep->cells, rep->baselines, rep->arrays, rep->problems.size());
    if (o->requeue && !rep->ok()) {
      auto n = RequeueBroken(**store, *rep);
      if (!n.ok()) {
        std::cout << "\n";
        return Fail("verify", n.status());
      }
      std::cout << fmt::format(", {} re-queued (rerun the sweep to recompute them)\n", *n);
      return;
    }
    std::cout << "\n";
    if (!rep->ok()) ExitCode() = 1;
  });
}

}  // namespace ql::cli
