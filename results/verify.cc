// Results-store verification and re-queueing (see verify.h).
#include "results/verify.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "results/h5_arrays.h"

namespace ql {
namespace fs = std::filesystem;
namespace {

struct OwnerInfo {
  std::string kind;             // "cell" or "baseline"
  int64_t n_tokens = -1;        // -1: no metrics row
  std::optional<double> kld_mean;
  int64_t n_layers = 0;         // layer_errors rows
  double max_layer_rel = 0;
};

std::optional<double> OptDouble(const SqlValue& v) {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return double(*i);
  return std::nullopt;
}
int64_t IntOr(const SqlValue& v, int64_t def) {
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  return def;
}

StatusOr<std::map<std::string, OwnerInfo>> LoadOwners(ResultStore& store) {
  std::map<std::string, OwnerInfo> owners;
  QL_ASSIGN_OR_RETURN(SqlResult cells, store.Query(
      "SELECT c.id, m.n_tokens, m.kld_mean, (SELECT count(*) FROM layer_errors l WHERE l.cell_id = c.id), "
      "(SELECT max(rel_mse) FROM layer_errors l WHERE l.cell_id = c.id) FROM cells c "
      "LEFT JOIN metrics m ON m.cell_id = c.id"));
  for (const auto& r : cells.rows) {
    OwnerInfo& o = owners[SqlValueToString(r[0])];
    o.kind = "cell";
    o.n_tokens = IntOr(r[1], -1);
    o.kld_mean = OptDouble(r[2]);
    o.n_layers = IntOr(r[3], 0);
    o.max_layer_rel = OptDouble(r[4]).value_or(0);
  }
  QL_ASSIGN_OR_RETURN(SqlResult bases, store.Query("SELECT id, n_tokens FROM baselines"));
  for (const auto& r : bases.rows) {
    OwnerInfo& o = owners[SqlValueToString(r[0])];
    o.kind = "baseline";
    o.n_tokens = IntOr(r[1], -1);
  }
  return owners;
}

bool AllZero(const std::vector<float>& v) {
  for (float x : v) {
    if (x != 0) return false;
  }
  return true;
}

// The checks one array can fail, given its owner's row; "" when it passes.
std::string CheckArray(const OwnerInfo& o, const std::string& name, const std::vector<float>& v) {
  const int64_t n = int64_t(v.size());
  const bool per_token = name == "nll" || name == "kld" || name == "p_diff";
  if (per_token && o.n_tokens >= 0 && n != o.n_tokens) {
    return fmt::format("array '{}' has {} values but the row says n_tokens = {}", name, n, o.n_tokens);
  }
  if (name == "layer_rel_mse" && n != o.n_layers) {
    return fmt::format("array 'layer_rel_mse' has {} values but layer_errors has {} rows", n, o.n_layers);
  }
  if (name == "nll" && n > 0 && AllZero(v)) return "array 'nll' is all zeros (no model predicts every token with p = 1)";
  if (name == "kld" && n > 0 && o.kld_mean.value_or(0) > 0 && AllZero(v)) {
    return fmt::format("array 'kld' is all zeros but metrics.kld_mean = {:g}", *o.kld_mean);
  }
  if (name == "layer_rel_mse" && n > 0 && o.max_layer_rel > 0 && AllZero(v)) {
    return fmt::format("array 'layer_rel_mse' is all zeros but layer_errors has rel_mse up to {:g}", o.max_layer_rel);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[size_t(i)])) return fmt::format("array '{}' has {} at index {}", name, v[size_t(i)], i);
  }
  return "";
}

}  // namespace

StatusOr<VerifyReport> VerifyStore(ResultStore& store) {
  VerifyReport rep;
  QL_ASSIGN_OR_RETURN(auto owners, LoadOwners(store));
  for (const auto& [id, o] : owners) (o.kind == "cell" ? rep.cells : rep.baselines)++;
  QL_ASSIGN_OR_RETURN(SqlResult arrays, store.Query("SELECT owner_id, name, h5_file, h5_path, length FROM arrays "
                                                    "ORDER BY owner_id, name"));
  std::set<std::string> reported;  // one problem per owner is enough to re-queue it
  for (const auto& r : arrays.rows) {
    ++rep.arrays;
    const std::string owner = SqlValueToString(r[0]), name = SqlValueToString(r[1]);
    const std::string file = (fs::path(store.dir()) / SqlValueToString(r[2])).string();
    auto it = owners.find(owner);
    auto problem = [&](std::string what) {
      if (reported.insert(owner).second)
        rep.problems.push_back({owner, it == owners.end() ? "orphan" : it->second.kind, std::move(what)});
    };
    if (reported.count(owner)) continue;
    if (it == owners.end()) {
      problem(fmt::format("arrays row '{}' belongs to no cell or baseline", name));
      continue;
    }
    if (!fs::exists(file)) {
      problem(fmt::format("{} is missing", SqlValueToString(r[2])));
      continue;
    }
    auto v = ReadH5Array(file, SqlValueToString(r[3]));
    if (!v.ok()) {
      problem(v.status().message());
      continue;
    }
    const int64_t length = IntOr(r[4], -1);
    if (int64_t(v->size()) != length) {
      problem(fmt::format("array '{}' has {} values, the arrays table says {}", name, v->size(), length));
      continue;
    }
    if (std::string why = CheckArray(it->second, name, *v); !why.empty()) problem(why);
  }
  // An ok cell must have its metrics.
  QL_ASSIGN_OR_RETURN(SqlResult bare, store.Query(
      "SELECT c.id FROM cells c LEFT JOIN metrics m ON m.cell_id = c.id WHERE c.status = 'ok' AND m.cell_id IS NULL"));
  for (const auto& r : bare.rows) {
    const std::string owner = SqlValueToString(r[0]);
    if (reported.insert(owner).second) rep.problems.push_back({owner, "cell", "status ok but no metrics row"});
  }
  return rep;
}

StatusOr<int64_t> RequeueBroken(ResultStore& store, const VerifyReport& report) {
  if (report.problems.empty()) return int64_t(0);
  SqliteDb& db = store.db();
  QL_RETURN_IF_ERROR(db.Begin());
  auto body = [&]() -> Status {
    for (const VerifyProblem& p : report.problems) {
      const char* table = p.kind == "cell" ? "cells" : p.kind == "baseline" ? "baselines" : nullptr;
      if (table) {
        QL_ASSIGN_OR_RETURN(SqlStatement st, db.Prepare(fmt::format("DELETE FROM {} WHERE id = ?", table)));
        QL_RETURN_IF_ERROR(st.Bind(1, p.owner).Exec());
      }
      QL_ASSIGN_OR_RETURN(SqlStatement a, db.Prepare("DELETE FROM arrays WHERE owner_id = ?"));
      QL_RETURN_IF_ERROR(a.Bind(1, p.owner).Exec());
    }
    return Status::Ok();
  };
  if (Status s = body(); !s.ok()) {
    db.Rollback();
    return s;
  }
  QL_RETURN_IF_ERROR(db.Commit());
  // Rows first, files after: a crash in between leaves unreferenced files, never a row without its file.
  for (const VerifyProblem& p : report.problems) {
    if (p.owner.find('/') != std::string::npos || p.owner.find("..") != std::string::npos) continue;
    std::error_code ec;
    fs::remove(store.ArraysPath(p.owner), ec);
  }
  return int64_t(report.problems.size());
}

}  // namespace ql
