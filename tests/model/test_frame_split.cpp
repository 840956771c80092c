// Splitting items into frames within a byte budget: what client, head and node share.
#include <gtest/gtest.h>

#include <vector>

#include "troupe/model/frame_split.hpp"

using namespace troupe;

namespace {

std::vector<size_t> frames(const std::vector<size_t>& sizes, size_t max_items, uint64_t budget) {
  std::vector<size_t> out;
  for (size_t first = 0; first < sizes.size();) {
    auto end =
        frame_end(first, sizes.size(), max_items, budget, [&](size_t i) { return sizes[i]; });
    out.push_back(end - first);
    first = end;
  }
  return out;
}

}  // namespace

TEST(FrameSplit, FillsEachFrameUpToTheBudgetAndTheItemCap) {
  EXPECT_EQ(frames({40, 40, 40, 40, 40}, 100, 100), (std::vector<size_t>{2, 2, 1}));
  EXPECT_EQ(frames({1, 1, 1, 1, 1, 1, 1}, 3, 1000), (std::vector<size_t>{3, 3, 1}));
  EXPECT_EQ(frames({50, 50, 1}, 100, 100), (std::vector<size_t>{2, 1}))
      << "exactly the budget fits";
}

TEST(FrameSplit, AnItemLargerThanTheBudgetGoesAloneRatherThanNowhere) {
  EXPECT_EQ(frames({10, 500, 10}, 100, 100), (std::vector<size_t>{1, 1, 1}));
  EXPECT_TRUE(frames({}, 10, 10).empty());
}
