// The embedded runtime with real threads: detached workers, the real scheduler.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <caf/all.hpp>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "troupe/model/log.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {
runtime_config small(uint32_t workers = 2) {
  runtime_config cfg;
  cfg.cpu_workers = workers;
  cfg.log_level = "warn";
  return cfg;
}
task_spec spec(std::string kind, param_map params = {}) {
  task_spec s;
  s.kind = std::move(kind);
  s.params = std::move(params);
  return s;
}
bool wait_all(const std::vector<task_handle>& hs, std::chrono::milliseconds timeout) {
  auto until = clock::now() + timeout;
  for (auto& h : hs)
    if (!h.wait_until(until)) return false;
  return true;
}
}  // namespace

TEST(EmbeddedRuntime, EveryTaskEndsExactlyOnceUnderLoad) {
  runtime rt{small()};
  const size_t n = 20000;
  std::vector<std::atomic<int>> calls(n + 1000);
  std::vector<task_spec> specs;
  for (size_t i = 0; i < n; ++i)
    specs.push_back(i % 100 == 7 ? spec("fail", {{"first_attempts", int64_t{1}}}) : spec("noop"));
  std::vector<task_handle> hs;
  for (size_t i = 0; i < n; i += 1000) {
    std::vector<task_spec> chunk(specs.begin() + long(i), specs.begin() + long(i + 1000));
    auto part = rt.submit_batch(std::move(chunk), [&](const task_result& r) { calls[r.id]++; });
    hs.insert(hs.end(), part.begin(), part.end());
  }
  ASSERT_TRUE(wait_all(hs, 60s));
  for (auto& h : hs) {
    EXPECT_EQ(h.get().status, outcome::completed);
    EXPECT_EQ(calls[h.id()].load(), 1) << "task " << h.id();
  }
  auto s = rt.stats();
  EXPECT_EQ(s.completed, n);
  EXPECT_EQ(s.retries, n / 100);
  EXPECT_EQ(s.latency.at("noop").count, n - n / 100);
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].tasks + s.workers[1].tasks, n + n / 100);  // retries ran too
}

TEST(EmbeddedRuntime, DeadlinePassesWhileQueuedBehindALongTask) {
  runtime rt{small(1)};
  auto blocker = rt.submit(spec("sleep", {{"ms", 300.0}}));
  auto hurried = spec("noop");
  hurried.deadline = clock::now() + 50ms;
  auto h = rt.submit(hurried);
  auto r = h.wait_for(10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, outcome::expired);
  EXPECT_EQ(r->error.code, errc::deadline_expired);
  EXPECT_TRUE(blocker.wait_for(10s).has_value());
}

/// After 1,000 low-priority tasks (which fill the workers' prefetch), 10 high-priority ones: each
/// worker finishes what it is running, then runs them before anything it holds. Counted: the
/// low-priority tasks that started after the last high-priority one was submitted and before
/// the last one started (the ones already running do not count). At most one per worker: one
/// that started while an urgent task was on its way to it.
void high_priority_overtakes(queue_order order, const char* name) {
  auto cfg = small(2);
  cfg.order = order;
  runtime rt{cfg};
  std::vector<task_spec> low(1000, spec("sleep", {{"ms", 5.0}}));
  auto lows = rt.submit_batch(std::move(low));
  // Wait until the workers are busy with them (a low task started), then submit the high ones.
  ASSERT_TRUE(lows.front().wait_until(clock::now() + 10s));
  std::vector<task_spec> high(10, spec("sleep", {{"ms", 5.0}}));
  for (auto& h : high) {
    h.priority = 10;
    if (order == queue_order::deadline) h.deadline = clock::now() + 60s;
  }
  auto submitted = clock::now();
  auto highs = rt.submit_batch(std::move(high));
  ASSERT_TRUE(wait_all(highs, 30s));
  time_point last_high_start{};
  for (auto& h : highs) {
    ASSERT_EQ(h.get().status, outcome::completed);
    last_high_start = std::max(last_high_start, h.get().timings.started);
  }
  rt.shutdown(shutdown_mode::cancel);
  size_t overtaking = 0;
  for (auto& l : lows) {
    auto& t = l.get().timings;
    if (t.started > submitted && t.started < last_high_start) ++overtaking;
  }
  EXPECT_LE(overtaking, 2u) << name << ": low-priority tasks that started ahead of the high ones";
  std::printf(
      "%s: %zu low-priority task(s) started between the high ones' submit and their "
      "last start\n",
      name, overtaking);
}

TEST(EmbeddedRuntime, HighPriorityTasksWaitForAtMostTheRunningTaskOfEachWorker) {
  high_priority_overtakes(queue_order::priority, "priority");
}

TEST(EmbeddedRuntime, EarlyDeadlinesWaitForAtMostTheRunningTaskOfEachWorker) {
  high_priority_overtakes(queue_order::deadline, "deadline");
}

TEST(EmbeddedRuntime, ShutdownCancelEndsEverythingPromptly) {
  runtime rt{small(1)};
  std::vector<task_handle> hs;
  for (int i = 0; i < 5; ++i) hs.push_back(rt.submit(spec("sleep", {{"ms", 5000.0}})));
  auto t0 = clock::now();
  rt.shutdown(shutdown_mode::cancel);
  EXPECT_LT(clock::now() - t0, 4s) << "the running sleep should have seen its cancel flag";
  for (auto& h : hs) {
    ASSERT_TRUE(h.ready());
    EXPECT_EQ(h.get().status, outcome::cancelled);
  }
  auto late = rt.submit(spec("noop"));
  EXPECT_EQ(late.get().status, outcome::rejected);
  EXPECT_EQ(late.get().error.code, errc::shutting_down);
}

TEST(EmbeddedRuntime, SubscribersSeeGapFreeSequenceNumbersAndEveryCompletion) {
  // Declared before the runtime: its event thread may call back until the runtime is gone.
  std::mutex m;
  std::condition_variable cv;
  std::vector<event> seen;
  runtime rt{small()};
  const size_t n = 2000;
  size_t completed = 0;
  // All topics: sequence numbers count every event the bus publishes, so only the unfiltered
  // stream is gap-free (a prefix filter skips the numbers of the other topics).
  rt.subscribe("", [&](const event& e) {
    std::lock_guard<std::mutex> g{m};
    seen.push_back(e);
    if (e.topic == "task.completed" && ++completed == n) cv.notify_all();
  });
  auto hs = rt.submit_batch(std::vector<task_spec>(n, spec("noop")));
  ASSERT_TRUE(wait_all(hs, 30s));
  std::unique_lock<std::mutex> lock{m};
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return completed == n; }));
  for (size_t i = 1; i < seen.size(); ++i) ASSERT_EQ(seen[i].seq, seen[i - 1].seq + 1) << i;
}

TEST(EmbeddedRuntime, RejectionsAtSubmitArePublished) {
  std::mutex m;
  std::condition_variable cv;
  std::vector<event> seen;
  runtime rt{small()};
  rt.subscribe("queue.", [&](const event& e) {
    std::lock_guard<std::mutex> g{m};
    seen.push_back(e);
    cv.notify_all();
  });
  auto h = rt.submit(spec("no_such_kind"));
  ASSERT_EQ(h.get().status, outcome::rejected);
  std::unique_lock<std::mutex> lock{m};
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return !seen.empty(); }));
  EXPECT_EQ(seen[0].topic, "queue.rejected");
  EXPECT_EQ(seen[0].task, h.id());
  EXPECT_NE(seen[0].detail.find("unknown_kind"), std::string::npos) << seen[0].detail;
}

TEST(EmbeddedRuntime, MetricsSnapshotsArePublishedAtTheConfiguredInterval) {
  std::mutex m;
  std::condition_variable cv;
  std::vector<event> seen;
  auto cfg = small();
  cfg.metrics_interval = std::chrono::milliseconds(20);
  runtime rt{cfg};
  auto hs = rt.submit_batch(std::vector<task_spec>(50, spec("noop")));
  ASSERT_TRUE(wait_all(hs, 30s));
  rt.subscribe("metrics.", [&](const event& e) {
    std::lock_guard<std::mutex> g{m};
    seen.push_back(e);
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock{m};
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return seen.size() >= 2; }));
  EXPECT_EQ(seen[0].topic, "metrics.snapshot");
  EXPECT_NE(seen[0].detail.find("\"completed\":50"), std::string::npos) << seen[0].detail;
  EXPECT_NE(seen[0].detail.find("\"noop\":{\"p50\""), std::string::npos) << seen[0].detail;
  EXPECT_NE(seen[0].detail.find("\"utilisation\""), std::string::npos) << seen[0].detail;
}

TEST(EmbeddedRuntime, StatsReportLatencyPerKindAndWorkerLoad) {
  runtime rt{small()};
  std::vector<task_spec> specs;
  for (int i = 0; i < 40; ++i)
    specs.push_back(
        i % 2 ? spec("gemm", {{"size", int64_t{64}}})
              : spec("mlp", {{"layers", std::vector<int64_t>{32, 16, 4}}, {"batch", int64_t{8}}}));
  auto hs = rt.submit_batch(specs);
  ASSERT_TRUE(wait_all(hs, 30s));
  auto s = rt.stats();
  EXPECT_EQ(s.submitted, 40u);
  EXPECT_EQ(s.completed, 40u);
  ASSERT_EQ(s.latency.count("gemm"), 1u);
  ASSERT_EQ(s.latency.count("mlp"), 1u);
  EXPECT_EQ(s.latency["gemm"].count, 20u);
  EXPECT_GT(s.latency["gemm"].p99_ms, 0);
  EXPECT_LE(s.latency["gemm"].p50_ms, s.latency["gemm"].p99_ms);
  double busy = 0;
  for (auto& w : s.workers) busy += w.busy_s;
  EXPECT_GT(busy, 0);
  EXPECT_EQ(s.in_flight + s.queued, 0u);
}

TEST(EmbeddedRuntime, AttachesToTheCallersActorSystem) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    runtime rt{sys, small(1)};
    auto h = rt.submit(spec("gemm", {{"size", int64_t{16}}}));
    auto r = h.wait_for(10s);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->ok());
    rt.shutdown();
  }
  sys.await_all_actors_done();
}

// Triggers from the config: each matching event fires a rule exactly once; other events none.
TEST(EmbeddedTriggers, EachMatchingEventFiresItsRuleExactlyOnce) {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<event> alerts;
  std::map<task_id, uint64_t> failed_seq;  // task -> seq of its task.failed (kind "fail")
  size_t follow_ups_done = 0;
  auto cfg = small(2);
  trigger_rule alert;
  alert.name = "fail-alert";
  alert.topic = "task.failed";
  alert.kind = "fail";
  alert.action = trigger_action::alert;
  trigger_rule follow = alert;
  follow.name = "follow";
  follow.action = trigger_action::submit;
  follow.follow_up.kind = "noop";
  cfg.triggers = {alert, follow};
  runtime rt{cfg};
  rt.registry().add({"other_fail", nullptr, [](const task_context&) -> task_output {
                       throw task_failure{errc::task_failed_permanently, "not mine"};
                     }});
  rt.subscribe("", [&](const event& e) {
    std::lock_guard<std::mutex> guard{mutex};
    if (e.topic == "alert.fail-alert") alerts.push_back(e);
    if (e.topic == "task.failed" && e.kind == "fail") failed_seq[e.task] = e.seq;
    if (e.topic == "task.completed" && e.kind == "noop") ++follow_ups_done;
    cv.notify_all();
  });
  const size_t n = 300;
  std::vector<task_spec> specs;
  for (size_t i = 0; i < n; ++i) {
    auto s = spec("fail", {{"error", std::string{"task_failed_permanently"}}});
    specs.push_back(s);
    specs.push_back(spec("other_fail"));  // fails too, but is not of kind "fail"
    specs.push_back(spec("noop"));        // completes: no task.failed at all
  }
  auto hs = rt.submit_batch(specs);
  ASSERT_TRUE(wait_all(hs, 60s));
  {
    std::unique_lock<std::mutex> lock{mutex};
    ASSERT_TRUE(
        cv.wait_for(lock, 30s, [&] { return alerts.size() >= n && follow_ups_done >= 2 * n; }))
        << alerts.size() << " alerts, " << follow_ups_done << " noop completions";
  }
  rt.shutdown();  // drains: anything still to come would arrive before this returns
  std::lock_guard<std::mutex> guard{mutex};
  EXPECT_EQ(alerts.size(), n);
  EXPECT_EQ(failed_seq.size(), n);
  std::set<task_id> alerted;
  for (auto& a : alerts) {
    EXPECT_TRUE(alerted.insert(a.task).second) << "task " << a.task << " alerted twice";
    ASSERT_TRUE(failed_seq.count(a.task)) << "alert for a task that did not fail: " << a.task;
    EXPECT_NE(a.detail.find("#" + std::to_string(failed_seq[a.task])), std::string::npos)
        << a.detail;
    EXPECT_GT(a.seq, failed_seq[a.task]);
  }
  // n noop tasks of ours + one follow-up per failed "fail" task.
  EXPECT_EQ(follow_ups_done, 2 * n);
}

namespace {
/// Collects events of a prefix; waits (bounded) for one that satisfies a predicate.
struct event_log_for_test {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<event> seen;
  void add(const event& e) {
    std::lock_guard<std::mutex> guard{mutex};
    seen.push_back(e);
    cv.notify_all();
  }
  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock{mutex};
    return cv.wait_for(lock, timeout, [&] { return std::any_of(seen.begin(), seen.end(), pred); });
  }
};
}  // namespace

TEST(EmbeddedEvents, QueuePressureRisesWithTheBacklogAndFallsWhenItDrains) {
  event_log_for_test log;
  auto cfg = small(1);
  cfg.queue_bound = 200;
  cfg.pressure_ratio = 0.5;
  cfg.heartbeat_interval = 10ms;
  runtime rt{cfg};
  rt.subscribe("queue.pressure", [&](const event& e) { log.add(e); });
  std::vector<task_spec> specs(150, spec("sleep", {{"ms", 2.0}}));
  auto hs = rt.submit_batch(specs);
  ASSERT_TRUE(log.wait_for([](const event& e) { return e.detail.rfind("high", 0) == 0; }, 30s))
      << "150 of 200 admitted (pressure at 100) and no queue.pressure high";
  ASSERT_TRUE(wait_all(hs, 60s));
  ASSERT_TRUE(log.wait_for([](const event& e) { return e.detail.rfind("normal", 0) == 0; }, 30s))
      << "drained and no queue.pressure normal";
  std::lock_guard<std::mutex> guard{log.mutex};
  ASSERT_GE(log.seen.size(), 2u);
  EXPECT_EQ(log.seen[0].detail.rfind("high", 0), 0u) << log.seen[0].detail;
  EXPECT_NE(log.seen[0].detail.find("of 200"), std::string::npos) << log.seen[0].detail;
}

TEST(EmbeddedEvents, AWorkerRestartedRepeatedlyIsReportedDegraded) {
  event_log_for_test log;
  auto cfg = small(1);
  runtime rt{cfg};
  rt.subscribe("worker.degraded", [&](const event& e) { log.add(e); });
  for (int i = 0; i < 2; ++i) {  // each crash restarts the worker
    auto r =
        rt.submit(spec("fail", {{"error", std::string{"crash"}}, {"first_attempts", int64_t{1}}}))
            .wait_for(30s);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->ok()) << r->error.message;
  }
  ASSERT_TRUE(log.wait_for(
      [](const event& e) { return e.worker == 0 && e.detail.find("restarted 2 times") == 0; },
      30s));
}

// A subscriber that never returns loses events (counted) and holds nothing up; one that keeps up
// sees every event, in order, without a gap.
TEST(EmbeddedEvents, AStalledSubscriberLosesEventsAndHoldsNothingUp) {
  struct stall {  // the stalled subscriber's own lock, so that nothing else wakes it
    std::mutex mutex;
    std::condition_variable cv;
    std::condition_variable progress;  // the test waits on it for what the subscriber saw
    bool released = false;
    std::vector<uint64_t> seqs;
    std::set<task_id> completed;
    void release() {
      std::lock_guard<std::mutex> guard{mutex};
      released = true;
      cv.notify_all();
    }
  } stalled;
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<uint64_t> steady_seqs;
  size_t steady_completed = 0;
  auto cfg = small(2);
  cfg.subscriber_high_water = 5000;
  runtime rt{cfg};
  // Declared after the runtime, so destroyed before it: a failed assertion cannot leave the
  // runtime's shutdown waiting for a callback that never returns.
  std::unique_ptr<stall, void (*)(stall*)> release_at_exit{&stalled,
                                                           [](stall* s) { s->release(); }};
  rt.subscribe("", [&](const event& e) {
    std::unique_lock<std::mutex> lock{stalled.mutex};
    stalled.seqs.push_back(e.seq);
    if (e.topic == "task.completed") stalled.completed.insert(e.task);
    stalled.progress.notify_all();
    stalled.cv.wait(lock, [&] { return stalled.released; });
  });
  rt.subscribe("", [&](const event& e) {
    std::lock_guard<std::mutex> guard{mutex};
    steady_seqs.push_back(e.seq);
    steady_completed += e.topic == "task.completed";
    cv.notify_all();
  });
  // Ten rounds of 500 tasks (about 2,500 events each, within the steady subscriber's 5,000);
  // the stalled one's queue is full after two.
  for (size_t round = 1; round <= 10; ++round) {
    auto hs = rt.submit_batch(std::vector<task_spec>(500, spec("noop")));
    ASSERT_TRUE(wait_all(hs, 60s)) << "tasks held up by a stalled subscriber";
    std::unique_lock<std::mutex> lock{mutex};
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return steady_completed == 500 * round; }))
        << "the steady subscriber saw " << steady_completed << " completions";
  }
  EXPECT_GT(rt.stats().events_dropped, 0u);
  stalled.release();
  {
    // It held one event in its callback and 5,000 in its queue: once it has seen them all its
    // queue is empty, and the next task's events reach it after the loss.
    std::unique_lock<std::mutex> lock{stalled.mutex};
    ASSERT_TRUE(stalled.progress.wait_for(lock, 30s, [&] { return stalled.seqs.size() > 5000; }))
        << "the released subscriber got " << stalled.seqs.size() << " events";
  }
  auto after = rt.submit(spec("noop"));
  ASSERT_TRUE(after.wait_for(30s));
  {
    std::unique_lock<std::mutex> lock{stalled.mutex};
    ASSERT_TRUE(stalled.progress.wait_for(lock, 30s, [&] {
      return stalled.completed.count(after.id());
    })) << "the released subscriber never saw the next task complete";
  }
  rt.shutdown();
  std::lock_guard<std::mutex> guard{mutex};
  std::lock_guard<std::mutex> guard2{stalled.mutex};
  ASSERT_FALSE(steady_seqs.empty());
  for (size_t i = 1; i < steady_seqs.size(); ++i)
    ASSERT_EQ(steady_seqs[i], steady_seqs[i - 1] + 1) << "the steady subscriber saw a gap";
  EXPECT_GE(steady_seqs.size(), 5u * 5000) << "submitted, queued, placed, started, completed";
  EXPECT_LT(stalled.seqs.size(), steady_seqs.size());
  bool gap = false;
  for (size_t i = 1; i < stalled.seqs.size(); ++i)
    gap = gap || stalled.seqs[i] > stalled.seqs[i - 1] + 1;
  EXPECT_TRUE(gap) << "the stalled subscriber's loss shows as a jump in seq";
}

// With only a stalled subscriber, the runtime stops building events for it until it catches up;
// what it missed is still numbered and counted: every seq it did not get is in events_dropped.
TEST(EmbeddedEvents, EveryEventAStalledSubscriberMissedIsCounted) {
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  std::vector<event> seen;
  auto cfg = small(2);
  cfg.subscriber_high_water = 1000;
  runtime rt{cfg};
  auto release = [&] {
    std::lock_guard<std::mutex> guard{mutex};
    released = true;
    cv.notify_all();
  };
  std::unique_ptr<void, std::function<void(void*)>> release_at_exit{&rt, [&](void*) { release(); }};
  rt.subscribe("", [&](const event& e) {
    std::unique_lock<std::mutex> lock{mutex};
    seen.push_back(e);
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
  });
  auto hs = rt.submit_batch(std::vector<task_spec>(5000, spec("noop")));
  ASSERT_TRUE(wait_all(hs, 60s));
  release();
  // Events are built for it again once it has caught up with half its queue: until it sees a
  // task of ours end, submit another (each round waits for an event, bounded).
  std::unique_lock<std::mutex> lock{mutex};
  bool caught_up = false;
  for (int round = 0; round < 100 && !caught_up; ++round) {
    lock.unlock();
    auto last = rt.submit(spec("noop"));
    ASSERT_TRUE(last.wait_for(30s));
    lock.lock();
    caught_up = cv.wait_for(lock, 1s, [&] {
      return !seen.empty() && seen.back().topic == "task.completed" &&
             seen.back().task == last.id();
    });
  }
  ASSERT_TRUE(caught_up);
  auto dropped = rt.stats().events_dropped;
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(seen.back().seq, seen.size() + dropped)
      << "every number up to the last event is either delivered or counted as dropped";
  for (size_t i = 1; i < seen.size(); ++i) ASSERT_LT(seen[i - 1].seq, seen[i].seq);
}

TEST(EmbeddedRuntime, MetricsSnapshotsCarryStructuredValuesAndValidJsonWhateverTheNames) {
  std::mutex m;
  std::condition_variable cv;
  std::vector<event> seen;
  auto cfg = small();
  cfg.metrics_interval = std::chrono::milliseconds(20);
  runtime rt{cfg};
  const std::string odd = "say \"hi\"\\\n";  // a quote, a backslash, a newline
  rt.registry().add({odd, nullptr, [](const task_context&) { return task_output{}; }, nullptr});
  ASSERT_TRUE(rt.submit(spec(odd)).wait_for(30s));
  rt.subscribe("metrics.", [&](const event& e) {
    std::lock_guard<std::mutex> g{m};
    seen.push_back(e);
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock{m};
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return !seen.empty(); }));
  auto& e = seen.front();
  auto* completed = e.values.find("completed");
  ASSERT_NE(completed, nullptr);
  EXPECT_EQ(std::get<int64_t>(*completed), 1);
  ASSERT_NE(e.values.find("latency_ms." + odd + ".p99"), nullptr);
  ASSERT_NE(e.values.find("worker.cpu-0.utilisation"), nullptr);
  auto j = nlohmann::json::parse(e.detail);  // throws if the quoting is wrong
  EXPECT_EQ(j["completed"], 1);
  EXPECT_TRUE(j["latency_ms"].contains(odd)) << e.detail;
}

// A callback that blocks holds up no other task: callbacks run on their own thread.
TEST(EmbeddedRuntime, ASlowCallbackHoldsUpNoOtherTask) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false, entered = false;
  runtime rt{small(2)};
  auto slow = rt.submit(spec("noop"), [&](const task_result&) {
    std::unique_lock<std::mutex> lock{m};
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  {
    std::unique_lock<std::mutex> lock{m};
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return entered; }));
  }
  auto others = rt.submit_batch(std::vector<task_spec>(200, spec("noop")));
  bool all_done = wait_all(others, 30s);
  {
    std::lock_guard<std::mutex> guard{m};
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(all_done) << "tasks waited for another task's callback";
  EXPECT_TRUE(slow.wait_for(30s)) << "ready once its callback returned";
  EXPECT_TRUE(rt.wait_idle(30s));
}

TEST(EmbeddedRuntime, AHandleIsReadyOnlyAfterItsCallbackReturned) {
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, release = false;
  runtime rt{small(1)};
  auto h = rt.submit(spec("noop"), [&](const task_result&) {
    std::unique_lock<std::mutex> lock{m};
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  {
    std::unique_lock<std::mutex> lock{m};
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return entered; }));
    EXPECT_FALSE(h.ready()) << "ready while its callback still runs";
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(h.wait_for(30s));
}

TEST(EmbeddedRuntime, ABatchsCallbackSeesEveryResultOnceBeforeTheRuntimeIsIdle) {
  std::mutex m;
  std::multiset<task_id> called;
  runtime rt{small(2)};
  auto hs = rt.submit_batch(std::vector<task_spec>(500, spec("noop")), [&](const task_result& r) {
    std::lock_guard<std::mutex> g{m};
    called.insert(r.id);
  });
  ASSERT_TRUE(rt.wait_idle(30s));
  std::lock_guard<std::mutex> g{m};
  ASSERT_EQ(called.size(), hs.size());
  for (auto& h : hs) EXPECT_EQ(called.count(h.id()), 1u);
}

// Threads that submit the same idempotency key at once all get the one task, which runs once.
TEST(EmbeddedRuntime, ConcurrentSubmitsOfOneKeyRunOneTask) {
  std::atomic<int> runs{0};
  runtime rt{small(2)};
  rt.registry().add({"counted", nullptr,
                     [&](const task_context&) {
                       runs.fetch_add(1);
                       return task_output{};
                     },
                     nullptr});
  constexpr int keys = 200, threads = 4;
  std::vector<std::vector<task_id>> ids(threads, std::vector<task_id>(keys));
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      for (int k = 0; k < keys; ++k) {
        auto s = spec("counted");
        s.idempotency_key = "key-" + std::to_string(k);
        auto h = (k % 2) ? rt.submit(s) : rt.submit_batch({s}).front();
        ids[size_t(t)][size_t(k)] = h.id();
      }
    });
  for (auto& th : pool) th.join();
  ASSERT_TRUE(rt.wait_idle(30s));
  for (int t = 1; t < threads; ++t) EXPECT_EQ(ids[size_t(t)], ids[0]) << "thread " << t;
  EXPECT_EQ(runs.load(), keys);
}

// Once its task ended, a key keeps only the result (the record and its payload are let go, a
// few keys per submit): a later submit with the key still gets the same task and its result.
TEST(Idempotency, AKeyOfAnEndedTaskStillAnswersWithTheSameTaskAndResult) {
  auto cfg = small(1);
  runtime rt{cfg};
  auto first_spec = spec("echo");
  first_spec.idempotency_key = "big";
  first_spec.payload.assign(1 << 20, 7);
  auto first = rt.submit(first_spec);
  auto r = first.wait_for(30s);
  ASSERT_TRUE(r && r->ok()) << (r ? r->error.message : "no result");
  for (int k = 0; k < 20; ++k) {  // settles that sweep the ended key to its result
    auto s = spec("noop");
    s.idempotency_key = "other-" + std::to_string(k);
    ASSERT_TRUE(rt.submit(s).wait_for(30s));
  }
  auto again = rt.submit(first_spec);
  EXPECT_EQ(again.id(), first.id());
  ASSERT_TRUE(again.ready());
  EXPECT_EQ(again.get().status, outcome::completed);
  EXPECT_EQ(again.get().output.bytes, r->output.bytes) << "the same result, kept under its key";
}

// The runtime writes to spdlog's logger "troupe" and leaves the default logger and the global
// level as the host set them.
TEST(EmbeddedLogging, TheRuntimeLeavesTheHostsLoggingAloneAndWritesToItsOwnLogger) {
  spdlog::set_level(spdlog::level::trace);
  auto before = spdlog::default_logger();
  std::ostringstream lines;
  auto host = std::make_shared<spdlog::logger>(
      "troupe", std::make_shared<spdlog::sinks::ostream_sink_mt>(lines));
  host->set_level(spdlog::level::info);
  set_logger(host);
  {
    auto cfg = small(1);
    cfg.log_level = "off";  // applies to a logger troupe made, not to the host's
    cfg.cuda = cuda_selection::none;
    runtime rt{cfg};
    ASSERT_TRUE(rt.submit(spec("noop")).wait_for(30s));
  }
  EXPECT_EQ(spdlog::default_logger(), before);
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::trace);
  EXPECT_EQ(host->level(), spdlog::level::info);
  host->flush();
  EXPECT_NE(lines.str().find("1 cpu and 0 gpu workers"), std::string::npos) << lines.str();
  // Back to a quiet stderr logger for the other tests of this binary.
  auto quiet = std::make_shared<spdlog::logger>(
      "troupe", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  quiet->set_level(spdlog::level::warn);
  set_logger(quiet);
  spdlog::set_level(spdlog::level::info);
}
