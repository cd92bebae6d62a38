// libFuzzer target: a llama2.c tokenizer.bin. The first two input bytes give vocab_size (1..65536), as the
// model header would; the rest is the file. A tokenizer that loads must encode and decode a fixed text.
#include "fuzz/fuzz_util.h"
#include "harness/tokenizer/spm_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int vocab = 1 + (int(data[0]) | int(data[1]) << 8);
  const std::string path = qlfuzz::WriteScratch(data + 2, size - 2, "tokenizer.bin");
  auto tok = ql::LoadLlama2cTokenizer(path, vocab);
  if (!tok.ok()) return 0;
  const std::vector<int> ids = (*tok)->Encode("Once upon a time \xc3\xa9\xff", true);
  (void)(*tok)->Decode(ids);
  return 0;
}
