// Which modules a quantization applies to, in llm-compressor's target syntax, resolved against the
// model's one list of linear modules (Model::LinearModules()). Not the quantization itself.
//
// An entry is one of:
//   Linear                    a class name: every linear layer (also "Embedding" for the token table)
//   model.layers.0.mlp.down_proj   an exact module path (a trailing ".weight" is accepted and dropped)
//   re:<regex>                a regular expression (ECMAScript) matched from the start of the module
//                             path, as llm-compressor's re.match does: "re:.*down_proj" ends anywhere
// An entry that matches nothing is an error: a typo would otherwise silently quantize everything.
#pragma once

#include <string>
#include <vector>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql {

// Module paths the target set can name: Model::LinearModules() plus "model.embed_tokens".
std::vector<std::string> TargetableModules(const Model& model);

// The modules matched by any entry, in the model's order. `what` names the list in errors
// ("targets", "ignore set 'edges'").
StatusOr<std::vector<std::string>> ResolveTargets(const Model& model, const std::vector<std::string>& entries,
                                                  const std::string& what);

// targets − ignore, both resolved (each entry of each list must match something).
StatusOr<std::vector<std::string>> ResolveTargetsMinusIgnore(const Model& model,
                                                             const std::vector<std::string>& targets,
                                                             const std::vector<std::string>& ignore,
                                                             const std::string& ignore_name);

// Built-in named ignore sets, expanded for a model:
//   none, lm_head, first_last_2 (blocks 0, 1, L-2, L-1 — every linear in them), all_self_attn,
//   all_mlp, all_down_proj, all_o_proj, first_block, last_block.
// Returns an error listing the names for an unknown one.
StatusOr<std::vector<std::string>> BuiltinIgnoreSet(const Model& model, const std::string& name);
std::vector<std::string> BuiltinIgnoreSetNames();

}  // namespace ql
