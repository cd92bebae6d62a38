// libFuzzer target: an experiment file's text through ParseExperiment, then grid expansion and the
// canonical JSON of every cell (what the runner does before it loads anything).
#include <string>

#include "harness/sweep/experiment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto e = ql::ParseExperiment(text, "fuzz.yaml", "/nonexistent");
  if (!e.ok()) return 0;
  const std::vector<ql::Cell> cells = ql::ExpandGrid(*e);
  for (size_t i = 0; i < cells.size() && i < 64; ++i) (void)cells[i].CanonicalJson(*e).dump();
  return 0;
}
