// Checkpoint format detection and dispatch (see load.h).
#include "harness/io/load.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "harness/io/gguf.h"
#include "harness/io/hf.h"
#include "harness/io/llama2c.h"

namespace ql {

StatusOr<Model> LoadModel(const std::string& path, io::CheckpointInfo* info) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec)) return Status::Errorf("{}: no such file or directory", path);
  if (fs::is_directory(p, ec)) {
    if (!fs::exists(p / "config.json"))
      return Status::Errorf("{}: directory has no config.json (a Hugging Face checkpoint directory needs one)", path);
    return io::ReadHfDir(path, info);
  }
  if (p.extension() == ".safetensors") {
    if (!fs::exists(p.parent_path() / "config.json"))
      return Status::Errorf("{}: a bare safetensors file has no model config; put config.json beside it", path);
    return io::ReadHfDir(p.parent_path().string(), info);
  }
  char magic[4] = {0, 0, 0, 0};
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) return Status::Errorf("{}: cannot open for reading", path);
    f.read(magic, 4);
  }
  if (std::memcmp(magic, "GGUF", 4) == 0 || p.extension() == ".gguf") return io::ReadGguf(path, info);
  if (std::memcmp(magic, "24ka", 4) == 0 || p.extension() == ".bin") return io::ReadLlama2c(path, "", info);
  return Status::Errorf("{}: unknown checkpoint format (expected a HF directory with config.json, *.gguf, or a "
                        "llama2.c *.bin)",
                        path);
}

}  // namespace ql
