// `quantlab formats [--json]`: lists every registered element and block codec, and the options a
// scheme can add (granularities, integer modes, clipping rules, scale dtypes). Reads the registry only.
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/commands.h"
#include "kernels/format.h"
#include "kernels/scheme.h"

namespace ql::cli {
namespace {

struct OptionDoc {
  const char* token;
  const char* meaning;
};

const OptionDoc kGranularities[] = {
    {"noscale", "direct saturating cast, no scale (default and implied for >= 16-bit formats)"},
    {"tensor", "one scale for the whole tensor"},
    {"channel", "one scale per output row (axis 0)"},
    {"channel_in", "one scale per input column (axis 1)"},
    {"token", "one scale per row, computed at run time (activations)"},
    {"g<N>", "one scale per N consecutive inputs of a row (last group may be partial)"},
    {"b<R>x<C>", "one scale per R x C tile"},
};
const OptionDoc kIntModes[] = {
    {"sym", "default: q in [-(2^(b-1)-1), 2^(b-1)-1], s = amax/qmax (int8: /127)"},
    {"symfull", "q in [-2^(b-1), 2^(b-1)-1], s = amax/(qmax+0.5) (int4: /7.5; compressed-tensors, GPTQ)"},
    {"asym", "q in [0, 2^b-1] with zero point, s = (max-min)/(2^b-1), range includes 0 (uint<b> alias)"},
};
const OptionDoc kClipRules[] = {
    {"max", "default: the full range (absmax for sym, min..max for asym; aliases absmax, minmax)"},
    {"pct<P>", "clip at the P-th percentile of |x| (sym) or the (100-P)th..P-th percentiles (asym)"},
    {"mse", "least squared error over shrink factors 1.00, 0.99, ..., 0.21 of the range"},
};
const OptionDoc kScaleDtypes[] = {
    {"s=fp32", "default, 4 bytes per scale"},
    {"s=fp16", "2 bytes, nearest even"},
    {"s=bf16", "2 bytes, nearest even"},
    {"s=e8m0", "1 byte, power of two rounded up (no clipping)"},
    {"s=e4m3", "1 byte, FP8 E4M3 nearest even, saturating at 448"},
};
const OptionDoc kBlockOptions[] = {
    {"g<N>", "block size (alias k<N>); GGUF formats are fixed"},
    {"floor|ceil|even", "MX shared-exponent rounding (default floor, the OCP rule)"},
    {"modelopt|ct", "NVFP4 scale convention: TensorRT-ModelOpt (default) or compressed-tensors"},
    {"dq", "NF4 double quantization of the absmax values"},
};

template <size_t N>
nlohmann::json DocsJson(const OptionDoc (&docs)[N]) {
  nlohmann::json a = nlohmann::json::array();
  for (const OptionDoc& d : docs) a.push_back({{"token", d.token}, {"meaning", d.meaning}});
  return a;
}
template <size_t N>
void PrintDocs(const char* title, const OptionDoc (&docs)[N]) {
  std::cout << title << "\n";
  for (const OptionDoc& d : docs) std::cout << fmt::format("  {:<16} {}\n", d.token, d.meaning);
}

void Run(bool json) {
  if (json) {
    nlohmann::json j;
    j["element_codecs"] = nlohmann::json::array();
    for (const ElementCodec* c : ElementCodecs())
      j["element_codecs"].push_back({{"name", c->name()},
                                     {"kind", std::string(FormatKindName(c->kind()))},
                                     {"bits", c->bits()},
                                     {"block_size", 1},
                                     {"scale_type", "none (scheme adds one)"},
                                     {"max_finite", c->max_finite()},
                                     {"min_value", c->min_value()},
                                     {"nan_policy", c->nan_policy()},
                                     {"description", c->description()}});
    j["block_codecs"] = nlohmann::json::array();
    for (const BlockCodec* c : BlockCodecs())
      j["block_codecs"].push_back({{"name", c->name()},
                                   {"kind", "block"},
                                   {"bits", c->element_bits()},
                                   {"block_size", c->default_block_size()},
                                   {"block_size_fixed", c->block_size_fixed()},
                                   {"scale_type", c->scale_type()},
                                   {"bits_per_weight", c->nominal_bits_per_weight(c->default_block_size())},
                                   {"nan_policy", "NaN/Inf input rejected by the quantizer"},
                                   {"description", c->description()}});
    j["element_families"] = {"int<b>", "uint<b> (= int<b>:asym)", "e<E>m<M>"};
    j["granularities"] = DocsJson(kGranularities);
    j["int_modes"] = DocsJson(kIntModes);
    j["clip_rules"] = DocsJson(kClipRules);
    j["scale_dtypes"] = DocsJson(kScaleDtypes);
    j["block_options"] = DocsJson(kBlockOptions);
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "Element codecs (a scheme adds granularity and scale; generic int<b>, e<E>m<M> also accepted)\n";
  std::cout << fmt::format("  {:<14} {:<9} {:>4} {:>6} {:<24} {:>12}  {}\n", "name", "kind", "bits",
                           "block", "scale type", "max finite", "NaN/Inf policy");
  for (const ElementCodec* c : ElementCodecs())
    std::cout << fmt::format("  {:<14} {:<9} {:>4} {:>6} {:<24} {:>12.6g}  {}\n", c->name(),
                             FormatKindName(c->kind()), c->bits(), 1, "none (scheme adds one)",
                             c->max_finite(), c->nan_policy());
  std::cout << "\nBlock codecs (self-scaling; a scheme may set the options below)\n";
  std::cout << fmt::format("  {:<10} {:>4} {:>6} {:>6} {:<52} {}\n", "name", "bits", "block", "bpw",
                           "scale type", "NaN/Inf policy");
  if (BlockCodecs().empty()) std::cout << "  (none registered in this build)\n";
  for (const BlockCodec* c : BlockCodecs())
    std::cout << fmt::format("  {:<10} {:>4} {:>5}{} {:>6.3f} {:<52} {}\n", c->name(), c->element_bits(),
                             c->default_block_size(), c->block_size_fixed() ? "!" : " ",
                             c->nominal_bits_per_weight(c->default_block_size()), c->scale_type(),
                             "input rejected");
  std::cout << "  (! = fixed block size)\n\n";
  std::cout << "Scheme grammar: FORMAT[:OPTION]...  (':' '-' or spaces separate; case-insensitive)\n";
  PrintDocs("Granularity", kGranularities);
  PrintDocs("Integer mode", kIntModes);
  PrintDocs("Clipping", kClipRules);
  PrintDocs("Scale dtype", kScaleDtypes);
  PrintDocs("Block-codec options", kBlockOptions);
}

}  // namespace

void AddFormatsCommand(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("formats", "List number formats and the scheme options");
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([json] { Run(*json); });
}

}  // namespace ql::cli
