// Text files (see text.h).
#include "datasets/text.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ql {

long FirstInvalidUtf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len = 0;
    unsigned cp = 0, min = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return long(i);
    if (i + len > n) return long(i);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return long(i);
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return long(i);
    i += len;
  }
  return -1;
}

StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::Errorf("{}: {} does not exist", path, what);
  if (fs::is_directory(path, ec)) return Status::Errorf("{}: {} is a directory, not a text file", path, what);
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: {} cannot be opened for reading", path, what);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  if (text.empty()) return Status::Errorf("{}: {} is empty", path, what);
  if (const size_t nul = text.find('\0'); nul != std::string::npos)
    return Status::Errorf("{}: {} has a NUL byte at offset {}: not a text file (UTF-8 expected)", path, what, nul);
  if (const long bad = FirstInvalidUtf8(text); bad >= 0)
    return Status::Errorf("{}: {} is not valid UTF-8 (first bad byte at offset {}); convert it, e.g. with iconv",
                          path, what, bad);
  return text;
}

}  // namespace ql
