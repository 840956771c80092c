// A supervisor's restart budget, with times made up by the test.
#include <gtest/gtest.h>

#include "troupe/model/restart_intensity.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {
const time_point t0 = time_point{} + 1h;
}

TEST(RestartIntensity, AllowsNRestartsWithinThePeriodThenGivesUp) {
  restart_intensity r{3, 1000ms, 10ms, 1000ms};
  EXPECT_EQ(r.on_child_lost(t0), 10ms);
  EXPECT_EQ(r.on_child_lost(t0 + 100ms), 20ms);
  EXPECT_EQ(r.on_child_lost(t0 + 200ms), 40ms);
  EXPECT_FALSE(r.on_child_lost(t0 + 300ms)) << "a fourth restart within 1 s";
  EXPECT_EQ(r.recent(), 3u);
}

TEST(RestartIntensity, RestartsOlderThanThePeriodNoLongerCount) {
  restart_intensity r{2, 1000ms, 0ms, 0ms};
  EXPECT_TRUE(r.on_child_lost(t0));
  EXPECT_TRUE(r.on_child_lost(t0 + 500ms));
  EXPECT_FALSE(r.on_child_lost(t0 + 900ms));
  EXPECT_TRUE(r.on_child_lost(t0 + 1600ms)) << "both earlier ones left the window";
  EXPECT_EQ(r.recent(), 1u);
}

TEST(RestartIntensity, BackoffIsCapped) {
  restart_intensity r{100, 3600s, 100ms, 350ms};
  std::chrono::milliseconds last{};
  for (int i = 0; i < 10; ++i) last = *r.on_child_lost(t0 + std::chrono::milliseconds(i));
  EXPECT_EQ(last, 350ms);
}

TEST(RestartIntensity, ZeroIntensityGivesUpAtTheFirstLoss) {
  restart_intensity r{0, 1000ms, 0ms, 0ms};
  EXPECT_FALSE(r.on_child_lost(t0));
}
