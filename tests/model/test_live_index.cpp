#include <gtest/gtest.h>

#include "troupe/model/live_index.hpp"

using namespace troupe;

namespace {
task_ptr task(task_id id) {
  auto t = std::make_shared<task_state>();
  t->id = id;
  return t;
}
}  // namespace

TEST(LiveIndex, FindsAndErasesOutOfOrder) {
  live_index ix;
  for (task_id i = 10; i < 20; ++i) ix.insert(task(i));
  EXPECT_EQ(ix.size(), 10u);
  EXPECT_TRUE(ix.erase(15));
  EXPECT_FALSE(ix.erase(15));
  EXPECT_EQ(ix.find(15), nullptr);
  ASSERT_NE(ix.find(16), nullptr);
  EXPECT_EQ((*ix.find(16))->id, 16u);
  EXPECT_EQ(ix.find(9), nullptr);
  EXPECT_EQ(ix.find(20), nullptr);
  EXPECT_EQ(ix.size(), 9u);
}

TEST(LiveIndex, HolesFromRejectedIdsAndLateSmallerIdsAreHandled) {
  live_index ix;
  ix.insert(task(5));
  ix.insert(task(8));  // 6 and 7 were rejected: never inserted
  EXPECT_TRUE(ix.erase(5));
  ix.insert(task(3));  // a slower submitter's id, below the trimmed front
  ASSERT_NE(ix.find(3), nullptr);
  ASSERT_NE(ix.find(8), nullptr);
  EXPECT_EQ(ix.size(), 2u);
  auto all = ix.all();
  EXPECT_EQ(all.size(), 2u);
  EXPECT_TRUE(ix.erase(3));
  EXPECT_TRUE(ix.erase(8));
  EXPECT_TRUE(ix.empty());
  EXPECT_TRUE(ix.all().empty());
}

TEST(LiveIndex, StaysSmallWhenTasksFinishInOrder) {
  live_index ix;
  for (task_id i = 1; i <= 100000; ++i) {
    ix.insert(task(i));
    if (i > 10) {
      EXPECT_TRUE(ix.erase(i - 10));
    }
  }
  EXPECT_EQ(ix.size(), 10u);
  EXPECT_EQ(ix.all().front()->id, 99991u);
}

// The ring empties and restarts below an id that sits in the side map: that id must still be
// found and erased (it was lost: a cancel was ignored and the task finished twice).
TEST(LiveIndex, AnIdInTheSideMapStaysFoundWhenTheRingRestartsBelowIt) {
  live_index ix;
  ix.insert(task(5));
  ix.insert(task(3));        // below the front: side map
  EXPECT_TRUE(ix.erase(5));  // the ring is empty now
  ix.insert(task(2));        // the ring restarts at 2...
  ix.insert(task(4));        // ...and now covers 3
  ASSERT_NE(ix.find(3), nullptr);
  EXPECT_EQ((*ix.find(3))->id, 3u);
  EXPECT_EQ(ix.size(), 3u);
  EXPECT_EQ(ix.all().size(), 3u);
  EXPECT_TRUE(ix.erase(3));
  EXPECT_FALSE(ix.erase(3)) << "finished twice";
  EXPECT_TRUE(ix.erase(2));
  EXPECT_TRUE(ix.erase(4));
  EXPECT_TRUE(ix.empty());
}
