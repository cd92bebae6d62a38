// `quantlab imatrix`: llama-imatrix's importance matrix of a model on a text (same chunks, same statistic,
// same file layouts: GGUF by default, the legacy .dat with --output-format dat or an --out ending in .dat).
// The file is what `export --imatrix`, llama-quantize --imatrix and the algorithm `imatrix` read. --in-file
// (repeatable) merges earlier files first, as llama-imatrix --in-file does; with a text, collection continues
// on the merged sums; without one, the merge is written.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "harness/cli/commands.h"
#include "harness/io/file_io.h"
#include "harness/io/imatrix.h"
#include "harness/io/load.h"
#include "harness/quant/imatrix.h"

namespace ql::cli {
namespace {

struct ImatrixOptions {
  std::string model, text, out, format;
  std::vector<std::string> in_files;
  int ctx = 512, chunks = -1;
  bool process_output = false;
};

// --in-file A --in-file B ...: merged in order, with the run's --ctx as chunk size (MergeImatrix).
StatusOr<io::Imatrix> MergeInFiles(const ImatrixOptions& o) {
  io::Imatrix merged;
  for (const std::string& f : o.in_files) {
    QL_ASSIGN_OR_RETURN(io::Imatrix m, io::ReadImatrix(f));
    QL_RETURN_IF_ERROR(io::MergeImatrix(m, f, o.ctx, &merged));
  }
  return merged;
}

// The text's statistic, collected on top of `start` (null: from zero).
StatusOr<io::Imatrix> Collect(const ImatrixOptions& o, const io::Imatrix* start) {
  QL_ASSIGN_OR_RETURN(Model model, LoadModel(o.model));
  QL_ASSIGN_OR_RETURN(std::string text, io::ReadTextFile(o.text));
  QL_ASSIGN_OR_RETURN(auto chunks, ImatrixChunks(model, text, o.text, o.ctx, o.chunks));
  ImatrixCollectOptions opt;
  opt.process_output = o.process_output;
  opt.chunk_size = o.ctx;
  opt.datasets = {o.text};
  opt.start = start;
  return CollectImatrix(model, chunks, opt);
}

Status RunImatrix(const ImatrixOptions& o) {
  const std::string format = !o.format.empty() ? o.format : o.out.ends_with(".dat") ? "dat" : "gguf";
  if (format != "gguf" && format != "dat")
    return Status::Errorf("--output-format {}: gguf or dat", o.format);
  if (o.text.empty() && o.in_files.empty())
    return Status::Errorf("give --model and --text to collect, or --in-file (repeatable) to merge files");
  if (!o.text.empty() && o.model.empty()) return Status::Errorf("--text needs --model");
  io::Imatrix m;
  if (!o.in_files.empty()) {
    QL_ASSIGN_OR_RETURN(m, MergeInFiles(o));
  }
  if (!o.text.empty()) {
    QL_ASSIGN_OR_RETURN(m, Collect(o, o.in_files.empty() ? nullptr : &m));
  }
  QL_RETURN_IF_ERROR(format == "dat" ? io::WriteImatrixDat(o.out, m) : io::WriteImatrixGguf(o.out, m));
  std::printf("wrote %s (%s): %zu entries, %d chunks of %d tokens\n", o.out.c_str(), format.c_str(),
              m.entries.size(), m.chunk_count, m.chunk_size);
  return Status::Ok();
}

}  // namespace

void AddImatrixCommand(CLI::App& app) {
  auto opt = std::make_shared<ImatrixOptions>();
  CLI::App* cmd = app.add_subcommand("imatrix", "Compute llama.cpp's importance matrix (llama-imatrix) on a text");
  cmd->add_option("--model", opt->model, "model: HF directory, .gguf, or llama2.c .bin");
  cmd->add_option("--text", opt->text, "calibration text file (none with --in-file: only merge)");
  cmd->add_option("--in-file", opt->in_files, "imatrix files (GGUF or .dat) to merge first, repeatable or "
                                              "comma-separated; sums and counts add up as llama-imatrix --in-file")
      ->delimiter(',');
  cmd->add_option("--ctx,-c", opt->ctx, "tokens per chunk (llama-imatrix -c; default 512)");
  cmd->add_option("--chunks", opt->chunks, "at most this many chunks (default: all)");
  cmd->add_flag("--process-output", opt->process_output, "also collect lm_head (output.weight) when not tied");
  cmd->add_option("--output-format", opt->format, "gguf or dat (default: dat for an --out ending in .dat)");
  cmd->add_option("--out,-o", opt->out, "output file")->required();
  cmd->callback([opt] {
    Status st = RunImatrix(*opt);
    if (!st.ok()) Fail("imatrix", st);
  });
}

}  // namespace ql::cli
