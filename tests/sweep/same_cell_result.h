// Test-only: two CellResults are the same bit for bit (status ok, every metric, every layer's rel_mse and
// SQNR, every array). Shared by the tests of the ways a cell is computed more cheaply (prefix reuse,
// body reuse) against the cell computed in full.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/eval/metric_table.h"
#include "harness/sweep/cell_eval.h"

namespace ql::testing {

inline bool SameFloatBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

inline void ExpectBitwiseSameCellResult(const CellResult& a, const CellResult& b, const std::string& what) {
  ASSERT_EQ(a.cell.status, "ok") << what << ": " << a.cell.reason;
  ASSERT_EQ(b.cell.status, "ok") << what << ": " << b.cell.reason;
  ASSERT_EQ(a.metrics->values.size(), b.metrics->values.size()) << what;
  for (size_t i = 0; i < a.metrics->values.size(); ++i) {
    ASSERT_EQ(a.metrics->values[i].has_value(), b.metrics->values[i].has_value()) << what;
    if (a.metrics->values[i])
      EXPECT_EQ(std::bit_cast<uint64_t>(*a.metrics->values[i]), std::bit_cast<uint64_t>(*b.metrics->values[i]))
          << what << ": metric " << MetricTable()[i].name;
  }
  ASSERT_EQ(a.layer_errors.size(), b.layer_errors.size()) << what;
  for (size_t l = 0; l < a.layer_errors.size(); ++l) {
    EXPECT_EQ(std::bit_cast<uint64_t>(a.layer_errors[l].rel_mse), std::bit_cast<uint64_t>(b.layer_errors[l].rel_mse))
        << what << " layer " << l;
    EXPECT_EQ(std::bit_cast<uint64_t>(a.layer_errors[l].sqnr_db), std::bit_cast<uint64_t>(b.layer_errors[l].sqnr_db))
        << what << " layer " << l;
  }
  ASSERT_EQ(a.arrays.size(), b.arrays.size()) << what;
  for (const auto& [name, v] : a.arrays) EXPECT_TRUE(SameFloatBits(v, b.arrays.at(name))) << what << " array " << name;
}

}  // namespace ql::testing
