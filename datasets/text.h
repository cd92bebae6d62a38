// Reading an evaluation or calibration text: one function for every caller (sweep, eval,
// calibration, train), with the checks a text must pass before it is tokenized. Not tokenization
// (harness/tokenizer) and not windowing (datasets/protocol.h).
#pragma once

#include <string>

#include "kernels/status.h"

namespace ql {

// The whole file as bytes. Errors (naming the file and `what`, e.g. "evaluation text (--data)"):
// missing, a directory, unreadable, empty, containing NUL bytes, or not valid UTF-8 (with the byte
// offset of the first bad sequence).
StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what);

// Byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code points above
// U+10FFFF are invalid), or -1 when the text is valid.
long FirstInvalidUtf8(const std::string& text);

}  // namespace ql
