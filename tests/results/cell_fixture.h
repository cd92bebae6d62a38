// A committed cell's identity fields for store tests: an ok int4:g32 RTN cell with no metrics, which each
// test fills with the metrics, arrays and task rows it checks.
#pragma once

#include <string>

#include "results/store.h"

namespace qltest {

inline ql::CellResult MinimalCell(const std::string& id, const std::string& protocol = "llamacpp:ctx64") {
  ql::CellResult r;
  r.cell.id = id;
  r.cell.protocol = protocol;
  r.cell.weight_scheme = "int4:g32";
  r.cell.algorithm = "rtn";
  r.cell.ignore_set = "none";
  r.cell.config = "{}";
  r.cell.status = "ok";
  r.cell.started_at = r.cell.finished_at = "2026-12-01T12:00:00Z";
  r.cell.host = "test";
  r.cell.code_version = "abc";
  return r;
}

}  // namespace qltest
