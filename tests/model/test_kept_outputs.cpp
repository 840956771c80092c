// The outputs a node keeps for graph children: bounded by bytes, least recently used out first.
#include <gtest/gtest.h>

#include "troupe/model/kept_outputs.hpp"

using namespace troupe;

namespace {
task_output of_bytes(size_t n, uint8_t fill) {
  task_output o;
  o.bytes.assign(n, fill);
  return o;
}
}  // namespace

TEST(KeptOutputs, AKeptOutputIsFoundWholeAndACopy) {
  kept_outputs kept{1 << 20};
  auto out = of_bytes(1000, 7);
  out.values.set("checksum", int64_t{42});
  kept.keep(5, out);
  out.bytes.clear();  // the caller's copy goes on its way
  auto found = kept.find(5);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->bytes, std::vector<uint8_t>(1000, 7));
  EXPECT_EQ(found->values.get_int("checksum"), 42);
  EXPECT_EQ(kept.find(6), nullptr);
}

TEST(KeptOutputs, AtTheBoundTheLeastRecentlyUsedGoFirst) {
  auto each = output_bytes(of_bytes(1000, 0));
  kept_outputs kept{3 * each};
  kept.keep(1, of_bytes(1000, 1));
  kept.keep(2, of_bytes(1000, 2));
  kept.keep(3, of_bytes(1000, 3));
  ASSERT_TRUE(kept.find(1));  // 1 is used again: 2 is now the least recently used
  kept.keep(4, of_bytes(1000, 4));
  EXPECT_EQ(kept.find(2), nullptr);
  EXPECT_TRUE(kept.find(1));
  EXPECT_TRUE(kept.find(3));
  EXPECT_TRUE(kept.find(4));
  EXPECT_EQ(kept.size(), 3u);
  EXPECT_LE(kept.bytes(), 3 * each);
}

TEST(KeptOutputs, AnOutputLargerThanTheWholeBoundIsNotKeptAndDropsNothing) {
  auto small = output_bytes(of_bytes(100, 0));
  kept_outputs kept{2 * small};
  kept.keep(1, of_bytes(100, 1));
  kept.keep(2, of_bytes(100000, 2));
  EXPECT_EQ(kept.find(2), nullptr);
  EXPECT_TRUE(kept.find(1));
}

TEST(KeptOutputs, KeepingTheSameTaskAgainReplacesItAndCountsItOnce) {
  kept_outputs kept{1 << 20};
  kept.keep(1, of_bytes(100, 1));
  kept.keep(1, of_bytes(300, 2));
  EXPECT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept.bytes(), output_bytes(of_bytes(300, 2)));
  EXPECT_EQ(kept.find(1)->bytes.size(), 300u);
  kept.clear();
  EXPECT_EQ(kept.find(1), nullptr);
  EXPECT_EQ(kept.bytes(), 0u);
}

TEST(KeptOutputs, ACapacityOfZeroKeepsNothing) {
  kept_outputs kept{0};
  kept.keep(1, of_bytes(1, 1));
  EXPECT_EQ(kept.find(1), nullptr);
}
