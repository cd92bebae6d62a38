// Per-window token records on disk (see window_records.h). Layout, little-endian as written:
//   "QLWREC01", int64 n_windows, int64 n_stored, then per stored window: int64 window, int64 count,
//   count × double nll_base, count × double nll_quant, count × double kld, count × uint8 same_top.
#include "harness/sweep/window_records.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace ql {
namespace {

constexpr char kMagic[8] = {'Q', 'L', 'W', 'R', 'E', 'C', '0', '1'};

void PutI64(std::ofstream& out, int64_t v) { out.write(reinterpret_cast<const char*>(&v), sizeof v); }
template <typename T>
void PutAll(std::ofstream& out, const T* v, int64_t n) { out.write(reinterpret_cast<const char*>(v), std::streamsize(sizeof(T) * size_t(n))); }

bool GetI64(std::ifstream& in, int64_t* v) { return bool(in.read(reinterpret_cast<char*>(v), sizeof *v)); }
template <typename T>
bool GetAll(std::ifstream& in, std::vector<T>* v, int64_t n) {
  v->resize(size_t(n));
  return bool(in.read(reinterpret_cast<char*>(v->data()), std::streamsize(sizeof(T) * size_t(n))));
}

}  // namespace

Status WriteWindowRecords(const std::string& path, const std::vector<Window>& windows, const std::vector<int>& ran,
                          const TokenRecords& rec) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::Errorf("window records: cannot write {} (check the results directory is writable)", tmp);
    out.write(kMagic, sizeof kMagic);
    PutI64(out, int64_t(windows.size()));
    PutI64(out, int64_t(ran.size()));
    int64_t at = 0;
    for (int w : ran) {
      const int64_t n = windows[size_t(w)].n_scored();
      QL_CHECK(at + n <= rec.size(), "window records: {} records for the windows run, fewer than their tokens", rec.size());
      PutI64(out, w), PutI64(out, n);
      PutAll(out, rec.nll_base.data() + at, n), PutAll(out, rec.nll_quant.data() + at, n);
      PutAll(out, rec.kld.data() + at, n), PutAll(out, rec.same_top.data() + at, n);
      at += n;
    }
    QL_CHECK(at == rec.size(), "window records: {} records for {} tokens of the windows run", rec.size(), at);
    if (!out.flush()) return Status::Errorf("window records: writing {} failed (disk full?)", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::Errorf("window records: cannot rename {} to {}", tmp, path);
  return Status::Ok();
}

KnownWindows ReadWindowRecords(const std::string& path, const std::vector<Window>& windows) {
  KnownWindows known(windows.size());
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  int64_t n_windows = 0, n_stored = 0;
  if (!in || !in.read(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0 || !GetI64(in, &n_windows) ||
      n_windows != int64_t(windows.size()) || !GetI64(in, &n_stored) || n_stored < 0 || n_stored > n_windows)
    return KnownWindows(windows.size());
  for (int64_t i = 0; i < n_stored; ++i) {
    int64_t w = -1, n = -1;
    if (!GetI64(in, &w) || w < 0 || w >= n_windows || known[size_t(w)] || !GetI64(in, &n) ||
        n != windows[size_t(w)].n_scored())
      return KnownWindows(windows.size());
    TokenRecords r;
    if (!GetAll(in, &r.nll_base, n) || !GetAll(in, &r.nll_quant, n) || !GetAll(in, &r.kld, n) || !GetAll(in, &r.same_top, n))
      return KnownWindows(windows.size());
    for (int64_t j = 0; j < n; ++j) r.p_diff.push_back(std::exp(-r.nll_quant[size_t(j)]) - std::exp(-r.nll_base[size_t(j)]));
    known[size_t(w)] = std::move(r);
  }
  return known;
}

std::string WindowRecordsDir(const std::string& results_dir) { return results_dir + "/window-records"; }

int64_t StoredWindowCount(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  int64_t n_windows = 0, n_stored = 0;
  if (!in || !in.read(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0 || !GetI64(in, &n_windows) ||
      !GetI64(in, &n_stored) || n_stored < 0 || n_stored > n_windows)
    return 0;
  return n_stored;
}

Status MergeWindowRecords(const std::string& dest, const std::vector<std::string>& sources) {
  namespace fs = std::filesystem;
  const fs::path to_dir = WindowRecordsDir(dest);
  std::error_code ec;
  for (const std::string& src : sources) {
    const fs::path from_dir = WindowRecordsDir(src);
    if (!fs::is_directory(from_dir, ec)) continue;  // a sweep's store, or one from before the records
    fs::create_directories(to_dir, ec);
    if (ec) return Status::Errorf("merge: cannot create {} ({}); check the destination is writable", to_dir.string(), ec.message());
    for (const auto& e : fs::directory_iterator(from_dir, ec)) {
      if (e.path().extension() != ".qlwr") continue;
      const fs::path to = to_dir / e.path().filename();
      if (fs::exists(to) && StoredWindowCount(to.string()) >= StoredWindowCount(e.path().string())) continue;
      const fs::path tmp = to.string() + ".tmp";
      fs::copy_file(e.path(), tmp, fs::copy_options::overwrite_existing, ec);
      if (!ec) fs::rename(tmp, to, ec);
      if (ec) return Status::Errorf("merge: cannot copy {} to {} ({})", e.path().string(), to.string(), ec.message());
    }
    if (ec) return Status::Errorf("merge: cannot list {} ({})", from_dir.string(), ec.message());
  }
  return Status::Ok();
}

}  // namespace ql
