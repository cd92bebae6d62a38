// The compact reference (see compact_reference.h).
#include "harness/sweep/compact_reference.h"

#include <cstring>

#include "kernels/half.h"
#include "kernels/status.h"

namespace ql {
namespace {

// The untied head copy (lm_head.weight absent from a tied reference) is the embedding.
std::string SourceName(const Model& reference, const std::string& name) {
  return name == "lm_head.weight" && !reference.Has(name) ? std::string("model.embed_tokens.weight") : name;
}

void Decode(const std::vector<uint16_t>& bits, float* out) {  // out: [bits.size()]
  for (size_t i = 0; i < bits.size(); ++i) out[i] = Bf16ToF32(bits[i]);
}

// BF16 bits of v, or false when some value is not a BF16 number (an fp32 baseline's weight).
bool EncodeExact(const std::vector<float>& v, std::vector<uint16_t>* bits) {
  bits->resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = F32ToBf16(v[i]);
    const float back = Bf16ToF32(h);
    if (std::memcmp(&back, &v[i], sizeof(float)) != 0) return false;
    (*bits)[i] = h;
  }
  return true;
}

}  // namespace

bool CanCompactReference(const Session& s, const std::vector<Cell>& cells) {
  if (s.precision != BaselinePrecision::kBf16 && s.precision != BaselinePrecision::kBf16Compute) return false;
  if (!s.block_outputs || s.prefix || !s.reference_bf16.empty()) return false;
  for (const Cell& c : cells)
    if (c.adaptive) return false;
  return true;
}

bool CompactReference(Session* s) {
  std::map<std::string, std::vector<uint16_t>> bits;
  for (const auto& [name, t] : s->reference.weights)
    if (!EncodeExact(t.data, &bits[name])) return false;
  for (auto& [name, t] : s->reference.weights) std::vector<float>().swap(t.data);  // release the FP32 values
  s->reference_bf16 = std::move(bits);
  return true;
}

Model WorkModel(const Session& s) {
  if (s.reference_bf16.empty()) return s.reference;
  Model m = s.reference;  // config, tokenizer, shapes; no values
  for (auto& [name, t] : m.weights) {
    const std::vector<uint16_t>& bits = s.reference_bf16.at(name);
    t.data.resize(bits.size());
    Decode(bits, t.data.data());
  }
  return m;
}

const std::vector<float>& ReferenceValues(const Session& s, const std::string& name, std::vector<float>* scratch) {
  const std::string src = SourceName(s.reference, name);
  if (s.reference_bf16.empty()) return s.reference.W(src).data;
  const std::vector<uint16_t>& bits = s.reference_bf16.at(src);
  scratch->resize(bits.size());
  Decode(bits, scratch->data());
  return *scratch;
}

void RestoreReferenceTensor(const Session& s, Model& work, const std::string& name) {
  const std::string src = SourceName(s.reference, name);
  if (s.reference_bf16.empty()) {
    work.W(name).data = s.reference.W(src).data;
    return;
  }
  const std::vector<uint16_t>& bits = s.reference_bf16.at(src);
  std::vector<float>& out = work.W(name).data;
  out.resize(bits.size());
  Decode(bits, out.data());
}

}  // namespace ql
