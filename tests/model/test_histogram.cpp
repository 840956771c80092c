#include <gtest/gtest.h>

#include "troupe/model/histogram.hpp"
#include "troupe/model/perf_model.hpp"

using namespace troupe;

TEST(LatencyHistogram, QuantilesAreWithinTwoPercent) {
  latency_histogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v * 1000);  // 1 us .. 100 ms, uniform
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_NEAR(double(h.quantile(0.5)), 50e6, 0.02 * 50e6);
  EXPECT_NEAR(double(h.quantile(0.99)), 99e6, 0.02 * 99e6);
  EXPECT_EQ(h.max(), 100000u * 1000);
  EXPECT_NEAR(h.mean(), 50.0005e6, 1);
}

TEST(LatencyHistogram, EmptyAndSmallValues) {
  latency_histogram h;
  EXPECT_EQ(h.quantile(0.5), 0u);
  h.record(3);
  EXPECT_EQ(h.quantile(0.99), 3u);
}

TEST(PerfModel, LearnsSecondsPerCostUnit) {
  perf_model m{1e-3};
  EXPECT_DOUBLE_EQ(m.estimate_s(0, 100), 1e-3);          // unknown kind: the default
  for (int i = 0; i < 50; ++i) m.observe(0, 1e6, 1e-3);  // 1 ns per unit
  EXPECT_NEAR(m.estimate_s(0, 4e6), 4e-3, 1e-6);
  for (int i = 0; i < 50; ++i) m.observe(1, 0, 2e-6);
  EXPECT_NEAR(m.estimate_s(1, 0), 2e-6, 1e-9);
}
