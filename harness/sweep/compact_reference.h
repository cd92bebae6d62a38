// The session's reference weights held as BF16 bits while cells run: a BF16 baseline has rounded every
// weight to BF16 already, so the 16-bit form is exact and the one FP32 model in memory is the cells' work
// model. Halves the reference's share of a sweep's peak memory. Not a storage format for the forward
// pass (it still multiplies FP32 tensors) and not used where a cell would run the reference itself.
#pragma once

#include <string>
#include <vector>

#include "harness/model/model.h"
#include "harness/sweep/cell_pipeline.h"

namespace ql {

// True when every cell can run against a compact reference: a bf16 or bf16-compute baseline, the layer-
// error reference captured (Session::block_outputs), no prefix store and no adaptive cell (those paths
// run the reference model, harness/sweep/cell_eval.h).
bool CanCompactReference(const Session& s, const std::vector<Cell>& cells);

// Moves every weight of s->reference into s->reference_bf16 when all of them round-trip BF16 bit for bit;
// s->reference keeps its config and every tensor's shape, with no values. Returns whether it did (false:
// the session is unchanged). Call once, after OpenSession and before the cells.
bool CompactReference(Session* s);

// A model equal to the reference bit for bit, values decoded when the session is compact: the cells'
// work model (RunCell's `work`).
Model WorkModel(const Session& s);

// The reference values of weight `name` (an untied head copy: the embedding's), [numel]. When compact they
// are decoded into *scratch and that is returned; otherwise the reference's own vector.
const std::vector<float>& ReferenceValues(const Session& s, const std::string& name, std::vector<float>* scratch);

// work.W(name) set back to the reference values (same size, no reallocation when compact).
void RestoreReferenceTensor(const Session& s, Model& work, const std::string& name);

}  // namespace ql
