// CPU time of this process (user + system, summed over its threads): the cost measure on a shared
// machine, where wall seconds measure the load as much as the work. Not a wall clock (std::chrono).
#pragma once

#include <ctime>

namespace ql {

// Seconds of CPU this process has used so far (CLOCK_PROCESS_CPUTIME_ID: every thread, user + system).
inline double ProcessCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

}  // namespace ql
