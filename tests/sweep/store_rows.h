// The rows of an SQL query on a results directory, for the sweep tests: a failed open or query is a test
// failure (and no rows). Test-only.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "results/store.h"

namespace ql {

inline SqlResult Rows(const std::string& results, const std::string& sql) {
  auto s = ResultStore::OpenReadOnly(results);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return {};
  auto r = (*s)->Query(sql);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : SqlResult{};
}

}  // namespace ql
