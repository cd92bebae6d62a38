// libFuzzer target: scheme strings. A scheme that parses must print a canonical form that parses back
// to the same scheme, and must quantize a fixed 4x256 tensor without crashing.
#include <string_view>
#include <vector>

#include "kernels/quantizer.h"
#include "kernels/scheme.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256) return 0;
  auto s = ql::ParseScheme(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!s.ok()) return 0;
  const std::string canon = ql::ToString(*s);
  auto again = ql::ParseScheme(canon);
  if (!again.ok() || !(*again == *s) || ql::ToString(*again) != canon) __builtin_trap();  // not canonical
  static const std::vector<float> x = [] {
    std::vector<float> v(4 * 256);
    for (size_t i = 0; i < v.size(); ++i) v[i] = float((int(i * 37) % 201) - 100) / 17.0f;
    return v;
  }();
  std::vector<float> y(x.size());
  (void)ql::FakeQuantize(*s, x.data(), 4, 256, y.data());
  return 0;
}
