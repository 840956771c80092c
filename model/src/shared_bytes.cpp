#include "troupe/model/shared_bytes.hpp"

namespace troupe {

// Out of line: inlined, GCC 12 takes the moved vector's buffer for a freed one
// (-Wfree-nonheap-object, a false positive).
shared_bytes::shared_bytes(std::vector<uint8_t> bytes) {
  if (bytes.empty()) return;
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  data_ = owned->data();
  size_ = owned->size();
  owner_ = std::move(owned);
}

}  // namespace troupe
