#include <gtest/gtest.h>

#include <limits>

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

namespace {
task_ptr with_deadline(task_id id, time_point deadline) {
  auto t = task(id, 0);
  t->spec.deadline = deadline;
  return t;
}
task_ptr of_client(task_id id, const std::string& client) {
  auto t = task(id, 0);
  t->spec.labels["client"] = client;
  return t;
}
std::vector<task_id> drain(ready_queue& q) {
  std::vector<task_id> out;
  while (auto t = q.pop()) out.push_back(t->id);
  return out;
}
}  // namespace

TEST(DeadlineQueue, EarliestDeadlineFirstThenTasksWithoutOneInArrivalOrder) {
  deadline_queue q;
  auto now = clock::now();
  q.push(task(1, 0), now);
  q.push(with_deadline(2, now + milliseconds(300)), now);
  q.push(with_deadline(3, now + milliseconds(100)), now);
  q.push(task(4, 9), now);  // priority means nothing here
  q.push(with_deadline(5, now + milliseconds(200)), now);
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(drain(q), (std::vector<task_id>{3, 5, 2, 1, 4}));
}

TEST(ShortestFirstQueue, ShortestEstimateFirstAndEqualEstimatesInArrivalOrder) {
  // The estimate here: the task's cost, as if a kind ran one second per unit of cost.
  shortest_first_queue q{[](const task_state& t) { return t.cost; }};
  auto now = clock::now();
  double costs[] = {5, 1, 3, 1, 0.5};
  for (task_id i = 1; i <= 5; ++i) {
    auto t = task(i, 0);
    t->cost = costs[i - 1];
    q.push(t, now);
  }
  EXPECT_EQ(drain(q), (std::vector<task_id>{5, 2, 4, 3, 1}));
}

TEST(FairShareQueue, TwoClientsShareByWeightWhileBothHaveTasksWaiting) {
  fair_share_queue q{{{"alice", 2.0}}};  // bob weighs 1
  auto now = clock::now();
  // Bob floods first; alice comes later with as many.
  for (task_id i = 0; i < 30; ++i) q.push(of_client(100 + i, "bob"), now);
  for (task_id i = 0; i < 30; ++i) q.push(of_client(200 + i, "alice"), now);
  // Of the first 30 out, alice has two for each of bob's (both kept tasks waiting throughout).
  int alice = 0, bob = 0;
  for (int n = 0; n < 30; ++n) (q.pop()->id >= 200 ? alice : bob)++;
  EXPECT_NEAR(alice, 20, 1);
  EXPECT_NEAR(bob, 10, 1);
  // Within a client, arrival order.
  std::vector<task_id> rest = drain(q);
  task_id last_bob = 0, last_alice = 0;
  for (auto id : rest) {
    auto& last = id >= 200 ? last_alice : last_bob;
    EXPECT_GT(id, last);
    last = id;
  }
}

TEST(FairShareQueue, AClientThatWasIdleSavesNoCredit) {
  fair_share_queue q{{}};
  auto now = clock::now();
  for (task_id i = 0; i < 20; ++i) q.push(of_client(100 + i, "bob"), now);
  for (int n = 0; n < 10; ++n) q.pop();  // bob alone for a while
  for (task_id i = 0; i < 10; ++i) q.push(of_client(200 + i, "alice"), now);
  // Alice starts at the virtual time: the two alternate, she does not get ten in a row.
  int alice_in_first_six = 0;
  for (int n = 0; n < 6; ++n) alice_in_first_six += q.pop()->id >= 200;
  EXPECT_EQ(alice_in_first_six, 3);
}

TEST(MakeReadyQueue, EachOrderOfTheConfigHasItsQueue) {
  auto now = clock::now();
  auto q = make_ready_queue(queue_order::deadline, milliseconds(100));
  q->push(task(1, 0), now);
  q->push(with_deadline(2, now + milliseconds(5)), now);
  EXPECT_EQ(q->pop()->id, 2u);
  q = make_ready_queue(queue_order::shortest, milliseconds(100),
                       [](const task_state& t) { return double(10 - t.id); });
  q->push(task(1, 0), now);
  q->push(task(2, 0), now);
  EXPECT_EQ(q->pop()->id, 2u);
  q = make_ready_queue(queue_order::fair, milliseconds(100), {}, {{"a", 3.0}});
  for (task_id i = 0; i < 4; ++i) q->push(of_client(10 + i, "b"), now);
  for (task_id i = 0; i < 4; ++i) q->push(of_client(20 + i, "a"), now);
  EXPECT_EQ(drain(*q).size(), 8u);
}

// What a worker sorts by: each queue's order keys rank tasks as its pops do, and peek() shows
// the next pop.
TEST(ReadyQueues, OrderKeysRankTasksAsPopsDoAndPeekShowsTheNext) {
  auto now = clock::now();
  for (auto order : {queue_order::fifo, queue_order::priority, queue_order::deadline,
                     queue_order::shortest, queue_order::fair}) {
    auto q = make_ready_queue(order, milliseconds(100),
                              [](const task_state& t) { return double(t.id % 3); });
    for (task_id i = 1; i <= 9; ++i) {
      auto t = of_client(i, i % 2 ? "a" : "b");
      t->spec.priority = int32_t(i % 4);
      if (i % 3) t->spec.deadline = now + milliseconds(100 * (10 - i));
      q->push(t, now);
    }
    double last = -std::numeric_limits<double>::infinity();
    while (!q->empty()) {
      auto* next = q->peek();
      auto t = q->pop();
      ASSERT_EQ(next, t.get()) << to_string(order);
      EXPECT_GE(t->order_key, last) << to_string(order) << " task " << t->id;
      last = t->order_key;
    }
    EXPECT_EQ(q->peek(), nullptr);
  }
}
