// GPT-2-style byte-level BPE (merges by rank) as Hugging Face tokenizers runs a tokenizer.json with
// model.type "BPE" and a ByteLevel pre-tokenizer/decoder (GPT-2, Llama 3, Qwen2, SmolLM/StarCoder),
// plus a writer of tokenizer.json and a deterministic trainer. Not SentencePiece BPE (spm_bpe.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "harness/tokenizer/pretokenizer.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/status.h"

namespace ql {

struct AddedToken {
  int id = -1;
  std::string content;   // matched verbatim in the text before pre-tokenization
  bool special = true;   // special tokens vanish in Decode
};

// Everything a byte-level BPE tokenizer is made of. Pieces are spelled in GPT-2's byte-to-unicode
// alphabet ("Ġthe" for " the", "Ċ" for "\n"). From a GGUF with tokenizer.ggml.model "gpt2":
// vocab = tokenizer.ggml.tokens, merges = tokenizer.ggml.merges cut at their one space,
// added_tokens = tokens of type 3 (control, special) and 4 (user-defined, not special),
// pre_tokenizer = PreTokenizerNameFromGguf(tokenizer.ggml.pre), bos/eos = *_token_id.
struct ByteBpeSpec {
  std::vector<std::string> vocab;                          // [vocab] piece of each id ("" = hole)
  std::vector<std::pair<std::string, std::string>> merges; // in rank order: merges[0] applies first
  std::vector<AddedToken> added_tokens;
  std::string pre_tokenizer = "gpt2";                      // gpt2, llama3, qwen2, smollm
  int bos_id = -1;                                         // Encode(add_bos) prepends it; -1: none
  int eos_id = -1;
  bool ignore_merges = false;  // a word that is itself a piece is emitted whole (Llama 3)
};

class ByteBpeTokenizer : public Tokenizer {
 public:
  static StatusOr<std::unique_ptr<ByteBpeTokenizer>> Create(ByteBpeSpec spec);

  std::string kind() const override { return "byte-bpe"; }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }

  // Added tokens are cut out first (longest match at the earliest position); the rest is split
  // by the pre-tokenizer, each word's bytes are mapped to GPT-2's alphabet and merged: the adjacent
  // pair of lowest merge rank first, the leftmost on ties (O(w log w) per word, words cached).
  std::vector<int> Encode(std::string_view text, bool add_bos) const override;
  // Pieces mapped back to bytes; special added tokens vanish, other added tokens give their text.
  std::string Decode(const std::vector<int>& ids) const override;
  std::string Piece(int id) const override;

  // The id of a piece (or added token content), or -1.
  int PieceId(std::string_view piece) const;
  const PreTokenizer& pre_tokenizer() const { return pre_; }
  int num_merges() const { return static_cast<int>(merges_.size()); }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  bool ignore_merges() const { return ignore_merges_; }

  // Writes a tokenizer.json that Hugging Face tokenizers (and LoadTokenizerJson) read back to the
  // same tokenizer: model BPE with vocab and "a b" merges, the pre-tokenizer, ByteLevel decoder,
  // and a TemplateProcessing post-processor that adds BOS when bos_id >= 0.
  Status SaveTokenizerJson(const std::string& path) const;

  // GPT-2's bytes_to_unicode: the UTF-8 spelling of the character byte b stands for in pieces.
  static const std::string& ByteToUnicode(uint8_t b);

 private:
  ByteBpeTokenizer() = default;
  friend StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadTokenizerJsonText(std::string_view, std::string_view);
  static StatusOr<std::unique_ptr<ByteBpeTokenizer>> Build(ByteBpeSpec spec, PreTokenizer pre,
                                                           std::string_view source);
  struct WordCache;
  void EncodeWord(std::string_view word, std::vector<int>* out) const;
  void EncodeText(std::string_view text, WordCache* cache, std::vector<int>* out) const;

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int rank;
    int id;
  };
  std::vector<std::string> pieces_;            // [vocab]
  std::vector<bool> is_added_special_;         // [vocab]
  std::vector<bool> is_added_;                 // [vocab]
  std::unordered_map<std::string, int, Hash, std::equal_to<>> piece_to_id_;
  std::unordered_map<uint64_t, Merge> merge_of_pair_;  // (left id << 32 | right id) -> rank, result
  std::vector<std::pair<std::string, std::string>> merges_;
  std::vector<AddedToken> added_;              // longest content first
  int byte_id_[256];                           // id of each byte's single-character piece, or -1
  int bos_id_ = -1, eos_id_ = -1;
  bool ignore_merges_ = false;
  PreTokenizer pre_;
};

// Reads a Hugging Face tokenizer.json whose model is byte-level BPE. BOS is the special token that
// a TemplateProcessing post-processor puts first (if any); EOS is the first of <|endoftext|>,
// <|end_of_text|>, <|im_end|>, </s> present as an added token (-1 if none). Errors name the file and
// the offending field. The NFC normalizer (Qwen2) is accepted and treated as identity.
StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadTokenizerJson(const std::string& path);
StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadTokenizerJsonText(std::string_view json,
                                                                  std::string_view source);

// Our pre-tokenizer name for a GGUF "tokenizer.ggml.pre" value of a byte-level ("gpt2") vocabulary,
// as llama.cpp names them: gpt-2 -> gpt2; llama3, llama-v3, llama-bpe -> llama3; qwen2 -> qwen2;
// smollm, starcoder, refact -> smollm. Anything else is an error naming the value.
StatusOr<std::string> PreTokenizerNameFromGguf(std::string_view gguf_pre);

// Trains byte-level BPE on text (deterministic): the 256 byte pieces (ids in byte order after the
// special tokens, which take ids 0..k-1), then merges of the most frequent adjacent pair within the
// pre-tokenizer's words (ties: the pair of smaller (left id, right id)) until vocab_size pieces or
// no pair occurs min_frequency times.
struct ByteBpeTrainOptions {
  int vocab_size = 1024;
  std::string pre_tokenizer = "gpt2";
  std::vector<std::string> special_tokens;  // e.g. {"<|endoftext|>"}
  int min_frequency = 2;
  int bos_index = -1;  // index into special_tokens used as BOS, -1 none
  int eos_index = -1;
};
StatusOr<std::unique_ptr<ByteBpeTokenizer>> TrainByteBpe(std::string_view text,
                                                        const ByteBpeTrainOptions& options);

}  // namespace ql
