// Perplexity protocols: how a token stream becomes scored windows (llama.cpp, GPTQ, HF strided).
// Pure bookkeeping on token ids; running a model over the windows lives in harness/eval (baseline.h,
// evaluator.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/status.h"

namespace ql {

enum class ProtocolKind { kLlamaCpp, kGptq, kStrided };

// A protocol and its parameters. Canonical() is stored with every number measured under it:
//   "llamacpp:ctx512", "gptq:ctx2048", "strided:ctx1024:s512", and ":chunks8" appended when the
// number of windows is capped (a capped run scores a different token set, so it is a different key).
struct ProtocolSpec {
  ProtocolKind kind = ProtocolKind::kLlamaCpp;
  int n_ctx = 512;
  int stride = 0;      // strided only: 1 <= stride <= n_ctx
  int max_chunks = 0;  // 0 = every window the stream allows

  std::string Canonical() const;
  Status Validate() const;  // names the bad field and the allowed range
  // Parses a canonical string or a bare name ("llamacpp", "gptq", "strided") with defaults
  // (llamacpp ctx 512, gptq ctx 2048, strided ctx 1024 stride ctx/2).
  static StatusOr<ProtocolSpec> Parse(std::string_view text);
};

// One forward pass. Target position t (score_begin <= t < score_end) is the token tokens[t],
// predicted from the logits at row t-1; so score_begin >= 1 always.
struct Window {
  std::vector<int> tokens;  // [T], T <= n_ctx; what the model is fed (BOS substituted if any)
  int score_begin = 1;
  int score_end = 1;
  int64_t stream_offset = 0;  // index in the protocol's stream of tokens[0]
  int n_scored() const { return score_end - score_begin; }
};

// Builds the windows from the tokenized text (`text_tokens`: no BOS) and the vocabulary's BOS id
// (-1: none).
//  llamacpp: stream = [BOS] + text (llama.cpp tokenizes with add_bos). Non-overlapping windows of
//            n_ctx, n = floor(|stream| / n_ctx), tail dropped, at least 2 windows' worth of tokens
//            required (llama.cpp refuses less). Token 0 of each window is overwritten with BOS
//            (the original token there is never fed nor scored). Scored targets: positions
//            n_ctx/2 + 1 .. n_ctx - 1, i.e. n_ctx - n_ctx/2 - 1 tokens per window (llama.cpp
//            perplexity: first = n_ctx/2, logits first .. n_ctx-2 predict the following token).
//  gptq:     stream = [BOS] + text (the Hugging Face llama tokenizer adds one BOS to the joined
//            text), non-overlapping windows of n_ctx, no BOS per window, tail dropped; every
//            target but the first token of each window (no context) is scored: 1 .. n_ctx-1.
//  strided:  stream = [BOS] + text; Hugging Face's sliding window: window k starts at k*stride,
//            ends at min(start + n_ctx, |stream|); only targets after the previous window's end are
//            scored (and never position 0). Stops after the window that reaches the stream's end,
//            so with stride < n_ctx every stream token but the first is scored exactly once.
StatusOr<std::vector<Window>> BuildWindows(const ProtocolSpec& spec, std::span<const int> text_tokens,
                                           int bos_id);

int64_t CountScored(const std::vector<Window>& windows);

// Calibration sampling: `samples` windows of `seqlen` tokens at random starts in
// [0, |tokens| − seqlen] (std::mt19937_64(seed)() % range: the standard fixes that sequence, unlike
// std::uniform_int_distribution, so the same arguments give the same windows everywhere), as GPTQ's
// get_wikitext2 / get_c4 do (no BOS added). Error when the stream has no more than seqlen tokens.
StatusOr<std::vector<std::vector<int>>> SampleWindows(std::span<const int> tokens, int samples, int seqlen,
                                                       int64_t seed, const std::string& source);

}  // namespace ql
