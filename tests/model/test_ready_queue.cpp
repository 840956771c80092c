#include <gtest/gtest.h>

#include "troupe/model/ready_queue.hpp"

using namespace troupe;
using std::chrono::milliseconds;

namespace {
task_ptr task(task_id id, int32_t priority) {
  auto t = std::make_shared<task_state>();
  t->id = id;
  t->spec.priority = priority;
  return t;
}
}  // namespace

TEST(FifoQueue, PopsInArrivalOrder) {
  fifo_queue q;
  auto now = clock::now();
  for (task_id i = 1; i <= 3; ++i) q.push(task(i, int32_t(10 - i)), now);
  EXPECT_EQ(q.pop()->id, 1u);
  EXPECT_EQ(q.pop()->id, 2u);
  EXPECT_EQ(q.pop()->id, 3u);
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(AgingPriorityQueue, HigherPriorityFirstAtTheSameTime) {
  aging_priority_queue q{milliseconds(100)};
  auto now = clock::now();
  q.push(task(1, 0), now);
  q.push(task(2, 5), now);
  q.push(task(3, 2), now);
  EXPECT_EQ(q.pop()->id, 2u);
  EXPECT_EQ(q.pop()->id, 3u);
  EXPECT_EQ(q.pop()->id, 1u);
}

TEST(AgingPriorityQueue, EqualPrioritiesStayFifo) {
  aging_priority_queue q{milliseconds(100)};
  auto now = clock::now();
  for (task_id i = 1; i <= 5; ++i) q.push(task(i, 3), now);
  for (task_id i = 1; i <= 5; ++i) EXPECT_EQ(q.pop()->id, i);
}

// The starvation bound: a priority-0 task is overtaken only by tasks of priority p that arrive
// less than p * aging_interval after it. Under an endless stream of priority-9 tasks it runs
// once it has waited 9 aging intervals.
TEST(AgingPriorityQueue, LowPriorityTaskIsNotStarvedByAStreamOfHighPriorityTasks) {
  const auto aging = milliseconds(10);
  aging_priority_queue q{aging};
  auto t0 = clock::time_point{} + std::chrono::hours(1);
  q.push(task(1, 0), t0);
  // One high-priority arrival per millisecond, one pop per millisecond: the queue never drains.
  task_id next = 2;
  std::optional<int> popped_at_ms;
  for (int ms = 0; ms < 1000 && !popped_at_ms; ++ms) {
    q.push(task(next++, 9), t0 + milliseconds(ms));
    if (q.pop()->id == 1) popped_at_ms = ms;
  }
  ASSERT_TRUE(popped_at_ms.has_value()) << "the low-priority task starved";
  EXPECT_LE(*popped_at_ms, 9 * 10 + 1);  // (p_max - p) * aging, plus the pop it shares
  EXPECT_GE(*popped_at_ms, 9 * 10 - 1);  // and not before: priorities still mean something
}

TEST(AgingPriorityQueue, PrioritiesAreClampedSoAgingStillBoundsTheWait) {
  aging_priority_queue q{milliseconds(1)};
  auto t0 = clock::time_point{} + std::chrono::hours(1);
  q.push(task(1, 0), t0);
  q.push(task(2, std::numeric_limits<int32_t>::max()), t0 + milliseconds(2000));
  EXPECT_EQ(q.pop()->id, 1u);  // waited 2000 intervals > clamp of 1000
}

TEST(AgingPriorityQueue, RetriedTaskWithAnOlderArrivalGoesBeforeLaterArrivalsOfItsLevel) {
  aging_priority_queue q{milliseconds(100)};
  auto t0 = clock::time_point{} + std::chrono::hours(1);
  q.push(task(2, 1), t0 + milliseconds(10));
  q.push(task(3, 1), t0 + milliseconds(20));
  q.push(task(1, 1), t0);  // a retry keeps its first arrival time
  q.push(task(4, 0), t0 + milliseconds(5));
  EXPECT_EQ(q.pop()->id, 1u);
  EXPECT_EQ(q.pop()->id, 2u);
  EXPECT_EQ(q.pop()->id, 3u);
  EXPECT_EQ(q.pop()->id, 4u);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.pop(), nullptr);
}
