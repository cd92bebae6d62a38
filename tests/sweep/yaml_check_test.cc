// CheckYamlTree: complex keys, duplicate keys (with both lines), alias bombs and cycles are errors
// before any consumer reads the tree; ParseExperiment runs it first.
#include "harness/sweep/yaml_check.h"

#include <gtest/gtest.h>

#include "harness/sweep/experiment.h"

namespace ql {
namespace {

Status Check(const std::string& text) { return CheckYamlTree(YAML::Load(text), "t.yaml"); }

TEST(YamlCheck, PlainFilesPass) {
  EXPECT_TRUE(Check("a: 1\nb: [1, 2, {c: 3}]\nd: {e: f}\n").ok());
  EXPECT_TRUE(Check("x: &a {k: 1}\ny: *a\nz: *a\n").ok());  // shared nodes are fine
  EXPECT_TRUE(Check("").ok());
}

TEST(YamlCheck, DuplicateKeysNameBothLines) {
  // yaml-cpp keeps both entries when iterating; lookup would silently take one of them.
  Status s = Check("a: 1\nb: 2\na: 3\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "t.yaml:3: duplicate key 'a' at line 3 (first at line 1); remove one");
  s = Check("grid:\n  schemes: [int8]\n  ignore: [none]\n  schemes: [int4]\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("duplicate key 'schemes' at line 4 (first at line 2)"), std::string::npos) << s.message();
  // The same key in two different maps is not a duplicate.
  EXPECT_TRUE(Check("a: {x: 1}\nb: {x: 2}\n").ok());
}

TEST(YamlCheck, NonScalarKeysAreErrors) {
  Status s = Check("grid:\n  ? [a, b]\n  : 1\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("t.yaml:2: a map key is a sequence"), std::string::npos) << s.message();
  s = Check("presets:\n  - ? {k: v}\n    : 1\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("a map key is a map"), std::string::npos) << s.message();
  s = Check("~: 1\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("a map key is empty (null)"), std::string::npos) << s.message();
}

TEST(YamlCheck, InvalidUtf8IsAnError) {
  EXPECT_TRUE(Check("a: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n").ok());
  // A fuzzed algorithm parameter with a 0xFF byte reached nlohmann::json::dump() and aborted.
  Status s = Check("grid:\n  algorithms:\n    - {name: gptq, damp: \"ab\xff\"}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("t.yaml:3: invalid UTF-8 at byte 2"), std::string::npos) << s.message();
  for (const char* bad : {"a: \"\xc0\xaf\"\n", "a: \"\xed\xa0\x80\"\n", "a: \"\xf4\x90\x80\x80\"\n", "\"k\xfe\": 1\n"}) {
    EXPECT_FALSE(Check(bad).ok()) << bad;
  }
}

TEST(YamlCheck, AliasBombAndDeepNestingStop) {
  // 9 levels of 10 references each: 10^9 nodes if expanded.
  std::string bomb = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += (k ? ", *l" : "*l") + std::to_string(i - 1);
    bomb += "]\n";
  }
  Status s = Check(bomb);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("more than 1000000 nodes"), std::string::npos) << s.message();
  s = Check(std::string(100, '[') + std::string(100, ']'));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nesting deeper than 64"), std::string::npos) << s.message();
}

TEST(YamlCheck, ParseExperimentRunsItFirst) {
  // Before the pre-pass, a sequence key inside grid aborted the process (YAML::TypedBadConversion).
  auto e = ParseExperiment("name: t\nmodel: m\ndata: d\ngrid:\n  ? [a, b]\n  : 1\n", "x.yaml", ".");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("x.yaml:5: a map key is a sequence"), std::string::npos) << e.status().message();
  e = ParseExperiment("name: t\nname: u\nmodel: m\ndata: d\ngrid: {schemes: [int8]}\n", "x.yaml", ".");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("duplicate key 'name' at line 2 (first at line 1)"), std::string::npos);
}

}  // namespace
}  // namespace ql
