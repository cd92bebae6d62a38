// The quantlab subcommands. Each lives in its own cmd_<name>.cc and registers itself with
// Add<Name>Command, called from main.cc. A command reports failure with Fail(): one line on stderr
// ("quantlab <cmd>: <reason>") and a non-zero exit code.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "kernels/status.h"

namespace ql::cli {

int& ExitCode();                          // what main() returns
void Fail(const std::string& command, const Status& status);  // prints, sets ExitCode() = 1
std::string Printable(std::string_view s);  // control characters (newline, ESC, ...) as \xNN

void AddFormatsCommand(CLI::App& app);
void AddRoundtripCommand(CLI::App& app);
void AddQueryCommand(CLI::App& app);
void AddMergeCommand(CLI::App& app);
void AddStatusCommand(CLI::App& app);
void AddReportCommand(CLI::App& app);
void AddSweepCommand(CLI::App& app);
void AddCompareCommand(CLI::App& app);
void AddEvalCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddGenerateCommand(CLI::App& app);
void AddTrainCommand(CLI::App& app);
void AddVerifyCommand(CLI::App& app);
void AddExportCommand(CLI::App& app);
void AddImatrixCommand(CLI::App& app);
void AddTasksCommand(CLI::App& app);
void AddSensitivityCommand(CLI::App& app);
void AddSearchCommand(CLI::App& app);

}  // namespace ql::cli
