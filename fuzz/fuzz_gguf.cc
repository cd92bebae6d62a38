// libFuzzer target: a whole GGUF file through ReadGguf (header, metadata, tensors, config, tokenizer).
#include "fuzz/fuzz_util.h"
#include "harness/io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qlfuzz::WriteScratch(data, size, "model.gguf");
  ql::io::CheckpointInfo info;
  (void)ql::io::ReadGguf(path, &info);
  return 0;
}
