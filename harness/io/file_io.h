// Bounds-checked little-endian file reading and writing shared by the checkpoint readers/writers.
// Every failure is a Status naming the file, the byte offset and what was being read; never a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

// Sequential reader over a file with a known size; every read is checked against the end of file.
class FileReader {
 public:
  ~FileReader();
  FileReader() = default;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  Status Open(const std::string& path);
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  Status Seek(uint64_t offset);
  // Reads n bytes; `what` names the field in the error message ("tensor info of 'x'").
  Status Read(void* dst, uint64_t n, std::string_view what);
  Status Skip(uint64_t n, std::string_view what);
  template <typename T>
  Status ReadPod(T* v, std::string_view what) { return Read(v, sizeof(T), what); }
  // Reads n bytes at an absolute offset without moving the sequential position.
  Status ReadAt(uint64_t offset, void* dst, uint64_t n, std::string_view what);

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t size_ = 0, pos_ = 0;
};

// Whole-file writer: accumulates into the stdio buffer and reports the first failure on Close().
class FileWriter {
 public:
  ~FileWriter();
  Status Open(const std::string& path);
  void Write(const void* src, uint64_t n);
  template <typename T>
  void WritePod(const T& v) { Write(&v, sizeof(T)); }
  uint64_t pos() const { return pos_; }
  Status Close();

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  bool failed_ = false;
};

// A temporary name beside `final_path` that no other writer uses: "<final>.tmp.<host>.<pid>.<n>".
// Write there, then rename onto final_path (atomic on POSIX), so two processes never share a temp file.
std::string UniqueTempPath(const std::string& final_path);

StatusOr<std::string> ReadTextFile(const std::string& path);
Status WriteTextFile(const std::string& path, std::string_view text);

// Storage dtypes shared by safetensors and GGUF for plain float tensors.
enum class FloatDtype { kF32, kF16, kBF16 };
std::string_view FloatDtypeName(FloatDtype d);  // "F32", "F16", "BF16"
int FloatDtypeBytes(FloatDtype d);
// Encodes floats as little-endian bytes of the dtype (fp16/bf16 round to nearest even, docs/formats.md §1.2).
void EncodeFloats(const float* src, int64_t n, FloatDtype d, std::vector<uint8_t>* out);

std::string ShapeString(const std::vector<int64_t>& shape);  // "[64, 512]"

// A string from a file, double-quoted for a message: printable ASCII as is, '"' and '\\' escaped, every
// other byte as \xNN. Safe for any bytes (fmt's "{:?}" aborts on some invalid UTF-8 in fmt 9).
std::string Quoted(std::string_view s);

}  // namespace ql::io
