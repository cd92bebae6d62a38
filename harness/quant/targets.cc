// Target / ignore resolution (see targets.h).
#include "harness/quant/targets.h"

#include <algorithm>
#include <regex>
#include <set>

namespace ql {

std::vector<std::string> TargetableModules(const Model& model) {
  std::vector<std::string> m = model.LinearModules();
  m.insert(m.begin(), "model.embed_tokens");
  return m;
}

namespace {

bool IsLinear(const std::string& path) { return path != "model.embed_tokens"; }

StatusOr<std::vector<bool>> Match(const std::vector<std::string>& modules, const std::string& entry,
                                  const std::string& what) {
  std::vector<bool> hit(modules.size(), false);
  if (entry.rfind("re:", 0) == 0) {
    std::regex re;
    try {
      re = std::regex(entry.substr(3), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return Status::Errorf("{}: '{}' is not a valid regular expression ({})", what, entry, e.what());
    }
    for (size_t i = 0; i < modules.size(); ++i)
      hit[i] = std::regex_search(modules[i], re, std::regex_constants::match_continuous);
  } else if (entry == "Linear") {
    for (size_t i = 0; i < modules.size(); ++i) hit[i] = IsLinear(modules[i]);
  } else if (entry == "Embedding") {
    for (size_t i = 0; i < modules.size(); ++i) hit[i] = !IsLinear(modules[i]);
  } else {
    std::string path = entry;
    for (const char* suffix : {".weight", ".bias"}) {
      const std::string s(suffix);
      if (path.size() > s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0)
        path.resize(path.size() - s.size());
    }
    for (size_t i = 0; i < modules.size(); ++i) hit[i] = modules[i] == path;
  }
  return hit;
}

}  // namespace

StatusOr<std::vector<std::string>> ResolveTargets(const Model& model, const std::vector<std::string>& entries,
                                                  const std::string& what) {
  const std::vector<std::string> modules = TargetableModules(model);
  std::vector<bool> any(modules.size(), false);
  for (const std::string& e : entries) {
    QL_ASSIGN_OR_RETURN(std::vector<bool> hit, Match(modules, e, what));
    if (std::find(hit.begin(), hit.end(), true) == hit.end()) {
      return Status::Errorf(
          "{}: entry '{}' matches no module of this model ({} layers; module paths look like "
          "'model.layers.0.mlp.down_proj' or 'lm_head'; use 'Linear', an exact path or 're:<regex>')",
          what, e, model.config.n_layers);
    }
    for (size_t i = 0; i < modules.size(); ++i) any[i] = any[i] || hit[i];
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < modules.size(); ++i)
    if (any[i]) out.push_back(modules[i]);
  return out;
}

StatusOr<std::vector<std::string>> ResolveTargetsMinusIgnore(const Model& model,
                                                             const std::vector<std::string>& targets,
                                                             const std::vector<std::string>& ignore,
                                                             const std::string& ignore_name) {
  QL_ASSIGN_OR_RETURN(std::vector<std::string> t, ResolveTargets(model, targets, "targets"));
  QL_ASSIGN_OR_RETURN(std::vector<std::string> ig,
                      ResolveTargets(model, ignore, "ignore set '" + ignore_name + "'"));
  std::set<std::string> drop(ig.begin(), ig.end());
  std::vector<std::string> out;
  for (auto& m : t)
    if (!drop.count(m)) out.push_back(m);
  return out;
}

std::vector<std::string> BuiltinIgnoreSetNames() {
  return {"none", "lm_head", "first_block", "last_block", "first_last_2", "all_self_attn", "all_mlp",
          "all_down_proj", "all_o_proj"};
}

StatusOr<std::vector<std::string>> BuiltinIgnoreSet(const Model& model, const std::string& name) {
  const int L = model.config.n_layers;
  auto blocks = [&](std::vector<int> ls) {
    std::vector<std::string> r;
    std::set<int> seen;
    for (int l : ls)
      if (l >= 0 && l < L && seen.insert(l).second) r.push_back(fmt::format("re:model\\.layers\\.{}\\.", l));
    return r;
  };
  if (name == "none") return std::vector<std::string>{};
  if (name == "lm_head") return std::vector<std::string>{"lm_head"};
  if (name == "first_block") return blocks({0});
  if (name == "last_block") return blocks({L - 1});
  if (name == "first_last_2") return blocks({0, 1, L - 2, L - 1});
  if (name == "all_self_attn") return std::vector<std::string>{"re:.*self_attn\\."};
  if (name == "all_mlp") return std::vector<std::string>{"re:.*mlp\\."};
  if (name == "all_down_proj") return std::vector<std::string>{"re:.*down_proj$"};
  if (name == "all_o_proj") return std::vector<std::string>{"re:.*o_proj$"};
  std::string names;
  for (const auto& n : BuiltinIgnoreSetNames()) names += (names.empty() ? "" : ", ") + n;
  return Status::Errorf("unknown ignore set '{}' (built-in: {}; or define it under ignore_sets:)", name, names);
}

}  // namespace ql
