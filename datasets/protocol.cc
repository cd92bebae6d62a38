// Perplexity protocols: parse/print the canonical string and cut a token stream into scored windows.
#include "datasets/protocol.h"

#include <random>

#include <algorithm>
#include <charconv>

namespace ql {
namespace {

std::string_view KindName(ProtocolKind k) {
  switch (k) {
    case ProtocolKind::kLlamaCpp: return "llamacpp";
    case ProtocolKind::kGptq: return "gptq";
    case ProtocolKind::kStrided: return "strided";
  }
  return "?";
}

bool ParseIntAfter(std::string_view field, std::string_view prefix, int* out) {
  if (field.substr(0, prefix.size()) != prefix) return false;
  std::string_view num = field.substr(prefix.size());
  if (num.empty()) return false;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), *out);
  return ec == std::errc() && p == num.data() + num.size();
}

std::vector<int> WithBos(std::span<const int> text_tokens, int bos_id) {
  std::vector<int> s;
  s.reserve(text_tokens.size() + 1);
  if (bos_id >= 0) s.push_back(bos_id);
  s.insert(s.end(), text_tokens.begin(), text_tokens.end());
  return s;
}

}  // namespace

std::string ProtocolSpec::Canonical() const {
  std::string s = fmt::format("{}:ctx{}", KindName(kind), n_ctx);
  if (kind == ProtocolKind::kStrided) s += fmt::format(":s{}", stride);
  if (max_chunks > 0) s += fmt::format(":chunks{}", max_chunks);
  return s;
}

Status ProtocolSpec::Validate() const {
  const int min_ctx = kind == ProtocolKind::kLlamaCpp ? 4 : 2;
  if (n_ctx < min_ctx)
    return Status::Errorf("protocol {}: context {} is too small (need at least {})", KindName(kind), n_ctx,
                          min_ctx);
  if (kind == ProtocolKind::kStrided && (stride < 1 || stride > n_ctx))
    return Status::Errorf("protocol strided: stride {} must be in [1, ctx = {}]", stride, n_ctx);
  if (kind != ProtocolKind::kStrided && stride != 0)
    return Status::Errorf("protocol {}: a stride ({}) only applies to 'strided'", KindName(kind), stride);
  if (max_chunks < 0) return Status::Errorf("protocol: chunks = {} must be >= 0 (0 = all)", max_chunks);
  return Status::Ok();
}

StatusOr<ProtocolSpec> ProtocolSpec::Parse(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (true) {
    size_t c = text.find(':', pos);
    fields.push_back(text.substr(pos, c == std::string_view::npos ? std::string_view::npos : c - pos));
    if (c == std::string_view::npos) break;
    pos = c + 1;
  }
  ProtocolSpec spec;
  if (fields[0] == "llamacpp") {
    spec.kind = ProtocolKind::kLlamaCpp;
    spec.n_ctx = 512;
  } else if (fields[0] == "gptq") {
    spec.kind = ProtocolKind::kGptq;
    spec.n_ctx = 2048;
  } else if (fields[0] == "strided") {
    spec.kind = ProtocolKind::kStrided;
    spec.n_ctx = 1024;
  } else {
    return Status::Errorf("unknown protocol '{}' (use llamacpp, gptq or strided, e.g. 'llamacpp:ctx512', "
                          "'gptq:ctx2048', 'strided:ctx1024:s512')",
                          text);
  }
  bool stride_set = false;
  for (size_t i = 1; i < fields.size(); ++i) {
    int v = 0;
    if (ParseIntAfter(fields[i], "ctx", &v)) {
      spec.n_ctx = v;
    } else if (spec.kind == ProtocolKind::kStrided && ParseIntAfter(fields[i], "s", &v)) {
      spec.stride = v;
      stride_set = true;
    } else if (ParseIntAfter(fields[i], "chunks", &v)) {
      spec.max_chunks = v;
    } else {
      return Status::Errorf("protocol '{}': cannot read field '{}' (expected ctxN{}, chunksN)", text, fields[i],
                            spec.kind == ProtocolKind::kStrided ? ", sN" : "");
    }
  }
  if (spec.kind == ProtocolKind::kStrided && !stride_set) spec.stride = std::max(1, spec.n_ctx / 2);
  QL_RETURN_IF_ERROR(spec.Validate());
  return spec;
}

StatusOr<std::vector<Window>> BuildWindows(const ProtocolSpec& spec, std::span<const int> text_tokens,
                                           int bos_id) {
  QL_RETURN_IF_ERROR(spec.Validate());
  const std::vector<int> stream = WithBos(text_tokens, bos_id);
  const int64_t n = int64_t(stream.size());
  const int ctx = spec.n_ctx;
  std::vector<Window> windows;
  auto capped = [&] { return spec.max_chunks > 0 && int64_t(windows.size()) >= spec.max_chunks; };

  switch (spec.kind) {
    case ProtocolKind::kLlamaCpp:
    case ProtocolKind::kGptq: {
      const bool llama = spec.kind == ProtocolKind::kLlamaCpp;
      const int64_t need = llama ? 2 * int64_t(ctx) : int64_t(ctx);
      if (n < need)
        return Status::Errorf("protocol {}: the text gives {} tokens, need at least {} for a context of {} "
                              "(use a longer text or a smaller --ctx)",
                              spec.Canonical(), n, need, ctx);
      const int64_t n_chunks = n / ctx;
      for (int64_t c = 0; c < n_chunks && !capped(); ++c) {
        Window w;
        w.stream_offset = c * ctx;
        w.tokens.assign(stream.begin() + c * ctx, stream.begin() + (c + 1) * ctx);
        if (llama && bos_id >= 0) w.tokens[0] = bos_id;
        w.score_begin = llama ? ctx / 2 + 1 : 1;
        w.score_end = ctx;
        windows.push_back(std::move(w));
      }
      break;
    }
    case ProtocolKind::kStrided: {
      if (n < 2)
        return Status::Errorf("protocol {}: the text gives {} tokens, need at least 2", spec.Canonical(), n);
      int64_t prev_end = 0;
      for (int64_t begin = 0; begin < n && !capped(); begin += spec.stride) {
        const int64_t end = std::min(begin + ctx, n);
        const int64_t trg_len = end - prev_end;  // new targets in this window
        Window w;
        w.stream_offset = begin;
        w.tokens.assign(stream.begin() + begin, stream.begin() + end);
        const int T = int(end - begin);
        w.score_begin = int(std::max<int64_t>(1, T - trg_len));
        w.score_end = T;
        if (w.score_end > w.score_begin) windows.push_back(std::move(w));
        prev_end = end;
        if (end == n) break;
      }
      break;
    }
  }
  return windows;
}

int64_t CountScored(const std::vector<Window>& windows) {
  int64_t n = 0;
  for (const Window& w : windows) n += w.n_scored();
  return n;
}

StatusOr<std::vector<std::vector<int>>> SampleWindows(std::span<const int> tokens, int samples, int seqlen,
                                                       int64_t seed, const std::string& source) {
  if (int64_t(tokens.size()) <= seqlen)
    return Status::Errorf("calibration: {} has {} tokens, need more than seqlen {} (use a longer text)", source,
                          tokens.size(), seqlen);
  std::mt19937_64 rng{uint64_t(seed)};
  const uint64_t starts = uint64_t(tokens.size()) - uint64_t(seqlen) + 1;
  std::vector<std::vector<int>> out;
  for (int i = 0; i < samples; ++i) {
    const int64_t s = int64_t(rng() % starts);
    out.emplace_back(tokens.begin() + s, tokens.begin() + s + seqlen);
  }
  return out;
}

}  // namespace ql
