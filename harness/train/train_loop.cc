// Training driver (see train_loop.h): data, loop, evaluation, learning-curve CSV, checkpoints, export.
#include "harness/train/train_loop.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "datasets/text.h"
#include "harness/io/hf.h"
#include "harness/io/safetensors.h"
#include "harness/tokenizer/byte_bpe.h"
#include "harness/util/hash.h"
#include "harness/util/progress.h"

namespace ql::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCurveHeader = "step,lr,train_loss,heldout_loss,grad_norm,tokens,elapsed_s";

nlohmann::json OptionsJson(const TrainOptions& o) {
  return {{"train_text", o.train_text},     {"heldout_text", o.heldout_text},
          {"batch", o.batch},               {"seq", o.seq},
          {"total_steps", o.schedule.total_steps}, {"warmup_steps", o.schedule.warmup_steps},
          {"max_lr", o.schedule.max_lr},    {"min_lr", o.schedule.min_lr},
          {"weight_decay", o.adamw.weight_decay}, {"beta1", o.adamw.beta1},
          {"beta2", o.adamw.beta2},         {"adam_eps", o.adamw.eps},
          {"clip", o.clip},                 {"seed", o.seed},
          {"tokenizer_vocab", o.tokenizer_vocab}};
}

Status SaveCheckpoint(const std::string& dir, const Model& model, const ByteBpeTokenizer& tok,
                      const AdamWState& adam, int step, const TrainOptions& o) {
  const std::string tmp = dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return Status::Errorf("train: cannot create checkpoint directory '{}': {}", tmp, ec.message());
  QL_RETURN_IF_ERROR(io::WriteHfDir(tmp, model, io::FloatDtype::kF32));
  QL_RETURN_IF_ERROR(tok.SaveTokenizerJson(tmp + "/tokenizer.json"));
  std::map<std::string, Tensor> opt;
  for (const auto& [name, t] : adam.m) opt.emplace("m." + name, t);
  for (const auto& [name, t] : adam.v) opt.emplace("v." + name, t);
  QL_RETURN_IF_ERROR(io::WriteSafetensors(tmp + "/optimizer.safetensors", opt, io::FloatDtype::kF32,
                                          {{"adam_t", std::to_string(adam.t)}, {"step", std::to_string(step)}}));
  nlohmann::json state = {{"step", step}, {"adam_t", adam.t}, {"options", OptionsJson(o)}};
  QL_RETURN_IF_ERROR(io::WriteTextFile(tmp + "/train_state.json", state.dump(2) + "\n"));
  // Replace the previous checkpoint only once the new one is complete (a kill leaves one intact).
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) return Status::Errorf("train: cannot move '{}' to '{}': {}", tmp, dir, ec.message());
  return Status::Ok();
}

Status LoadCheckpoint(const std::string& dir, Model* model, AdamWState* adam, int* step) {
  QL_ASSIGN_OR_RETURN(std::string state_text, io::ReadTextFile(dir + "/train_state.json"));
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(state_text);
    *step = state.at("step").get<int>();
    adam->t = state.at("adam_t").get<int64_t>();
  } catch (const std::exception& e) {
    return Status::Errorf("train: '{}/train_state.json' is not a valid train state: {}", dir, e.what());
  }
  QL_ASSIGN_OR_RETURN(Model m, io::ReadHfDir(dir));
  QL_ASSIGN_OR_RETURN(auto opt, io::ReadSafetensors(dir + "/optimizer.safetensors"));
  *adam = AdamWState{.m = ZerosLike(m), .v = ZerosLike(m), .t = adam->t};
  for (auto* part : {&adam->m, &adam->v}) {
    const std::string prefix = part == &adam->m ? "m." : "v.";
    for (auto& [name, t] : *part) {
      auto it = opt.find(prefix + name);
      if (it == opt.end() || it->second.data.size() != t.data.size())
        return Status::Errorf("train: '{}/optimizer.safetensors' lacks '{}{}' of the right size", dir, prefix, name);
      t.data = std::move(it->second.data);
    }
  }
  m.tokenizer = nullptr;
  *model = std::move(m);
  return Status::Ok();
}

// Keeps the CSV's header and the rows with step <= last_step (rows logged after the checkpoint a
// resumed run starts from are dropped, so the file is the curve of one uninterrupted run).
Status TruncateCurve(const std::string& path, int last_step) {
  std::ifstream in(path);
  if (!in) return io::WriteTextFile(path, std::string(kCurveHeader) + "\n");
  std::string line, kept;
  std::getline(in, line);
  kept = std::string(kCurveHeader) + "\n";
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (std::stoi(line.substr(0, line.find(','))) <= last_step) kept += line + "\n";
  }
  return io::WriteTextFile(path, kept);
}

}  // namespace

void SampleBatch(const std::vector<int>& corpus, uint64_t seed, int step, int b, int t, std::vector<int>* out) {
  QL_CHECK(int64_t(corpus.size()) > t + 1);
  const uint64_t span = corpus.size() - size_t(t) - 1 + 1;  // valid start offsets
  out->resize(size_t(b) * (t + 1));
  for (int i = 0; i < b; ++i) {
    const uint64_t r = SplitMix64(SplitMix64(seed * 0x100000001B3ull + uint64_t(step)) + uint64_t(i));
    const size_t off = size_t(r % span);
    std::copy(corpus.begin() + off, corpus.begin() + off + t + 1, out->begin() + size_t(i) * (t + 1));
  }
}

StatusOr<double> HeldoutLoss(const Model& model, const std::vector<int>& tokens, int b, int t, int max_windows) {
  if (int64_t(tokens.size()) < t + 1)
    return Status::Errorf("train: held-out text has {} tokens, fewer than one window of {}", tokens.size(), t + 1);
  int windows = int((tokens.size() - 1) / size_t(t));
  if (max_windows > 0) windows = std::min(windows, max_windows);
  double sum = 0;
  std::vector<int> batch;
  for (int w0 = 0; w0 < windows; w0 += b) {
    const int nb = std::min(b, windows - w0);
    batch.resize(size_t(nb) * (t + 1));
    for (int i = 0; i < nb; ++i)
      std::copy(tokens.begin() + size_t(w0 + i) * t, tokens.begin() + size_t(w0 + i) * t + t + 1,
                batch.begin() + size_t(i) * (t + 1));
    QL_ASSIGN_OR_RETURN(double loss, LossAndGradients(model, batch.data(), nb, t, nullptr));
    sum += loss * nb;
  }
  return sum / windows;
}

StatusOr<TrainSummary> RunTraining(const TrainOptions& o, std::ostream* log) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  if (o.out_dir.empty()) return Status::Error("train: no output directory (pass --out DIR)");
  if (o.batch < 1 || o.seq < 2) return Status::Errorf("train: batch {} / seq {} must be >= 1 / >= 2", o.batch, o.seq);
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return Status::Errorf("train: cannot create '{}': {}", o.out_dir, ec.message());
  const std::string ckpt_dir = o.out_dir + "/checkpoint";
  const std::string curve_path = o.out_dir + "/learning_curve.csv";
  const bool resuming = o.resume && fs::exists(ckpt_dir + "/train_state.json");
  if (o.resume && !resuming) *log << "train: no checkpoint in " << ckpt_dir << ", starting from scratch\n";

  // ---- tokenizer ----
  QL_ASSIGN_OR_RETURN(std::string train_text, ReadTextFile(o.train_text, "training text (--train-text)"));
  QL_ASSIGN_OR_RETURN(std::string heldout_text, ReadTextFile(o.heldout_text, "held-out text (--heldout-text)"));
  std::unique_ptr<ByteBpeTokenizer> tok;
  if (resuming) {
    QL_ASSIGN_OR_RETURN(tok, LoadTokenizerJson(ckpt_dir + "/tokenizer.json"));
  } else if (!o.tokenizer.empty()) {
    QL_ASSIGN_OR_RETURN(tok, LoadTokenizerJson(o.tokenizer));
  } else {
    const auto tt = Clock::now();
    ByteBpeTrainOptions bo;
    bo.vocab_size = o.tokenizer_vocab;
    bo.special_tokens = {"<|endoftext|>"};
    bo.eos_index = 0;
    QL_ASSIGN_OR_RETURN(tok, TrainByteBpe(train_text, bo));
    *log << fmt::format("train: byte-level BPE trained on {} bytes: vocab {} in {:.1f} s\n", train_text.size(),
                        tok->vocab_size(), std::chrono::duration<double>(Clock::now() - tt).count());
  }
  QL_RETURN_IF_ERROR(tok->SaveTokenizerJson(o.out_dir + "/tokenizer.json"));
  const std::vector<int> train_tokens = tok->Encode(train_text, false);
  const std::vector<int> heldout_tokens = tok->Encode(heldout_text, false);
  *log << fmt::format("train: {} train tokens ({:.2f} bytes/token), {} held-out tokens\n", train_tokens.size(),
                      double(train_text.size()) / std::max<size_t>(1, train_tokens.size()), heldout_tokens.size());
  if (int64_t(train_tokens.size()) <= o.seq + 1)
    return Status::Errorf("train: '{}' has {} tokens, fewer than one window of {}", o.train_text,
                          train_tokens.size(), o.seq + 1);

  // ---- model and optimizer ----
  ModelConfig config = o.config;
  config.vocab_size = tok->vocab_size();
  config.bos_id = tok->eos_id() >= 0 ? tok->eos_id() : 0;
  config.eos_id = config.bos_id;
  if (config.max_seq_len == 0) config.max_seq_len = o.seq;
  if (o.seq > config.max_seq_len)
    return Status::Errorf("train: seq {} exceeds the model's max_seq_len {}", o.seq, config.max_seq_len);
  QL_RETURN_IF_ERROR(config.Validate());
  Model model;
  AdamWState adam;
  int step = 0;
  if (resuming) {
    QL_RETURN_IF_ERROR(LoadCheckpoint(ckpt_dir, &model, &adam, &step));
    if (model.config.dim != config.dim || model.config.n_layers != config.n_layers ||
        model.config.vocab_size != config.vocab_size)
      return Status::Errorf("train: checkpoint '{}' has dim {} / {} layers / vocab {}, the options ask for {} / {} / {}",
                            ckpt_dir, model.config.dim, model.config.n_layers, model.config.vocab_size, config.dim,
                            config.n_layers, config.vocab_size);
    QL_RETURN_IF_ERROR(TruncateCurve(curve_path, step));
    *log << "train: resumed from " << ckpt_dir << " at step " << step << "\n";
  } else {
    model = InitModel(config, o.seed);
    adam = NewAdamW(model);
    QL_RETURN_IF_ERROR(io::WriteTextFile(curve_path, std::string(kCurveHeader) + "\n"));
  }
  TrainSummary sum;
  sum.start_step = step;
  sum.parameters = config.ParameterCount();
  sum.train_tokens = int64_t(train_tokens.size());
  sum.heldout_tokens = int64_t(heldout_tokens.size());
  *log << fmt::format("train: {} parameters, dim {}, {} layers, {} heads ({} KV), FFN {}, vocab {}, ctx {}\n",
                      sum.parameters, config.dim, config.n_layers, config.n_heads, config.n_kv_heads,
                      config.hidden_dim, config.vocab_size, config.max_seq_len);

  auto export_model = [&]() -> Status {
    QL_RETURN_IF_ERROR(io::WriteHfDir(o.out_dir, model, o.export_dtype));
    return tok->SaveTokenizerJson(o.out_dir + "/tokenizer.json");
  };

  std::ofstream curve(curve_path, std::ios::app);
  TensorMap grads = ZerosLike(model);
  std::vector<int> batch;
  const int total = o.schedule.total_steps;
  const int last = o.stop_after > 0 ? std::min(o.stop_after, total) : total;
  double train_loss = 0;
  const auto t_loop = Clock::now();  // the ETA is from this run's steps (not the tokenizer's training)
  while (step < last) {
    SampleBatch(train_tokens, o.seed, step, o.batch, o.seq, &batch);
    SetZero(&grads);
    QL_ASSIGN_OR_RETURN(train_loss, LossAndGradients(model, batch.data(), o.batch, o.seq, &grads));
    if (!std::isfinite(train_loss)) return Status::Errorf("train: loss is {} at step {}", train_loss, step);
    const double norm = GlobalNorm(grads);
    if (o.clip > 0 && norm > o.clip) ScaleAll(&grads, float(o.clip / norm));
    const float lr = LearningRate(step, o.schedule);
    AdamWStep(&model, grads, lr, o.adamw, &adam);
    ++step;
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const bool out_of_time = o.max_minutes > 0 && elapsed > o.max_minutes * 60.0;
    const bool final_step = step == last || out_of_time;
    std::string heldout;
    if (step % std::max(1, o.eval_every) == 0 || final_step) {
      QL_ASSIGN_OR_RETURN(double hl, HeldoutLoss(model, heldout_tokens, o.batch, o.seq, o.eval_windows));
      heldout = fmt::format("{:.6f}", hl);
      sum.heldout_loss = hl;
    }
    curve << fmt::format("{},{:.6g},{:.6f},{},{:.4f},{},{:.1f}\n", step, lr, train_loss, heldout, norm,
                         int64_t(step) * o.batch * o.seq, elapsed);
    curve.flush();
    const double per_step = std::chrono::duration<double>(Clock::now() - t_loop).count() / (step - sum.start_step);
    *log << fmt::format("step {:5d}/{}  lr {:.2e}  loss {:.4f}{}  |g| {:.3f}  {:.1f} s  ETA {}\n", step, total, lr,
                        train_loss, heldout.empty() ? "" : "  held-out " + heldout, norm, elapsed,
                        FormatDuration(per_step * (last - step)));
    log->flush();
    if (step % std::max(1, o.checkpoint_every) == 0 || final_step) {
      QL_RETURN_IF_ERROR(SaveCheckpoint(ckpt_dir, model, *tok, adam, step, o));
      QL_RETURN_IF_ERROR(export_model());
    }
    if (out_of_time) {
      *log << fmt::format("train: time limit of {} min reached at step {}; resume with --resume\n", o.max_minutes,
                          step);
      break;
    }
  }
  if (sum.start_step == step) QL_RETURN_IF_ERROR(export_model());
  sum.end_step = step;
  sum.last_train_loss = train_loss;
  sum.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return sum;
}

}  // namespace ql::train
