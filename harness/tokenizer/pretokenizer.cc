// Pre-tokenizer pipeline over PCRE2 (compiled with UTF, UCP so \p{L}/\p{N}/\s are Unicode-aware,
// MATCH_INVALID_UTF so arbitrary bytes never make a match fail, and JIT when available).
#include "harness/tokenizer/pretokenizer.h"
#include "harness/tokenizer/json_field.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace ql {

class Pcre2Regex {
 public:
  static StatusOr<std::shared_ptr<const Pcre2Regex>> Compile(std::string_view pattern, bool literal,
                                                             std::string_view source) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts,
                                     &err, &err_off, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Status::Errorf("{}: pre-tokenizer regex '{}' does not compile at offset {}: {}", source,
                            pattern, err_off, reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
    return std::shared_ptr<const Pcre2Regex>(new Pcre2Regex(code));
  }
  ~Pcre2Regex() { pcre2_code_free(code_); }
  Pcre2Regex(const Pcre2Regex&) = delete;
  Pcre2Regex& operator=(const Pcre2Regex&) = delete;

  // Calls f(begin, end) for each successive non-empty match in text.
  template <typename F>
  void ForEachMatch(std::string_view text, F&& f) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    QL_CHECK(md != nullptr, "pcre2_match_data_create_from_pattern failed (out of memory)");
    size_t off = 0;
    while (off <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), off, 0, md,
                           nullptr);
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {  // e.g. JIT stack exhausted: retry interpreted
        rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), off, PCRE2_NO_JIT,
                         md, nullptr);
      }
      QL_CHECK(rc >= 0 || rc == PCRE2_ERROR_NOMATCH, "pcre2_match failed with code {} at offset {}", rc, off);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (e > b) {
        f(b, e);
        off = e;
      } else {  // empty match: step over one UTF-8 character
        off = b + 1;
        while (off < text.size() && (static_cast<unsigned char>(text[off]) & 0xC0) == 0x80) ++off;
      }
    }
    pcre2_match_data_free(md);
  }

 private:
  explicit Pcre2Regex(pcre2_code* c) : code_(c) {}
  pcre2_code* code_;
};

namespace {

nlohmann::json ByteLevelJson(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
          {"use_regex", use_regex}};
}

nlohmann::json SplitJson(std::string_view pattern) {
  return {{"type", "Split"}, {"pattern", {{"Regex", std::string(pattern)}}}, {"behavior", "Isolated"},
          {"invert", false}};
}

}  // namespace

StatusOr<PreTokenizer> PreTokenizer::FromName(std::string_view name) {
  nlohmann::json j;
  if (name == "gpt2") {
    j = ByteLevelJson(true);
  } else if (name == "llama3") {
    j = {{"type", "Sequence"}, {"pretokenizers", {SplitJson(kLlama3Pattern), ByteLevelJson(false)}}};
  } else if (name == "qwen2") {
    j = {{"type", "Sequence"}, {"pretokenizers", {SplitJson(kQwen2Pattern), ByteLevelJson(false)}}};
  } else if (name == "smollm" || name == "starcoder") {
    j = {{"type", "Sequence"},
         {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, ByteLevelJson(true)}}};
  } else {
    return Status::Errorf("unknown pre-tokenizer '{}': use gpt2, llama3, qwen2 or smollm", name);
  }
  return FromJson(j, fmt::format("pre-tokenizer '{}'", name));
}

StatusOr<PreTokenizer> PreTokenizer::FromJson(const nlohmann::json& j, std::string_view source) {
  PreTokenizer p;
  p.json_ = j;
  QL_RETURN_IF_ERROR(p.AddJson(j, source));
  if (p.steps_.empty()) {
    return Status::Errorf("{}: pre_tokenizer {} has no splitting step (a ByteLevel with use_regex "
                          "false alone would make the whole text one word)", source, JsonShown(j));
  }
  // Name the known variants by their steps.
  std::vector<std::string> sig;
  for (const Step& s : p.steps_) {
    sig.push_back(s.behavior == Behavior::kIsolated && !s.invert ? s.pattern : "?");
  }
  using V = std::vector<std::string>;
  if (sig == V{std::string(kGpt2Pattern)}) p.name_ = "gpt2";
  if (sig == V{std::string(kLlama3Pattern)}) p.name_ = "llama3";
  if (sig == V{std::string(kQwen2Pattern)}) p.name_ = "qwen2";
  if (sig == V{"\\p{N}", std::string(kGpt2Pattern)}) p.name_ = "smollm";
  return p;
}

nlohmann::json PreTokenizer::ToJson() const { return json_; }

Status PreTokenizer::AddRegexStep(std::string pattern, bool literal, Behavior behavior, bool invert,
                                  std::string_view source) {
  QL_ASSIGN_OR_RETURN(auto re, Pcre2Regex::Compile(pattern, literal, source));
  steps_.push_back({std::move(re), std::move(pattern), behavior, invert});
  return Status::Ok();
}

Status PreTokenizer::AddJson(const nlohmann::json& j, std::string_view source, int depth) {
  constexpr int kMaxDepth = 8;  // real files nest one Sequence; a deeper chain is corrupt or hostile
  if (depth > kMaxDepth) {
    return Status::Errorf("{}: pre_tokenizer Sequences nest deeper than {}", source, kMaxDepth);
  }
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Errorf("{}: pre_tokenizer entry {} has no \"type\"", source, JsonShown(j));
  }
  const std::string type = j["type"];
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return Status::Errorf("{}: Sequence pre_tokenizer without a \"pretokenizers\" array", source);
    }
    for (const auto& sub : j["pretokenizers"]) QL_RETURN_IF_ERROR(AddJson(sub, source, depth + 1));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    QL_ASSIGN_OR_RETURN(bool prefix, JsonBool(j, "add_prefix_space", false, source, "pre_tokenizer ByteLevel"));
    QL_ASSIGN_OR_RETURN(bool use_regex, JsonBool(j, "use_regex", true, source, "pre_tokenizer ByteLevel"));
    if (prefix) add_prefix_space_ = true;
    if (use_regex) {
      return AddRegexStep(std::string(kGpt2Pattern), false, Behavior::kIsolated, false, source);
    }
    return Status::Ok();
  }
  if (type == "Digits") {
    QL_ASSIGN_OR_RETURN(bool individual, JsonBool(j, "individual_digits", false, source, "pre_tokenizer Digits"));
    return AddRegexStep(individual ? "\\p{N}" : "\\p{N}+", false, Behavior::kIsolated, false, source);
  }
  if (type == "Split") {
    if (!j.contains("pattern") || !j["pattern"].is_object()) {
      return Status::Errorf("{}: Split pre_tokenizer without a \"pattern\" object", source);
    }
    const auto& pat = j["pattern"];
    bool literal = false;
    std::string pattern;
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      pattern = pat["Regex"];
    } else if (pat.contains("String") && pat["String"].is_string()) {
      pattern = pat["String"];
      literal = true;
    } else {
      return Status::Errorf("{}: Split pattern {} is neither {{\"Regex\": ...}} nor {{\"String\": ...}}",
                            source, JsonShown(pat));
    }
    QL_ASSIGN_OR_RETURN(std::string b, JsonString(j, "behavior", "Isolated", source, "pre_tokenizer Split"));
    QL_ASSIGN_OR_RETURN(bool invert, JsonBool(j, "invert", false, source, "pre_tokenizer Split"));
    Behavior behavior;
    if (b == "Isolated") behavior = Behavior::kIsolated;
    else if (b == "Removed") behavior = Behavior::kRemoved;
    else if (b == "MergedWithPrevious") behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") behavior = Behavior::kMergedWithNext;
    else return Status::Errorf("{}: Split behavior '{}' is not supported (Isolated, Removed, "
                               "MergedWithPrevious, MergedWithNext are)", source, b);
    return AddRegexStep(std::move(pattern), literal, behavior, invert, source);
  }
  return Status::Errorf("{}: pre_tokenizer type '{}' is not supported by the byte-level BPE tokenizer "
                        "(Sequence, Split, Digits, ByteLevel are)", source, type);
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* words) const {
  std::vector<std::string_view> cur{text}, next;
  for (const Step& s : steps_) {
    next.clear();
    for (std::string_view w : cur) {
      // Segments of w: (begin, end, is_match), covering w in order.
      size_t pos = 0;
      size_t pending_begin = 0;  // start of a word being merged (MergedWith*)
      auto emit = [&](size_t b, size_t e) {
        if (e > b) next.push_back(w.substr(b, e - b));
      };
      auto segment = [&](size_t b, size_t e, bool match) {
        bool hit = match != s.invert;
        switch (s.behavior) {
          case Behavior::kIsolated:
            emit(b, e);
            break;
          case Behavior::kRemoved:
            if (!hit) emit(b, e);
            break;
          case Behavior::kMergedWithPrevious:  // a hit closes the word that runs up to it
            if (hit) {
              emit(pending_begin, e);
              pending_begin = e;
            }
            break;
          case Behavior::kMergedWithNext:  // a hit opens a new word
            if (hit) {
              emit(pending_begin, b);
              pending_begin = b;
            }
            break;
        }
      };
      s.regex->ForEachMatch(w, [&](size_t b, size_t e) {
        if (b > pos) segment(pos, b, false);
        segment(b, e, true);
        pos = e;
      });
      if (pos < w.size()) segment(pos, w.size(), false);
      if (s.behavior == Behavior::kMergedWithPrevious || s.behavior == Behavior::kMergedWithNext) {
        emit(pending_begin, w.size());
      }
    }
    cur.swap(next);
  }
  words->insert(words->end(), cur.begin(), cur.end());
}

}  // namespace ql
