// quantlab: the command-line entry point. Parses the subcommand and hands over to cmd_*.cc.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "ql_version.h"
#include "harness/cli/commands.h"

namespace ql::cli {
int& ExitCode() {
  static int code = 0;
  return code;
}
void Fail(const std::string& command, const Status& status) {
  std::fprintf(stderr, "quantlab %s: %s\n", command.c_str(), status.message().c_str());
  ExitCode() = 1;
}
}  // namespace ql::cli

int main(int argc, char** argv) {
  CLI::App app{"quantlab: measure what quantizing a transformer costs in quality, and what it saves"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("quantlab ") + QL_GIT_VERSION);
  ql::cli::AddFormatsCommand(app);
  ql::cli::AddRoundtripCommand(app);
  ql::cli::AddInspectCommand(app);
  ql::cli::AddEvalCommand(app);
  ql::cli::AddGenerateCommand(app);
  ql::cli::AddTrainCommand(app);
  ql::cli::AddSweepCommand(app);
  ql::cli::AddSensitivityCommand(app);
  ql::cli::AddSearchCommand(app);
  ql::cli::AddCompareCommand(app);
  ql::cli::AddQueryCommand(app);
  ql::cli::AddMergeCommand(app);
  ql::cli::AddStatusCommand(app);
  ql::cli::AddReportCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    // One line, non-zero: bad flags, unknown subcommand, missing arguments.
    std::fprintf(stderr, "quantlab: %s (see quantlab --help)\n", e.what());
    return 2;
  }
  return ql::cli::ExitCode();
}
