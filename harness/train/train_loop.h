// The training driver: text -> byte-level BPE tokens, deterministic batches from (seed, step), AdamW with
// warm-up + cosine and clipping, held-out evaluation, a learning-curve CSV, resumable checkpoints, and
// export of the model as a Hugging Face directory. The math lives in train_model.h.
//
// Output directory layout (out_dir):
//   config.json, model.safetensors (export dtype), tokenizer.json   the model, loadable by LoadModel
//   learning_curve.csv   step,lr,train_loss,heldout_loss,grad_norm,tokens,elapsed_s
//   checkpoint/          config.json + model.safetensors (F32) + tokenizer.json + optimizer.safetensors
//                        (Adam moments "m.<name>", "v.<name>") + train_state.json (step, options)
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/io/file_io.h"
#include "harness/model/model.h"
#include "harness/train/train_model.h"
#include "kernels/status.h"

namespace ql::train {

struct TrainOptions {
  ModelConfig config;             // shape; vocab_size is taken from the tokenizer
  std::string train_text;         // UTF-8 training text
  std::string heldout_text;       // UTF-8 held-out text (loss logged; never trained on)
  std::string tokenizer;          // existing tokenizer.json; empty: train one on train_text
  int tokenizer_vocab = 4096;     // when training the tokenizer (includes the special token)
  int batch = 16;                 // sequences per step
  int seq = 256;                  // tokens per sequence (<= config.max_seq_len)
  ScheduleOptions schedule;
  AdamWOptions adamw;
  float clip = 1.0f;              // global gradient norm limit (0: off)
  uint64_t seed = 0;              // init and data order
  int eval_every = 100;           // held-out loss every N steps (and at the end)
  int eval_windows = 32;          // held-out windows of `seq` tokens per evaluation (0: all)
  int checkpoint_every = 200;
  double max_minutes = 0;         // stop (with a checkpoint) after this much wall time; 0: no limit
  int stop_after = 0;             // stop (with a checkpoint) after this step; 0: run to total_steps
  std::string out_dir;
  bool resume = false;            // continue from out_dir/checkpoint
  io::FloatDtype export_dtype = io::FloatDtype::kBF16;
};

struct TrainSummary {
  int start_step = 0, end_step = 0;
  double last_train_loss = 0, heldout_loss = 0;
  double seconds = 0;
  int64_t train_tokens = 0, heldout_tokens = 0;
  int64_t parameters = 0;
};

// The b windows of step `step`: rows [b, t+1] of consecutive corpus tokens at offsets drawn from a
// counter-based generator keyed by (seed, step), so any step's batch is reproducible without history.
void SampleBatch(const std::vector<int>& corpus, uint64_t seed, int step, int b, int t, std::vector<int>* out);

// Mean cross-entropy over consecutive non-overlapping windows of t+1 tokens (stride t), at most
// max_windows (0: all), b windows per forward.
StatusOr<double> HeldoutLoss(const Model& model, const std::vector<int>& tokens, int b, int t, int max_windows);

// Runs (or resumes) training as configured; progress lines go to *log.
StatusOr<TrainSummary> RunTraining(const TrainOptions& options, std::ostream* log);

}  // namespace ql::train
