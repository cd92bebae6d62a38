// Pre-tokenizers of byte-level BPE tokenizers (Hugging Face tokenizers' Split / Digits / ByteLevel,
// alone or in a Sequence): cut text into words before BPE, with PCRE2 (UTF + UCP) for the regexes.
// Not a normalizer and not the byte-to-unicode mapping (byte_bpe.h does that).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/status.h"

namespace ql {

// The split patterns of the variants we know, as their tokenizer.json files spell them.
// GPT-2 (and the regex of ByteLevel{use_regex: true}, also SmolLM/StarCoder after Digits).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (numbers in runs of at most 3 digits).
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 / Qwen2.5 / Qwen3 (every digit alone).
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class Pcre2Regex;  // pimpl over pcre2_code (pretokenizer.cc)

class PreTokenizer {
 public:
  // "gpt2", "llama3", "qwen2", "smollm" (= "starcoder": individual digits, then GPT-2's regex).
  static StatusOr<PreTokenizer> FromName(std::string_view name);
  // The "pre_tokenizer" object of a tokenizer.json. `source` names the file in errors.
  static StatusOr<PreTokenizer> FromJson(const nlohmann::json& j, std::string_view source);
  // The tokenizer.json "pre_tokenizer" object that FromJson reads back to the same splits.
  nlohmann::json ToJson() const;
  // "gpt2", "llama3", "qwen2", "smollm", or "custom".
  const std::string& name() const { return name_; }
  // True when a ByteLevel step asks for a space before text that does not start with one.
  bool add_prefix_space() const { return add_prefix_space_; }

  // Appends the words of text (views into text) to words. Every byte of text lands in exactly one
  // word, in order, except where a Split step's behaviour is "Removed".
  void Split(std::string_view text, std::vector<std::string_view>* words) const;

 private:
  enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };
  struct Step {
    std::shared_ptr<const Pcre2Regex> regex;
    std::string pattern;
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
  };
  Status AddJson(const nlohmann::json& j, std::string_view source, int depth = 0);
  Status AddRegexStep(std::string pattern, bool literal, Behavior behavior, bool invert,
                      std::string_view source);

  std::vector<Step> steps_;
  nlohmann::json json_;  // as read (or the canonical form for FromName), for ToJson
  bool add_prefix_space_ = false;
  std::string name_ = "custom";
};

}  // namespace ql
