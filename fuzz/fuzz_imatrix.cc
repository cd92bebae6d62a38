// libFuzzer target: a whole llama.cpp imatrix file (GGUF layout or legacy .dat) through ReadImatrix; what
// reads is normalized (ImatrixImportances) and written back in its own layout.
#include "fuzz/fuzz_util.h"
#include "harness/io/imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qlfuzz::WriteScratch(data, size, "imatrix.bin");
  ql::StatusOr<ql::io::Imatrix> m = ql::io::ReadImatrix(path);
  if (!m.ok()) return 0;
  (void)ql::io::ImatrixImportances(*m);
  const std::string out = qlfuzz::WriteScratch(nullptr, 0, "imatrix.out");
  (void)(m->legacy ? ql::io::WriteImatrixDat(out, *m) : ql::io::WriteImatrixGguf(out, *m));
  return 0;
}
