// libFuzzer target: a whole .safetensors file (8-byte header length, JSON header, tensor data).
#include "fuzz/fuzz_util.h"
#include "harness/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qlfuzz::WriteScratch(data, size, "model.safetensors");
  (void)ql::io::ReadSafetensors(path);
  return 0;
}
