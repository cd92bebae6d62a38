// Bad input through the quantlab binary, table-driven: each case crafts its files in a temp directory,
// runs one command and asserts a clean failure (exit code neither 0 nor 134/SIGABRT), exactly one line
// on stderr, and the key words of that line. Plus the results-directory writer lock across processes.
#include <fcntl.h>
#include "tests/test_paths.h"
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/io/gguf.h"
#include "harness/io/hf.h"
#include "tests/harness/io_testing.h"
#include "tests/run_command.h"

namespace ql {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using testing::TempDir;

struct Outcome {
  int exit_code = -1;  // -1: killed by a signal
  std::string out, err;
};

// Runs `quantlab ARGS` in `dir` (ARGS is shell text); stdout and stderr apart.
Outcome Quantlab(const std::string& dir, const std::string& args) {
  const std::string err_file = (fs::path(dir) / "stderr.txt").string();
  const std::string cmd = "cd '" + dir + "' && '" + QL_QUANTLAB_BIN + "' " + args + " 2>'" + err_file + "'";
  qltest::CommandResult r = qltest::RunCommand(cmd);
  Outcome o;
  o.exit_code = r.exit_code;
  o.out = r.out;
  o.err = testing::ReadBytes(err_file);
  return o;
}

// ---- fixtures: a tiny HF directory, a GGUF with edited metadata ----

const std::string kTinyTokenizer = std::string(QL_SOURCE_DIR) + "/tests/data/tokenizer/tiny_bpe.json";

json TinyTokenizer() { return json::parse(testing::ReadBytes(kTinyTokenizer)); }

// dir/hf: the io tests' random model (vocab 40) with tiny_bpe.json (18 tokens) edited by `edit`.
std::string HfDir(const std::string& dir, const std::function<void(json&)>& edit_tokenizer,
                  const std::function<void(json&)>& edit_config = {}) {
  const std::string d = (fs::path(dir) / "hf").string();
  Status s = io::WriteHfDir(d, testing::RandomModel({}), io::FloatDtype::kF32);
  EXPECT_TRUE(s.ok()) << s.message();
  json tok = TinyTokenizer();
  if (edit_tokenizer) edit_tokenizer(tok);
  testing::WriteBytes(d + "/tokenizer.json", tok.dump());
  if (edit_config) {
    json c = json::parse(testing::ReadBytes(d + "/config.json"));
    edit_config(c);
    testing::WriteBytes(d + "/config.json", c.dump());
  }
  return d;
}

// dir/m.gguf: the random model as GGUF, its metadata edited by `edit` (same tensors and bytes).
std::string Gguf(const std::string& dir, const std::function<void(std::vector<std::pair<std::string, io::GgufValue>>&)>& edit) {
  const std::string plain = (fs::path(dir) / "plain.gguf").string(), out = (fs::path(dir) / "m.gguf").string();
  Status s = io::WriteGguf(plain, testing::RandomModel({}), io::FloatDtype::kF32);
  EXPECT_TRUE(s.ok()) << s.message();
  auto f = io::ReadGgufHeader(plain);
  EXPECT_TRUE(f.ok()) << f.status().message();
  const std::string bytes = testing::ReadBytes(plain);
  std::vector<io::GgufTensorBlob> blobs;
  for (const io::GgufTensorInfo& t : f->tensors) {
    io::GgufTensorBlob b;
    b.name = t.name;
    b.ne = t.ne;
    b.type = t.type;
    const char* at = bytes.data() + f->data_start + t.offset;
    b.data.assign(at, at + t.nbytes);
    blobs.push_back(std::move(b));
  }
  auto kv = f->kv;
  edit(kv);
  s = io::WriteGgufFile(out, kv, blobs, uint32_t(f->alignment));
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

auto SetKv(const std::string& key, io::GgufValue v) {
  return [key, v](std::vector<std::pair<std::string, io::GgufValue>>& kv) {
    for (auto& [k, x] : kv) {
      if (k == key) {
        x = v;
        return;
      }
    }
    kv.emplace_back(key, v);
  };
}

struct BadCase {
  const char* name;
  std::function<std::string(const std::string& dir)> args;  // crafts files, returns the arguments
  std::vector<std::string> words;                            // all must appear in the stderr line
};

std::string Inspect(const std::string& path) { return "inspect '" + path + "'"; }

const std::vector<BadCase>& Cases() {
  static const std::vector<BadCase> cases = {
      {"unknown_command", [](const std::string&) { return std::string("frobnicate"); },
       {"unknown command 'frobnicate'"}},
      {"e8m0_scale_overflow", [](const std::string&) { return std::string("roundtrip --scheme int4:g2:s=e8m0 3e38 1"); },
       {"overflows fp32", "s=fp32"}},
      {"mx_block_7", [](const std::string&) { return std::string("roundtrip --scheme mxfp4:g7 1 2 3"); },
       {"g7", "32", "OCP MX"}},
      {"mx_block_100000", [](const std::string&) { return std::string("roundtrip --scheme mxfp4:g100000 1 2"); },
       {"g100000", "power of two"}},
      // tokenizer.json fields of the wrong JSON type
      {"tok_add_prefix_space_string",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["pre_tokenizer"]["add_prefix_space"] = "yes"; })); },
       {"add_prefix_space", "true or false", "\"yes\""}},
      {"tok_individual_digits_string",
       [](const std::string& d) {
         return Inspect(HfDir(d, [](json& j) {
           j["pre_tokenizer"] = {{"type", "Sequence"},
                                 {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", "yes"}}, j["pre_tokenizer"]}}};
         }));
       },
       {"individual_digits", "true or false"}},
      {"tok_split_invert_number",
       [](const std::string& d) {
         return Inspect(HfDir(d, [](json& j) {
           j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"invert", 1}};
         }));
       },
       {"invert", "true or false"}},
      {"tok_ignore_merges_string",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["model"]["ignore_merges"] = "no"; })); },
       {"ignore_merges", "true or false"}},
      {"tok_added_special_string",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["added_tokens"][0]["special"] = "yes"; })); },
       {"special", "true or false"}},
      {"tok_byte_fallback_string",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["model"]["byte_fallback"] = "false"; })); },
       {"byte_fallback", "true or false"}},
      {"tok_unk_token_number",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["model"]["unk_token"] = 5; })); },
       {"unk_token", "must be a string"}},
      {"tok_decoder_type_number",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["decoder"]["type"] = 3; })); },
       {"decoder", "type", "must be a string"}},
      {"tok_added_id_int32_max",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["added_tokens"][0]["id"] = 2147483647; })); },
       {"2147483647", "ids must be in"}},
      {"tok_added_id_1e9",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["added_tokens"][0]["id"] = 1000000000; })); },
       {"1000000000", "ids must be in"}},
      {"tok_added_id_int64_max",
       [](const std::string& d) {
         return Inspect(HfDir(d, [](json& j) { j["added_tokens"][0]["id"] = int64_t(9223372036854775807); }));
       },
       {"9223372036854775807", "ids must be in"}},
      {"tok_vocab_id_huge",
       [](const std::string& d) { return Inspect(HfDir(d, [](json& j) { j["model"]["vocab"]["zz"] = 16000000; })); },
       {"model.vocab['zz']", "16000000"}},
      // config.json sizes that do not match the tensors
      {"hf_num_hidden_layers_huge",
       [](const std::string& d) { return Inspect(HfDir(d, {}, [](json& c) { c["num_hidden_layers"] = 16777221; })); },
       {"num_hidden_layers = 16777221", "2 layers"}},
      {"hf_heads_wider_than_dim",
       [](const std::string& d) { return Inspect(HfDir(d, {}, [](json& c) { c["num_attention_heads"] = 1 << 24; })); },
       {"num_attention_heads", "between 1 and"}},
      {"hf_max_position_zero",
       [](const std::string& d) { return Inspect(HfDir(d, {}, [](json& c) { c["max_position_embeddings"] = 0; })); },
       {"max_position_embeddings = 0"}},
      // GGUF metadata that does not match the tensors
      {"gguf_block_count_huge",
       [](const std::string& d) { return Inspect(Gguf(d, SetKv("llama.block_count", io::GgufValue::U32(16777221)))); },
       {"llama.block_count = 16777221", "2 layers"}},
      {"gguf_block_count_int32_max",
       [](const std::string& d) { return Inspect(Gguf(d, SetKv("llama.block_count", io::GgufValue::U32(2147483647)))); },
       {"llama.block_count = 2147483647"}},
      {"gguf_head_count_huge",
       [](const std::string& d) {
         return Inspect(Gguf(d, SetKv("llama.attention.head_count", io::GgufValue::U32(1 << 24))));
       },
       {"llama.attention.head_count = 16777216", "between 1 and"}},
      {"gguf_embedding_length_zero",
       [](const std::string& d) { return Inspect(Gguf(d, SetKv("llama.embedding_length", io::GgufValue::U32(0)))); },
       {"llama.embedding_length = 0", "> 0"}},
      {"gguf_context_length_zero",
       [](const std::string& d) { return Inspect(Gguf(d, SetKv("llama.context_length", io::GgufValue::U32(0)))); },
       {"context_length = 0"}},
      {"gguf_newline_in_architecture",
       [](const std::string& d) {
         return Inspect(Gguf(d, SetKv("general.architecture", io::GgufValue::Str("lla\nma\x1b[2J"))));
       },
       {"general.architecture 'lla\\x0ama\\x1b[2J' is not supported"}},
      {"query_no_store", [](const std::string&) { return std::string("query --results nowhere 'SELECT 1'"); },
       {"no results database here"}},
      {"verify_no_store", [](const std::string&) { return std::string("verify nowhere"); },
       {"no results database here"}},
      // importance matrices: a truncated .dat, a text too short for the context
      {"export_imatrix_truncated",
       [](const std::string& d) {
         testing::WriteBytes(d + "/m.dat", std::string("\x01\x00\x00\x00\x01\x00\x00\x00w\x01\x00\x00\x00\x00\x00\x00\x40", 17));
         return "export --model " + HfDir(d, {}) + " --scheme q8_0 --imatrix m.dat --out x.gguf";
       },
       {"m.dat", "1 entries claimed in a 17-byte file"}},
      {"imatrix_text_too_short",
       [](const std::string& d) {
         testing::WriteBytes(d + "/t.txt", "ab");
         return "imatrix --model " + HfDir(d, {}) + " --text t.txt --ctx 8 --out m.gguf";
       },
       {"t.txt", "needs at least 16"}},
      // experiment YAML: structure checked before any consumer reads it
      {"yaml_sequence_key",
       [](const std::string& d) {
         testing::WriteBytes(d + "/e.yaml", "name: t\nmodel: m\ndata: d\ngrid:\n  ? [a, b]\n  : 1\n");
         return std::string("sweep --dry-run e.yaml");
       },
       {"e.yaml:5", "map key is a sequence"}},
      {"yaml_duplicate_key",
       [](const std::string& d) {
         testing::WriteBytes(d + "/e.yaml", "name: t\nmodel: m\ndata: d\nname: u\ngrid: {schemes: [int8]}\n");
         return std::string("sweep --dry-run e.yaml");
       },
       {"duplicate key 'name' at line 4 (first at line 1)"}},
  };
  return cases;
}

class BadInput : public ::testing::TestWithParam<size_t> {};

TEST_P(BadInput, FailsCleanlyWithOneLine) {
  const BadCase& c = Cases()[GetParam()];
  TempDir dir;
  const std::string args = c.args(dir.str());
  const Outcome o = Quantlab(dir.str(), args);
  EXPECT_NE(o.exit_code, 0) << args << "\nstdout: " << o.out << "\nstderr: " << o.err;
  EXPECT_NE(o.exit_code, -1) << "killed by a signal: " << args;
  EXPECT_NE(o.exit_code, 134) << "aborted: " << args;
  ASSERT_FALSE(o.err.empty()) << args;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "not exactly one line on stderr: " << o.err;
  for (const std::string& w : c.words) EXPECT_NE(o.err.find(w), std::string::npos) << "'" << w << "' not in: " << o.err;
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::Range<size_t>(0, Cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) { return std::string(Cases()[i.param].name); });

// The fixtures themselves load: each bad case differs from a good file only by the edit it names.
TEST(BadInputFixtures, UneditedFilesLoad) {
  TempDir dir;
  Outcome hf = Quantlab(dir.str(), Inspect(HfDir(dir.str(), {})));
  EXPECT_EQ(hf.exit_code, 0) << hf.err;
  Outcome gg = Quantlab(dir.str(), Inspect(Gguf(dir.str(), [](auto&) {})));
  EXPECT_EQ(gg.exit_code, 0) << gg.err;
  Outcome mx = Quantlab(dir.str(), "roundtrip --scheme mxfp4:g16 1 2 3");  // a labelled non-standard size
  EXPECT_EQ(mx.exit_code, 0) << mx.err;
}

// ---- one writer per results directory ----

class WriterLock : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(12000, '\0');
    in.read(text.data(), std::streamsize(text.size()));
    ASSERT_EQ(in.gcount(), std::streamsize(text.size())) << "needs ../shared/data/tinystories-valid-head.txt";
    testing::WriteBytes(dir_ / "eval.txt", text);
    testing::WriteBytes(dir_ / "exp.yaml", "name: lock\nmodel: " + std::string(QL_SHARED_DIR) +
                                               "/models/stories260K/stories260K.bin\ndata: eval.txt\n"
                                               "protocol: {name: llamacpp, ctx: 64, chunks: 4}\nresults: res\n"
                                               "grid:\n  schemes: [int8:channel, int4:g32, nf4]\n  ignore: [none]\n");
  }
  TempDir dir_;
};

TEST_F(WriterLock, SecondWriterFailsNamingTheHolder) {
  const Outcome first = Quantlab(dir_.str(), "sweep exp.yaml --no-table");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  // Hold the lock as a writer would (flock on res/.lock, holder line inside) from this process.
  const int fd = open((dir_ / "res/.lock").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  const std::string holder = "pid 4242 host lockhost since 2026-01-01T00:00:00Z\n";
  ASSERT_EQ(write(fd, holder.data(), holder.size()), ssize_t(holder.size()));
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  const Outcome blocked = Quantlab(dir_.str(), "sweep exp.yaml --no-table");
  EXPECT_EQ(blocked.exit_code, 1) << blocked.err;
  EXPECT_EQ(blocked.err.find('\n'), blocked.err.size() - 1) << blocked.err;
  for (const char* w : {"another quantlab process", "pid 4242", "host lockhost"})
    EXPECT_NE(blocked.err.find(w), std::string::npos) << w << " not in: " << blocked.err;
  // Readers take no lock: query works while a writer holds the directory.
  const Outcome q = Quantlab(dir_.str(), "query --results res 'SELECT count(*) AS n FROM cells' --csv");
  EXPECT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("3"), std::string::npos) << q.out;
  close(fd);  // released: the sweep runs (and finds its cells done)
  const Outcome ok = Quantlab(dir_.str(), "sweep exp.yaml --no-table");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(testing::ReadBytes((dir_ / "res/.lock")).find("pid 4242"), std::string::npos);  // its own line now
}

TEST_F(WriterLock, TwoConcurrentSweepsThenVerifyClean) {
  const std::string cmd = std::string("'") + QL_QUANTLAB_BIN + "' sweep exp.yaml --no-table";
  const std::string both = "cd '" + dir_.str() + "' && (" + cmd + " >a.out 2>a.err; echo $? >a.rc) & (" + cmd +
                           " >b.out 2>b.err; echo $? >b.rc) & wait";
  ASSERT_EQ(std::system(("bash -c \"" + both + "\"").c_str()), 0);
  int zeros = 0;
  for (const char* w : {"a", "b"}) {
    const int rc = std::atoi(testing::ReadBytes(dir_ / (std::string(w) + ".rc")).c_str());
    const std::string err = testing::ReadBytes(dir_ / (std::string(w) + ".err"));
    if (rc == 0) {
      ++zeros;
    } else {  // the loser says why, in one line, and nothing else went wrong
      EXPECT_EQ(rc, 1) << err;
      EXPECT_NE(err.find("another quantlab process is writing"), std::string::npos) << err;
    }
  }
  EXPECT_GE(zeros, 1);
  const Outcome v = Quantlab(dir_.str(), "verify res");
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("3 cells, 1 baselines"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("0 broken"), std::string::npos) << v.out;
  // A rerun finds every cell done, and the store is still sound.
  const Outcome again = Quantlab(dir_.str(), "sweep exp.yaml --no-table");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Quantlab(dir_.str(), "verify res").exit_code, 0);
}

}  // namespace
}  // namespace ql
