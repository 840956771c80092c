// Tasks of any length, and the limits a task sets itself: a worker inside a long task stays
// alive (its actor heartbeats, not the thread running the task); a timeout or a deadline stops
// a running attempt through its cancellation token, and one that ignores the token is abandoned
// with its thread and the worker replaced.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

runtime_config one_worker() {
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.log_level = "off";
  return cfg;
}

task_spec sleep_for(double ms) {
  task_spec s;
  s.kind = "sleep";
  s.params = {{"ms", ms}};
  return s;
}

/// Events of one prefix, with a bounded wait for one of a topic.
struct topics_seen {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> topics;
  void add(const event& e) {
    std::lock_guard<std::mutex> guard{mutex};
    topics.push_back(e.topic);
    cv.notify_all();
  }
  size_t count(const std::string& topic) {
    std::lock_guard<std::mutex> guard{mutex};
    return size_t(std::count(topics.begin(), topics.end(), topic));
  }
  bool wait_for(const std::string& topic, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock{mutex};
    return cv.wait_for(lock, timeout, [&] {
      return std::find(topics.begin(), topics.end(), topic) != topics.end();
    });
  }
};

/// Released by the test: a kind that waits for it ignores its cancellation token.
struct gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void release() {
    {
      std::lock_guard<std::mutex> guard{mutex};
      open = true;
    }
    cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock{mutex};
    cv.wait_for(lock, 60s, [&] { return open; });  // bounded: a test bug must not hang the run
  }
};

uint32_t restarts(runtime& rt) {
  uint32_t n = 0;
  for (auto& w : rt.stats().workers) n += w.restarts;
  return n;
}

}  // namespace

// The case: a 3 s task against a 500 ms heartbeat timeout completes, once.
TEST(LongTasks, ATaskLongerThanTheHeartbeatTimeoutCompletesOnceWithoutARetry) {
  auto cfg = one_worker();
  cfg.heartbeat_interval = 100ms;
  cfg.heartbeat_timeout = 500ms;
  topics_seen workers;
  runtime rt{cfg};
  rt.subscribe("worker.", [&](const event& e) { workers.add(e); });
  auto h = rt.submit(sleep_for(3000));
  auto r = h.wait_for(30s);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok()) << r->error.message;
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_GE(r->timings.finished - r->timings.started, 3000ms);
  EXPECT_EQ(workers.count("worker.down"), 0u) << "a busy worker is not a lost one";
  EXPECT_EQ(restarts(rt), 0u);
}

// Past its timeout a running attempt is told to stop (the built-in sleep listens), fails
// timed_out, and is retried by policy; each attempt is stopped the same way.
TEST(TimeLimits, AnAttemptPastItsTimeoutStopsAndIsRetriedByPolicy) {
  runtime rt{one_worker()};
  auto s = sleep_for(60000);
  s.timeout = 100ms;
  s.max_retries = 2;
  s.retry_backoff = 1ms;
  auto t0 = clock::now();
  auto r = rt.submit(s).wait_for(30s);
  ASSERT_TRUE(r.has_value()) << "a timed-out task must end";
  EXPECT_LT(clock::now() - t0, 20s) << "the attempts were stopped, not run to their end";
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::timed_out);
  EXPECT_NE(r->error.message.find("timeout of 100 ms"), std::string::npos) << r->error.message;
  EXPECT_EQ(r->attempts, 3u);
  // The worker was never replaced: the attempts stopped when told.
  EXPECT_EQ(restarts(rt), 0u);
  auto next = rt.submit(sleep_for(1)).wait_for(30s);
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(next->ok());
}

// A limit more than two heartbeats away sets no timer when the attempt starts: the worker's
// heartbeat sets it once the limit comes near.
TEST(TimeLimits, AFarLimitIsEnforcedFromTheHeartbeat) {
  auto cfg = one_worker();
  cfg.heartbeat_interval = 20ms;
  runtime rt{cfg};
  auto s = sleep_for(60000);
  s.timeout = 400ms;
  s.max_retries = 0;
  auto r = rt.submit(s).wait_for(30s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::timed_out);
  EXPECT_GE(r->timings.finished - r->timings.started, 400ms);
}

TEST(TimeLimits, ARunningTaskPastItsDeadlineEndsExpired) {
  runtime rt{one_worker()};
  auto s = sleep_for(60000);
  s.deadline = clock::now() + 300ms;
  auto r = rt.submit(s).wait_for(30s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, outcome::expired);
  EXPECT_EQ(r->error.code, errc::deadline_expired);
  EXPECT_EQ(r->attempts, 1u);
}

// An implementation that ignores its token is abandoned past the grace: its attempt fails
// timed_out at once, the tasks queued behind it run on a fresh thread of the same worker, and
// no restart is charged: six abandonments (more than supervision.intensity) stop nothing.
TEST(TimeLimits, AnAttemptThatIgnoresItsTimeoutIsAbandonedAndTheWorkerCarriesOn) {
  auto cfg = one_worker();
  cfg.timeout_grace = 50ms;
  auto stuck = std::make_shared<gate>();
  topics_seen workers;
  runtime rt{cfg};
  rt.registry().add({"stubborn", nullptr, [stuck](const task_context&) {
                       stuck->wait();
                       return task_output{};
                     }});
  rt.subscribe("worker.", [&](const event& e) { workers.add(e); });
  task_spec s;
  s.kind = "stubborn";
  s.timeout = 50ms;
  s.max_retries = 5;
  s.retry_backoff = 1ms;
  auto h = rt.submit(s);
  auto behind = rt.submit(sleep_for(1));  // on the only worker, behind the stuck attempt
  auto r = h.wait_for(30s);
  ASSERT_TRUE(r.has_value()) << "an abandoned attempt must still end its task";
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::timed_out);
  EXPECT_NE(r->error.message.find("abandoned"), std::string::npos) << r->error.message;
  EXPECT_EQ(r->attempts, 6u);
  auto b = behind.wait_for(30s);
  ASSERT_TRUE(b.has_value()) << "a task behind an abandoned attempt must not be lost";
  EXPECT_TRUE(b->ok()) << b->error.message;
  auto next = rt.submit(sleep_for(1)).wait_for(30s);
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(next->ok()) << next->error.message << " (the runtime must not have escalated)";
  EXPECT_TRUE(workers.wait_for("worker.degraded", 30s)) << "an abandoned thread is reported";
  EXPECT_EQ(workers.count("worker.down"), 0u);
  EXPECT_EQ(restarts(rt), 0u);
  stuck->release();  // the abandoned threads end on their own
}

// A spec may ask for 2^32-1 retries (the wire carries a uint32); it gets the cap, 1,000.
TEST(Retries, MaxRetriesBeyondTheCapAreClampedToIt) {
  runtime rt{one_worker()};
  task_spec s;
  s.kind = "fail";
  s.params = {{"error", std::string{"task_failed"}}};
  s.max_retries = UINT32_MAX;
  s.retry_backoff = 0ms;
  auto r = rt.submit(s).wait_for(60s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->attempts, runtime_config::max_retries_cap + 1);
}

TEST(TimeLimits, AZeroTimeoutIsRefusedAtSubmitNamingTheField) {
  runtime rt{one_worker()};
  auto s = sleep_for(1);
  s.timeout = 0ms;
  auto h = rt.submit(s);
  auto& r = h.get();
  EXPECT_EQ(r.status, outcome::rejected);
  EXPECT_EQ(r.error.code, errc::invalid_params);
  EXPECT_NE(r.error.message.find("timeout_ms"), std::string::npos) << r.error.message;
}
