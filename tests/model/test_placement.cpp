// The placer's choice among workers, with made-up estimates.
#include <gtest/gtest.h>

#include <vector>

#include "troupe/model/placement.hpp"

using namespace troupe;

namespace {
struct workers {
  std::vector<bool> room;
  std::vector<double> estimate, backlog;
  std::vector<double> moving = std::vector<double>(room.size(), 0.0);
  int32_t choose(placer& p, double& est) {
    return p.choose(
        room.size(), [&](size_t w) { return bool(room[w]); }, [&](size_t w) { return estimate[w]; },
        [&](size_t w) { return backlog[w]; }, [&](size_t w) { return moving[w]; }, est);
  }
};
}  // namespace

TEST(Placement, LeastLoadedPicksTheEarliestEstimatedFinish) {
  placer p{placement_policy::least_loaded};
  // Worker 0 is idle but slow for this task (a CPU); worker 1 is busy but fast (a GPU).
  workers ws{{true, true}, {0.010, 0.001}, {0.0, 0.005}};
  double est = 0;
  EXPECT_EQ(ws.choose(p, est), 1);
  EXPECT_DOUBLE_EQ(est, 0.001);
  ws.backlog[1] = 0.020;  // now the GPU's queue is longer than the CPU's whole run
  EXPECT_EQ(ws.choose(p, est), 0);
  EXPECT_DOUBLE_EQ(est, 0.010);
}

TEST(Placement, WorkersWithoutRoomAreSkippedAndNoneMeansMinusOne) {
  placer p{placement_policy::least_loaded};
  workers ws{{false, true, false}, {0.001, 0.5, 0.001}, {0, 0, 0}};
  double est = -1;
  EXPECT_EQ(ws.choose(p, est), 1);
  ws.room = {false, false, false};
  EXPECT_EQ(ws.choose(p, est), -1);
}

TEST(Placement, LeastLoadedBreaksTiesTowardTheLowerIndex) {
  placer p{placement_policy::least_loaded};
  workers ws{{true, true, true}, {1, 1, 1}, {0, 0, 0}};
  double est = 0;
  EXPECT_EQ(ws.choose(p, est), 0);
}

TEST(Placement, RoundRobinTakesTurnsAndSkipsWorkersWithoutRoom) {
  placer p{placement_policy::round_robin};
  workers ws{{true, true, true}, {9, 1, 1}, {0, 0, 0}};
  double est = 0;
  std::vector<int32_t> order;
  for (int i = 0; i < 4; ++i) order.push_back(ws.choose(p, est));
  EXPECT_EQ(order, (std::vector<int32_t>{0, 1, 2, 0})) << "estimates do not matter";
  ws.room[1] = false;
  EXPECT_EQ(ws.choose(p, est), 2) << "after 0 comes 1, which has no room";
  EXPECT_EQ(ws.choose(p, est), 0);
  ws.room = {false, false, false};
  EXPECT_EQ(ws.choose(p, est), -1);
}

TEST(Placement, ATaskGoesWhereItsInputsAreUnlessThatWorkerIsBusierThanMovingThemCosts) {
  placer p{placement_policy::least_loaded};
  // Worker 1's node holds the task's 50 MB input; moving it elsewhere takes 50 ms.
  workers ws{{true, true, true}, {0.010, 0.010, 0.010}, {0, 0, 0}};
  ws.moving = {0.050, 0.0, 0.050};
  double est = 0;
  EXPECT_EQ(ws.choose(p, est), 1) << "all idle: where the input is";
  ws.backlog[1] = 0.040;
  EXPECT_EQ(ws.choose(p, est), 1) << "busy for less than the move costs";
  ws.backlog[1] = 0.060;
  EXPECT_EQ(ws.choose(p, est), 0) << "busier than the move costs: moved";
}

TEST(Placement, RoundRobinIgnoresWhereInputsAre) {
  placer p{placement_policy::round_robin};
  workers ws{{true, true}, {1, 1}, {0, 0}};
  ws.moving = {1.0, 0.0};
  double est = 0;
  EXPECT_EQ(ws.choose(p, est), 0);
}
