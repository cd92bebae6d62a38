// `quantlab train`: trains a Llama-family model from scratch (or resumes) on a text file with a
// byte-level BPE tokenizer it trains itself; writes a Hugging Face directory, a learning-curve CSV and
// resumable checkpoints (harness/train/train_loop.h). Options come from flags and/or a flat YAML file
// whose keys are the flag names without "--" (flags win).
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include <yaml-cpp/yaml.h>

#include "harness/cli/commands.h"
#include "harness/train/train_loop.h"

namespace ql::cli {
namespace {

struct TrainArgs {
  train::TrainOptions o;
  std::string config_path, dtype = "bf16";
  // YAML key -> setter; CLI option of the same name (to let an explicit flag win).
  std::map<std::string, std::pair<std::function<void(const YAML::Node&)>, CLI::Option*>> keys;
};

template <typename T>
void Bind(CLI::App* cmd, TrainArgs* a, const std::string& name, T* field, const std::string& help) {
  CLI::Option* opt = cmd->add_option("--" + name, *field, help)->capture_default_str();
  a->keys[name] = {[field](const YAML::Node& n) { *field = n.as<T>(); }, opt};
}

Status ApplyYaml(TrainArgs* a) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(a->config_path);
  } catch (const std::exception& e) {
    return Status::Errorf("cannot read config '{}': {}", a->config_path, e.what());
  }
  if (!root.IsMap()) return Status::Errorf("config '{}' must be a map of option: value", a->config_path);
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    auto it = a->keys.find(key);
    if (it == a->keys.end())
      return Status::Errorf("config '{}': unknown key '{}' (keys are the flag names of quantlab train)",
                            a->config_path, key);
    if (it->second.second->count() > 0) continue;  // the flag given on the command line wins
    try {
      it->second.first(kv.second);
    } catch (const std::exception& e) {
      return Status::Errorf("config '{}': bad value for '{}': {}", a->config_path, key, e.what());
    }
  }
  return Status::Ok();
}

Status RunTrain(TrainArgs* a) {
  if (!a->config_path.empty()) QL_RETURN_IF_ERROR(ApplyYaml(a));
  train::TrainOptions& o = a->o;
  if (a->dtype == "bf16") o.export_dtype = io::FloatDtype::kBF16;
  else if (a->dtype == "f32") o.export_dtype = io::FloatDtype::kF32;
  else if (a->dtype == "f16") o.export_dtype = io::FloatDtype::kF16;
  else return Status::Errorf("--dtype '{}' is not one of bf16, f32, f16", a->dtype);
  if (o.train_text.empty() || o.heldout_text.empty())
    return Status::Error("need --train-text and --heldout-text (or keys train-text/heldout-text in --config)");
  if (o.config.n_heads <= 0 || o.config.dim % o.config.n_heads != 0)
    return Status::Errorf("--dim {} must be a multiple of --heads {}", o.config.dim, o.config.n_heads);
  o.config.head_dim = o.config.dim / o.config.n_heads;
  o.config.tied_embeddings = true;
  o.config.rope_interleaved = false;  // Hugging Face (rotate-half) layout, as written to config.json
  if (o.config.max_seq_len == 0) o.config.max_seq_len = o.seq;
  QL_ASSIGN_OR_RETURN(train::TrainSummary s, train::RunTraining(o, &std::cerr));
  std::printf("trained steps %d..%d of %d in %.1f s: %lld parameters, train loss %.4f, held-out loss %.4f "
              "(perplexity %.3f) -> %s\n",
              s.start_step, s.end_step, o.schedule.total_steps, s.seconds, (long long)s.parameters,
              s.last_train_loss, s.heldout_loss, std::exp(s.heldout_loss), o.out_dir.c_str());
  return Status::Ok();
}

}  // namespace

void AddTrainCommand(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "train a small Llama-family model (and its BPE tokenizer) from text");
  train::TrainOptions& o = a->o;
  o.config.dim = 256, o.config.n_layers = 6, o.config.n_heads = 8, o.config.n_kv_heads = 4;
  o.config.hidden_dim = 704, o.config.max_seq_len = 256;
  cmd->add_option("--config", a->config_path, "YAML file of options (keys = flag names)");
  Bind(cmd, a.get(), "out", &o.out_dir, "output directory (model, tokenizer, learning_curve.csv, checkpoint/)");
  cmd->add_flag("--resume", o.resume, "continue from OUT/checkpoint (same options, same seed)");
  a->keys["resume"] = {[&o](const YAML::Node& n) { o.resume = n.as<bool>(); }, cmd->get_option("--resume")};
  Bind(cmd, a.get(), "train-text", &o.train_text, "training text (UTF-8)");
  Bind(cmd, a.get(), "heldout-text", &o.heldout_text, "held-out text (UTF-8), never trained on");
  Bind(cmd, a.get(), "tokenizer", &o.tokenizer, "use this tokenizer.json instead of training one");
  Bind(cmd, a.get(), "vocab", &o.tokenizer_vocab, "BPE vocabulary size when training the tokenizer");
  Bind(cmd, a.get(), "dim", &o.config.dim, "hidden size");
  Bind(cmd, a.get(), "layers", &o.config.n_layers, "decoder layers");
  Bind(cmd, a.get(), "heads", &o.config.n_heads, "attention heads");
  Bind(cmd, a.get(), "kv-heads", &o.config.n_kv_heads, "key/value heads (GQA)");
  Bind(cmd, a.get(), "ffn", &o.config.hidden_dim, "MLP intermediate size");
  Bind(cmd, a.get(), "ctx", &o.config.max_seq_len, "context length of the model");
  Bind(cmd, a.get(), "rope-theta", &o.config.rope_theta, "RoPE base");
  Bind(cmd, a.get(), "seq", &o.seq, "training window length (<= ctx)");
  Bind(cmd, a.get(), "batch", &o.batch, "sequences per step");
  Bind(cmd, a.get(), "steps", &o.schedule.total_steps, "total optimizer steps of the schedule");
  Bind(cmd, a.get(), "warmup", &o.schedule.warmup_steps, "linear warm-up steps");
  Bind(cmd, a.get(), "lr", &o.schedule.max_lr, "peak learning rate");
  Bind(cmd, a.get(), "min-lr", &o.schedule.min_lr, "learning rate at the end of the cosine");
  Bind(cmd, a.get(), "weight-decay", &o.adamw.weight_decay, "AdamW decoupled weight decay (not on norms)");
  Bind(cmd, a.get(), "beta1", &o.adamw.beta1, "AdamW beta1");
  Bind(cmd, a.get(), "beta2", &o.adamw.beta2, "AdamW beta2");
  Bind(cmd, a.get(), "clip", &o.clip, "global gradient-norm clip (0 = off)");
  Bind(cmd, a.get(), "seed", &o.seed, "seed of the initial weights and the data order");
  Bind(cmd, a.get(), "eval-every", &o.eval_every, "held-out loss every N steps");
  Bind(cmd, a.get(), "eval-windows", &o.eval_windows, "held-out windows per evaluation (0 = all)");
  Bind(cmd, a.get(), "checkpoint-every", &o.checkpoint_every, "checkpoint (and export) every N steps");
  Bind(cmd, a.get(), "max-minutes", &o.max_minutes, "stop with a checkpoint after this wall time (0 = none)");
  Bind(cmd, a.get(), "stop-after", &o.stop_after, "stop with a checkpoint after this step (0 = all steps)");
  Bind(cmd, a.get(), "dtype", &a->dtype, "dtype of the exported model.safetensors: bf16, f32, f16");
  cmd->callback([a] {
    if (Status s = RunTrain(a.get()); !s.ok()) Fail("train", s);
  });
}

}  // namespace ql::cli
