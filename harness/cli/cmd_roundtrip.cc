// `quantlab roundtrip --scheme S [VALUES...|-] [--rows R] [--json]`: quantizes a handful of numbers
// with one scheme and shows codes, scales, zero points, dequantized values, error and storage.
// A teaching and checking tool, not a file converter (values come from the command line or stdin).
#include <charconv>
#include <cmath>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/commands.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql::cli {
namespace {

struct RoundtripArgs {
  std::string scheme;
  std::vector<std::string> values;
  int64_t rows = 1;
  bool json = false;
};

// Whitespace- or comma-separated numbers ("nan"/"inf" parse, and are then rejected by Quantize).
StatusOr<std::vector<float>> ParseValues(const std::string& text) {
  std::vector<float> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == ',')) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])) && text[j] != ',') ++j;
    const std::string tok = text.substr(i, j - i);
    float v = 0;
    const char* b = tok.data() + (tok[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, tok.data() + tok.size(), v);
    if (ec != std::errc() || p != tok.data() + tok.size())
      return Status::Errorf("value #{} '{}' is not a number (give decimal numbers separated by spaces "
                            "or commas)", out.size() + 1, tok);
    out.push_back(v);
    i = j;
  }
  return out;
}

std::string Num(double v) { return fmt::format("{:.8g}", v); }

template <typename T, typename F>
std::string Join(const std::vector<T>& v, F f) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + f(v[i]);
  return s;
}

nlohmann::json JsonNum(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);  // JSON has no Inf
}

Status Run(const RoundtripArgs& a) {
  QL_ASSIGN_OR_RETURN(Scheme scheme, ParseScheme(a.scheme));
  std::string text;
  if (a.values.size() == 1 && a.values[0] == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    for (const std::string& v : a.values) text += v + " ";
  }
  QL_ASSIGN_OR_RETURN(std::vector<float> x, ParseValues(text));
  if (x.empty()) return Status::Error("no values given; pass numbers as arguments or '-' to read stdin");
  if (a.rows <= 0 || int64_t(x.size()) % a.rows != 0)
    return Status::Errorf("--rows {} does not divide the {} values into a matrix", a.rows, x.size());
  const int64_t rows = a.rows, cols = int64_t(x.size()) / rows;

  QL_ASSIGN_OR_RETURN(QuantizedTensor q, Quantize(scheme, x.data(), rows, cols));
  std::vector<float> y(x.size());  // [rows, cols]
  q.Dequantize(y.data());
  const ErrorStats e = ComputeErrorStats(x.data(), y.data(), int64_t(x.size()));

  std::vector<int32_t> codes, zeros;
  std::vector<float> scales;
  if (!scheme.is_block) {
    for (int64_t i = 0; i < rows * cols; ++i) codes.push_back(q.Code(i));
    for (int64_t t = 0; t < q.num_scales(); ++t) {
      scales.push_back(q.Scale(t));
      if (!q.zeros.empty()) zeros.push_back(q.ZeroPoint(t));
    }
  }
  const std::vector<uint8_t>& raw = scheme.is_block ? q.blocks.bytes : q.codes;

  if (a.json) {
    nlohmann::json j;
    j["scheme"] = ToString(scheme);
    j["shape"] = {rows, cols};
    j["input"] = x;
    if (!scheme.is_block) {
      j["codes"] = codes;
      j["code_bits"] = q.code_bits;
      j["scale_shape"] = {q.tiles.grid_rows, q.tiles.grid_cols};
      j["scale_dtype"] = std::string(ScaleDtypeName(scheme.scale_dtype));
      j["scales"] = scales;
      j["zero_points"] = zeros;
    } else {
      j["block_extra_bytes"] = q.blocks.extra;
    }
    j["packed"] = raw;
    j["dequantized"] = y;
    j["error"] = {{"mse", e.mse}, {"max_abs", e.max_abs}, {"max_abs_index", e.max_abs_index},
                  {"sqnr_db", JsonNum(e.sqnr_db)}};
    j["bytes"] = q.Bytes();
    j["bits_per_weight"] = q.BitsPerWeight();
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::cout << fmt::format("scheme      {}\n", ToString(scheme));
  std::cout << fmt::format("shape       [{}, {}]\n", rows, cols);
  if (!scheme.is_block) {
    std::cout << fmt::format("codes       {}   ({} bits each)\n",
                             Join(codes, [](int32_t c) { return std::to_string(c); }), q.code_bits);
    if (!scales.empty())
      std::cout << fmt::format("scales      {}   ({} [{}, {}])\n", Join(scales, Num),
                               ScaleDtypeName(scheme.scale_dtype), q.tiles.grid_rows, q.tiles.grid_cols);
    if (!zeros.empty())
      std::cout << fmt::format("zero points {}\n", Join(zeros, [](int32_t z) { return std::to_string(z); }));
  }
  std::cout << fmt::format("packed      {}\n", Join(raw, [](uint8_t b) { return fmt::format("{:02x}", b); }));
  std::cout << fmt::format("dequantized {}\n", Join(y, Num));
  std::cout << fmt::format("error       mse {}  max_abs {} (index {})  sqnr {} dB\n", Num(e.mse),
                           Num(e.max_abs), e.max_abs_index, Num(e.sqnr_db));
  std::cout << fmt::format("storage     {} bytes, {} bits/weight\n", q.Bytes(), Num(q.BitsPerWeight()));
  return Status::Ok();
}

}  // namespace

void AddRoundtripCommand(CLI::App& app) {
  auto args = std::make_shared<RoundtripArgs>();
  CLI::App* cmd = app.add_subcommand(
      "roundtrip", "Quantize numbers with a scheme; show codes, scales, dequantized values and error");
  cmd->add_option("--scheme,-s", args->scheme, "Scheme, e.g. int4:g128:asym, fp8_e4m3:tensor, nvfp4")
      ->required();
  cmd->add_option("--rows", args->rows, "Treat the values as a [rows, n/rows] row-major matrix")
      ->default_val(1);
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_option("values", args->values, "Numbers (space or comma separated), or - for stdin");
  cmd->callback([args] {
    const Status st = Run(*args);
    if (!st.ok()) Fail("roundtrip", st);
  });
}

}  // namespace ql::cli
