// The per-codec tables of kernels/codec_tables.h.
#include "kernels/codec_tables.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>

namespace ql {

CodecTables::CodecTables(const ElementCodec* c) : codec_(c) {
  decode_.resize(size_t(1) << c->bits());
  for (uint32_t code = 0; code < decode_.size(); ++code) decode_[code] = c->Decode(code);
  if (c->bits() > 8) return;
  start_.resize(65536);
  interior_.resize(65536);
  for (uint32_t b = 0; b < 65536; ++b) {
    const float first = BitsF32(b << 16);
    if (!std::isfinite(first)) {
      start_[b] = interior_[b] = kSlow;
      continue;
    }
    start_[b] = uint16_t(c->Encode(first));
    const uint32_t lo = c->Encode(BitsF32((b << 16) | 1u)), hi = c->Encode(BitsF32((b << 16) | 0xFFFFu));
    interior_[b] = lo == hi ? uint16_t(lo) : kSlow;
  }
}

const CodecTables& CodecTables::For(const ElementCodec* c) {
  static std::mutex mu;
  static auto* cache = new std::map<const ElementCodec*, std::unique_ptr<const CodecTables>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = (*cache)[c];
  if (!slot) slot = std::make_unique<const CodecTables>(c);
  return *slot;
}

}  // namespace ql
