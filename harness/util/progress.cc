// The progress facility (see progress.h).
#include "harness/util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include <fmt/format.h>

namespace ql {
namespace {

double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr const char* kClearLine = "\r\033[K";  // carriage return, erase to the end of the line

}  // namespace

std::string FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int t = int(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

ProgressStyle ProgressStyle::ForStderr(std::ostream* log) {
  ProgressStyle s;
  s.log = log;
  s.tty = isatty(fileno(stderr)) != 0;
  const char* env = std::getenv("QL_PROGRESS");
  const std::string_view mode = env ? env : "";
  if (mode == "off") {
    s.tty = false;
    s.log = nullptr;
  } else if (mode == "plain" || mode == "all") {
    s.tty = false;
    if (!s.log) s.log = &std::cerr;
    if (mode == "all") s.quiet_seconds = s.plain_every_seconds = 0;
  }
  return s;
}

std::string ProgressLine(const std::string& prefix, const std::string& label, const std::string& unit, int64_t done,
                         int64_t total, double elapsed) {
  const std::string count = fmt::format("{}/{}{}{}", done, total, unit.empty() ? "" : " ", unit);
  const int pct = total > 0 ? int(100 * std::clamp<int64_t>(done, 0, total) / total) : 0;
  if (done >= total) return fmt::format("{}{}: 100% ({}) in {}", prefix, label, count, FormatDuration(elapsed));
  const double eta = done > 0 ? elapsed * double(total - done) / double(done) : NAN;
  return fmt::format("{}{}: {}% ({}), {} elapsed, ETA {}", prefix, label, pct, count, FormatDuration(elapsed),
                     FormatDuration(eta));
}

ProgressMeter::ProgressMeter(const ProgressStyle& style, std::string label, std::string unit)
    : style_(style), label_(std::move(label)), unit_(std::move(unit)) {
  start_ = Now();
}

ProgressMeter::~ProgressMeter() {
  if (drawn_) std::cerr << kClearLine << std::flush;
}

double ProgressMeter::Now() const { return style_.now ? style_.now() : SteadySeconds(); }

ProgressFn ProgressMeter::Fn() {
  if (style_.off()) return {};
  return [this](int64_t done, int64_t total) { Update(done, total); };
}

// Whether this update shows: after the quiet time; on a terminal at the redraw rate; in a log at the first
// chance, at each further 10%, after plain_every_seconds, and at the end.
bool ProgressMeter::Due(int64_t done, int64_t total, double elapsed) {
  if (elapsed < style_.quiet_seconds) return false;
  if (style_.tty) return done < total && (!drawn_ || elapsed - last_line_ >= style_.redraw_seconds);
  if (!printed_ || done >= total) return true;
  const int decile = total > 0 ? int(10 * done / total) : 0;
  return decile > last_decile_ || elapsed - last_line_ >= style_.plain_every_seconds;
}

void ProgressMeter::Update(int64_t done, int64_t total) {
  if (style_.off()) return;
  std::lock_guard<std::mutex> lock(mu_);
  const double elapsed = Now() - start_;
  if (style_.tty && done >= total && drawn_) {
    std::cerr << kClearLine << std::flush;
    drawn_ = false;
    return;
  }
  if (!Due(done, total, elapsed)) return;
  const std::string line = ProgressLine(style_.prefix, label_, unit_, done, total, elapsed);
  if (style_.tty) {
    std::cerr << kClearLine << line << std::flush;
    drawn_ = true;
  } else {
    *style_.log << line << std::endl;
    printed_ = true;
  }
  last_line_ = elapsed;
  last_decile_ = total > 0 ? int(10 * done / total) : 0;
}

void StepLine(bool tty, std::ostream& log, const std::string& line, int done, int total, const std::string& eta) {
  if (!tty) {
    log << line << std::endl;
    return;
  }
  const int width = 30, fill = int(width * double(done) / double(std::max(1, total)));
  std::cerr << kClearLine << line << "\n"
            << "[" << std::string(fill, '#') << std::string(width - fill, '.') << "] " << done << "/" << total
            << " ETA " << eta << std::flush;
  if (done == total) std::cerr << kClearLine;
}

}  // namespace ql
