// Byte-level BPE: encoding by merge rank, decoding through GPT-2's byte-to-unicode alphabet, and the
// tokenizer.json reader and writer (Hugging Face tokenizers' serialization of model "BPE").
#include "harness/tokenizer/byte_bpe.h"

#include <algorithm>
#include <array>
#include <functional>
#include <fstream>
#include <iterator>
#include <queue>

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
  using nlohmann::json;
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
  std::string type = m.value("type", "BPE");
  if (type != "BPE") {
    return Status::Errorf("{}: model.type is '{}'; only byte-level \"BPE\" is supported here", source, type);
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty()) {
      return Status::Errorf("{}: model.{} is set; subword prefixes/suffixes are not byte-level BPE", source, k);
    }
  }
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0) {
    return Status::Errorf("{}: model.dropout is {}; BPE dropout makes encoding random, set it to null",
                          source, m["dropout"].dump());
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return Status::Errorf("{}: model.vocab is missing or not an object of piece -> id", source);
  }
  ByteBpeSpec spec;
  for (const auto& [piece, idj] : m["vocab"].items()) {
    if (!idj.is_number_integer() || idj.get<int64_t>() < 0 || idj.get<int64_t>() > (1 << 24)) {
      return Status::Errorf("{}: model.vocab['{}'] = {} is not a token id", source, piece, idj.dump());
    }
    int id = idj.get<int>();
    if (id >= static_cast<int>(spec.vocab.size())) spec.vocab.resize(id + 1);
    if (!spec.vocab[id].empty()) {
      return Status::Errorf("{}: model.vocab gives id {} to both '{}' and '{}'", source, id, spec.vocab[id], piece);
    }
    spec.vocab[id] = piece;
  }
  if (!m.contains("merges") || !m["merges"].is_array()) {
    return Status::Errorf("{}: model.merges is missing or not an array", source);
  }
  for (size_t r = 0; r < m["merges"].size(); ++r) {
    const json& e = m["merges"][r];
    if (e.is_string()) {
      std::string s = e;
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return Status::Errorf("{}: model.merges[{}] = \"{}\" is not two pieces separated by one space",
                              source, r, s);
      }
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      spec.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return Status::Errorf("{}: model.merges[{}] = {} is neither \"a b\" nor [\"a\", \"b\"]", source, r,
                            e.dump());
    }
  }
  spec.ignore_merges = m.value("ignore_merges", false);
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string()) {
        return Status::Errorf("{}: added_tokens entry {} needs an integer \"id\" and a string \"content\"",
                              source, a.dump());
      }
      spec.added_tokens.push_back({a["id"].get<int>(), a["content"].get<std::string>(), a.value("special", false)});
    }
  }
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& nz = j["normalizer"];
    std::string nt = nz.is_object() ? nz.value("type", "") : "";
    bool empty_seq = nt == "Sequence" && nz.contains("normalizers") && nz["normalizers"].empty();
    if (nt != "NFC" && !empty_seq) {
      return Status::Errorf("{}: normalizer {} is not supported (only none or NFC)", source, nz.dump());
    }
  }
  if (j.contains("decoder") && j["decoder"].is_object() && j["decoder"].value("type", "") != "ByteLevel") {
    return Status::Errorf("{}: decoder type '{}' is not ByteLevel: not a byte-level BPE tokenizer "
                          "(SentencePiece-style vocabularies use the spm-bpe tokenizer)",
                          source, j["decoder"].value("type", ""));
  }
  if (!j.contains("pre_tokenizer") || !j["pre_tokenizer"].is_object()) {
    return Status::Errorf("{}: no pre_tokenizer object: byte-level BPE needs a ByteLevel pre-tokenizer",
                          source);
  }
  QL_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::FromJson(j["pre_tokenizer"], source));
  spec.pre_tokenizer = pre.name();
  // BOS: the special token a TemplateProcessing post-processor puts in front of a single sequence.
  std::function<void(const json&)> find_bos = [&](const json& p) {
    if (!p.is_object()) return;
    if (p.value("type", "") == "Sequence" && p.contains("processors")) {
      for (const json& q : p["processors"]) find_bos(q);
    }
    if (p.value("type", "") == "TemplateProcessing" && p.contains("single") && p["single"].is_array() &&
        !p["single"].empty() && p["single"][0].contains("SpecialToken")) {
      std::string name = p["single"][0]["SpecialToken"].value("id", "");
      for (const AddedToken& a : spec.added_tokens) {
        if (a.content == name) spec.bos_id = a.id;
      }
    }
  };
  if (j.contains("post_processor")) find_bos(j["post_processor"]);
  for (const char* eos : {"<|endoftext|>", "<|end_of_text|>", "<|im_end|>", "</s>"}) {
    if (spec.eos_id >= 0) break;
    for (const AddedToken& a : spec.added_tokens) {
      if (a.content == eos) spec.eos_id = a.id;
    }
  }
  return ByteBpeTokenizer::Build(std::move(spec), std::move(pre), source);
}

}  // namespace ql
