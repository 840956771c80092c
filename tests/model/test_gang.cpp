#include <gtest/gtest.h>

#include <set>

#include "troupe/model/gang.hpp"

namespace troupe {
namespace {

TEST(GangMatch, EachMemberGetsADistinctWorkerItCanUse) {
  // Member 0 can use workers 0 and 1, member 1 only worker 0: member 0 must move to worker 1.
  auto can = [](size_t m, size_t w) { return m == 0 ? w <= 1 : w == 0; };
  auto got = match_gang(2, 3, can);
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)[0], 1u);
  EXPECT_EQ((*got)[1], 0u);
}

TEST(GangMatch, NoneWhenTwoMembersNeedTheSameOnlyWorker) {
  auto can = [](size_t, size_t w) { return w == 2; };
  EXPECT_FALSE(match_gang(2, 4, can));
  EXPECT_TRUE(match_gang(1, 4, can));
}

TEST(GangMatch, NoneWhenTheGangIsLargerThanTheWorkers) {
  EXPECT_FALSE(match_gang(4, 3, [](size_t, size_t) { return true; }));
}

TEST(GangMatch, AFullMatchUsesEveryWorkerOnce) {
  auto got = match_gang(5, 5, [](size_t m, size_t w) { return w >= m; });  // a staircase
  ASSERT_TRUE(got);
  std::set<size_t> used(got->begin(), got->end());
  EXPECT_EQ(used.size(), 5u);
  for (size_t m = 0; m < 5; ++m) EXPECT_GE((*got)[m], m);
}

}  // namespace
}  // namespace troupe
