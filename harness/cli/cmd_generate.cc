// `quantlab generate`: greedy continuation of a prompt with a llama2.c (.bin) or GGUF model, printed as
// text. A smoke test of loader + tokenizer + forward pass, not a chat front end (no sampling).
#include <cstdio>
#include <string>

#include "harness/cli/commands.h"
#include "harness/io/gguf.h"
#include "harness/io/llama2c.h"
#include "harness/model/generate.h"
#include "harness/tokenizer/tokenizer.h"

namespace ql::cli {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

StatusOr<Model> LoadForGenerate(const std::string& path, const std::string& tokenizer) {
  if (EndsWith(path, ".gguf")) return io::ReadGguf(path);
  if (EndsWith(path, ".bin")) return io::ReadLlama2c(path, tokenizer);
  return Status::Errorf("{}: unknown model file type (expected a llama2.c .bin or a .gguf)", path);
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  struct Options {
    std::string model, tokenizer, prompt;
    int tokens = 256;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("generate", "Greedy (temperature 0) text continuation with a model");
  cmd->add_option("--model", opt->model, "llama2.c .bin or .gguf model file")->required();
  cmd->add_option("--tokenizer", opt->tokenizer, "llama2.c tokenizer.bin (default: beside the model)");
  cmd->add_option("--prompt", opt->prompt, "text to continue (default: empty, i.e. start from BOS)");
  cmd->add_option("--tokens", opt->tokens, "new tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->callback([opt] {
    auto model = LoadForGenerate(opt->model, opt->tokenizer);
    if (!model.ok()) return Fail("generate", model.status());
    if (!model->tokenizer)
      return Fail("generate", Status::Errorf("{}: no tokenizer found (pass --tokenizer tokenizer.bin)", opt->model));
    std::vector<int> prompt = model->tokenizer->Encode(opt->prompt, /*add_bos=*/true);
    if (prompt.empty()) prompt.push_back(model->config.bos_id);  // vocabulary without BOS, empty prompt
    auto ids = GenerateGreedy(*model, prompt, opt->tokens);
    if (!ids.ok()) return Fail("generate", ids.status());
    std::fputs(model->tokenizer->Decode(*ids).c_str(), stdout);
    std::fputc('\n', stdout);
  });
}

}  // namespace ql::cli
