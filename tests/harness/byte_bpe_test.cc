// Tests of the byte-level BPE tokenizer: a hand-written tokenizer.json with ids derived by hand,
// pre-tokenizer splits of the GPT-2 / Llama 3 / Qwen2 / SmolLM patterns, training, save/load, errors.
#include "harness/tokenizer/byte_bpe.h"
#include "tests/temp_dir.h"
#include "tests/test_paths.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <gtest/gtest.h>

namespace ql {
namespace {

const std::string kTiny = std::string(QL_SOURCE_DIR) + "/tests/data/tokenizer/tiny_bpe.json";
const std::string kData = std::string(QL_SHARED_DIR) + "/data/";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

using Words = std::vector<std::string>;
Words SplitWith(const std::string& name, const std::string& text) {
  auto pre = PreTokenizer::FromName(name);
  EXPECT_TRUE(pre.ok()) << pre.status().message();
  std::vector<std::string_view> w;
  pre->Split(text, &w);
  return Words(w.begin(), w.end());
}

TEST(ByteBpe, ByteAlphabetKnownCharacters) {
  // bytes_to_unicode: printable bytes map to themselves; 0x00..0x20 are the first 33 others
  // (256..288), 0x7F..0xA0 the next 34 (289..322), 0xAD the last (323).
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode('a'), "a");
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode(' '), "\xC4\xA0");   // U+0120 "Ġ"
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode('\n'), "\xC4\x8A");  // U+010A "Ċ"
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode(0x00), "\xC4\x80");  // U+0100
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode(0x7F), "\xC4\xA1");  // U+0121 (289)
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode(0xAD), "\xC5\x83");  // U+0143 "Ń" (323)
  EXPECT_EQ(ByteBpeTokenizer::ByteToUnicode(0xE9), "\xC3\xA9");  // é stands for itself
}

TEST(ByteBpe, Gpt2Splits) {
  EXPECT_EQ(SplitWith("gpt2", "I'm can't we've"), (Words{"I", "'m", " can", "'t", " we", "'ve"}));
  EXPECT_EQ(SplitWith("gpt2", "abc 123 4567"), (Words{"abc", " 123", " 4567"}));
  // \s+(?!\S) leaves the last space of a run to the next word.
  EXPECT_EQ(SplitWith("gpt2", "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(SplitWith("gpt2", "hi!!  ?"), (Words{"hi", "!!", " ", " ?"}));
  EXPECT_EQ(SplitWith("gpt2", "line\n\nnext"), (Words{"line", "\n", "\n", "next"}));
  EXPECT_EQ(SplitWith("gpt2", "trailing  "), (Words{"trailing", "  "}));
  // Unicode letters: é, ö, Ü and CJK are \p{L}.
  EXPECT_EQ(SplitWith("gpt2", "h\xC3\xA9llo w\xC3\xB6rld \xC3\x9C \xE6\x97\xA5\xE6\x9C\xAC"),
            (Words{"h\xC3\xA9llo", " w\xC3\xB6rld", " \xC3\x9C", " \xE6\x97\xA5\xE6\x9C\xAC"}));
  // Case-sensitive contractions in GPT-2: "'D" is punctuation then a letter run.
  EXPECT_EQ(SplitWith("gpt2", "I'D"), (Words{"I", "'", "D"}));
}

TEST(ByteBpe, Llama3Qwen2SmolLmSplits) {
  EXPECT_EQ(SplitWith("llama3", "line\n\nnext"), (Words{"line", "\n\n", "next"}));
  EXPECT_EQ(SplitWith("llama3", "12345"), (Words{"123", "45"}));
  EXPECT_EQ(SplitWith("llama3", "I'D HERE"), (Words{"I", "'D", " HERE"}));  // (?i:...) contractions
  EXPECT_EQ(SplitWith("llama3", "hello, world"), (Words{"hello", ",", " world"}));
  EXPECT_EQ(SplitWith("llama3", "$100"), (Words{"$", "100"}));
  EXPECT_EQ(SplitWith("qwen2", "12345"), (Words{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(SplitWith("qwen2", "abc12 x"), (Words{"abc", "1", "2", " x"}));
  // SmolLM/StarCoder: Digits(individual) first, then GPT-2's regex inside each piece.
  EXPECT_EQ(SplitWith("smollm", "abc 123"), (Words{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(SplitWith("smollm", "x2y"), (Words{"x", "2", "y"}));
  auto p = PreTokenizer::FromName("smollm");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->name(), "smollm");
  auto back = PreTokenizer::FromJson(p->ToJson(), "test");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->name(), "smollm");
  EXPECT_FALSE(PreTokenizer::FromName("bert").ok());
}

// tiny_bpe.json: vocab h0 e1 l2 o3 Ġ4 w5 r6 d7 !8 he9 ll10 hell11 hello12 Ġw13 or14 Ġwor15 ld16
// Ġworld18, special <|endoftext|> 17; merges by rank: 0 "h e", 1 "l l", 2 "he ll", 3 "hell o",
// 4 "o r", 5 "Ġ w", 6 "Ġw or", 7 "l d".
TEST(ByteBpe, TinyFixtureHandDerivedIds) {
  auto t = LoadTokenizerJson(kTiny);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ByteBpeTokenizer& tok = **t;
  EXPECT_EQ(tok.kind(), "byte-bpe");
  EXPECT_EQ(tok.vocab_size(), 19);
  EXPECT_EQ(tok.bos_id(), -1);   // no post-processor
  EXPECT_EQ(tok.eos_id(), 17);   // <|endoftext|>
  EXPECT_EQ(tok.pre_tokenizer().name(), "gpt2");
  // "hello": h e l l o -> (h,e) r0 -> [he l l o] -> (l,l) r1 -> [he ll o] -> r2 -> [hell o] -> r3 -> 12.
  // " world": Ġ w o r l d -> (o,r) r4 -> [Ġ w or l d] -> (Ġ,w) r5 -> [Ġw or l d] -> r6 -> [Ġwor l d]
  //   -> (l,d) r7 -> [Ġwor ld] = 15 16 ("Ġwor ld" is no merge). "!" -> 8.
  EXPECT_EQ(tok.Encode("hello world!", false), (std::vector<int>{12, 15, 16, 8}));
  EXPECT_EQ(tok.Encode("hello world!", true), (std::vector<int>{12, 15, 16, 8}));  // no BOS
  EXPECT_EQ(tok.Encode("hello<|endoftext|> world", false), (std::vector<int>{12, 17, 15, 16}));
  // "lll": (l,l) at 0 and 1 tie at rank 1 -> leftmost -> [ll l].
  EXPECT_EQ(tok.Encode("lll", false), (std::vector<int>{10, 2}));
  EXPECT_EQ(tok.Encode("oh", false), (std::vector<int>{3, 0}));
  EXPECT_EQ(tok.Encode("hell", false), (std::vector<int>{11}));
  EXPECT_EQ(tok.Decode({12, 15, 16, 8}), "hello world!");
  EXPECT_EQ(tok.Decode({12, 17, 15, 16}), "hello world");  // special token dropped
  EXPECT_EQ(tok.Piece(13), "\xC4\xA0w");
  EXPECT_EQ(tok.PieceId("\xC4\xA0world"), 18);
}

TEST(ByteBpe, TinyFixtureIgnoreMergesAndArrayMerges) {
  nlohmann::json j = nlohmann::json::parse(ReadFile(kTiny));
  j["model"]["ignore_merges"] = true;
  auto t = LoadTokenizerJsonText(j.dump(), "ignore_merges variant");
  ASSERT_TRUE(t.ok()) << t.status().message();
  // " world" is itself the piece Ġworld (18): emitted whole; "hello" is a piece too (12).
  EXPECT_EQ((*t)->Encode("hello world!", false), (std::vector<int>{12, 18, 8}));

  j["model"]["ignore_merges"] = false;
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& m : j["model"]["merges"]) {
    std::string s = m;
    pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  j["model"]["merges"] = pairs;
  auto u = LoadTokenizerJsonText(j.dump(), "array merges variant");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ((*u)->Encode("hello world!", false), (std::vector<int>{12, 15, 16, 8}));
}

TEST(ByteBpe, ErrorsNameTheFileAndProblem) {
  const qltest::TempDir tmp("ql_byte_bpe_test");
  std::string dir = tmp.str();
  std::string text = ReadFile(kTiny);
  std::string cut = dir + "/cut_tokenizer.json";
  WriteFile(cut, text.substr(0, text.size() / 2));
  auto a = LoadTokenizerJson(cut);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find(cut), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find("not valid JSON"), std::string::npos) << a.status().message();

  nlohmann::json j = nlohmann::json::parse(text);
  j["model"]["merges"].push_back("x y");
  auto b = LoadTokenizerJsonText(j.dump(), "bad_merge.json");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("bad_merge.json: merge 8 'x y' uses 'x'"), std::string::npos)
      << b.status().message();

  j = nlohmann::json::parse(text);
  j["model"]["type"] = "Unigram";
  auto c = LoadTokenizerJsonText(j.dump(), "uni.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("Unigram"), std::string::npos);

  j = nlohmann::json::parse(text);
  j["decoder"] = {{"type", "Metaspace"}};
  auto d = LoadTokenizerJsonText(j.dump(), "spm.json");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("spm-bpe"), std::string::npos);

  j = nlohmann::json::parse(text);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  auto e = LoadTokenizerJsonText(j.dump(), "regex.json");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("(unclosed"), std::string::npos) << e.status().message();

  auto f = LoadTokenizerJson("/nonexistent/tokenizer.json");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
}

class TrainedBpe : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    ByteBpeTrainOptions opt;
    opt.vocab_size = 1000;
    opt.special_tokens = {"<|endoftext|>"};
    opt.eos_index = 0;
    auto t = TrainByteBpe(ReadFile(kData + "tinyshakespeare.txt"), opt);
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok_ = std::move(t).value().release();
  }
  static void TearDownTestSuite() { delete tok_; }
  static ByteBpeTokenizer* tok_;
};
ByteBpeTokenizer* TrainedBpe::tok_ = nullptr;

TEST_F(TrainedBpe, VocabularyShape) {
  ASSERT_TRUE(tok_);
  EXPECT_EQ(tok_->vocab_size(), 1000);
  EXPECT_EQ(tok_->eos_id(), 0);
  EXPECT_EQ(tok_->Piece(0), "<|endoftext|>");
  EXPECT_EQ(tok_->Piece(1 + 'a'), "a");  // bytes follow the special token in byte order
  // Shakespeare's most frequent pair inside GPT-2 words: count it independently with a plain scan
  // over the pre-tokenized words and compare with the first merge.
  auto pre = PreTokenizer::FromName("gpt2");
  std::string text = ReadFile(kData + "tinyshakespeare.txt");
  std::vector<std::string_view> words;
  pre->Split(text, &words);
  std::map<std::pair<unsigned char, unsigned char>, int64_t> pc;
  for (std::string_view w : words) {
    for (size_t i = 0; i + 1 < w.size(); ++i) ++pc[{w[i], w[i + 1]}];
  }
  auto best = pc.begin();
  for (auto it = pc.begin(); it != pc.end(); ++it) {
    if (it->second > best->second) best = it;
  }
  ASSERT_GE(tok_->num_merges(), 1);
  EXPECT_EQ(tok_->merges()[0].first, ByteBpeTokenizer::ByteToUnicode(best->first.first));
  EXPECT_EQ(tok_->merges()[0].second, ByteBpeTokenizer::ByteToUnicode(best->first.second));
}

TEST_F(TrainedBpe, RoundTripsEveryDataFileAndSavesLoads) {
  ASSERT_TRUE(tok_);
  const qltest::TempDir tmp("ql_byte_bpe_test");
  std::string path = tmp.sub("trained_tokenizer.json");
  ASSERT_TRUE(tok_->SaveTokenizerJson(path).ok());
  auto loaded = LoadTokenizerJson(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ((*loaded)->vocab_size(), tok_->vocab_size());
  EXPECT_EQ((*loaded)->eos_id(), 0);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(kData)) {
    if (e.path().extension() != ".txt") continue;
    std::string text = ReadFile(e.path().string());
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> ids = tok_->Encode(text, false);
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ info ] trained byte-bpe(1000) %s: %zu bytes -> %zu tokens in %.3f s\n",
                e.path().filename().c_str(), text.size(), ids.size(), sec);
    EXPECT_TRUE(tok_->Decode(ids) == text) << e.path();
    if (files == 0) {
      EXPECT_EQ((*loaded)->Encode(text, false), ids) << "saved/loaded tokenizer differs";
    }
    ++files;
  }
  EXPECT_EQ(files, 4);
  // Special tokens in the text come out as their ids and vanish in Decode.
  std::vector<int> ids = tok_->Encode("To be<|endoftext|>or not", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 1);
  EXPECT_EQ(tok_->Decode(ids), "To beor not");
  // Bytes that are not UTF-8 still round-trip (PCRE2 matches with PCRE2_MATCH_INVALID_UTF).
  std::string raw = "ok \xFF\xFE abc \xC3 \x80\x80 end\xE2\x80";
  EXPECT_EQ(tok_->Decode(tok_->Encode(raw, false)), raw);
  std::string spaces(100000, ' ');
  EXPECT_EQ(tok_->Decode(tok_->Encode("x" + spaces + "y", false)), "x" + spaces + "y");
}

TEST(ByteBpe, TrainingIsDeterministicAndSpecDriven) {
  std::string text = ReadFile(kData + "wikitext-2-raw-valid.txt").substr(0, 200000);
  ByteBpeTrainOptions opt;
  opt.vocab_size = 400;
  opt.pre_tokenizer = "llama3";
  auto a = TrainByteBpe(text, opt);
  auto b = TrainByteBpe(text, opt);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->merges(), (*b)->merges());
  // The same merges given through the spec constructor encode identically.
  ByteBpeSpec spec;
  for (int i = 0; i < (*a)->vocab_size(); ++i) spec.vocab.push_back((*a)->Piece(i));
  spec.merges = (*a)->merges();
  spec.pre_tokenizer = "llama3";
  auto c = ByteBpeTokenizer::Create(spec);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->pre_tokenizer().name(), "llama3");
  std::string sample = text.substr(100000, 5000);
  EXPECT_EQ((*c)->Encode(sample, false), (*a)->Encode(sample, false));
  EXPECT_EQ((*c)->Decode((*c)->Encode(sample, false)), sample);
}

}  // namespace
}  // namespace ql
