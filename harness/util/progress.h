// Progress of the long steps (a sweep's cells, a whole-text evaluation, the baseline, GPTQ / AWQ / QAT
// calibration, training): the one facility every command uses. On a terminal a redrawn status line with
// an ETA on stderr; otherwise plain lines at a modest rate on the log stream, so a Slurm or nohup log
// shows where a run is. Never stdout: --json output stays one clean document. Not the result lines a
// command prints when a step ends (those are the command's own).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <mutex>
#include <string>

namespace ql {

// What a long computation reports: `done` of `total` units finished (called after each unit).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// A duration for a person: "7s", "3m05s", "1h02m"; "?" when not finite or negative.
std::string FormatDuration(double seconds);

struct ProgressStyle {
  bool tty = false;               // redraw one status line on stderr
  std::ostream* log = nullptr;    // plain lines when !tty; nullptr: none
  std::string prefix;             // put before every line, e.g. "[3/22] int4:g32 — "
  double quiet_seconds = 2;       // a step that ends sooner shows nothing
  double plain_every_seconds = 30;  // plain lines: at each further 10% and at least this often
  double redraw_seconds = 0.2;    // tty: at most this often
  std::function<double()> now;    // seconds on a monotonic clock; the steady clock when empty (tests set it)

  // For a command whose plain lines go to `log`: tty when stderr is a terminal. The environment variable
  // QL_PROGRESS overrides: "off" (nothing), "plain" (plain lines even on a terminal), "all" (plain, no
  // quiet time, a line at every update: for tests and for debugging a stuck step).
  static ProgressStyle ForStderr(std::ostream* log);
  bool off() const { return !tty && log == nullptr; }
};

// The plain line of a step: "<prefix><label>: 40% (26/64 windows), 8s elapsed, ETA 12s"; when done ==
// total: "<prefix><label>: 100% (64/64 windows) in 20s". unit may be empty ("(3/8)").
std::string ProgressLine(const std::string& prefix, const std::string& label, const std::string& unit, int64_t done,
                         int64_t total, double elapsed);

// One step's meter. Update() is thread-safe (windows may finish on worker threads). The clock starts at
// construction; the destructor clears a terminal line it drew.
class ProgressMeter {
 public:
  ProgressMeter(const ProgressStyle& style, std::string label, std::string unit = "");
  ~ProgressMeter();
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  void Update(int64_t done, int64_t total);
  // A ProgressFn that updates this meter (valid while the meter lives); empty when the style is off, so
  // callees skip the calls.
  ProgressFn Fn();

 private:
  double Now() const;
  bool Due(int64_t done, int64_t total, double elapsed);

  ProgressStyle style_;
  std::string label_, unit_;
  double start_ = 0, last_line_ = -1;
  int last_decile_ = 0;
  bool drawn_ = false, printed_ = false;
  std::mutex mu_;
};

// The sweep's per-cell result line: flushed to `log`, or on a terminal (tty) to stderr above a redrawn bar
// "[#####.....] done/total ETA eta" (cleared when done == total).
void StepLine(bool tty, std::ostream& log, const std::string& line, int done, int total, const std::string& eta);

}  // namespace ql
