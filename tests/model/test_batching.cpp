#include <gtest/gtest.h>

#include "troupe/model/batching.hpp"

using namespace troupe;
using groups = std::vector<std::vector<size_t>>;

TEST(PlanBatches, MergesTasksOfTheSameModelAndLeavesOthersAlone) {
  auto g = plan_batches({"m1", "", "m1", "m2", "m1", "m2"}, 64);
  EXPECT_EQ(g, (groups{{0, 2, 4}, {1}, {3, 5}}));
}

TEST(PlanBatches, RespectsTheMaximumBatch) {
  auto g = plan_batches({"m", "m", "m", "m", "m"}, 2);
  EXPECT_EQ(g, (groups{{0, 1}, {2, 3}, {4}}));
}

TEST(PlanBatches, EveryTaskRunsExactlyOnce) {
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back(i % 7 == 0 ? "" : "k" + std::to_string(i % 5));
  auto g = plan_batches(keys, 16);
  std::vector<int> seen(keys.size(), 0);
  for (auto& grp : g) {
    EXPECT_LE(grp.size(), 16u);
    for (auto i : grp) {
      ++seen[i];
      EXPECT_EQ(keys[i], keys[grp.front()]);
    }
  }
  for (auto s : seen) EXPECT_EQ(s, 1);
}

TEST(PlanBatches, DisabledMeansOneTaskPerLaunch) {
  auto g = plan_batches({"m", "m"}, 1);
  EXPECT_EQ(g, (groups{{0}, {1}}));
}
