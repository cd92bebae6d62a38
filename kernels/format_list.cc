// The one list of registered formats. Adding a format = one include and one line here.
#include "kernels/format.h"

namespace ql {

const std::vector<const ElementCodec*>& ElementCodecs() {
  static const std::vector<const ElementCodec*> kList = {};
  return kList;
}

const std::vector<const BlockCodec*>& BlockCodecs() {
  static const std::vector<const BlockCodec*> kList = {};
  return kList;
}

}  // namespace ql
