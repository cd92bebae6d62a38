// A forward pass over many short token sequences at once, packed as rows of one call: each row attends
// to its own ancestors only (a forest of token tries), so the candidates of many task items, and the
// prefix each item's candidates share, run in one set of matrix products. Not a replacement for
// ForwardWindow (harness/model/forward.h): no hooks, FP32 products only, no KV cache.
//
// Arithmetic: every linear is the kernels/gemm.h FMA chain per element (the call pads to at least
// kGemmDotRows rows so the dot-product path is never taken) and attention is computed row by row, so a
// row's logits depend on its own ancestors alone: bitwise the same whatever else is packed beside it
// and for any thread count. Against ForwardWindow of the same sequence they agree to float rounding
// (its attention sums the same terms through a blocked GEMM in another order).
#pragma once

#include <span>
#include <vector>

#include "harness/model/model.h"

namespace ql {

// R rows. Row r feeds token tokens[r] at position = depth of r (roots 0); parent[r] < r is the row of
// the token before it in its sequence, or -1 for the first token. Rows sharing a parent share their
// whole prefix (a trie). logit_rows: the rows whose next-token logits the caller wants.
struct PackedBatch {
  std::vector<int> tokens;      // [R]
  std::vector<int> parent;      // [R]
  std::vector<int> logit_rows;  // [L]
  int Add(int token, int parent_row);  // appends a row, returns its index
  int rows() const { return int(tokens.size()); }
};

// logits: [L, vocab], row i for batch.logit_rows[i]. Errors: an empty batch, a token outside the
// vocabulary, a parent not before its child, a position past max_seq_len, a model whose matmul is not
// FP32 (the packed attention is FP32 only).
Status ForwardPacked(const Model& model, const PackedBatch& batch, float* logits);

}  // namespace ql
