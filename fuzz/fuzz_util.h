// Helpers shared by the libFuzzer targets: the parsers under test read files, so each input is written
// to one per-process scratch file (in /dev/shm when present) and parsed from there.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace qlfuzz {

// Writes data to a scratch file named `name` and returns its path. The file is reused by every input.
inline std::string WriteScratch(const uint8_t* data, size_t size, const std::string& name) {
  static const std::string dir = [] {
    const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string d = std::string(base) + "/ql_fuzz_" + std::to_string(getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();  // the scratch directory itself is broken: not a finding about the parser
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace qlfuzz
