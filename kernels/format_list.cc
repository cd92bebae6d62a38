// The one list of registered formats. Adding a format = one include and one line here.
#include "kernels/format.h"
#include "kernels/mx.h"
#include "kernels/nf4.h"
#include "kernels/nvfp4.h"

namespace ql {

const std::vector<const ElementCodec*>& ElementCodecs() {
  static const std::vector<const ElementCodec*> kList = {};
  return kList;
}

const std::vector<const BlockCodec*>& BlockCodecs() {
  static const std::vector<const BlockCodec*> kList = {
      &MxFp8E4M3Codec(),
      &MxFp8E5M2Codec(),
      &MxFp6E2M3Codec(),
      &MxFp6E3M2Codec(),
      &MxFp4Codec(),
      &MxInt8Codec(),
      &NvFp4BlockCodec(),
      &Nf4BlockCodec(),
  };
  return kList;
}

}  // namespace ql
