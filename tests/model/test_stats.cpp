// The seed's figures from a run's stats: plain arithmetic, checked by hand.
#include <gtest/gtest.h>

#include "troupe/model/stats.hpp"

namespace {

using namespace troupe;

worker_stats worker(const char* device, double busy_s) {
  worker_stats w;
  w.device = device;
  w.busy_s = busy_s;
  return w;
}

TEST(ScheduleFigures, ErrorRateEfficiencyAndUtilisationPerDeviceClass) {
  runtime_stats s;
  s.completed = 98;
  s.failed = 2;
  s.attempts = 110;
  s.errors_detected = 11;  // P_e = 0.1
  s.mean_error_detection_ms = 20;
  s.mean_error_handling_ms = 3;  // P_e * T_d + T_h = 5 ms: 200 per second
  s.mean_recovery_ms = 40;
  s.sum_completion_s = 123;
  s.workers = {worker("cpu", 4), worker("cpu", 2), worker("cuda:0", 9)};
  auto f = figures_of(s, 10.0, 0.5);
  EXPECT_DOUBLE_EQ(f.throughput_tps, 10.0);
  EXPECT_DOUBLE_EQ(f.error_rate, 0.1);
  ASSERT_TRUE(f.efficiency);
  EXPECT_NEAR(*f.efficiency, 200.0, 1e-9);
  EXPECT_DOUBLE_EQ(f.recovery_ms, 40);
  EXPECT_DOUBLE_EQ(f.sum_completion_s, 123);
  EXPECT_DOUBLE_EQ(f.utilisation.at("cpu"), 0.3);  // 6 s of 2 workers x 10 s
  EXPECT_DOUBLE_EQ(f.utilisation.at("cuda"), 0.9);
  EXPECT_DOUBLE_EQ(f.lower_bound_s, 5.0);  // 15 s of work on 3 workers
  EXPECT_EQ(f.lower_bound_is, "work / workers");
}

TEST(ScheduleFigures, TheLongestTaskBoundsTheScheduleWhenItIsLongerThanTheShare) {
  runtime_stats s;
  s.workers = {worker("cpu", 1), worker("cpu", 1)};
  auto f = figures_of(s, 4.0, 3.0);
  EXPECT_DOUBLE_EQ(f.lower_bound_s, 3.0);
  EXPECT_EQ(f.lower_bound_is, "the longest task");
}

TEST(ScheduleFigures, WithoutErrorsThereIsNoEfficiencyToDivide) {
  runtime_stats s;
  s.completed = 5;
  s.attempts = 5;
  auto f = figures_of(s, 1.0);
  EXPECT_DOUBLE_EQ(f.error_rate, 0);
  EXPECT_FALSE(f.efficiency);
}

}  // namespace
