// Where the tests find the source tree, ../shared, the quantlab binary and llama.cpp's tools.
//
// The paths are defined in one file CMake generates per build directory (test_paths.cc), not passed as
// -D string values: a define holding an absolute path made every test object miss ccache in every
// other checkout of the repository. The macros keep the names the tests use.
#pragma once

namespace qltest {
extern const char* const kSourceDirPath;    // the repository's root
extern const char* const kSharedDirPath;    // ../shared beside it (tests only; the product never reads it)
extern const char* const kQuantlabBinPath;  // the built quantlab executable
extern const char* const kLlamaCppBinPath;  // llama.cpp's build/bin, or "" without QL_LLAMA_CPP_DIR
}  // namespace qltest

#define QL_SOURCE_DIR (::qltest::kSourceDirPath)
#define QL_SHARED_DIR (::qltest::kSharedDirPath)
#define QL_QUANTLAB_BIN (::qltest::kQuantlabBinPath)
#define QL_LLAMA_CPP_BIN (::qltest::kLlamaCppBinPath)
