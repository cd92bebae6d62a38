// libFuzzer target: a llama2.c checkpoint (v0 or v1 header plus weights), no tokenizer beside it.
#include "fuzz/fuzz_util.h"
#include "harness/io/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qlfuzz::WriteScratch(data, size, "model.bin");
  (void)ql::io::ReadLlama2c(path);
  return 0;
}
