// libFuzzer target: a window-records cache file (harness/sweep/window_records.h) read against a fixed
// window plan of three windows scoring 2, 3 and 1 tokens. Whatever the bytes, the reader returns known
// windows whose record counts fit the plan, or none.
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "harness/sweep/window_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qlfuzz::WriteScratch(data, size, "records.qlwr");
  std::vector<ql::Window> windows(3);
  const int scored[3] = {2, 3, 1};
  for (int i = 0; i < 3; ++i) {
    windows[size_t(i)].tokens.assign(size_t(scored[i] + 1), 1);
    windows[size_t(i)].score_begin = 1;
    windows[size_t(i)].score_end = 1 + scored[i];
  }
  const ql::KnownWindows known = ql::ReadWindowRecords(path, windows);
  if (known.size() != windows.size()) __builtin_trap();
  for (size_t i = 0; i < known.size(); ++i)
    if (known[i] && known[i]->size() != windows[i].n_scored()) __builtin_trap();
  return 0;
}
