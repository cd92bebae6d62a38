// The results directory writer lock (see lock.h).
#include "results/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace ql {
namespace fs = std::filesystem;
namespace {

std::string LockPath(const std::string& dir) { return (fs::path(dir) / ".lock").string(); }

std::string HolderLine() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return fmt::format("pid {} host {} since {}\n", getpid(), host, when);
}

// Locks held by this process, by canonical lock path: a second Open in the same process shares one.
std::mutex& RegistryMutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, std::weak_ptr<ResultsLock>>& Registry() {
  static std::map<std::string, std::weak_ptr<ResultsLock>> r;
  return r;
}

}  // namespace

std::string ReadLockHolder(const std::string& dir) {
  std::ifstream f(LockPath(dir));
  std::string line;
  std::getline(f, line);
  return line;
}

StatusOr<std::shared_ptr<ResultsLock>> ResultsLock::Acquire(const std::string& dir, bool wait) {
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(fs::path(LockPath(dir)), ec);
  const std::string path = ec ? LockPath(dir) : canon.string();
  std::lock_guard<std::mutex> guard(RegistryMutex());
  if (auto held = Registry()[path].lock(); held && held->pid_ == getpid()) return held;
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Errorf("{}: cannot open the results lock file ({}); is the directory writable?", path,
                          std::strerror(errno));
  }
  while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      std::string holder = ReadLockHolder(dir);
      return Status::Errorf("{}: another quantlab process is writing this results directory ({}); wait for it "
                            "to finish or give a different results directory",
                            dir, holder.empty() ? "holder unknown" : holder);
    }
    return Status::Errorf("{}: cannot lock ({})", path, std::strerror(err));
  }
  const std::string line = HolderLine();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, line.data(), line.size(), 0) != ssize_t(line.size())) {
    const int err = errno;
    close(fd);
    return Status::Errorf("{}: cannot record the lock holder ({})", path, std::strerror(err));
  }
  std::shared_ptr<ResultsLock> lock(new ResultsLock(path, fd, int(getpid())));
  Registry()[path] = lock;
  return lock;
}

ResultsLock::~ResultsLock() {
  // The holder line stays in the file (harmless: nobody holds the flock); it names the last writer.
  flock(fd_, LOCK_UN);
  close(fd_);
}

}  // namespace ql
