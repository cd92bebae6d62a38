// Scheme parsing and printing (see kernels/scheme.h for the grammar). Parsing is a single pass over
// the tokens; every token kind may appear once; the result is normalized so that ToString is canonical.
#include "kernels/scheme.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <vector>

#include <fmt/format.h>

namespace ql {

std::string_view GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kNone: return "noscale";
    case Granularity::kTensor: return "tensor";
    case Granularity::kChannel: return "channel";
    case Granularity::kChannelIn: return "channel_in";
    case Granularity::kToken: return "token";
    case Granularity::kGroup: return "group";
    case Granularity::kBlock2d: return "block2d";
  }
  return "?";
}

std::string_view IntModeName(IntMode m) {
  switch (m) {
    case IntMode::kSym: return "sym";
    case IntMode::kSymFull: return "symfull";
    case IntMode::kAsym: return "asym";
  }
  return "?";
}

std::string_view ScaleDtypeName(ScaleDtype d) {
  switch (d) {
    case ScaleDtype::kFp32: return "fp32";
    case ScaleDtype::kFp16: return "fp16";
    case ScaleDtype::kBf16: return "bf16";
    case ScaleDtype::kE8m0: return "e8m0";
    case ScaleDtype::kE4m3: return "e4m3";
  }
  return "?";
}

int ScaleDtypeBytes(ScaleDtype d) {
  switch (d) {
    case ScaleDtype::kFp32: return 4;
    case ScaleDtype::kFp16:
    case ScaleDtype::kBf16: return 2;
    case ScaleDtype::kE8m0:
    case ScaleDtype::kE4m3: return 1;
  }
  return 4;
}

std::string_view GranularityHelp() {
  return "noscale (direct cast), tensor, channel (per output row), channel_in (per input column), "
         "token (per row, dynamic), g<N> (N consecutive inputs), b<R>x<C> (2-D tiles)";
}
std::string_view ClipRuleHelp() {
  return "max (default: absmax for sym, min..max for asym), pct<P> (percentile clip, 50<P<100), "
         "mse (least-squares shrink search over p=1.00,0.99..0.21)";
}

bool Scheme::operator==(const Scheme& o) const {
  return format == o.format && is_block == o.is_block && granularity == o.granularity &&
         group_size == o.group_size && tile_rows == o.tile_rows && tile_cols == o.tile_cols &&
         int_mode == o.int_mode && clip == o.clip && percentile == o.percentile &&
         scale_dtype == o.scale_dtype && block.block_size == o.block.block_size &&
         block.mx_rounding == o.block.mx_rounding && block.nvfp4 == o.block.nvfp4 &&
         block.nf4_double_quant == o.block.nf4_double_quant && block.nf4_argmin == o.block.nf4_argmin;
}

namespace {

constexpr std::string_view kElementOptions =
    "noscale|tensor|channel|channel_in|token|g<N>|b<R>x<C>, sym|symfull|asym, max|pct<P>|mse, "
    "s=fp32|fp16|bf16|e8m0|e4m3";

std::vector<std::string> Tokenize(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ':' || c == '-' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(char(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Positive integer, the whole string.
std::optional<int64_t> ParseCount(std::string_view s) {
  if (s.empty() || s.size() > 12) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

std::optional<double> ParseNumber(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

std::string AllowedFormats() {
  std::string s;
  for (const BlockCodec* c : BlockCodecs()) s += c->name() + ", ";
  for (const ElementCodec* c : ElementCodecs())
    if (c->kind() != FormatKind::kScale && c->kind() != FormatKind::kInt) s += c->name() + ", ";
  s += "int<b>, uint<b> (b = 2..8), e<E>m<M> (aliases fp8, e4m3, e5m2, fp4, e2m1)";
  return s;
}

bool IsMx(const std::string& name) { return StartsWith(name, "mx"); }

// OCP MX v1.0 fixes the block (k) at 32 for every concrete MX format. Other sizes are accepted as
// non-standard variants (the Microscaling paper, Rouhani et al. 2023, sweeps k) only where hardware
// could lay them out: powers of two, 8..1024. g7 or g100000 are errors, not silently padded blocks.
constexpr int64_t kMxMinBlock = 8, kMxMaxBlock = 1024;
bool MxNonStandardBlockOk(int64_t n) { return n >= kMxMinBlock && n <= kMxMaxBlock && (n & (n - 1)) == 0; }

// Tokens for block-codec schemes.
Status ParseBlockOption(const std::string& tok, const BlockCodec& codec, Scheme& s,
                        std::vector<std::string>& seen) {
  auto once = [&](const char* kind) -> Status {
    if (std::find(seen.begin(), seen.end(), kind) != seen.end())
      return Status::Errorf("scheme token '{}': a second {} option for {}", tok, kind, s.format);
    seen.push_back(kind);
    return Status::Ok();
  };
  const std::string name = codec.name();
  if (!codec.granularity().empty()) {  // codebook formats: one granularity, no block size
    if (tok != codec.granularity())
      return Status::Errorf("scheme token '{}' does not apply to {}: it has one codebook per {}, spelled {}:{}",
                            tok, name, codec.granularity() == "channel" ? "row" : "tensor", name,
                            codec.granularity());
    return once("granularity");
  }
  std::string allowed = "g<N> (block size, default " + std::to_string(codec.default_block_size()) +
                        (codec.block_size_fixed() ? ", fixed" : "") + ")";
  if (IsMx(name)) allowed += ", floor|ceil|even";
  if (name == "nvfp4") allowed += ", modelopt|ct";
  if (name == "nf4") allowed += ", dq, argmin";

  if ((tok[0] == 'g' || tok[0] == 'k') && ParseCount(std::string_view(tok).substr(1))) {
    QL_RETURN_IF_ERROR(once("block size"));
    const int64_t n = *ParseCount(std::string_view(tok).substr(1));
    if (n == codec.default_block_size()) {
      s.block.block_size = 0;
    } else if (codec.block_size_fixed()) {
      return Status::Errorf("scheme token '{}': {} has a fixed block size of {}", tok, name,
                            codec.default_block_size());
    } else if (IsMx(name) && !MxNonStandardBlockOk(n)) {
      return Status::Errorf("scheme token '{}': {} blocks hold 32 elements (OCP MX v1.0); other sizes are "
                            "non-standard variants and must be a power of two from {} to {}",
                            tok, name, kMxMinBlock, kMxMaxBlock);
    } else if (n > (1 << 20)) {
      return Status::Errorf("scheme token '{}': block size too large", tok);
    } else {
      s.block.block_size = int(n);
    }
    return Status::Ok();
  }
  if (IsMx(name) && (tok == "floor" || tok == "ceil" || tok == "even")) {
    QL_RETURN_IF_ERROR(once("scale rounding"));
    s.block.mx_rounding = tok == "floor"  ? MxScaleRounding::kFloor
                          : tok == "ceil" ? MxScaleRounding::kCeil
                                          : MxScaleRounding::kEven;
    return Status::Ok();
  }
  if (name == "nvfp4" && (tok == "modelopt" || tok == "ct" || tok == "compressed_tensors")) {
    QL_RETURN_IF_ERROR(once("convention"));
    s.block.nvfp4 = tok == "modelopt" ? NvFp4Convention::kModelOpt
                                      : NvFp4Convention::kCompressedTensors;
    return Status::Ok();
  }
  if (name == "nf4" && (tok == "dq" || tok == "double_quant")) {
    QL_RETURN_IF_ERROR(once("double quant"));
    s.block.nf4_double_quant = true;
    return Status::Ok();
  }
  if (name == "nf4" && tok == "argmin") {  // bitsandbytes' torch/CPU rounding (kernels/nf4.h)
    QL_RETURN_IF_ERROR(once("rounding rule"));
    s.block.nf4_argmin = true;
    return Status::Ok();
  }
  return Status::Errorf("scheme token '{}' does not apply to block format {}; allowed: {}", tok,
                        name, allowed);
}

}  // namespace

StatusOr<Scheme> ParseScheme(std::string_view text) {
  const std::vector<std::string> toks = Tokenize(text);
  if (toks.empty())
    return Status::Errorf("empty scheme; expected FORMAT[:OPTION]..., formats: {}", AllowedFormats());
  Scheme s;
  const std::string& fmt_tok = toks[0];

  // Block codecs first: "nf4" names the bitsandbytes block format even if a codebook element
  // codec of the same name exists.
  if (auto b = FindBlockCodec(fmt_tok); b.ok()) {
    s.format = (*b)->name();
    s.is_block = true;
    std::vector<std::string> seen;
    for (size_t i = 1; i < toks.size(); ++i) QL_RETURN_IF_ERROR(ParseBlockOption(toks[i], **b, s, seen));
    return s;
  }

  // Element codecs; "uint<b>" is "int<b>:asym".
  bool implied_asym = false;
  std::string elem_name = fmt_tok;
  if (StartsWith(fmt_tok, "uint") && ParseCount(std::string_view(fmt_tok).substr(4))) {
    elem_name = "int" + fmt_tok.substr(4);
    implied_asym = true;
  }
  const ElementCodec* codec = nullptr;
  if (auto c = FindElementCodec(elem_name); c.ok()) {  // resolves aliases (fp8, e4m3, ...)
    codec = *c;
  } else {
    return Status::Errorf("unknown format '{}' in scheme '{}'; allowed: {}", fmt_tok, text,
                          AllowedFormats());
  }
  if (codec->kind() == FormatKind::kScale)
    return Status::Errorf("format '{}' is a scale format, not an element format; use it as s={} "
                          "(e.g. int4:g32:s={})", fmt_tok, codec->name(), codec->name());
  if (codec->kind() == FormatKind::kBlock)
    return Status::Errorf("format '{}' is registered as an element codec of block kind", fmt_tok);
  s.format = codec->name();
  const bool is_int = codec->kind() == FormatKind::kInt;
  if (implied_asym && !is_int)
    return Status::Errorf("format '{}': uint<b> resolved to a non-integer codec {}", fmt_tok, s.format);

  std::optional<Granularity> gran;
  std::optional<IntMode> mode;
  std::optional<ClipRule> clip;
  std::optional<ScaleDtype> sdt;
  std::string gran_tok, mode_tok, clip_tok;
  std::optional<IntMode> clip_mode;  // "absmax" implies sym, "minmax" implies asym
  std::string clip_mode_tok;

  for (size_t i = 1; i < toks.size(); ++i) {
    const std::string& t = toks[i];
    const std::string_view tv = t;
    auto dup = [&](const char* kind, const std::string& prev) {
      return Status::Errorf("scheme '{}': two {} options, '{}' and '{}'; give one", text, kind, prev, t);
    };
    // --- granularity
    std::optional<Granularity> g;
    int64_t gs = 0, tr = 0, tc = 0;
    if (t == "noscale" || t == "none" || t == "cast") g = Granularity::kNone;
    else if (t == "tensor" || t == "per_tensor") g = Granularity::kTensor;
    else if (t == "channel" || t == "per_channel") g = Granularity::kChannel;
    else if (t == "channel_in" || t == "per_channel_in") g = Granularity::kChannelIn;
    else if (t == "token" || t == "per_token") g = Granularity::kToken;
    else if ((t[0] == 'g' || t[0] == 'k') && ParseCount(tv.substr(1))) {
      g = Granularity::kGroup;
      gs = *ParseCount(tv.substr(1));
    } else if (t[0] == 'b' && t.find('x') != std::string::npos) {
      const size_t x = t.find('x');
      auto r = ParseCount(tv.substr(1, x - 1));
      auto c = ParseCount(tv.substr(x + 1));
      if (!r || !c)
        return Status::Errorf("scheme token '{}': a 2-D tile is b<R>x<C> with positive R, C "
                              "(e.g. b128x128)", t);
      g = Granularity::kBlock2d;
      tr = *r;
      tc = *c;
    }
    if (g) {
      if (gran) return dup("granularity", gran_tok);
      gran = g;
      gran_tok = t;
      s.group_size = gs;
      s.tile_rows = tr;
      s.tile_cols = tc;
      continue;
    }
    // --- integer mode
    std::optional<IntMode> m;
    if (t == "sym" || t == "symmetric") m = IntMode::kSym;
    else if (t == "symfull" || t == "sym_full") m = IntMode::kSymFull;
    else if (t == "asym" || t == "asymmetric") m = IntMode::kAsym;
    if (m) {
      if (mode) return dup("integer mode", mode_tok);
      if (!is_int && *m != IntMode::kSym)
        return Status::Errorf("scheme token '{}': only integer formats take symfull/asym; {} is "
                              "symmetric by construction", t, s.format);
      mode = m;
      mode_tok = t;
      continue;
    }
    // --- clipping rule
    std::optional<ClipRule> cr;
    double pct = 100.0;
    if (t == "max" || t == "absmax" || t == "minmax") {
      cr = ClipRule::kMax;
      if (t != "max") {
        clip_mode = t == "absmax" ? IntMode::kSym : IntMode::kAsym;
        clip_mode_tok = t;
      }
    } else if (t == "mse") {
      cr = ClipRule::kMse;
    } else if (StartsWith(t, "pct")) {
      auto p = ParseNumber(tv.substr(3));
      if (!p || !(*p > 50.0 && *p <= 100.0))
        return Status::Errorf("scheme token '{}': percentile clipping is pct<P> with 50 < P <= 100 "
                              "(e.g. pct99.9)", t);
      pct = *p;
      cr = pct == 100.0 ? ClipRule::kMax : ClipRule::kPercentile;
    }
    if (cr) {
      if (clip) return dup("clipping", clip_tok);
      clip = cr;
      clip_tok = t;
      s.percentile = pct;
      continue;
    }
    // --- scale dtype
    if (StartsWith(t, "s=") || StartsWith(t, "scale=")) {
      const std::string v = t.substr(t.find('=') + 1);
      std::optional<ScaleDtype> d;
      if (v == "fp32" || v == "f32" || v == "float32") d = ScaleDtype::kFp32;
      else if (v == "fp16" || v == "f16" || v == "float16" || v == "half") d = ScaleDtype::kFp16;
      else if (v == "bf16" || v == "bfloat16") d = ScaleDtype::kBf16;
      else if (v == "e8m0" || v == "ue8m0") d = ScaleDtype::kE8m0;
      else if (v == "e4m3" || v == "fp8" || v == "fp8_e4m3" || v == "ue4m3") d = ScaleDtype::kE4m3;
      if (!d)
        return Status::Errorf("scheme token '{}': scale dtype must be s=fp32|fp16|bf16|e8m0|e4m3", t);
      if (sdt) return Status::Errorf("scheme '{}': two scale dtypes; give one s=...", text);
      sdt = d;
      continue;
    }
    return Status::Errorf("unknown scheme token '{}' in '{}'; allowed after {}: {}", t, text, s.format,
                          kElementOptions);
  }

  // Integer mode: explicit, implied by uint<b> or minmax/absmax; all must agree.
  IntMode final_mode = mode.value_or(IntMode::kSym);
  if (implied_asym) {
    if (mode && *mode != IntMode::kAsym)
      return Status::Errorf("scheme '{}': {} is unsigned (asym with zero point) but '{}' was given",
                            text, fmt_tok, mode_tok);
    final_mode = IntMode::kAsym;
  }
  if (clip_mode) {
    if (*clip_mode == IntMode::kAsym) {
      if (!is_int)
        return Status::Errorf("scheme token 'minmax': {} is symmetric; use max or absmax", s.format);
      if ((mode && *mode != IntMode::kAsym))
        return Status::Errorf("scheme '{}': 'minmax' is the asym range but '{}' was given", text,
                              mode_tok);
      final_mode = IntMode::kAsym;
    } else if (final_mode == IntMode::kAsym) {
      return Status::Errorf("scheme '{}': 'absmax' is a symmetric range but the scheme is asym "
                            "(use minmax or leave it out)", text);
    }
  }
  s.int_mode = final_mode;
  s.clip = clip.value_or(ClipRule::kMax);
  if (s.clip != ClipRule::kPercentile) s.percentile = 100.0;
  s.scale_dtype = sdt.value_or(ScaleDtype::kFp32);

  if (!gran) {
    if (codec->bits() >= 16) {
      gran = Granularity::kNone;
    } else {
      return Status::Errorf("scheme '{}' needs a granularity: add one of :tensor :channel :channel_in "
                            ":token :g<N> :b<R>x<C>, or :noscale for a direct cast", text);
    }
  }
  s.granularity = *gran;
  if (s.granularity == Granularity::kNone) {
    if (s.int_mode != IntMode::kSym || s.clip != ClipRule::kMax || s.scale_dtype != ScaleDtype::kFp32)
      return Status::Errorf("scheme '{}': noscale is a direct cast; it takes no integer mode, clipping "
                            "or scale dtype", text);
    if (implied_asym) return Status::Errorf("scheme '{}': uint<b> needs a granularity", text);
  }
  return s;
}

std::string ToString(const Scheme& s) {
  std::string out = s.format;
  if (s.is_block) {
    if (auto c = FindBlockCodec(s.format); c.ok() && !(*c)->granularity().empty()) {
      out += ":";
      out += (*c)->granularity();
    }
    if (s.block.block_size != 0) out += fmt::format(":g{}", s.block.block_size);
    if (s.block.mx_rounding == MxScaleRounding::kCeil) out += ":ceil";
    if (s.block.mx_rounding == MxScaleRounding::kEven) out += ":even";
    if (s.block.nvfp4 == NvFp4Convention::kCompressedTensors) out += ":ct";
    if (s.block.nf4_double_quant) out += ":dq";
    if (s.block.nf4_argmin) out += ":argmin";
    return out;
  }
  switch (s.granularity) {
    case Granularity::kNone: {
      auto c = FindElementCodec(s.format);
      QL_CHECK(c.ok(), "scheme format {} is not registered", s.format);
      if ((*c)->bits() < 16) out += ":noscale";
      break;
    }
    case Granularity::kGroup: out += fmt::format(":g{}", s.group_size); break;
    case Granularity::kBlock2d: out += fmt::format(":b{}x{}", s.tile_rows, s.tile_cols); break;
    default: out += ":"; out += GranularityName(s.granularity); break;
  }
  if (s.int_mode != IntMode::kSym) {
    out += ":";
    out += IntModeName(s.int_mode);
  }
  if (s.clip == ClipRule::kPercentile) out += fmt::format(":pct{}", s.percentile);
  if (s.clip == ClipRule::kMse) out += ":mse";
  if (s.scale_dtype != ScaleDtype::kFp32) {
    out += ":s=";
    out += ScaleDtypeName(s.scale_dtype);
  }
  return out;
}

TileShape TilesFor(const Scheme& s, int64_t rows, int64_t cols) {
  TileShape t;
  auto ceil_div = [](int64_t a, int64_t b) { return b <= 0 ? 0 : (a + b - 1) / b; };
  switch (s.granularity) {
    case Granularity::kNone: return t;
    case Granularity::kTensor: t.tile_rows = std::max<int64_t>(rows, 1); t.tile_cols = std::max<int64_t>(cols, 1); break;
    case Granularity::kChannel:
    case Granularity::kToken: t.tile_rows = 1; t.tile_cols = std::max<int64_t>(cols, 1); break;
    case Granularity::kChannelIn: t.tile_rows = std::max<int64_t>(rows, 1); t.tile_cols = 1; break;
    case Granularity::kGroup: t.tile_rows = 1; t.tile_cols = s.group_size; break;
    case Granularity::kBlock2d: t.tile_rows = s.tile_rows; t.tile_cols = s.tile_cols; break;
  }
  t.grid_rows = ceil_div(rows, t.tile_rows);
  t.grid_cols = ceil_div(cols, t.tile_cols);
  return t;
}

}  // namespace ql
