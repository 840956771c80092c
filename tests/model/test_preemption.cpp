#include <gtest/gtest.h>

#include <vector>

#include "troupe/model/preemption.hpp"

namespace troupe {
namespace {

std::optional<size_t> victim(const std::vector<held_attempt>& held, double urgent_rank,
                             uint32_t max = 3, double urgent_order = -1e9) {
  return preemption_victim(
      held.size(), [&](size_t i) { return held[i]; }, urgent_rank, urgent_order, max);
}

held_attempt running_preemptible(double rank, uint32_t preemptions = 0) {
  return {rank, 0, true, true, preemptions, false};
}

TEST(Preemption, TheLeastUrgentRunningPreemptibleAttemptMakesWay) {
  std::vector<held_attempt> held{running_preemptible(5), running_preemptible(9),
                                 running_preemptible(7)};
  EXPECT_EQ(victim(held, 1), 1u);
}

TEST(Preemption, NothingIsStoppedForATaskThatDoesNotOutrankIt) {
  std::vector<held_attempt> held{running_preemptible(5)};
  EXPECT_FALSE(victim(held, 5)) << "same priority";
  EXPECT_FALSE(victim(held, 6));
  EXPECT_EQ(victim(held, 4.9), 0u);
}

TEST(Preemption, OnlyRunningAttemptsOfPreemptibleTasksAreStopped) {
  held_attempt waiting = running_preemptible(9);
  waiting.running = false;  // held, not started: the urgent task runs before it anyway
  waiting.order = 100;
  held_attempt unmarked = running_preemptible(9);
  unmarked.preemptible = false;
  EXPECT_FALSE(victim({waiting, unmarked}, 1));
}

TEST(Preemption, NothingIsStoppedWhenAnotherHeldTaskWouldRunFirst) {
  held_attempt ahead = running_preemptible(9);
  ahead.running = false;
  ahead.order = 10;  // waits in the lane before a task of order key 20
  EXPECT_FALSE(victim({running_preemptible(9), ahead}, 1, 3, 20));
  EXPECT_EQ(victim({running_preemptible(9), ahead}, 1, 3, 5), 0u);
}

TEST(Preemption, ATaskPreemptedMaxTimesRunsToItsEnd) {
  EXPECT_FALSE(victim({running_preemptible(9, 3)}, 1, 3));
  EXPECT_EQ(victim({running_preemptible(9, 2)}, 1, 3), 0u);
  EXPECT_FALSE(victim({running_preemptible(9, 0)}, 1, 0)) << "max 0 turns preemption off";
}

TEST(Preemption, AnAttemptAlreadyAskedIsNotAskedAgain) {
  auto asked = running_preemptible(9);
  asked.asked = true;
  EXPECT_EQ(victim({asked, running_preemptible(6)}, 1), 1u);
}

TEST(Preemption, PriorityAndDeadlineOrdersPreemptOthersDoNot) {
  EXPECT_TRUE(preempts_by(queue_order::priority));
  EXPECT_TRUE(preempts_by(queue_order::deadline));
  EXPECT_FALSE(preempts_by(queue_order::fifo));
  EXPECT_FALSE(preempts_by(queue_order::shortest));
  EXPECT_FALSE(preempts_by(queue_order::fair));
  task_spec high, low, soon, late, none;
  high.priority = 5;
  low.priority = 1;
  auto now = clock::now();
  soon.deadline = now + std::chrono::seconds(1);
  late.deadline = now + std::chrono::seconds(9);
  EXPECT_LT(preemption_rank(high, queue_order::priority),
            preemption_rank(low, queue_order::priority));
  EXPECT_LT(preemption_rank(soon, queue_order::deadline),
            preemption_rank(late, queue_order::deadline));
  EXPECT_LT(preemption_rank(late, queue_order::deadline),
            preemption_rank(none, queue_order::deadline))
      << "a task without a deadline is outranked by any with one";
}

}  // namespace
}  // namespace troupe
