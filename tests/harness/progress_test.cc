// Tests of the progress facility (harness/util/progress.h): the plain-line format, the rate of plain lines
// under a fake clock, the quiet time, and the QL_PROGRESS overrides.
#include "harness/util/progress.h"

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// A meter on a plain log with a clock the test moves: `units` updates, `step` seconds apart.
std::vector<std::string> RunMeter(int64_t units, double step, double quiet = 2, double every = 30) {
  std::ostringstream log;
  double t = 0;
  ProgressStyle st;
  st.log = &log;
  st.quiet_seconds = quiet;
  st.plain_every_seconds = every;
  st.now = [&t] { return t; };
  ProgressMeter m(st, "eval", "windows");
  for (int64_t i = 1; i <= units; ++i) {
    t += step;
    m.Update(i, units);
  }
  return Lines(log.str());
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(59.4), "59s");
  EXPECT_EQ(FormatDuration(59.6), "1m00s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(3725), "1h02m");
  EXPECT_EQ(FormatDuration(NAN), "?");
  EXPECT_EQ(FormatDuration(-1), "?");
}

TEST(Progress, PlainLineFormat) {
  // ETA = elapsed · (total − done) / done = 8 · 38 / 26 = 11.7 s.
  EXPECT_EQ(ProgressLine("", "eval", "windows", 26, 64, 8.0), "eval: 40% (26/64 windows), 8s elapsed, ETA 12s");
  EXPECT_EQ(ProgressLine("[3/22] int4:g32 — ", "gptq", "", 3, 9, 61), "[3/22] int4:g32 — gptq: 33% (3/9), 1m01s elapsed, ETA 2m02s");
  EXPECT_EQ(ProgressLine("", "eval", "windows", 64, 64, 20.2), "eval: 100% (64/64 windows) in 20s");
  EXPECT_EQ(ProgressLine("", "qat", "", 0, 200, 3), "qat: 0% (0/200), 3s elapsed, ETA ?");
}

TEST(Progress, PlainLinesAtEachTenthAfterTheQuietTime) {
  // 100 windows, 0.5 s each: the first line once 2 s have passed, then 10%, 20%, … 90%, and the end.
  const std::vector<std::string> lines = RunMeter(100, 0.5);
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines.front(), "eval: 4% (4/100 windows), 2s elapsed, ETA 48s");
  EXPECT_EQ(lines[1], "eval: 10% (10/100 windows), 5s elapsed, ETA 45s");
  EXPECT_EQ(lines[9], "eval: 90% (90/100 windows), 45s elapsed, ETA 5s");
  EXPECT_EQ(lines.back(), "eval: 100% (100/100 windows) in 50s");
}

TEST(Progress, PlainLinesAtLeastEveryIntervalOnASlowStep) {
  // 1000 units of 1 s: a tenth takes 100 s, so the 30 s rule fills in between.
  const std::vector<std::string> lines = RunMeter(1000, 1.0);
  ASSERT_GE(lines.size(), 5u);
  EXPECT_EQ(lines[0].substr(0, 18), "eval: 0% (2/1000 w");
  EXPECT_EQ(lines[1].substr(0, 19), "eval: 3% (32/1000 w");
  EXPECT_EQ(lines[2].substr(0, 19), "eval: 6% (62/1000 w");
  EXPECT_EQ(lines[3].substr(0, 19), "eval: 9% (92/1000 w");
  EXPECT_EQ(lines[4].substr(0, 21), "eval: 10% (100/1000 w");
  EXPECT_EQ(lines.size(), 41u);  // four in each tenth (at its start and every 30 s after), and the end
}

TEST(Progress, AShortStepStaysSilent) {
  EXPECT_TRUE(RunMeter(10, 0.1).empty());  // 1 s in all, under the 2 s quiet time
}

TEST(Progress, EnvironmentOverrides) {
  std::ostringstream log;
  setenv("QL_PROGRESS", "off", 1);
  ProgressStyle off = ProgressStyle::ForStderr(&log);
  EXPECT_TRUE(off.off());
  ProgressMeter m_off(off, "eval");
  EXPECT_FALSE(m_off.Fn());  // callees skip the calls altogether
  setenv("QL_PROGRESS", "all", 1);
  ProgressStyle all = ProgressStyle::ForStderr(&log);
  EXPECT_FALSE(all.tty);
  EXPECT_EQ(all.log, &log);
  {
    ProgressMeter m(all, "awq", "layers");
    ProgressFn f = m.Fn();
    ASSERT_TRUE(f);
    f(1, 2);
    f(2, 2);
  }
  unsetenv("QL_PROGRESS");
  const std::vector<std::string> lines = Lines(log.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].substr(0, 24), "awq: 50% (1/2 layers), 0");
  EXPECT_EQ(lines[1].substr(0, 28), "awq: 100% (2/2 layers) in 0s");
}

}  // namespace
}  // namespace ql
