// The queue's decision after a failed attempt, with times made up by the test.
#include <gtest/gtest.h>

#include "troupe/model/retry_policy.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using verdict = retry_decision::verdict;

namespace {
const time_point t0 = time_point{} + 1h;
}

TEST(RetryPolicy, BacksOffExponentiallyUpToTheCap) {
  std::chrono::milliseconds expected[] = {50ms, 100ms, 200ms, 400ms, 500ms, 500ms};
  for (uint32_t attempt = 1; attempt <= 6; ++attempt) {
    auto d = decide_retry(errc::task_failed, attempt, 10, 50ms, 500ms, t0, std::nullopt);
    EXPECT_EQ(d.what, verdict::retry) << attempt;
    EXPECT_EQ(d.backoff, expected[attempt - 1]) << attempt;
  }
}

TEST(RetryPolicy, GivesUpOnceAttemptsExceedMaxRetries) {
  EXPECT_EQ(decide_retry(errc::task_failed, 3, 3, 0ms, 0ms, t0, std::nullopt).what, verdict::retry);
  EXPECT_EQ(decide_retry(errc::task_failed, 4, 3, 0ms, 0ms, t0, std::nullopt).what, verdict::fail);
  EXPECT_EQ(decide_retry(errc::task_failed, 1, 0, 0ms, 0ms, t0, std::nullopt).what, verdict::fail);
}

TEST(RetryPolicy, PermanentFailuresAreNeverRetried) {
  auto d = decide_retry(errc::task_failed_permanently, 1, 100, 10ms, 1s, t0, std::nullopt);
  EXPECT_EQ(d.what, verdict::fail);
  EXPECT_EQ(decide_retry(errc::invalid_params, 1, 100, 10ms, 1s, t0, std::nullopt).what,
            verdict::fail);
}

TEST(RetryPolicy, ExpiresWhenTheDeadlinePassesBeforeTheNextAttempt) {
  auto d = decide_retry(errc::task_failed, 2, 5, 50ms, 1s, t0, t0 + 99ms);  // backoff 100 ms
  EXPECT_EQ(d.what, verdict::expire);
  EXPECT_EQ(decide_retry(errc::task_failed, 2, 5, 50ms, 1s, t0, t0 + 101ms).what, verdict::retry);
}

TEST(RetryPolicy, HugeAttemptCountsDoNotOverflowTheBackoff) {
  auto d = decide_retry(errc::task_failed, 4'000'000'000u, 4'294'967'295u, 1000ms, 60s, t0,
                        std::nullopt);
  EXPECT_EQ(d.what, verdict::retry);
  EXPECT_EQ(d.backoff, 60s);
}
