// Tokenizer interface: text <-> token ids. Implementations: SentencePiece-style BPE by scores with
// byte fallback (llama / llama2.c vocabularies) and byte-level BPE from a tokenizer.json.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/status.h"

namespace ql {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;  // "spm-bpe" or "byte-bpe"
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;        // -1 when the vocabulary has none
  virtual int eos_id() const = 0;
  // Text -> ids. add_bos prepends bos_id() when the vocabulary has one.
  virtual std::vector<int> Encode(std::string_view text, bool add_bos) const = 0;
  // Ids -> text (the exact inverse of Encode for texts Encode produced, BOS/EOS dropped).
  virtual std::string Decode(const std::vector<int>& ids) const = 0;
  // The piece one id stands for, as it appears in the vocabulary ("▁the", "<0x0A>", "Ġthe").
  virtual std::string Piece(int id) const = 0;
};

// Loads a tokenizer by what path is: a *.json file (or a directory holding tokenizer.json) is a
// Hugging Face byte-level BPE tokenizer.json; any other file is a llama2.c tokenizer.bin holding
// vocab_size tokens (the model header's vocab_size). Implemented in tokenizer.cc.
StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path, int vocab_size);

}  // namespace ql
