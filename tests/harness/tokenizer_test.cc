// Tests of SpmBpeTokenizer (and LoadTokenizer) on llama2.c's tok512.bin (stories260K): ids derived by hand from the vocab,
// a plain O(n^2) transcription of llama2.c's encode loop as the oracle, round trips on every data file.
#include "harness/tokenizer/spm_bpe.h"
#include "tests/temp_dir.h"
#include "tests/test_paths.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <gtest/gtest.h>

#include "harness/tokenizer/byte_bpe.h"
#include "harness/tokenizer/tokenizer.h"

namespace ql {
namespace {

const std::string kTok512 = std::string(QL_SHARED_DIR) + "/models/stories260K/tok512.bin";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A tiny independent reader of tokenizer.bin (docs/formats.md §5.3): pieces and scores in file order.
struct RawVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  int Id(const std::string& piece) const {
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (pieces[i] == piece) return static_cast<int>(i);
    }
    return -1;
  }
};

RawVocab ReadRaw(const std::string& path, int n) {
  std::string d = ReadFile(path);
  RawVocab v;
  size_t off = 4;
  for (int i = 0; i < n; ++i) {
    float s;
    int32_t len;
    std::memcpy(&s, d.data() + off, 4);
    std::memcpy(&len, d.data() + off + 4, 4);
    off += 8;
    v.pieces.push_back(d.substr(off, len));
    v.scores.push_back(s);
    off += len;
  }
  return v;
}

// llama2.c's encode as written in run.c: lookup each UTF-8 character (byte fallback id = byte + 3),
// then a linear scan for the best-scoring adjacent merge, leftmost on ties, until none is left.
// O(n^2): the oracle for short texts only.
std::vector<int> NaiveLlama2cEncode(const RawVocab& v, const std::string& text) {
  std::map<std::string, int> lookup;
  for (size_t i = 3 + 256; i < v.pieces.size(); ++i) lookup.emplace(v.pieces[i], static_cast<int>(i));
  std::vector<int> t = {1};  // BOS
  if (text.empty()) return t;
  t.push_back(lookup.at(" "));
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (i + n < text.size() && n < 4 && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
    auto it = lookup.find(text.substr(i, n));
    if (it != lookup.end()) {
      t.push_back(it->second);
    } else {
      for (size_t k = 0; k < n; ++k) t.push_back(static_cast<unsigned char>(text[i + k]) + 3);
    }
    i += n;
  }
  for (;;) {
    float best = -1e10f;
    int best_id = -1, best_idx = -1;
    for (size_t i = 0; i + 1 < t.size(); ++i) {
      auto it = lookup.find(v.pieces[t[i]] + v.pieces[t[i + 1]]);
      if (it != lookup.end() && v.scores[it->second] > best) {
        best = v.scores[it->second];
        best_id = it->second;
        best_idx = static_cast<int>(i);
      }
    }
    if (best_idx < 0) break;
    t[best_idx] = best_id;
    t.erase(t.begin() + best_idx + 1);
  }
  return t;
}

std::unique_ptr<SpmBpeTokenizer> LoadTok512() {
  auto t = LoadLlama2cTokenizer(kTok512, 512);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(SpmBpe, Tok512VocabFacts) {
  auto tok = LoadTok512();
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->kind(), "spm-bpe");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_FALSE(tok->metaspace());  // llama2.c's export writes raw spaces
  EXPECT_EQ(tok->Piece(3), "<0x00>");
  EXPECT_EQ(tok->Piece(13), "<0x0A>");
  EXPECT_EQ(tok->Piece(258), "<0xFF>");
  EXPECT_EQ(tok->Type(13), SpmTokenType::kByte);
  EXPECT_EQ(tok->Type(1), SpmTokenType::kControl);
  EXPECT_EQ(tok->Type(0), SpmTokenType::kUnknown);
}

// Ids read off the vocabulary (python struct dump of tok512.bin; the test re-checks each by piece):
//   259 " t" (score -0), 260 "he" (-1), 261 " a" (-2), 265 " the" (-6), 290 "il" (-31),
//   307 " L" (-48), 308 " th" (-49), 310 "ily" (-51), 317 " Lily" (-58), 410 " " (-151),
//   412 "a", 415 "h", 411 "e", 485 "é"; "th", "Li", "ly", " é", "\n" are not pieces.
TEST(SpmBpe, Tok512HandDerivedIds) {
  auto tok = LoadTok512();
  ASSERT_TRUE(tok);
  RawVocab raw = ReadRaw(kTok512, 512);
  for (auto [id, piece] : std::vector<std::pair<int, std::string>>{
           {259, " t"}, {260, "he"}, {261, " a"}, {265, " the"}, {290, "il"}, {307, " L"},
           {310, "ily"}, {317, " Lily"}, {410, " "}, {412, "a"}, {485, "\xC3\xA9"}}) {
    EXPECT_EQ(raw.Id(piece), id) << piece;
  }
  for (const char* absent : {"th", "Li", "ly", " \xC3\xA9", "\n", "\xC3\xBC"}) {
    EXPECT_EQ(raw.Id(absent), -1) << absent;
  }
  // "a": [" ", "a"] -> " a" (261).
  EXPECT_EQ(tok->Encode("a", true), (std::vector<int>{1, 261}));
  EXPECT_EQ(tok->Encode("a", false), (std::vector<int>{261}));
  // "the": [" ","t","h","e"]; candidates " t"(-0) and "he"(-1) -> " t"; then " th"(-49) vs "he"(-1)
  // -> "he"; then " t"+"he" = " the" (265).
  EXPECT_EQ(tok->Encode("the", true), (std::vector<int>{1, 265}));
  // "Lily": [" ","L","i","l","y"]; " L"(-48), "il"(-31) -> "il"; " L"(-48), "ily"(-51) -> " L";
  // then "ily" -> " Lily" (317).
  EXPECT_EQ(tok->Encode("Lily", true), (std::vector<int>{1, 317}));
  // "\n" has no piece: byte fallback 0x0A + 3 = 13; the prefix space stays alone (410).
  EXPECT_EQ(tok->Encode("\n", true), (std::vector<int>{1, 410, 13}));
  // "é" is a piece (485) but " é" is not.
  EXPECT_EQ(tok->Encode("\xC3\xA9", true), (std::vector<int>{1, 410, 485}));
  // "ü" = C3 BC is no piece: bytes 0xC3+3 = 198, 0xBC+3 = 191.
  EXPECT_EQ(tok->Encode("\xC3\xBC", true), (std::vector<int>{1, 410, 198, 191}));
  EXPECT_EQ(tok->Encode("", true), (std::vector<int>{1}));
  EXPECT_EQ(tok->Encode("", false), (std::vector<int>{}));
  // Decoding drops BOS and the prefix space.
  EXPECT_EQ(tok->Decode({1, 410, 198, 191}), "\xC3\xBC");
  EXPECT_EQ(tok->Decode({1, 265, 261}), "the a");
  EXPECT_EQ(tok->DecodeToken(1, 265), "the");
  EXPECT_EQ(tok->DecodeToken(265, 261), " a");
  EXPECT_EQ(tok->DecodeToken(265, 13), "\n");
}

TEST(SpmBpe, Tok512MatchesNaiveLlama2cLoop) {
  auto tok = LoadTok512();
  ASSERT_TRUE(tok);
  RawVocab raw = ReadRaw(kTok512, 512);
  std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "  leading spaces and   runs\n\nof newlines\t tabs",
      "Caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x9Cquoted\xE2\x80\x9D \xF0\x9F\x98\x80 emoji",
      "\xFF\xFE invalid \x80 utf-8 \xC3",  // stray bytes still round-trip via byte fallback
      "Timmy and Tim, they said: \"happy day!\" 1234567890",
  };
  for (const char* file : {"tinystories-valid-head.txt", "wikitext-2-raw-test.txt", "tinyshakespeare.txt"}) {
    std::string d = ReadFile(std::string(QL_SHARED_DIR) + "/data/" + file);
    ASSERT_GT(d.size(), 400000u) << file;
    for (size_t off : {size_t{0}, size_t{1000}, size_t{362400}}) texts.push_back(d.substr(off, 600));
  }
  for (const std::string& t : texts) {
    EXPECT_EQ(tok->Encode(t, true), NaiveLlama2cEncode(raw, t)) << t;
    EXPECT_EQ(tok->Decode(tok->Encode(t, true)), t);
  }
}

TEST(SpmBpe, MetaspaceVocabularyGivesTheSameIds) {
  // The same vocabulary spelled the SentencePiece/GGUF way ("▁" for space) must encode identically.
  RawVocab raw = ReadRaw(kTok512, 512);
  SpmVocab v;
  for (size_t i = 0; i < raw.pieces.size(); ++i) {
    std::string p;
    for (char c : raw.pieces[i]) {
      if (c == ' ' && i >= 259) p += "\xE2\x96\x81"; else p += c;
    }
    v.pieces.push_back(i == 1 ? "<s>" : i == 2 ? "</s>" : p);
  }
  v.scores = raw.scores;
  v.token_types.assign(512, 1);
  v.token_types[0] = 2;
  v.token_types[1] = v.token_types[2] = 3;
  for (int i = 3; i < 259; ++i) v.token_types[i] = 6;
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  auto meta = SpmBpeTokenizer::Create(v, "test vocab");
  ASSERT_TRUE(meta.ok()) << meta.status().message();
  EXPECT_TRUE((*meta)->metaspace());
  EXPECT_EQ((*meta)->Piece(317), "\xE2\x96\x81Lily");
  auto tok = LoadTok512();
  ASSERT_TRUE(tok);
  std::string t = ReadFile(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt").substr(0, 20000);
  t += " \xC3\xBC\xE2\x80\x9C end ";
  std::vector<int> a = (*meta)->Encode(t, true);
  EXPECT_EQ(a, tok->Encode(t, true));
  EXPECT_EQ((*meta)->Decode(a), t);
}

// A minimal GGUF v3 metadata walk (ggml docs/gguf.md, docs/formats.md §4): just enough to pull the tokenizer
// arrays out of stories260K.gguf, independent of the project's GGUF loader.
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};
GgufVocab ReadGgufVocab(const std::string& path) {
  std::string d = ReadFile(path);
  size_t off = 0;
  auto u32 = [&] { uint32_t v; std::memcpy(&v, d.data() + off, 4); off += 4; return v; };
  auto u64 = [&] { uint64_t v; std::memcpy(&v, d.data() + off, 8); off += 8; return v; };
  auto str = [&] { uint64_t n = u64(); std::string s = d.substr(off, n); off += n; return s; };
  const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  GgufVocab v;
  EXPECT_EQ(d.substr(0, 4), "GGUF");
  off = 4;
  u32();  // version
  u64();  // tensor count
  uint64_t n_kv = u64();
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = str();
    uint32_t type = u32();
    if (type == 8) { str(); continue; }
    if (type != 9) { off += kSize[type]; continue; }
    uint32_t et = u32();
    uint64_t n = u64();
    for (uint64_t k = 0; k < n; ++k) {
      if (et == 8) {
        std::string s = str();
        if (key == "tokenizer.ggml.tokens") v.tokens.push_back(s);
      } else {
        if (key == "tokenizer.ggml.scores") { float f; std::memcpy(&f, d.data() + off, 4); v.scores.push_back(f); }
        if (key == "tokenizer.ggml.token_type") { int32_t t; std::memcpy(&t, d.data() + off, 4); v.types.push_back(t); }
        off += kSize[et];
      }
    }
  }
  return v;
}

TEST(SpmBpe, Stories260kGgufVocabularyMatchesTok512) {
  GgufVocab g = ReadGgufVocab(std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.gguf");
  ASSERT_EQ(g.tokens.size(), 512u);
  ASSERT_EQ(g.scores.size(), 512u);
  ASSERT_EQ(g.types.size(), 512u);
  SpmVocab v;
  v.pieces = g.tokens;
  v.scores = g.scores;
  v.token_types = g.types;
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  auto gguf = SpmBpeTokenizer::Create(v, "stories260K.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  EXPECT_TRUE((*gguf)->metaspace());
  auto bin = LoadTok512();
  ASSERT_TRUE(bin);
  for (const char* file : {"tinystories-valid-head.txt", "wikitext-2-raw-test.txt"}) {
    std::string text = ReadFile(std::string(QL_SHARED_DIR) + "/data/" + file).substr(0, 100000);
    std::vector<int> ids = (*gguf)->Encode(text, true);
    EXPECT_EQ(ids, bin->Encode(text, true)) << file;
    EXPECT_EQ((*gguf)->Decode(ids), text) << file;
  }
}

TEST(SpmBpe, RoundTripsEveryDataFile) {
  auto tok = LoadTok512();
  ASSERT_TRUE(tok);
  namespace fs = std::filesystem;
  int files = 0;
  for (const auto& e : fs::directory_iterator(std::string(QL_SHARED_DIR) + "/data")) {
    if (e.path().extension() != ".txt") continue;
    std::string text = ReadFile(e.path().string());
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> ids = tok->Encode(text, true);
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ info ] tok512 %s: %zu bytes -> %zu tokens in %.3f s\n", e.path().filename().c_str(),
                text.size(), ids.size(), sec);
    ASSERT_EQ(ids[0], 1);
    EXPECT_LT(ids.size(), text.size()) << "merges should shorten the text";
    std::string back = tok->Decode(ids);
    EXPECT_TRUE(back == text) << e.path() << ": round trip differs (sizes " << back.size() << " vs "
                              << text.size() << ")";
    ++files;
  }
  EXPECT_EQ(files, 4);
}

TEST(SpmBpe, SaveReproducesTheFileByteForByte) {
  auto tok = LoadTok512();
  ASSERT_TRUE(tok);
  const qltest::TempDir tmp("ql_tokenizer_test");
  std::string out = tmp.sub("tok512_copy.bin");
  ASSERT_TRUE(SaveLlama2cTokenizer(*tok, out).ok());
  EXPECT_TRUE(ReadFile(out) == ReadFile(kTok512));
}

TEST(SpmBpe, ErrorsNameTheFileAndProblem) {
  std::string d = ReadFile(kTok512);
  const qltest::TempDir tmp("ql_tokenizer_test");
  std::string path = tmp.sub("tok512_truncated.bin");
  {
    std::ofstream f(path, std::ios::binary);
    f.write(d.data(), d.size() - 10);
  }
  auto t = LoadLlama2cTokenizer(path, 512);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("truncated"), std::string::npos) << t.status().message();

  auto wrong = LoadLlama2cTokenizer(kTok512, 500);  // vocab_size from a different model
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("left after 500 tokens"), std::string::npos)
      << wrong.status().message();

  auto too_many = LoadLlama2cTokenizer(kTok512, 600);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("truncated at token 512"), std::string::npos)
      << too_many.status().message();

  auto missing = LoadLlama2cTokenizer("/nonexistent/tok.bin", 512);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tok.bin"), std::string::npos);

  SpmVocab bad;
  bad.pieces = {"a", "b"};
  bad.scores = {0.0f};
  auto c = SpmBpeTokenizer::Create(bad, "GGUF metadata");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("2 pieces but 1 scores"), std::string::npos) << c.status().message();
}

TEST(Tokenizer, LoadTokenizerPicksTheImplementationByPath) {
  auto spm = LoadTokenizer(kTok512, 512);
  ASSERT_TRUE(spm.ok()) << spm.status().message();
  EXPECT_EQ((*spm)->kind(), "spm-bpe");
  EXPECT_EQ((*spm)->Encode("Lily", true), (std::vector<int>{1, 317}));
  const std::string tiny = std::string(QL_SOURCE_DIR) + "/tests/data/tokenizer/tiny_bpe.json";
  auto bpe = LoadTokenizer(tiny, 19);
  ASSERT_TRUE(bpe.ok()) << bpe.status().message();
  EXPECT_EQ((*bpe)->kind(), "byte-bpe");
  auto small = LoadTokenizer(tiny, 10);  // the model's vocabulary is smaller than the tokenizer's
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("19 tokens"), std::string::npos) << small.status().message();
  auto dir = LoadTokenizer(testing::TempDir(), 512);  // a directory without tokenizer.json
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("tokenizer.json"), std::string::npos) << dir.status().message();
}

TEST(Tokenizer, GgufPreTokenizerNames) {
  EXPECT_EQ(PreTokenizerNameFromGguf("llama-bpe").value(), "llama3");
  EXPECT_EQ(PreTokenizerNameFromGguf("qwen2").value(), "qwen2");
  EXPECT_EQ(PreTokenizerNameFromGguf("smollm").value(), "smollm");
  EXPECT_EQ(PreTokenizerNameFromGguf("gpt-2").value(), "gpt2");
  auto bad = PreTokenizerNameFromGguf("deepseek-llm");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("deepseek-llm"), std::string::npos);
}

}  // namespace
}  // namespace ql
