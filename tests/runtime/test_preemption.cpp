// Preemption (docs/preemption.md): a task marked preemptible makes way for one of higher
// priority (or earlier deadline) and runs again later, at most queue.max_preemptions times.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// A kind that tells the test each time it starts, then runs for `ms` (the first time) or
/// `again_ms` (later; default `ms`) unless told to stop.
struct starts_log {
  std::mutex m;
  std::condition_variable cv;
  int started = 0;

  bool wait_for_start(int n) {
    std::unique_lock<std::mutex> lock{m};
    return cv.wait_for(lock, 10s, [&] { return started >= n; });
  }
  int starts() {
    std::lock_guard<std::mutex> guard{m};
    return started;
  }
};

/// The built-in `sleep` does the holding: it stops when the context says so.
void add_hold_kind(runtime& rt, starts_log& log) {
  auto* sleep = rt.registry().find("sleep");
  rt.registry().add({"hold", nullptr, [&log, sleep](const task_context& ctx) {
                       int n;
                       {
                         std::lock_guard<std::mutex> guard{log.m};
                         n = ++log.started;
                       }
                       log.cv.notify_all();
                       auto spec = ctx.spec;  // the sleep's length: ms, or again_ms later
                       auto& p = spec.params;
                       if (n > 1) p.set("ms", p.get_double("again_ms", p.get_double("ms", 0)));
                       task_context inner{spec,       ctx.attempt,     ctx.worker,
                                          ctx.device, ctx.cancel_flag, ctx.device_index};
                       inner.stop_flag = ctx.stop_flag;
                       inner.preempt_flag = ctx.preempt_flag;
                       return sleep->def.cpu(inner);
                     }});
}

runtime_config one_worker(queue_order order, uint32_t max_preemptions = 3) {
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.log_level = "warn";
  cfg.order = order;
  cfg.max_preemptions = max_preemptions;
  return cfg;
}

/// Runs `ms` the first time; a long first run is stopped when preempted, however loaded the
/// machine, and `again_ms` keeps the test short after that.
task_spec hold(double ms, bool preemptible, double again_ms = -1) {
  task_spec s;
  s.kind = "hold";
  s.params.set("ms", ms);
  if (again_ms >= 0) s.params.set("again_ms", again_ms);
  s.preemptible = preemptible;
  return s;
}

/// More urgent than hold(..) under the order: a higher priority, or an earlier deadline.
task_spec urgent(queue_order order) {
  task_spec s;
  s.kind = "noop";
  if (order == queue_order::deadline)
    s.deadline = clock::now() + 30s;
  else
    s.priority = 10;
  return s;
}

/// What happened when `then` was submitted while `first` (a hold task) was running, on one
/// worker under `order`.
struct two_tasks {
  task_result first, then;
  int starts = 0;  ///< of hold tasks
  uint64_t preempted = 0;
};

two_tasks run_while_running(queue_order order, task_spec first, task_spec then) {
  starts_log log;
  runtime rt{one_worker(order)};
  add_hold_kind(rt, log);
  auto a = rt.submit(std::move(first));
  EXPECT_TRUE(log.wait_for_start(1));
  auto b = rt.submit(std::move(then));
  auto ra = a.wait_for(10s);
  auto rb = b.wait_for(10s);
  EXPECT_TRUE(ra && rb) << "both tasks end";
  if (!ra || !rb) return {};
  return {*ra, *rb, log.starts(), rt.stats().preempted};
}

}  // namespace

class PreemptionUnder : public ::testing::TestWithParam<queue_order> {};

TEST_P(PreemptionUnder, ARunningPreemptibleTaskMakesWayAndRunsAgainAfterwards) {
  auto r = run_while_running(GetParam(), hold(60000, true, 1), urgent(GetParam()));
  auto &l = r.first, &h = r.then;
  EXPECT_EQ(h.status, outcome::completed);
  EXPECT_EQ(l.status, outcome::completed) << "a preempted task is not lost";
  EXPECT_LE(h.timings.ran_until, l.timings.started)
      << "the urgent task ran while the preemptible one was stopped, not after it";
  EXPECT_EQ(l.attempts, 1u) << "a preemption is not a failed attempt";
  EXPECT_EQ(r.starts, 2);
  EXPECT_EQ(r.preempted, 1u);
}

TEST_P(PreemptionUnder, ATaskNotMarkedPreemptibleRunsToItsEnd) {
  auto r = run_while_running(GetParam(), hold(200, false), urgent(GetParam()));
  EXPECT_GE(r.then.timings.started, r.first.timings.ran_until) << "the urgent task waited for it";
  EXPECT_EQ(r.starts, 1);
  EXPECT_EQ(r.preempted, 0u);
}

INSTANTIATE_TEST_SUITE_P(Orders, PreemptionUnder,
                         ::testing::Values(queue_order::priority, queue_order::deadline),
                         [](const auto& info) {
                           return info.param == queue_order::priority ? "Priority" : "Deadline";
                         });

TEST(Preemption, ATaskIsPreemptedAtMostMaxPreemptionsTimesThenRunsToItsEnd) {
  starts_log log;
  runtime rt{one_worker(queue_order::priority, 1)};
  add_hold_kind(rt, log);
  std::mutex seen_m;
  int preempted_events = 0;
  rt.subscribe("task.preempted", [&](const event&) {
    std::lock_guard<std::mutex> guard{seen_m};
    ++preempted_events;
  });
  auto low = rt.submit(hold(60000, true, 300));
  ASSERT_TRUE(log.wait_for_start(1));
  auto first = rt.submit(urgent(queue_order::priority));
  ASSERT_TRUE(first.wait_for(10s));
  ASSERT_TRUE(log.wait_for_start(2)) << "the preempted task runs again";
  auto second = rt.submit(urgent(queue_order::priority));
  auto s = second.wait_for(10s);
  auto l = low.wait_for(10s);
  ASSERT_TRUE(s && l);
  EXPECT_EQ(l->status, outcome::completed);
  EXPECT_GE(s->timings.started, l->timings.ran_until)
      << "after queue.max_preemptions the task is not stopped again";
  EXPECT_EQ(log.starts(), 2);
  EXPECT_EQ(rt.stats().preempted, 1u);
  rt.shutdown();
  std::lock_guard<std::mutex> guard{seen_m};
  EXPECT_EQ(preempted_events, 1);
}

TEST(Preemption, TasksOfTheSamePriorityNeverPreemptEachOther) {
  auto r = run_while_running(queue_order::priority, hold(100, true), hold(1, true));
  EXPECT_GE(r.then.timings.started, r.first.timings.ran_until);
  EXPECT_EQ(r.preempted, 0u);
}

TEST(Preemption, FifoOrderNeverPreempts) {
  auto r = run_while_running(queue_order::fifo, hold(100, true), urgent(queue_order::priority));
  EXPECT_GE(r.then.timings.started, r.first.timings.ran_until);
  EXPECT_EQ(r.starts, 1);
  EXPECT_EQ(r.preempted, 0u);
}
