// The writer lock of a results directory: an exclusive flock(2) on DIR/.lock, which holds
// "pid <pid> host <host> since <UTC time>" of the holder. One writing process per directory, so two
// sweeps never compute, write or rename the same cell's files at once. Readers take no lock (SQLite's
// WAL keeps them consistent). Not a lock between threads of one process: opening the same directory
// again in the holding process shares the lock (counted), as SQLite shares its file locks.
// flock is released by the kernel when the process dies, so a killed sweep never leaves a stale lock.
#pragma once

#include <memory>
#include <string>

#include "kernels/status.h"

namespace ql {

class ResultsLock {
 public:
  // Takes the lock on DIR (which must exist). Held by another process: with wait=false an error naming
  // the holder's pid and host; with wait=true blocks until it is released.
  static StatusOr<std::shared_ptr<ResultsLock>> Acquire(const std::string& dir, bool wait = false);
  ~ResultsLock();
  ResultsLock(const ResultsLock&) = delete;
  ResultsLock& operator=(const ResultsLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  ResultsLock(std::string path, int fd, int pid) : path_(std::move(path)), fd_(fd), pid_(pid) {}
  std::string path_;
  int fd_ = -1;
  int pid_ = 0;  // the process that took it: a forked child does not inherit the right to share it
};

// "pid 123 host h since ..." as written in DIR/.lock, or "" when nobody wrote it.
std::string ReadLockHolder(const std::string& dir);

}  // namespace ql
