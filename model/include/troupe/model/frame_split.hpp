#pragma once
// Splitting a run of items (tasks, results) into frames that stay within a byte budget.
#include <cstddef>
#include <cstdint>

namespace troupe {

/// The end of the items from `first` (of `count`) that go in one frame: at most max_items of
/// them, and no more than `budget` bytes by size_of(i), but always at least one.
template <class SizeOf>
size_t frame_end(size_t first, size_t count, size_t max_items, uint64_t budget, SizeOf size_of) {
  size_t end = first;
  uint64_t bytes = 0;
  for (; end < count && end - first < max_items; ++end) {
    auto n = uint64_t(size_of(end));
    if (end > first && bytes + n > budget) break;
    bytes += n;
  }
  return end;
}

}  // namespace troupe
