// Runs a test body once per Highway target this binary was compiled for and this CPU supports, so
// every dynamic-dispatch path of a kernel is checked against its scalar reference. Test-only.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

namespace ql {

inline void ForEachTarget(const std::function<void()>& fn) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    SCOPED_TRACE(hwy::TargetName(t));
    hwy::SetSupportedTargetsForTest(t);
    fn();
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace ql
