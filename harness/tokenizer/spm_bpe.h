// SentencePiece-style BPE by piece scores with UTF-8 byte fallback, as llama2.c's run.c and llama.cpp's
// SPM vocab encode. Built from plain vectors (a GGUF loader) or from llama2.c's tokenizer.bin.
// Not a SentencePiece model (.model protobuf) reader and not a unigram tokenizer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "harness/tokenizer/tokenizer.h"
#include "kernels/status.h"

namespace ql {

// Token types as GGUF stores them in tokenizer.ggml.token_type (llama.cpp llama_token_type).
enum class SpmTokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// From a GGUF with tokenizer.ggml.model "llama": pieces/scores/token_types = tokenizer.ggml.tokens/
// scores/token_type, ids = tokenizer.ggml.{bos,eos,unknown}_token_id, add_space_prefix =
// tokenizer.ggml.add_space_prefix when present (stories260K.gguf: "▁" pieces, <s>/</s>, types 2/3/6/1).
struct SpmVocab {
  std::vector<std::string> pieces;      // [vocab]: "▁the" (SentencePiece/GGUF) or " the" (llama2.c)
  std::vector<float> scores;            // [vocab]: higher merges first
  std::vector<int32_t> token_types;     // [vocab] SpmTokenType values, or empty: derived from pieces
  int bos_id = -1;                      // -1: none
  int eos_id = -1;
  int unk_id = -1;
  bool add_space_prefix = true;         // GGUF tokenizer.ggml.add_space_prefix (SentencePiece default)
};

class SpmBpeTokenizer : public Tokenizer {
 public:
  // Validates sizes and ids; the error names `source` (a file path or "GGUF metadata").
  static StatusOr<std::unique_ptr<SpmBpeTokenizer>> Create(SpmVocab vocab,
                                                          std::string_view source = "vocabulary");

  std::string kind() const override { return "spm-bpe"; }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }
  int unk_id() const { return unk_id_; }

  // Encoding (cost O(n log n) in the text length n):
  //  1. prepend one space (if add_space_prefix and the text is non-empty); with a "▁" vocabulary
  //     every space becomes U+2581, with a raw-space vocabulary (llama2.c) spaces stay " ";
  //  2. split into UTF-8 characters; a character that is not a piece becomes its byte tokens
  //     <0xNN> (or unk when the vocabulary has no byte tokens); byte/unk symbols never merge;
  //  3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
  //     the leftmost on ties (a priority queue over a linked list of symbols).
  std::vector<int> Encode(std::string_view text, bool add_bos) const override;
  // Byte tokens become their bytes, control tokens (BOS/EOS) vanish, "▁" becomes a space, and the
  // space of the first piece (the prefix Encode added) is dropped, as SentencePiece decodes.
  std::string Decode(const std::vector<int>& ids) const override;
  // Streaming decode of one token as llama2.c does: the leading space is dropped after BOS.
  std::string DecodeToken(int prev_id, int id) const;
  std::string Piece(int id) const override;

  float Score(int id) const { return scores_.at(id); }
  SpmTokenType Type(int id) const { return types_.at(id); }
  bool metaspace() const { return metaspace_; }  // true: vocabulary spells spaces as U+2581
  // The id of an exact piece among normal/user-defined tokens, or -1.
  int PieceId(std::string_view piece) const;

 private:
  SpmBpeTokenizer() = default;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Appends the surface text of id (byte tokens decoded, ▁ -> space, control tokens empty).
  void AppendSurface(int id, std::string* out) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<SpmTokenType> types_;
  std::unordered_map<std::string, int, Hash, std::equal_to<>> piece_to_id_;  // mergeable pieces only
  // (left id << 32 | right id) -> id of the piece spelled left + right, for every mergeable piece
  // and every split of it into two mergeable pieces: the merge lookup without string hashing.
  std::unordered_map<uint64_t, int> pair_to_id_;
  int char_id_[128];     // id of each one-byte ASCII piece, or -1
  int byte_to_id_[256];  // -1 when the vocabulary lacks <0xNN>
  int bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
  bool add_space_prefix_ = true;
  bool metaspace_ = false;
};

// Reads llama2.c's tokenizer.bin (docs/formats.md §5.3): i32 max_token_length, then vocab_size records of
// (f32 score, i32 len, len bytes). vocab_size comes from the model header. Ids 0/1/2 are <unk>, BOS,
// EOS as run.c hard-codes them. Errors name the file, the token index and the problem.
StatusOr<std::unique_ptr<SpmBpeTokenizer>> LoadLlama2cTokenizer(const std::string& path, int vocab_size);

// Writes a tokenizer.bin in the same layout (for tests and for exporting a vocabulary).
Status SaveLlama2cTokenizer(const SpmBpeTokenizer& tok, const std::string& path);

}  // namespace ql
