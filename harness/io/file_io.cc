// Bounds-checked file reading/writing for the checkpoint readers (see file_io.h).
#include "harness/io/file_io.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "kernels/half.h"

namespace ql::io {

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out + "\"";
}

std::string UniqueTempPath(const std::string& final_path) {
  static std::atomic<uint64_t> counter{0};
  char host[256] = "host";
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  host[sizeof host - 1] = 0;
  for (char* c = host; *c; ++c) {
    if (*c == '/' || *c == '.') *c = '_';
  }
  return fmt::format("{}.tmp.{}.{}.{}", final_path, host, getpid(), counter.fetch_add(1));
}

FileReader::~FileReader() {
  if (f_) std::fclose(f_);
}

Status FileReader::Open(const std::string& path) {
  path_ = path;
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) return Status::Errorf("{}: cannot open for reading ({})", path, std::strerror(errno));
  if (std::fseek(f_, 0, SEEK_END) != 0) return Status::Errorf("{}: cannot seek ({})", path, std::strerror(errno));
  const long end = std::ftell(f_);
  if (end < 0) return Status::Errorf("{}: cannot determine the file size", path);
  size_ = uint64_t(end);
  std::fseek(f_, 0, SEEK_SET);
  pos_ = 0;
  return Status::Ok();
}

Status FileReader::Seek(uint64_t offset) {
  if (offset > size_)
    return Status::Errorf("{}: offset {} is past the end of the file ({} bytes); the file is truncated",
                          path_, offset, size_);
  if (std::fseek(f_, long(offset), SEEK_SET) != 0) return Status::Errorf("{}: cannot seek to {}", path_, offset);
  pos_ = offset;
  return Status::Ok();
}

Status FileReader::Read(void* dst, uint64_t n, std::string_view what) {
  if (n > size_ - pos_)
    return Status::Errorf("{}: truncated: reading {} needs {} bytes at offset {}, but the file has {} bytes",
                          path_, what, n, pos_, size_);
  if (n && std::fread(dst, 1, n, f_) != n)
    return Status::Errorf("{}: read error at offset {} while reading {}", path_, pos_, what);
  pos_ += n;
  return Status::Ok();
}

Status FileReader::Skip(uint64_t n, std::string_view what) {
  if (n > size_ - pos_)
    return Status::Errorf("{}: truncated: skipping {} needs {} bytes at offset {}, but the file has {} bytes",
                          path_, what, n, pos_, size_);
  return Seek(pos_ + n);
}

Status FileReader::ReadAt(uint64_t offset, void* dst, uint64_t n, std::string_view what) {
  if (offset > size_ || n > size_ - offset)
    return Status::Errorf("{}: truncated: {} spans bytes [{}, {}) but the file has {} bytes", path_, what, offset,
                          offset + n, size_);
  const uint64_t saved = pos_;
  QL_RETURN_IF_ERROR(Seek(offset));
  QL_RETURN_IF_ERROR(Read(dst, n, what));
  return Seek(saved);
}

FileWriter::~FileWriter() {
  if (f_) std::fclose(f_);
}

Status FileWriter::Open(const std::string& path) {
  path_ = path;
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) return Status::Errorf("{}: cannot open for writing ({})", path, std::strerror(errno));
  pos_ = 0;
  failed_ = false;
  return Status::Ok();
}

void FileWriter::Write(const void* src, uint64_t n) {
  if (failed_ || n == 0) return;
  if (std::fwrite(src, 1, n, f_) != n) failed_ = true;
  pos_ += n;
}

Status FileWriter::Close() {
  if (!f_) return Status::Errorf("{}: writer was not open", path_);
  const bool close_failed = std::fclose(f_) != 0;
  f_ = nullptr;
  if (failed_ || close_failed) return Status::Errorf("{}: write failed (disk full or permission?)", path_);
  return Status::Ok();
}

StatusOr<std::string> ReadTextFile(const std::string& path) {
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  std::string s(r.size(), '\0');
  QL_RETURN_IF_ERROR(r.Read(s.data(), s.size(), "the whole file"));
  return s;
}

Status WriteTextFile(const std::string& path, std::string_view text) {
  FileWriter w;
  QL_RETURN_IF_ERROR(w.Open(path));
  w.Write(text.data(), text.size());
  return w.Close();
}

std::string_view FloatDtypeName(FloatDtype d) {
  switch (d) {
    case FloatDtype::kF32: return "F32";
    case FloatDtype::kF16: return "F16";
    case FloatDtype::kBF16: return "BF16";
  }
  return "?";
}

int FloatDtypeBytes(FloatDtype d) { return d == FloatDtype::kF32 ? 4 : 2; }

void EncodeFloats(const float* src, int64_t n, FloatDtype d, std::vector<uint8_t>* out) {
  const size_t base = out->size();
  out->resize(base + size_t(n) * FloatDtypeBytes(d));
  uint8_t* p = out->data() + base;
  for (int64_t i = 0; i < n; ++i) {
    if (d == FloatDtype::kF32) {
      std::memcpy(p + 4 * i, &src[i], 4);
    } else {
      const uint16_t h = d == FloatDtype::kF16 ? F32ToF16(src[i]) : F32ToBf16(src[i]);
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
}

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace ql::io
