// Test helper: a sensitivity scan of an experiment into a results directory, as the sweep tests run it
// (adaptive as the file says, or every window when `full`; optionally one shard; no progress bar).
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "harness/sweep/sensitivity.h"

namespace ql::testing {

inline std::unique_ptr<Scan> RunTestScan(const Experiment& e, const std::string& results, bool full,
                                         std::ostream& log, const std::string& shard = "") {
  ScanOptions o;
  o.spec = *e.sensitivity;
  if (full) o.spec.adaptive.reset();
  o.sweep.results = results;
  o.sweep.shard = shard;
  o.sweep.progress_bar = false;
  auto scan = RunSensitivity(e, o, log);
  EXPECT_TRUE(scan.ok()) << scan.status().message();
  return scan.ok() ? std::move(*scan) : nullptr;
}

}  // namespace ql::testing
