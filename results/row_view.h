// Reading a query result's row by column name: a missing column reads as NULL, so an older store, or
// a column added later, changes nothing for the code that reads it (compare, report).
#pragma once

#include <cmath>
#include <map>
#include <string>

#include "results/sqlite_db.h"

namespace ql {

// Column name -> index; the first of a repeated name (SELECT c.*, m.* ...).
inline std::map<std::string, size_t> ColumnIndex(const SqlResult& r) {
  std::map<std::string, size_t> idx;
  for (size_t i = 0; i < r.columns.size(); ++i) idx.emplace(r.columns[i], i);
  return idx;
}

class RowView {
 public:
  RowView(const SqlResult& r, size_t i, const std::map<std::string, size_t>& idx) : r_(&r), i_(i), idx_(&idx) {}
  SqlValue Get(const std::string& name) const {
    auto it = idx_->find(name);
    return it == idx_->end() ? SqlValue{} : r_->rows[i_][it->second];
  }
  std::string Text(const std::string& name) const { return SqlValueToString(Get(name)); }
  double Num(const std::string& name) const {  // NaN when NULL, text or missing
    const SqlValue v = Get(name);
    if (auto* d = std::get_if<double>(&v)) return *d;
    if (auto* n = std::get_if<int64_t>(&v)) return double(*n);
    return NAN;
  }

 private:
  const SqlResult* r_;
  size_t i_;
  const std::map<std::string, size_t>* idx_;
};

}  // namespace ql
