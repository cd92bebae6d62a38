// A self-deleting temporary directory for the tests (every suite): a fresh, uniquely named directory under
// the system temp directory, removed with everything in it when the object goes. Test-only.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <string_view>

namespace qltest {

class TempDir {
 public:
  // prefix names the suite ("ql_sweep_test"), so a directory left by a killed run says whose it is.
  explicit TempDir(std::string_view prefix = "ql_test") {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            (std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  std::string sub(std::string_view name) const { return (path_ / name).string(); }  // the same, as a string
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace qltest
