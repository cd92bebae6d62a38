// The one list of registered formats. Adding a format = one include and one line here.
// Also the name lookup (FindElementCodec / FindBlockCodec) that the CLI and the scheme parser use.
#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "kernels/e8m0.h"
#include "kernels/format.h"
#include "kernels/int_codec.h"
#include "kernels/lut.h"
#include "kernels/minifloat.h"
#include "kernels/mx.h"
#include "kernels/nf4.h"
#include "kernels/nvfp4.h"
#include "kernels/vq.h"
#include "kernels/gguf_blocks.h"

namespace ql {

std::string_view FormatKindName(FormatKind k) {
  switch (k) {
    case FormatKind::kInt: return "int";
    case FormatKind::kFloat: return "float";
    case FormatKind::kCodebook: return "codebook";
    case FormatKind::kScale: return "scale";
    case FormatKind::kBlock: return "block";
  }
  return "unknown";
}

const std::vector<const ElementCodec*>& ElementCodecs() {
  // Function-local statics: built on first use, never destroyed before their users.
  static const IntCodec kInt2(2, true);
  static const IntCodec kInt3(3, true);
  static const IntCodec kInt4(4, true);
  static const IntCodec kInt5(5, true);
  static const IntCodec kInt6(6, true);
  static const IntCodec kInt7(7, true);
  static const IntCodec kInt8(8, true);
  static const IntCodec kUint2(2, false);
  static const IntCodec kUint3(3, false);
  static const IntCodec kUint4(4, false);
  static const IntCodec kUint5(5, false);
  static const IntCodec kUint6(6, false);
  static const IntCodec kUint7(7, false);
  static const IntCodec kUint8(8, false);
  static const MinifloatCodec kFp16(Fp16Spec());
  static const MinifloatCodec kBf16(Bf16Spec());
  static const MinifloatCodec kFp8E4m3(Fp8E4m3Spec());
  static const MinifloatCodec kFp8E4m3Fnuz(Fp8E4m3FnuzSpec());
  static const MinifloatCodec kFp8E5m2(Fp8E5m2Spec());
  static const MinifloatCodec kFp8E5m2Fnuz(Fp8E5m2FnuzSpec());
  static const MinifloatCodec kFp6E2m3(Fp6E2m3Spec());
  static const MinifloatCodec kFp6E3m2(Fp6E3m2Spec());
  static const MinifloatCodec kFp4E2m1(Fp4E2m1Spec());
  static const E8M0Codec kE8m0;
  static const std::vector<const ElementCodec*> kList = {
      &kInt2,
      &kInt3,
      &kInt4,
      &kInt5,
      &kInt6,
      &kInt7,
      &kInt8,
      &kUint2,
      &kUint3,
      &kUint4,
      &kUint5,
      &kUint6,
      &kUint7,
      &kUint8,
      &kFp16,
      &kBf16,
      &kFp8E4m3,
      &kFp8E4m3Fnuz,
      &kFp8E5m2,
      &kFp8E5m2Fnuz,
      &kFp6E2m3,
      &kFp6E3m2,
      &kFp4E2m1,
      &kE8m0,
  };
  return kList;
}

// Block codecs are added here (one include above and one line in this list), by the helpers that
// implement them: MX, NVFP4, NF4, GGUF Q* blocks.
const std::vector<const BlockCodec*>& BlockCodecs() {
  static const std::vector<const BlockCodec*> kList = {
      &MxFp8E4M3Codec(),
      &MxFp8E5M2Codec(),
      &MxFp6E2M3Codec(),
      &MxFp6E3M2Codec(),
      &MxFp4Codec(),
      &MxInt8Codec(),
      &NvFp4BlockCodec(),
      &Nf4BlockCodec(),
      GgufQ8_0Codec(),
      GgufQ4_0Codec(),
      GgufQ4_1Codec(),
      GgufQ5_0Codec(),
      GgufQ5_1Codec(),
      GgufQ4_KCodec(),
      GgufQ6_KCodec(),
      GgufQ2_KCodec(),
      GgufQ3_KCodec(),
      GgufQ5_KCodec(),
      GgufQ8_KCodec(),
      GgufIq4NlCodec(),
      GgufIq4XsCodec(),
      &Lut2Codec(),
      &Lut3Codec(),
      &Lut4Codec(),
      &Vq2x8BlockCodec(),
  };
  return kList;
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// alias -> registered name (all lower case). ml_dtypes / torch spellings included (docs/formats.md §1.1).
const std::map<std::string, std::string, std::less<>>& ElementAliases() {
  static const std::map<std::string, std::string, std::less<>> kAliases = {
      {"fp8", "fp8_e4m3"},           {"e4m3", "fp8_e4m3"},          {"e4m3fn", "fp8_e4m3"},
      {"fp8_e4m3fn", "fp8_e4m3"},    {"float8_e4m3fn", "fp8_e4m3"}, {"e4m3fnuz", "fp8_e4m3fnuz"},
      {"float8_e4m3fnuz", "fp8_e4m3fnuz"}, {"e5m2", "fp8_e5m2"},    {"float8_e5m2", "fp8_e5m2"},
      {"e5m2fnuz", "fp8_e5m2fnuz"},  {"float8_e5m2fnuz", "fp8_e5m2fnuz"},
      {"e2m3", "fp6_e2m3"},          {"float6_e2m3fn", "fp6_e2m3"}, {"e3m2", "fp6_e3m2"},
      {"float6_e3m2fn", "fp6_e3m2"}, {"e2m1", "fp4_e2m1"},          {"fp4", "fp4_e2m1"},
      {"float4_e2m1fn", "fp4_e2m1"}, {"half", "fp16"},              {"f16", "fp16"},
      {"float16", "fp16"},           {"bfloat16", "bf16"},          {"ue8m0", "e8m0"},
      {"float8_e8m0fnu", "e8m0"},
  };
  return kAliases;
}

const ElementCodec* FindRegistered(std::string_view lower) {
  for (const ElementCodec* c : ElementCodecs())
    if (c->name() == lower) return c;
  return nullptr;
}

std::string ValidElementNames() {
  std::string names;
  for (const ElementCodec* c : ElementCodecs()) names += (names.empty() ? "" : ", ") + c->name();
  std::string aliases;
  for (const auto& [alias, target] : ElementAliases()) aliases += (aliases.empty() ? "" : ", ") + alias;
  return fmt::format("valid names: {}; aliases: {}; generic: int<b>/uint<b> (b = 2..8), "
                     "e<E>m<M>[_ieee|_fn|_fnuz|_none][_b<bias>][_nosub] (E = 1..8, M = 0..10)",
                     names, aliases);
}

}  // namespace

StatusOr<const ElementCodec*> FindElementCodec(std::string_view name) {
  const std::string lower = Lower(name);
  if (const ElementCodec* c = FindRegistered(lower)) return c;
  const auto& aliases = ElementAliases();
  if (auto it = aliases.find(lower); it != aliases.end()) {
    const ElementCodec* c = FindRegistered(it->second);
    QL_CHECK(c != nullptr, "alias {} points at unregistered {}", it->first, it->second);
    return c;
  }
  // int<b> / uint<b> with b outside the registered 2..8.
  for (std::string_view prefix : {"uint", "int"}) {
    if (lower.starts_with(prefix) && lower.size() > prefix.size() &&
        std::all_of(lower.begin() + prefix.size(), lower.end(),
                    [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; }))
      return Status::Errorf("element format '{}': integer codecs have 2..8 bits ({}2..{}8)", name, prefix, prefix);
  }
  if (lower.starts_with('e') && lower.size() > 1 && std::isdigit(static_cast<unsigned char>(lower[1]))) {
    StatusOr<MinifloatSpec> spec = ParseMinifloatName(lower);
    if (!spec.ok()) return spec.status();
    // Generic minifloats are created once per canonical name and kept for the life of the process,
    // so the returned pointer is stable. The mutex makes concurrent first lookups safe.
    // Same parameters as a named format: that format ("e4m3_fn" -> fp8_e4m3, "e2m1" -> fp4_e2m1).
    for (const ElementCodec* c : ElementCodecs()) {
      const auto* mf = dynamic_cast<const MinifloatCodec*>(c);
      if (mf != nullptr && mf->spec().exp_bits == spec->exp_bits && mf->spec().man_bits == spec->man_bits &&
          mf->bias() == spec->ResolvedBias() && mf->spec().subnormals == spec->subnormals &&
          mf->spec().policy == spec->policy)
        return c;
    }
    // A bare "e<E>m<M>" that is an alias of a different format keeps its policy in the name, so the
    // stored name finds this format again ("e4m3_none", since "e4m3" means fp8_e4m3).
    if (aliases.count(spec->name) != 0 || FindRegistered(spec->name) != nullptr)
      spec->name += fmt::format("_{}", MinifloatPolicyName(spec->policy));
    static std::mutex mu;
    static std::map<std::string, std::unique_ptr<const MinifloatCodec>>* cache =
        new std::map<std::string, std::unique_ptr<const MinifloatCodec>>();
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = (*cache)[spec->name];
    if (!slot) slot = std::make_unique<const MinifloatCodec>(*spec);
    return static_cast<const ElementCodec*>(slot.get());
  }
  return Status::Errorf("unknown element format '{}'; {}", name, ValidElementNames());
}

StatusOr<const BlockCodec*> FindBlockCodec(std::string_view name) {
  const std::string lower = Lower(name);
  std::string names;
  for (const BlockCodec* c : BlockCodecs()) {
    if (Lower(c->name()) == lower) return c;
    names += (names.empty() ? "" : ", ") + c->name();
  }
  return Status::Errorf("unknown block format '{}'; valid names: {}", name,
                        names.empty() ? std::string("(none registered yet)") : names);
}

}  // namespace ql
