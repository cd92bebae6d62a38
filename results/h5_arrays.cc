// HDF5 array files (see h5_arrays.h), on the HDF5 C API.
#include "results/h5_arrays.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <hdf5.h>

#include "harness/io/file_io.h"

namespace ql {
namespace {

// Silences HDF5's own stderr error stack for the lifetime of the object; we report via Status.
struct H5Quiet {
  H5E_auto2_t fn = nullptr;
  void* data = nullptr;
  H5Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~H5Quiet() { H5Eset_auto2(H5E_DEFAULT, fn, data); }
};

Status WriteOne(hid_t file, const std::string& name, const std::vector<float>& v) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hsize_t dims[1] = {hsize_t(v.size())};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (v.size() > 4096) {
    hsize_t chunk[1] = {std::min<hsize_t>(v.size(), 65536)};
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_deflate(dcpl, 4);
  }
  hid_t ds = H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
  herr_t w = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Pclose(lcpl);
  if (ds < 0 || w < 0) return Status::Errorf("HDF5: cannot write dataset '{}'", name);
  return Status::Ok();
}

Status WriteAttr(hid_t file, const std::string& key, const std::string& value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, std::max<size_t>(1, value.size()));
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t w = a < 0 ? -1 : H5Awrite(a, type, value.empty() ? " " : value.c_str());
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  if (a < 0 || w < 0) return Status::Errorf("HDF5: cannot write attribute '{}'", key);
  return Status::Ok();
}

}  // namespace

Status WriteH5Arrays(const std::string& path, const ArrayMap& arrays,
                     const std::map<std::string, std::string>& attributes) {
  H5Quiet quiet;
  const std::string tmp = io::UniqueTempPath(path);  // never shared with another writer
  errno = 0;
  hid_t file = H5Fcreate(tmp.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    const int err = errno;
    return Status::Errorf("{}: cannot create HDF5 file ({})", tmp,
                          err ? std::strerror(err) : "HDF5 gave no system error; is the directory writable?");
  }
  Status st;
  for (const auto& [name, v] : arrays) {
    st = WriteOne(file, name, v);
    if (!st.ok()) break;
  }
  for (const auto& [k, v] : attributes) {
    if (!st.ok()) break;
    st = WriteAttr(file, k, v);
  }
  if (H5Fclose(file) < 0 && st.ok()) st = Status::Errorf("{}: HDF5 close failed", tmp);
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return Status::Errorf("{}: {}", path, st.message());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Errorf("{}: cannot rename from {}: {}", path, tmp, ec.message());
  return Status::Ok();
}

StatusOr<std::vector<float>> ReadH5Array(const std::string& path, const std::string& name) {
  H5Quiet quiet;
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return Status::Errorf("{}: cannot open HDF5 file", path);
  hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (ds < 0) {
    H5Fclose(file);
    return Status::Errorf("{}: no dataset '{}'", path, name);
  }
  hid_t space = H5Dget_space(ds);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<float> v(n > 0 ? size_t(n) : 0);
  herr_t r = n > 0 ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) : 0;
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(file);
  if (r < 0) return Status::Errorf("{}: cannot read dataset '{}'", path, name);
  return v;
}

}  // namespace ql
