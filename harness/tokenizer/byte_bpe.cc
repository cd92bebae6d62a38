// Byte-level BPE: encoding by merge rank, decoding through GPT-2's byte-to-unicode alphabet, and the
// tokenizer.json reader and writer (Hugging Face tokenizers' serialization of model "BPE").
#include "harness/tokenizer/byte_bpe.h"

#include <algorithm>
#include <array>
#include <functional>
#include <fstream>
#include <iterator>
#include <queue>

#include "harness/tokenizer/json_field.h"

namespace ql {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// GPT-2's bytes_to_unicode (openai/gpt-2 encoder.py): the printable bytes '!'..'~', 0xA1..0xAC and
// 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing order, take code points 256+n.
struct ByteAlphabet {
  std::array<uint32_t, 256> cp{};
  std::array<std::string, 256> utf8;
  std::array<int, 512> byte_of_cp{};  // code point -> byte, -1 if none (all code points are < 324)
  ByteAlphabet() {
    byte_of_cp.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      cp[b] = printable ? b : 256 + n++;
      AppendUtf8(cp[b], &utf8[b]);
      byte_of_cp[cp[b]] = b;
    }
  }
};
const ByteAlphabet& Alphabet() {
  static const ByteAlphabet a;
  return a;
}

uint64_t PairKey(int a, int b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

// Decodes one UTF-8 character at s[i] (advancing i); malformed bytes come back as 0xFFFFFFFF.
uint32_t NextCodePoint(std::string_view s, size_t* i) {
  unsigned char c = s[*i];
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || *i + n > s.size()) {
    ++*i;
    return 0xFFFFFFFF;
  }
  uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

// ---- tokenizer.json sections: each field is type-checked before use ----
using nlohmann::json;
constexpr int64_t kMaxIdHoles = 65536;  // ids beyond the named tokens a vocabulary may leave unused

// Options of "model" that change what BPE does: those quantlab does not implement are errors.
Status CheckModelOptions(const json& m, std::string_view source) {
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    QL_ASSIGN_OR_RETURN(std::string v, JsonString(m, k, "", source, "model"));
    if (!v.empty()) {
      return Status::Errorf("{}: model.{} is set; subword prefixes/suffixes are not byte-level BPE", source, k);
    }
  }
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    if (!m["dropout"].is_number()) {
      return Status::Errorf("{}: model.dropout must be a number or null (got {})", source, JsonShown(m["dropout"]));
    }
    if (m["dropout"].get<double>() > 0) {
      return Status::Errorf("{}: model.dropout is {}; BPE dropout makes encoding random, set it to null",
                            source, JsonShown(m["dropout"]));
    }
  }
  // Byte-level BPE covers every byte, so these never act; they must still be well-typed.
  QL_ASSIGN_OR_RETURN(bool byte_fallback, JsonBool(m, "byte_fallback", false, source, "model"));
  QL_ASSIGN_OR_RETURN(bool fuse_unk, JsonBool(m, "fuse_unk", false, source, "model"));
  QL_ASSIGN_OR_RETURN(std::string unk, JsonString(m, "unk_token", "", source, "model"));
  (void)byte_fallback, (void)fuse_unk, (void)unk;
  return Status::Ok();
}

Status ReadVocab(const json& vocab, int64_t max_id, std::string_view source, ByteBpeSpec* spec) {
  for (const auto& [piece, idj] : vocab.items()) {
    if (!idj.is_number_integer() || idj.get<int64_t>() < 0 || idj.get<int64_t>() >= max_id) {
      return Status::Errorf("{}: model.vocab['{}'] = {} is not a token id (0 <= id < {}: the named tokens "
                            "plus {} holes)", source, piece, JsonShown(idj), max_id, kMaxIdHoles);
    }
    const size_t id = size_t(idj.get<int64_t>());
    if (id >= spec->vocab.size()) spec->vocab.resize(id + 1);
    if (!spec->vocab[id].empty()) {
      return Status::Errorf("{}: model.vocab gives id {} to both '{}' and '{}'", source, id, spec->vocab[id], piece);
    }
    spec->vocab[id] = piece;
  }
  return Status::Ok();
}

Status ReadMerges(const json& m, std::string_view source, ByteBpeSpec* spec) {
  if (!m.contains("merges") || !m["merges"].is_array()) {
    return Status::Errorf("{}: model.merges is missing or not an array", source);
  }
  for (size_t r = 0; r < m["merges"].size(); ++r) {
    const json& e = m["merges"][r];
    if (e.is_string()) {
      std::string s = e.get<std::string>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return Status::Errorf("{}: model.merges[{}] = \"{}\" is not two pieces separated by one space",
                              source, r, s);
      }
      spec->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      spec->merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return Status::Errorf("{}: model.merges[{}] = {} is neither \"a b\" nor [\"a\", \"b\"]", source, r,
                            JsonShown(e));
    }
  }
  return Status::Ok();
}

Status ReadAddedTokens(const json& added, int64_t max_id, std::string_view source, ByteBpeSpec* spec) {
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
        !a["content"].is_string()) {
      return Status::Errorf("{}: added_tokens entry {} needs an integer \"id\" and a string \"content\"",
                            source, JsonShown(a));
    }
    const json& idj = a["id"];
    if ((idj.is_number_unsigned() && idj.get<uint64_t>() >= uint64_t(max_id)) ||
        (!idj.is_number_unsigned() && (idj.get<int64_t>() < 0 || idj.get<int64_t>() >= max_id))) {
      return Status::Errorf("{}: added token {} has id {}: ids must be in [0, {}) (the named tokens plus {} holes)",
                            source, JsonShown(a["content"]), JsonShown(idj), max_id, kMaxIdHoles);
    }
    QL_ASSIGN_OR_RETURN(bool special, JsonBool(a, "special", false, source, "added_tokens entry"));
    spec->added_tokens.push_back({int(idj.get<int64_t>()), a["content"].get<std::string>(), special});
  }
  return Status::Ok();
}

// BOS: the special token a TemplateProcessing post-processor puts in front of a single sequence.
Status FindBos(const json& p, std::string_view source, int depth, ByteBpeSpec* spec) {
  if (!p.is_object()) return Status::Ok();
  if (depth > 8) return Status::Errorf("{}: post_processor Sequences nest deeper than 8", source);
  QL_ASSIGN_OR_RETURN(std::string type, JsonString(p, "type", "", source, "post_processor"));
  if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const json& q : p["processors"]) QL_RETURN_IF_ERROR(FindBos(q, source, depth + 1, spec));
  }
  if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array() || p["single"].empty() ||
      !p["single"][0].is_object() || !p["single"][0].contains("SpecialToken")) {
    return Status::Ok();
  }
  QL_ASSIGN_OR_RETURN(std::string name,
                      JsonString(p["single"][0]["SpecialToken"], "id", "", source, "post_processor SpecialToken"));
  for (const AddedToken& a : spec->added_tokens) {
    if (a.content == name) spec->bos_id = a.id;
  }
  return Status::Ok();
}

}  // namespace

const std::string& ByteBpeTokenizer::ByteToUnicode(uint8_t b) { return Alphabet().utf8[b]; }

struct ByteBpeTokenizer::WordCache {
  std::unordered_map<std::string_view, std::vector<int>> ids;  // views into the text being encoded
};

StatusOr<std::unique_ptr<ByteBpeTokenizer>> ByteBpeTokenizer::Create(ByteBpeSpec spec) {
  QL_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::FromName(spec.pre_tokenizer));
  return Build(std::move(spec), std::move(pre), "byte-level BPE spec");
}

StatusOr<std::unique_ptr<ByteBpeTokenizer>> ByteBpeTokenizer::Build(ByteBpeSpec spec, PreTokenizer pre,
                                                                    std::string_view source) {
  std::unique_ptr<ByteBpeTokenizer> t(new ByteBpeTokenizer());
  t->pre_ = std::move(pre);
  t->ignore_merges_ = spec.ignore_merges;
  t->pieces_ = std::move(spec.vocab);
  for (size_t i = 0; i < t->pieces_.size(); ++i) {
    const std::string& p = t->pieces_[i];
    if (p.empty()) continue;
    if (!t->piece_to_id_.emplace(p, static_cast<int>(i)).second) {
      return Status::Errorf("{}: piece '{}' appears twice in the vocab (ids {} and {})", source, p,
                            t->piece_to_id_[p], i);
    }
  }
  const size_t n_model = t->pieces_.size();
  for (const AddedToken& a : spec.added_tokens) {
    if (a.id < 0 || a.content.empty()) {
      return Status::Errorf("{}: added token '{}' has id {} (needs an id >= 0 and non-empty content)",
                            source, a.content, a.id);
    }
    if (static_cast<size_t>(a.id) >= t->pieces_.size()) t->pieces_.resize(a.id + 1);
    std::string& slot = t->pieces_[a.id];
    if (static_cast<size_t>(a.id) < n_model && !slot.empty() && slot != a.content) {
      return Status::Errorf("{}: added token '{}' has id {}, which the vocab gives to '{}'", source,
                            a.content, a.id, slot);
    }
    slot = a.content;
    t->piece_to_id_.emplace(a.content, a.id);
    t->added_.push_back(a);
  }
  std::stable_sort(t->added_.begin(), t->added_.end(), [](const AddedToken& x, const AddedToken& y) {
    return x.content.size() > y.content.size();
  });
  t->is_added_.assign(t->pieces_.size(), false);
  t->is_added_special_.assign(t->pieces_.size(), false);
  for (const AddedToken& a : t->added_) {
    t->is_added_[a.id] = true;
    t->is_added_special_[a.id] = a.special;
  }
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    int ia = t->PieceId(a), ib = t->PieceId(b), im = t->PieceId(a + b);
    if (ia < 0 || ib < 0 || im < 0) {
      return Status::Errorf("{}: merge {} '{} {}' uses '{}', which is not in the vocab", source, r, a, b,
                            ia < 0 ? a : ib < 0 ? b : a + b);
    }
    t->merge_of_pair_.emplace(PairKey(ia, ib), Merge{static_cast<int>(r), im});  // first rank wins
  }
  t->merges_ = std::move(spec.merges);
  for (int b = 0; b < 256; ++b) {
    auto it = t->piece_to_id_.find(ByteToUnicode(static_cast<uint8_t>(b)));
    t->byte_id_[b] = it == t->piece_to_id_.end() ? -1 : it->second;
  }
  for (auto [name, id] : {std::pair{"bos", spec.bos_id}, {"eos", spec.eos_id}}) {
    if (id < -1 || id >= t->vocab_size()) {
      return Status::Errorf("{}: {} id {} is outside the vocabulary of {}", source, name, id,
                            t->vocab_size());
    }
  }
  t->bos_id_ = spec.bos_id;
  t->eos_id_ = spec.eos_id;
  return t;
}

int ByteBpeTokenizer::PieceId(std::string_view piece) const {
  auto it = piece_to_id_.find(piece);
  return it == piece_to_id_.end() ? -1 : it->second;
}

std::string ByteBpeTokenizer::Piece(int id) const { return pieces_.at(id); }

void ByteBpeTokenizer::EncodeWord(std::string_view word, std::vector<int>* out) const {
  if (ignore_merges_) {
    std::string mapped;
    for (unsigned char c : word) mapped += ByteToUnicode(c);
    auto it = piece_to_id_.find(mapped);
    if (it != piece_to_id_.end() && !is_added_[it->second]) {
      out->push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int id, prev, next;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  for (unsigned char c : word) {
    int id = byte_id_[c];
    if (id < 0) continue;  // the vocab lacks this byte (no unk in byte-level BPE): dropped
    sym.push_back({id, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1});
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Candidate {
    int rank, left, right, left_id, right_id, merged;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    auto it = merge_of_pair_.find(PairKey(sym[l].id, sym[r].id));
    if (it != merge_of_pair_.end()) {
      queue.push({it->second.rank, l, r, sym[l].id, sym[r].id, it->second.id});
    }
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) try_add(i, i + 1);
  // A merged piece is longer than both parts, so a position's id changes whenever its span does:
  // an entry is current iff both ids and the adjacency still hold.
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[c.left];
    Symbol& r = sym[c.right];
    if (l.id != c.left_id || r.id != c.right_id || l.next != c.right) continue;
    l.id = c.merged;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    r.id = -1;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out->push_back(sym[i].id);
}

void ByteBpeTokenizer::EncodeText(std::string_view text, WordCache* cache, std::vector<int>* out) const {
  if (text.empty()) return;
  std::vector<std::string_view> words;
  std::string prefixed;
  if (pre_.add_prefix_space() && text[0] != ' ') {
    prefixed = " ";
    prefixed.append(text);
    pre_.Split(prefixed, &words);
    for (std::string_view w : words) EncodeWord(w, out);  // views into a temporary: not cached
    return;
  }
  pre_.Split(text, &words);
  for (std::string_view w : words) {
    auto it = cache->ids.find(w);
    if (it == cache->ids.end()) {
      std::vector<int> ids;
      EncodeWord(w, &ids);
      it = cache->ids.emplace(w, std::move(ids)).first;
    }
    out->insert(out->end(), it->second.begin(), it->second.end());
  }
}

std::vector<int> ByteBpeTokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int> out;
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  WordCache cache;
  size_t start = 0;  // first byte not yet encoded
  if (!added_.empty()) {
    std::array<bool, 256> first{};
    for (const AddedToken& a : added_) first[static_cast<unsigned char>(a.content[0])] = true;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!first[static_cast<unsigned char>(text[i])]) continue;
      for (const AddedToken& a : added_) {  // longest first
        if (text.compare(i, a.content.size(), a.content) == 0) {
          EncodeText(text.substr(start, i - start), &cache, &out);
          out.push_back(a.id);
          start = i + a.content.size();
          i = start - 1;
          break;
        }
      }
    }
  }
  EncodeText(text.substr(start), &cache, &out);
  return out;
}

std::string ByteBpeTokenizer::Decode(const std::vector<int>& ids) const {
  const ByteAlphabet& alpha = Alphabet();
  std::string out;
  for (int id : ids) {
    QL_CHECK(id >= 0 && id < vocab_size(), "token id {} outside vocabulary of {}", id, vocab_size());
    if (is_added_[id]) {
      if (!is_added_special_[id]) out += pieces_[id];
      continue;
    }
    const std::string& p = pieces_[id];
    for (size_t i = 0; i < p.size();) {
      size_t at = i;
      uint32_t cp = NextCodePoint(p, &i);
      int b = cp < alpha.byte_of_cp.size() ? alpha.byte_of_cp[cp] : -1;
      if (b >= 0) out.push_back(static_cast<char>(b));
      else out.append(p, at, i - at);  // not in the byte alphabet: keep as is
    }
  }
  return out;
}

Status ByteBpeTokenizer::SaveTokenizerJson(const std::string& path) const {
  using OJ = nlohmann::ordered_json;
  OJ added = OJ::array();
  std::vector<AddedToken> by_id = added_;
  std::sort(by_id.begin(), by_id.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (const AddedToken& a : by_id) {
    added.push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", a.special}});
  }
  OJ vocab = OJ::object();
  for (size_t i = 0; i < pieces_.size(); ++i) {
    if (!pieces_[i].empty()) vocab[pieces_[i]] = i;  // tokenizers wants added tokens in the vocab too
  }
  OJ merges = OJ::array();
  for (const auto& [a, b] : merges_) {
    if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos) {
      merges.push_back(OJ::array({a, b}));  // a space inside a piece needs the [a, b] form
    } else {
      merges.push_back(a + " " + b);
    }
  }
  OJ post = nullptr;
  if (bos_id_ >= 0) {
    const std::string& bos = pieces_[bos_id_];
    OJ seq_a = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
    OJ seq_b = {{"Sequence", {{"id", "B"}, {"type_id", 1}}}};
    OJ bos_tok = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
    OJ bos_tok1 = {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}};
    post = {{"type", "TemplateProcessing"},
            {"single", OJ::array({bos_tok, seq_a})},
            {"pair", OJ::array({bos_tok, seq_a, bos_tok1, seq_b})},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", OJ::array({bos_id_})}, {"tokens", OJ::array({bos})}}}}}};
  }
  OJ j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", OJ::parse(pre_.ToJson().dump())},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", ignore_merges_}, {"vocab", vocab}, {"merges", merges}}},
  };
  std::ofstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: cannot open for writing", path);
  f << j.dump(1) << "\n";
  if (!f) return Status::Errorf("{}: write failed (disk full?)", path);
  return Status::Ok();
}

StatusOr<std::string> PreTokenizerNameFromGguf(std::string_view pre) {
  if (pre == "gpt-2" || pre == "gpt2") return std::string("gpt2");
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe") return std::string("llama3");
  if (pre == "qwen2") return std::string("qwen2");
  if (pre == "smollm" || pre == "starcoder" || pre == "refact") return std::string("smollm");
  return Status::Errorf("GGUF tokenizer.ggml.pre '{}' has no pre-tokenizer here (known: gpt-2, llama-bpe, "
                        "llama3, qwen2, smollm, starcoder, refact)", pre);
}

StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadTokenizerJson(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: cannot open tokenizer.json", path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return LoadTokenizerJsonText(text, path);
}

StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadTokenizerJsonText(std::string_view text,
                                                                  std::string_view source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    std::string detail;
    try {
      json again = json::parse(text);  // throws with the position of the error
      (void)again;
    } catch (const json::exception& e) {
      detail = e.what();
    }
    return Status::Errorf("{}: not valid JSON ({}); is the file complete?", source, detail);
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    return Status::Errorf("{}: no \"model\" object: not a Hugging Face tokenizer.json", source);
  }
  const json& m = j["model"];
  QL_ASSIGN_OR_RETURN(std::string type, JsonString(m, "type", "BPE", source, "model"));
  if (type != "BPE") {
    return Status::Errorf("{}: model.type is '{}'; only byte-level \"BPE\" is supported here", source, type);
  }
  QL_RETURN_IF_ERROR(CheckModelOptions(m, source));
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return Status::Errorf("{}: model.vocab is missing or not an object of piece -> id", source);
  }
  const json* added = j.contains("added_tokens") ? &j["added_tokens"] : nullptr;
  if (added && !added->is_null() && !added->is_array()) {
    return Status::Errorf("{}: added_tokens must be an array (got {})", source, JsonShown(*added));
  }
  // Ids are dense up to a few holes (padding rows): bounding them by the named tokens bounds every
  // per-id allocation by the file's size.
  const int64_t max_id = int64_t(m["vocab"].size()) + (added && added->is_array() ? int64_t(added->size()) : 0) +
                         kMaxIdHoles;
  ByteBpeSpec spec;
  QL_RETURN_IF_ERROR(ReadVocab(m["vocab"], max_id, source, &spec));
  QL_RETURN_IF_ERROR(ReadMerges(m, source, &spec));
  QL_ASSIGN_OR_RETURN(spec.ignore_merges, JsonBool(m, "ignore_merges", false, source, "model"));
  if (added && added->is_array()) QL_RETURN_IF_ERROR(ReadAddedTokens(*added, max_id, source, &spec));
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& nz = j["normalizer"];
    QL_ASSIGN_OR_RETURN(std::string nt, JsonString(nz, "type", "", source, "normalizer"));
    bool empty_seq = nt == "Sequence" && nz.contains("normalizers") && nz["normalizers"].is_array() &&
                     nz["normalizers"].empty();
    if (!nz.is_object() || (nt != "NFC" && !empty_seq)) {
      return Status::Errorf("{}: normalizer {} is not supported (only none or NFC)", source, JsonShown(nz));
    }
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    QL_ASSIGN_OR_RETURN(std::string dt, JsonString(j["decoder"], "type", "", source, "decoder"));
    if (!j["decoder"].is_object() || dt != "ByteLevel") {
      return Status::Errorf("{}: decoder {} is not ByteLevel: not a byte-level BPE tokenizer "
                            "(SentencePiece-style vocabularies use the spm-bpe tokenizer)",
                            source, JsonShown(j["decoder"]));
    }
  }
  if (!j.contains("pre_tokenizer") || !j["pre_tokenizer"].is_object()) {
    return Status::Errorf("{}: no pre_tokenizer object: byte-level BPE needs a ByteLevel pre-tokenizer",
                          source);
  }
  QL_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::FromJson(j["pre_tokenizer"], source));
  spec.pre_tokenizer = pre.name();
  if (j.contains("post_processor")) QL_RETURN_IF_ERROR(FindBos(j["post_processor"], source, 0, &spec));
  for (const char* eos : {"<|endoftext|>", "<|end_of_text|>", "<|im_end|>", "</s>"}) {
    if (spec.eos_id >= 0) break;
    for (const AddedToken& a : spec.added_tokens) {
      if (a.content == eos) spec.eos_id = a.id;
    }
  }
  return ByteBpeTokenizer::Build(std::move(spec), std::move(pre), source);
}

}  // namespace ql
