// Status / StatusOr for expected failures at boundaries, and QL_CHECK for programmer errors.
// Not an exception framework: a Status message names the file or value at fault and the fix.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace ql {

class Status {
 public:
  Status() = default;  // ok
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }
  template <typename... Args>
  static Status Errorf(fmt::format_string<Args...> f, Args&&... args) {
    return Status(fmt::format(f, std::forward<Args>(args)...));
  }
  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kOk = "ok";
    return message_ ? *message_ : kOk;
  }

 private:
  explicit Status(std::string m) : message_(std::move(m)) {}
  std::optional<std::string> message_;
};

template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::Error("StatusOr built from an ok Status (programmer error)");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s %s\n", file, line, cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ql

// Invariant checks: abort with file:line. QL_DCHECK is for hot loops and vanishes with NDEBUG.
#define QL_CHECK(cond, ...)                                                              \
  do {                                                                                   \
    if (!(cond)) ::ql::CheckFailed(__FILE__, __LINE__, #cond, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
#ifdef NDEBUG
#define QL_DCHECK(cond, ...) \
  do {                       \
  } while (0)
#else
#define QL_DCHECK(cond, ...) QL_CHECK(cond, __VA_ARGS__)
#endif

// Propagate a failed Status / assign from a StatusOr.
#define QL_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::ql::Status _st = (expr);            \
    if (!_st.ok()) return _st;            \
  } while (0)
#define QL_CONCAT_INNER(a, b) a##b
#define QL_CONCAT(a, b) QL_CONCAT_INNER(a, b)
#define QL_ASSIGN_OR_RETURN(lhs, expr) QL_ASSIGN_OR_RETURN_IMPL(QL_CONCAT(_so_, __LINE__), lhs, expr)
#define QL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
