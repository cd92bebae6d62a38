// The one list of registered formats. Adding a format = one include and one line here.
#include "kernels/format.h"
#include "kernels/gguf_blocks.h"

namespace ql {

const std::vector<const ElementCodec*>& ElementCodecs() {
  static const std::vector<const ElementCodec*> kList = {};
  return kList;
}

const std::vector<const BlockCodec*>& BlockCodecs() {
  static const std::vector<const BlockCodec*> kList = {
      GgufQ8_0Codec(),
      GgufQ4_0Codec(),
      GgufQ4_1Codec(),
      GgufQ5_0Codec(),
      GgufQ5_1Codec(),
      GgufQ4_KCodec(),
      GgufQ6_KCodec(),
  };
  return kList;
}

}  // namespace ql
