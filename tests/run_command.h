// Runs a shell command for the tests that drive the quantlab binary (tests/cli, tests/sweep): what it
// wrote to stdout (plus whatever the command line redirects there) and its exit code.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace qltest {

struct CommandResult {
  int exit_code = -1;  // -1 when the command could not start or did not exit normally
  std::string out;
};

inline CommandResult RunCommand(const std::string& cmd) {
  // Progress lines off unless the test's command sets QL_PROGRESS itself: on a loaded machine a step may
  // outlast their quiet time, and the tests compare stderr (often merged into stdout) line by line.
  setenv("QL_PROGRESS", "off", /*overwrite=*/0);
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace qltest
