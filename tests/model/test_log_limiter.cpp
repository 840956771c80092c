#include <gtest/gtest.h>

#include <chrono>

#include "troupe/model/log_limiter.hpp"

using namespace troupe;

TEST(LogLimiter, LogsTheFirstLinesOfAWindowAndCountsTheRest) {
  log_limiter limit{3, std::chrono::hours{1}};
  uint64_t unshown = 99;
  int logged = 0;
  for (int i = 0; i < 10; ++i) logged += limit.allow(unshown);
  EXPECT_EQ(logged, 3);
  EXPECT_EQ(unshown, 0u);  // no window has ended yet
}

TEST(LogLimiter, ANewWindowReportsWhatTheLastOneLeftOutOnce) {
  using namespace std::chrono_literals;
  log_limiter limit{2, 10s};
  auto t0 = std::chrono::steady_clock::now();
  uint64_t unshown = 0;
  for (int i = 0; i < 5; ++i) limit.allow(unshown, t0 + i * 1s);  // 2 logged, 3 left out
  EXPECT_TRUE(limit.allow(unshown, t0 + 11s));                    // a new window
  EXPECT_EQ(unshown, 3u);
  EXPECT_TRUE(limit.allow(unshown, t0 + 12s));
  EXPECT_EQ(unshown, 0u);  // reported once
  EXPECT_FALSE(limit.allow(unshown, t0 + 13s));
}
