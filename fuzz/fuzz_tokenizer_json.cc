// libFuzzer target: tokenizer.json text; a tokenizer that loads must also encode and decode a fixed
// text (and its own decoding of the result must not crash).
#include <string_view>

#include "harness/tokenizer/byte_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tok = ql::LoadTokenizerJsonText(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  if (!tok.ok()) return 0;
  const std::vector<int> ids = (*tok)->Encode("Hello, world 123 \xe2\x82\xac\xff <|endoftext|>!", true);
  (void)(*tok)->Decode(ids);
  return 0;
}
