// The queue actor alone, beside stand-ins for the monitor, the balancer and the event bus.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "stand_ins.hpp"
#include "test_system.hpp"
#include "troupe/actors/queue.hpp"
#include "troupe/kernels/builtins.hpp"

using namespace troupe;

namespace {

struct QueueActor : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  std::shared_ptr<event_gate> events = std::make_shared<event_gate>();
  std::shared_ptr<admission_gate> admission;
  std::vector<finished_msg> reports;
  std::vector<dispatch_msg> dispatched;
  queue_actor queue;
  balancer_actor balancer;
  monitor_actor monitor;
  event_bus_actor bus;

  void SetUp() override {
    sched = &troupe::testing::start_test_system(cfg, sys);
    setup->cfg = resolve({});
    admission = std::make_shared<admission_gate>(setup->cfg);
    kernels::register_builtins(*setup->registry);
    monitor = troupe::testing::spawn_stand_in_monitor(
        *sys, [this](const finished_msg& m) { reports.push_back(m); });
    bus = troupe::testing::spawn_silent_bus(*sys);
    balancer = sys->spawn([this](balancer_actor::pointer) -> balancer_actor::behavior_type {
      return {[this](dispatch_msg& m) { dispatched.push_back(std::move(m)); }, [](results_msg&) {},
              [](worker_up_msg&) {}, [](const worker_lost_msg&) {}, [](reservation_tick_msg) {}};
    });
    queue = sys->spawn(queue_impl, setup, events, admission, nullptr, monitor, bus);
    sched->run();
  }

  void TearDown() override {
    for (auto a : {caf::actor_cast<caf::actor>(queue), caf::actor_cast<caf::actor>(balancer),
                   caf::actor_cast<caf::actor>(monitor), caf::actor_cast<caf::actor>(bus)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
  }

  task_ptr admitted_task(task_id id, int32_t priority = 0) {
    auto t = std::make_shared<task_state>();
    t->id = id;
    t->kind = setup->registry->find("noop");
    t->spec.kind = "noop";
    t->spec.priority = priority;
    t->max_retries = 3;
    t->timings.submitted = clock::now();
    EXPECT_EQ(admission->reserve(1), 1u);
    return t;
  }

  attempt_record record(const task_ptr& t, errc code) {
    attempt_record r;
    r.task = t;
    r.attempt = 1;
    r.worker = 0;
    r.code = code;
    r.started = r.finished = clock::now();
    return r;
  }

  uint64_t duplicates() const {
    uint64_t n = 0;
    for (auto& r : reports) n += r.duplicates;
    return n;
  }
  size_t finished_records() const {
    size_t n = 0;
    for (auto& r : reports) n += r.records.size();
    return n;
  }
};

}  // namespace

TEST_F(QueueActor, GivesTheBalancerNoMoreThanItAskedFor) {
  std::vector<task_ptr> ts;
  for (task_id i = 1; i <= 5; ++i) ts.push_back(admitted_task(i));
  caf::anon_send(queue, submit_msg{ts});
  sched->run();
  EXPECT_TRUE(dispatched.empty());  // no demand yet: nothing is pushed
  caf::anon_send(queue, demand_msg{2}, balancer);
  sched->run();
  ASSERT_EQ(dispatched.size(), 1u);
  EXPECT_EQ(dispatched[0].tasks.size(), 2u);
  caf::anon_send(queue, demand_msg{10}, balancer);
  sched->run();
  ASSERT_EQ(dispatched.size(), 2u);
  EXPECT_EQ(dispatched[1].tasks.size(), 3u);
}

TEST_F(QueueActor, FirstTerminalRecordWinsAndLaterOnesAreCountedAndDropped) {
  auto t = admitted_task(1);
  caf::anon_send(queue, submit_msg{{t}});
  caf::anon_send(queue, demand_msg{1}, balancer);
  sched->run();
  ASSERT_EQ(dispatched.size(), 1u);
  auto ok = record(t, errc::none);
  ok.output.values.set("answer", int64_t{42});
  caf::anon_send(queue, completions_msg{{ok}});
  caf::anon_send(queue, completions_msg{{record(t, errc::task_failed)}});
  caf::anon_send(queue, completions_msg{{record(t, errc::none)}});
  sched->run();
  ASSERT_TRUE(t->done.ready());
  auto& r = t->done.wait();
  EXPECT_EQ(r.status, outcome::completed);
  EXPECT_EQ(std::get<int64_t>(*r.output.values.find("answer")), 42);
  EXPECT_EQ(finished_records(), 1u);
  EXPECT_EQ(duplicates(), 2u);
  EXPECT_EQ(admission->in_system(), 0u);  // released once, not three times
  EXPECT_EQ(dispatched.size(), 1u);       // and the failure did not schedule a retry
}

TEST_F(QueueActor, RecordOfATaskThatNeverStartedRequeuesItWithoutChargingAnAttempt) {
  auto t = admitted_task(1);
  caf::anon_send(queue, submit_msg{{t}});
  caf::anon_send(queue, demand_msg{1}, balancer);
  sched->run();
  auto lost = record(t, errc::worker_lost);
  lost.counts_as_attempt = false;
  caf::anon_send(queue, completions_msg{{lost}});
  caf::anon_send(queue, demand_msg{1}, balancer);
  sched->run();
  ASSERT_EQ(dispatched.size(), 2u);
  EXPECT_EQ(dispatched[1].tasks[0].attempt, 1u);  // the same attempt again
  caf::anon_send(queue, completions_msg{{record(t, errc::none)}});
  sched->run();
  ASSERT_TRUE(t->done.ready());
  EXPECT_EQ(t->done.wait().attempts, 1u);
}

// The starvation bound, end to end through the actor: with aging 10 ms, a priority-0 task under
// a stream of priority-9 arrivals (one per millisecond, one dispatch per millisecond) is
// dispatched once it has waited 9 aging intervals, not later.
TEST_F(QueueActor, PriorityAgingBoundsTheWaitOfALowPriorityTask) {
  setup->cfg.aging_interval = std::chrono::milliseconds(10);
  caf::anon_send_exit(queue, caf::exit_reason::user_shutdown);
  queue = sys->spawn(queue_impl, setup, events, admission, nullptr, monitor,
                     bus);  // reads the aging interval at start
  auto low = admitted_task(1, 0);
  caf::anon_send(queue, submit_msg{{low}});
  sched->run();
  int dispatched_at = -1;
  for (int ms = 0; ms < 200 && dispatched_at < 0; ++ms) {
    sched->advance_time(std::chrono::milliseconds(1));
    caf::anon_send(queue, submit_msg{{admitted_task(task_id(100 + ms), 9)}});
    caf::anon_send(queue, demand_msg{1}, balancer);
    sched->run();
    ASSERT_FALSE(dispatched.empty());
    if (dispatched.back().tasks.front().task == low) dispatched_at = ms + 1;
  }
  EXPECT_GE(dispatched_at, 89);  // priorities still count before the bound ...
  EXPECT_LE(dispatched_at, 91);  // ... and the wait is bounded by (9 - 0) * 10 ms
}
