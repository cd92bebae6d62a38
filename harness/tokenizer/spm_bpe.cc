// SentencePiece-style BPE by scores with byte fallback (llama2.c run.c encode/decode, llama.cpp SPM
// vocab), plus llama2.c's tokenizer.bin reader/writer (docs/formats.md §5.3).
#include "harness/tokenizer/spm_bpe.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <queue>

namespace ql {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// "<0xNN>" -> NN, or -1.
int ParseBytePiece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    char c = p[i];
    int d = (c >= '0' && c <= '9') ? c - '0'
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Length of the UTF-8 character starting at s[i]: a lead byte plus its continuation bytes (at most
// 4 bytes in all). Invalid bytes form characters of their own, so every byte string is covered.
size_t Utf8CharLen(std::string_view s, size_t i) {
  size_t n = 1;
  while (i + n < s.size() && n < 4 && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
  return n;
}

}  // namespace

StatusOr<std::unique_ptr<SpmBpeTokenizer>> SpmBpeTokenizer::Create(SpmVocab v, std::string_view source) {
  const size_t n = v.pieces.size();
  if (n == 0) return Status::Errorf("{}: empty vocabulary", source);
  if (v.scores.size() != n) {
    return Status::Errorf("{}: {} pieces but {} scores; the two lists must have one entry per token",
                          source, n, v.scores.size());
  }
  if (!v.token_types.empty() && v.token_types.size() != n) {
    return Status::Errorf("{}: {} pieces but {} token types; give one type per token or none", source,
                          n, v.token_types.size());
  }
  for (auto [name, id] : {std::pair{"bos", v.bos_id}, {"eos", v.eos_id}, {"unk", v.unk_id}}) {
    if (id < -1 || id >= static_cast<int>(n)) {
      return Status::Errorf("{}: {} id {} is outside the vocabulary of {} tokens", source, name, id, n);
    }
  }
  std::unique_ptr<SpmBpeTokenizer> t(new SpmBpeTokenizer());
  t->bos_id_ = v.bos_id;
  t->eos_id_ = v.eos_id;
  t->unk_id_ = v.unk_id;
  t->add_space_prefix_ = v.add_space_prefix;
  t->scores_ = std::move(v.scores);
  t->types_.resize(n);
  std::fill(std::begin(t->byte_to_id_), std::end(t->byte_to_id_), -1);
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = v.pieces[i];
    SpmTokenType type;
    if (!v.token_types.empty()) {
      int32_t raw = v.token_types[i];
      if (raw < 0 || raw > 6) {
        return Status::Errorf("{}: token {} ('{}') has token type {}, expected 0..6", source, i, p, raw);
      }
      type = static_cast<SpmTokenType>(raw);
    } else if (static_cast<int>(i) == v.unk_id) {
      type = SpmTokenType::kUnknown;
    } else if (static_cast<int>(i) == v.bos_id || static_cast<int>(i) == v.eos_id) {
      type = SpmTokenType::kControl;
    } else if (ParseBytePiece(p) >= 0) {
      type = SpmTokenType::kByte;
    } else {
      type = SpmTokenType::kNormal;
    }
    t->types_[i] = type;
    if (type == SpmTokenType::kByte) {
      int b = ParseBytePiece(p);
      if (b < 0) {
        return Status::Errorf("{}: token {} has the byte type but its piece '{}' is not <0xNN>", source,
                              i, p);
      }
      if (t->byte_to_id_[b] < 0) t->byte_to_id_[b] = static_cast<int>(i);
    } else if (type == SpmTokenType::kNormal || type == SpmTokenType::kUserDefined ||
               type == SpmTokenType::kUndefined) {
      // First occurrence wins when a vocabulary repeats a piece.
      t->piece_to_id_.emplace(p, static_cast<int>(i));
      if (p.find(kMetaspace) != std::string::npos) t->metaspace_ = true;
    }
  }
  bool all_bytes = std::all_of(std::begin(t->byte_to_id_), std::end(t->byte_to_id_),
                               [](int id) { return id >= 0; });
  if (!all_bytes && t->unk_id_ < 0) {
    return Status::Errorf("{}: the vocabulary has neither all 256 byte tokens <0x00>..<0xFF> nor an "
                          "unk id, so some texts could not be encoded; give unk_id", source);
  }
  for (const auto& [p, id] : t->piece_to_id_) {
    for (size_t k = 1; k < p.size(); ++k) {
      int l = t->PieceId(std::string_view(p).substr(0, k));
      int r = l < 0 ? -1 : t->PieceId(std::string_view(p).substr(k));
      if (r >= 0) t->pair_to_id_.emplace((static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r), id);
    }
  }
  for (int c = 0; c < 128; ++c) t->char_id_[c] = t->PieceId(std::string(1, static_cast<char>(c)));
  t->pieces_ = std::move(v.pieces);
  return t;
}

int SpmBpeTokenizer::PieceId(std::string_view piece) const {
  auto it = piece_to_id_.find(piece);
  return it == piece_to_id_.end() ? -1 : it->second;
}

std::vector<int> SpmBpeTokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int> out;
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  if (text.empty()) return out;

  // Step 1: the normalized text (space prefix; spaces as ▁ for a SentencePiece vocabulary).
  const std::string_view space = metaspace_ ? kMetaspace : std::string_view(" ");
  std::string norm;
  norm.reserve(text.size() + (metaspace_ ? text.size() / 2 : 1) + 3);
  if (add_space_prefix_) norm.append(space);
  if (metaspace_) {
    for (char c : text) {
      if (c == ' ') norm.append(space); else norm.push_back(c);
    }
  } else {
    norm.append(text);
  }

  // Step 2: one symbol per character that is a piece; byte (or unk) symbols otherwise.
  struct Symbol {
    int start, len;   // span in norm; len 0 once merged into its left neighbour
    int id;
    int prev, next;   // linked list over alive symbols, -1 at the ends
    bool mergeable;
  };
  std::vector<Symbol> sym;
  sym.reserve(norm.size());
  for (size_t i = 0; i < norm.size();) {
    size_t clen = Utf8CharLen(norm, i);
    unsigned char c0 = static_cast<unsigned char>(norm[i]);
    int id = (clen == 1 && c0 < 128) ? char_id_[c0] : PieceId(std::string_view(norm).substr(i, clen));
    if (id >= 0) {
      sym.push_back({static_cast<int>(i), static_cast<int>(clen), id, 0, 0, true});
    } else {
      bool bytes_ok = true;
      for (size_t k = 0; k < clen; ++k) bytes_ok &= byte_to_id_[static_cast<unsigned char>(norm[i + k])] >= 0;
      if (bytes_ok) {
        for (size_t k = 0; k < clen; ++k) {
          int b = byte_to_id_[static_cast<unsigned char>(norm[i + k])];
          sym.push_back({static_cast<int>(i + k), 1, b, 0, 0, false});
        }
      } else {  // no byte fallback: the whole character becomes one unk (SentencePiece)
        sym.push_back({static_cast<int>(i), static_cast<int>(clen), unk_id_, 0, 0, false});
      }
    }
    i += clen;
  }
  const int ns = static_cast<int>(sym.size());
  for (int i = 0; i < ns; ++i) {
    sym[i].prev = i - 1;
    sym[i].next = i + 1 < ns ? i + 1 : -1;
  }

  // Step 3: best-score merges. A queued bigram is stale once either side changed; sides only
  // grow, so comparing the summed length with the length at push time detects that.
  struct Bigram {
    float score;
    int left, right, len, id;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0 || !sym[l].mergeable || !sym[r].mergeable) return;
    auto it = pair_to_id_.find((static_cast<uint64_t>(sym[l].id) << 32) | static_cast<uint32_t>(sym[r].id));
    if (it != pair_to_id_.end()) queue.push({scores_[it->second], l, r, sym[l].len + sym[r].len, it->second});
  };
  for (int i = 0; i + 1 < ns; ++i) try_add(i, i + 1);
  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;
    l.len = b.len;
    l.id = b.id;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = ns > 0 ? 0 : -1; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
  return out;
}

void SpmBpeTokenizer::AppendSurface(int id, std::string* out) const {
  QL_CHECK(id >= 0 && id < vocab_size(), "token id {} outside vocabulary of {}", id, vocab_size());
  switch (types_[id]) {
    case SpmTokenType::kControl:
    case SpmTokenType::kUnused:
      return;
    case SpmTokenType::kUnknown:
      out->append(" \xE2\x81\x87 ");  // SentencePiece's surface for unk: " ⁇ "
      return;
    case SpmTokenType::kByte:
      out->push_back(static_cast<char>(ParseBytePiece(pieces_[id])));
      return;
    default:
      break;
  }
  const std::string& p = pieces_[id];
  if (!metaspace_) {
    out->append(p);
    return;
  }
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, kMetaspace.size(), kMetaspace) == 0) {
      out->push_back(' ');
      i += kMetaspace.size();
    } else {
      out->push_back(p[i++]);
    }
  }
}

std::string SpmBpeTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  bool at_start = true;
  for (int id : ids) {
    SpmTokenType type = types_.at(id);
    if (type == SpmTokenType::kControl || type == SpmTokenType::kUnused) continue;
    size_t before = out.size();
    AppendSurface(id, &out);
    if (at_start && add_space_prefix_ && out.size() > before && out[before] == ' ') out.erase(before, 1);
    at_start = false;
  }
  return out;
}

std::string SpmBpeTokenizer::DecodeToken(int prev_id, int id) const {
  std::string s;
  AppendSurface(id, &s);
  if (prev_id >= 0 && prev_id == bos_id_ && !s.empty() && s[0] == ' ') s.erase(0, 1);
  return s;
}

std::string SpmBpeTokenizer::Piece(int id) const { return pieces_.at(id); }

StatusOr<std::unique_ptr<SpmBpeTokenizer>> LoadLlama2cTokenizer(const std::string& path, int vocab_size) {
  if (vocab_size <= 0) {
    return Status::Errorf("{}: vocab_size {} must be positive (take abs() of the model header's value)",
                          path, vocab_size);
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: cannot open llama2.c tokenizer file", path);
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t off = 0;
  auto read = [&](void* dst, size_t n) {
    if (off + n > data.size()) return false;
    std::memcpy(dst, data.data() + off, n);
    off += n;
    return true;
  };
  int32_t max_len = 0;
  if (!read(&max_len, 4)) {
    return Status::Errorf("{}: truncated: {} bytes, too short for the i32 max_token_length header", path,
                          data.size());
  }
  // Each token takes at least 8 bytes (f32 score + i32 length): check before sizing anything by vocab_size.
  if (uint64_t(vocab_size) * 8 > data.size() - off) {
    return Status::Errorf("{}: {} bytes cannot hold {} tokens (8 bytes each at least): is vocab_size right "
                          "and the file complete?", path, data.size(), vocab_size);
  }
  SpmVocab v;
  v.pieces.resize(vocab_size);
  v.scores.resize(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    int32_t len = 0;
    if (!read(&v.scores[i], 4) || !read(&len, 4)) {
      return Status::Errorf("{}: truncated at token {} of {} (byte offset {}): is vocab_size right and "
                            "the file complete?", path, i, vocab_size, off);
    }
    if (len < 0 || (max_len > 0 && len > max_len)) {
      return Status::Errorf("{}: token {} has length {} (max_token_length {}): not a llama2.c "
                            "tokenizer.bin", path, i, len, max_len);
    }
    if (size_t(len) > data.size() - off) {
      return Status::Errorf("{}: truncated inside token {} of {} (needs {} bytes at offset {}, file has "
                            "{})", path, i, vocab_size, len, off, data.size());
    }
    v.pieces[i].assign(data, off, size_t(len));
    off += size_t(len);
  }
  if (off != data.size()) {
    return Status::Errorf("{}: {} bytes left after {} tokens: the tokenizer has more tokens than the "
                          "model's vocab_size; use the tokenizer that came with the model", path,
                          data.size() - off, vocab_size);
  }
  // run.c hard-codes these ids.
  v.unk_id = vocab_size > 0 ? 0 : -1;
  v.bos_id = vocab_size > 1 ? 1 : -1;
  v.eos_id = vocab_size > 2 ? 2 : -1;
  return SpmBpeTokenizer::Create(std::move(v), path);
}

Status SaveLlama2cTokenizer(const SpmBpeTokenizer& tok, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: cannot open for writing", path);
  int32_t max_len = 0;
  for (int i = 0; i < tok.vocab_size(); ++i) {
    max_len = std::max<int32_t>(max_len, static_cast<int32_t>(tok.Piece(i).size()));
  }
  f.write(reinterpret_cast<const char*>(&max_len), 4);
  for (int i = 0; i < tok.vocab_size(); ++i) {
    float score = tok.Score(i);
    std::string p = tok.Piece(i);
    int32_t len = static_cast<int32_t>(p.size());
    f.write(reinterpret_cast<const char*>(&score), 4);
    f.write(reinterpret_cast<const char*>(&len), 4);
    f.write(p.data(), len);
  }
  if (!f) return Status::Errorf("{}: write failed (disk full?)", path);
  return Status::Ok();
}

}  // namespace ql
