// LoadTokenizer: picks the tokenizer implementation from the path (tokenizer.json or tokenizer.bin).
#include "harness/tokenizer/tokenizer.h"

#include <filesystem>

#include "harness/tokenizer/byte_bpe.h"
#include "harness/tokenizer/spm_bpe.h"

namespace ql {

StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path, int vocab_size) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "tokenizer.json").string();
  if (!fs::exists(file, ec)) {
    return Status::Errorf("{}: no such tokenizer file (give a tokenizer.json, a directory holding one, "
                          "or a llama2.c tokenizer.bin)", file);
  }
  if (fs::path(file).extension() == ".json") {
    QL_ASSIGN_OR_RETURN(auto t, LoadTokenizerJson(file));
    if (vocab_size > 0 && t->vocab_size() > vocab_size) {
      return Status::Errorf("{}: the tokenizer has {} tokens but the model's vocabulary only {}: wrong "
                            "tokenizer for this model", file, t->vocab_size(), vocab_size);
    }
    return std::unique_ptr<Tokenizer>(std::move(t));
  }
  QL_ASSIGN_OR_RETURN(auto t, LoadLlama2cTokenizer(file, vocab_size));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace ql
