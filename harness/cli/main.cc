// quantlab: the command-line entry point. Parses the subcommand and hands over to cmd_*.cc.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <cblas.h>

#include "ql_version.h"
#include "harness/cli/commands.h"
#include "harness/util/blas.h"
#include "kernels/simd_target.h"

namespace ql::cli {
int& ExitCode() {
  static int code = 0;
  return code;
}
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  return out;
}
void Fail(const std::string& command, const Status& status) {
  // One line whatever a file put into the message (names with newlines or escape sequences).
  std::fprintf(stderr, "quantlab %s: %s\n", command.c_str(), Printable(status.message()).c_str());
  ExitCode() = 1;
}
}  // namespace ql::cli

int main(int argc, char** argv) {
  // quantlab's own kernels do the parallel work; OpenBLAS (left for LAPACK factorizations and a few
  // products in GPTQ and calibration) runs on one thread, because its threaded paths sum in an order
  // that depends on the thread count and every result must be bitwise the same for any count
  // (tests/sweep/numerics_test.cc, harness/util/blas.h).
  ql::UseOneBlasThread();
  // QL_SIMD=avx2 (or sse4) computes a narrower machine's numbers bit for bit (kernels/simd_target.h).
  if (const ql::Status simd = ql::LimitSimdTargetFromEnvironment(); !simd.ok()) {
    std::fprintf(stderr, "quantlab: %s\n", simd.message().c_str());
    return 2;
  }
  CLI::App app{"quantlab: measure what quantizing a transformer costs in quality, and what it saves"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("quantlab ") + QL_GIT_VERSION);
  ql::cli::AddFormatsCommand(app);
  ql::cli::AddRoundtripCommand(app);
  ql::cli::AddInspectCommand(app);
  ql::cli::AddEvalCommand(app);
  ql::cli::AddGenerateCommand(app);
  ql::cli::AddTrainCommand(app);
  ql::cli::AddExportCommand(app);
  ql::cli::AddImatrixCommand(app);
  ql::cli::AddTasksCommand(app);
  ql::cli::AddSweepCommand(app);
  ql::cli::AddSensitivityCommand(app);
  ql::cli::AddSearchCommand(app);
  ql::cli::AddCompareCommand(app);
  ql::cli::AddQueryCommand(app);
  ql::cli::AddMergeCommand(app);
  ql::cli::AddStatusCommand(app);
  ql::cli::AddReportCommand(app);
  ql::cli::AddVerifyCommand(app);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known |= sub->check_name(argv[1]);
    if (!known) {
      std::fprintf(stderr, "quantlab: unknown command '%s' (see quantlab --help for the list)\n", argv[1]);
      return 2;
    }
  }
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
