// `quantlab inspect PATH [--json]`: what a checkpoint holds (config, tensors as stored, parameter count)
// and what it would occupy under common weight formats, from bits-per-weight arithmetic (not by quantizing).
#include <cmath>
#include <memory>
#include <set>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/cli/commands.h"
#include "harness/io/checkpoint.h"
#include "harness/io/load.h"
#include "harness/model/model.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/format.h"
#include "kernels/scheme.h"

namespace ql::cli {
namespace {

// Storage cost of one weight format, from the scheme library's definitions (kernels/scheme.h,
// kernels/format.h) by arithmetic, without quantizing. For a [rows, cols] linear weight:
//   element scheme: codec bits · rows·cols + (#scale tiles from TilesFor) · scale dtype bits
//   block scheme:   rows·ceil(cols/k)·k · nominal_bits_per_weight(k) + tensor_bits (per-tensor extras)
// e.g. int4 g128 fp16 scales = 4 + 16/128 = 4.125 bits/weight; nvfp4 = 4 + 8/16 = 4.5 + one fp32 per tensor.
struct SizeScheme {
  const char* scheme;   // ParseScheme text
  const char* formula;  // bits per weight, for the reader
  int tensor_bits;      // block codecs: data kept per tensor outside the blocks
};
constexpr SizeScheme kSchemes[] = {
    {"bf16", "16", 0},
    {"fp8_e4m3:tensor", "8 + 32/numel (fp32 scale/tensor)", 0},
    {"int8:channel:s=fp16", "8 + 16/cols (fp16 scale/row)", 0},
    {"int4:g128:s=fp16", "4 + 16/128 = 4.125", 0},
    {"nf4", "4 + 32/64 = 4.5 (fp32 absmax/64)", 0},
    {"mxfp4", "4 + 8/32 = 4.25 (e8m0/32)", 0},
    {"nvfp4", "4 + 8/16 = 4.5 + 32/numel", 32},  // ModelOpt's fp32 per-tensor scale (docs/formats.md §3)
};

StatusOr<uint64_t> LinearBits(const Scheme& s, const SizeScheme& row, int64_t rows, int64_t cols) {
  const uint64_t n = uint64_t(rows) * uint64_t(cols);
  if (s.is_block) {
    QL_ASSIGN_OR_RETURN(const BlockCodec* codec, FindBlockCodec(s.format));
    const int k = s.block.block_size ? s.block.block_size : codec->default_block_size();
    const uint64_t padded = uint64_t(rows) * uint64_t((cols + k - 1) / k) * uint64_t(k);
    return uint64_t(std::llround(double(padded) * codec->nominal_bits_per_weight(k))) + uint64_t(row.tensor_bits);
  }
  QL_ASSIGN_OR_RETURN(const ElementCodec* codec, FindElementCodec(s.format));
  uint64_t bits = uint64_t(codec->bits()) * n;
  if (s.granularity != Granularity::kNone)
    bits += uint64_t(TilesFor(s, rows, cols).num_tiles()) * uint64_t(ScaleDtypeBytes(s.scale_dtype)) * 8;
  return bits;
}

// Bytes of the model when every linear weight (q/k/v/o, gate/up/down, and an untied lm_head) uses the
// scheme and everything else (embeddings, a tied head, norms, biases) stays bf16.
StatusOr<uint64_t> SchemeBytes(const Model& m, const SizeScheme& row) {
  QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(row.scheme));
  std::set<std::string> linear;
  for (const std::string& mod : m.LinearModules()) linear.insert(mod + ".weight");
  uint64_t bits = 0;
  for (const auto& [name, t] : m.weights) {
    if (!linear.count(name) || t.shape.size() != 2) {
      bits += 16 * uint64_t(t.numel());
      continue;
    }
    QL_ASSIGN_OR_RETURN(uint64_t b, LinearBits(s, row, t.shape[0], t.shape[1]));
    bits += b;
  }
  return (bits + 7) / 8;
}

nlohmann::json ConfigJson(const ModelConfig& c) {
  return {{"arch", c.arch},
          {"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"rope_theta", c.rope_theta},
          {"norm_eps", c.norm_eps},
          {"rope_interleaved", c.rope_interleaved},
          {"tied_embeddings", c.tied_embeddings},
          {"qkv_bias", c.qkv_bias},
          {"qk_norm", c.qk_norm},
          {"bos_id", c.bos_id},
          {"eos_id", c.eos_id}};
}

std::string Shape(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string Human(uint64_t bytes) {
  if (bytes >= (uint64_t(1) << 30)) return fmt::format("{:.2f} GiB", bytes / double(uint64_t(1) << 30));
  if (bytes >= (uint64_t(1) << 20)) return fmt::format("{:.2f} MiB", bytes / double(uint64_t(1) << 20));
  if (bytes >= 1024) return fmt::format("{:.2f} KiB", bytes / 1024.0);
  return fmt::format("{} B", bytes);
}

void RunInspect(const std::string& path, bool as_json) {
  io::CheckpointInfo info;
  StatusOr<Model> m = LoadModel(path, &info);
  if (!m.ok()) return Fail("inspect", m.status());
  const int64_t params = m->config.ParameterCount();
  uint64_t stored_bytes = 0;
  for (const auto& t : info.tensors) stored_bytes += t.bytes;
  std::vector<std::pair<const SizeScheme*, uint64_t>> sizes;
  for (const SizeScheme& s : kSchemes) {
    StatusOr<uint64_t> bytes = SchemeBytes(*m, s);
    if (!bytes.ok()) return Fail("inspect", bytes.status());
    sizes.push_back({&s, *bytes});
  }

  if (as_json) {
    nlohmann::json j;
    j["path"] = path;
    j["format"] = info.format;
    j["files"] = info.files;
    j["config"] = ConfigJson(m->config);
    j["tokenizer"] = m->tokenizer ? nlohmann::json{{"kind", m->tokenizer->kind()},
                                                   {"vocab_size", m->tokenizer->vocab_size()}}
                                  : nlohmann::json(nullptr);
    j["metadata"] = info.metadata;
    j["parameters"] = params;
    j["stored_tensor_bytes"] = stored_bytes;
    for (const auto& t : info.tensors)
      j["tensors"].push_back({{"stored_name", t.stored_name}, {"name", t.model_name}, {"shape", t.shape},
                              {"dtype", t.dtype}, {"bytes", t.bytes}});
    for (const auto& [s, bytes] : sizes)
      j["size_estimates"].push_back({{"scheme", s->scheme}, {"bits_per_weight", s->formula}, {"bytes", bytes},
                                     {"bits_per_parameter", 8.0 * double(bytes) / double(params)}});
    // Names from the file may be invalid UTF-8: replaced (U+FFFD) rather than a throwing dump().
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  const ModelConfig& c = m->config;
  std::printf("%s: %s\n", path.c_str(), info.format.c_str());
  std::printf("config: arch %s, dim %d, hidden %d, layers %d, heads %d, kv_heads %d, head_dim %d, vocab %d, "
              "max_seq_len %d\n        rope_theta %g, norm_eps %g, rope_interleaved %d, tied %d, qkv_bias %d, "
              "qk_norm %d, bos %d, eos %d\n",
              c.arch.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size,
              c.max_seq_len, c.rope_theta, c.norm_eps, c.rope_interleaved, c.tied_embeddings, c.qkv_bias, c.qk_norm,
              c.bos_id, c.eos_id);
  if (m->tokenizer)
    std::printf("tokenizer: %s, %d tokens\n", m->tokenizer->kind().c_str(), m->tokenizer->vocab_size());
  else
    std::printf("tokenizer: none loaded\n");
  for (const auto& [k, v] : info.metadata) {
    if (k.starts_with("tokenizer.ggml.") && v.size() > 120) continue;  // vocab arrays: summarized above
    std::printf("  %s = %s\n", Printable(k).c_str(),
                Printable(v.size() > 120 ? v.substr(0, 117) + "..." : v).c_str());
  }
  std::printf("tensors (%zu, as stored):\n", info.tensors.size());
  for (const auto& t : info.tensors) {
    std::printf("  %-40s %-18s %-6s %10llu B  %s\n", Printable(t.stored_name).c_str(), Shape(t.shape).c_str(),
                t.dtype.c_str(), (unsigned long long)t.bytes,
                t.model_name == t.stored_name ? "" : Printable(t.model_name).c_str());
  }
  std::printf("parameters: %lld (tied head counted once); tensor data as stored: %s\n", (long long)params,
              Human(stored_bytes).c_str());
  std::printf("size if linear weights use a format (embeddings, norms, biases at bf16):\n");
  for (const auto& [s, bytes] : sizes)
    std::printf("  %-22s %-34s %12llu B  %10s  %.3f bits/param\n", s->scheme, s->formula, (unsigned long long)bytes,
                Human(bytes).c_str(), 8.0 * double(bytes) / double(params));
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show a checkpoint's config, tensors and size under weight formats");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "HF directory (config.json), *.gguf, or llama2.c *.bin")->required();
  cmd->add_flag("--json", *as_json, "Print JSON instead of text");
  cmd->callback([path, as_json] { RunInspect(*path, *as_json); });
}

}  // namespace ql::cli
