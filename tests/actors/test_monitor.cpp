// The monitor alone, on CAF's deterministic scheduler, beside stand-ins for the supervisor and
// the event bus: silent workers are reported once, on time; heard ones never are.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "test_system.hpp"
#include "troupe/actors/monitor.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct Monitor : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  std::shared_ptr<event_gate> events = std::make_shared<event_gate>();
  std::vector<unresponsive_msg> told;  // what the supervisor was told
  std::vector<event> published;
  monitor_actor monitor;
  supervisor_actor supervisor;
  event_bus_actor bus;

  void SetUp() override {
    sched = &troupe::testing::start_test_system(cfg, sys);
    runtime_config rc;
    rc.cpu_workers = 1;
    rc.heartbeat_interval = 100ms;
    rc.heartbeat_timeout = 1000ms;
    rc.metrics_interval = 0ms;
    setup->cfg = resolve(rc);
    worker_desc w;
    w.name = "cpu-0";
    setup->workers = {w};
    events->subscribers = 1;  // build events: the bus stand-in keeps them
    supervisor = sys->spawn([this](supervisor_actor::pointer) -> supervisor_actor::behavior_type {
      return {[](const crash_report_msg&) {},
              [this](const unresponsive_msg& m) { told.push_back(m); }, [](const restart_msg&) {}};
    });
    bus = sys->spawn([this](event_bus_actor::pointer) -> event_bus_actor::behavior_type {
      return {[this](publish_msg& m) {
                for (auto& e : m.events) published.push_back(e);
              },
              [](subscribe_msg&) {}, [](const unsubscribe_msg&) {}};
    });
    monitor = sys->spawn(monitor_impl, setup, events, std::make_shared<worker_gauges>(1),
                         std::make_shared<admission_gate>(setup->cfg), bus);
    caf::anon_send(monitor, supervisor);
    caf::anon_send(monitor, worker_state_msg{0, "up", 0, 1});
    sched->run();
  }

  void TearDown() override {
    for (auto a : {caf::actor_cast<caf::actor>(monitor), caf::actor_cast<caf::actor>(supervisor),
                   caf::actor_cast<caf::actor>(bus)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
  }

  /// Moves the actor clock by steps of one heartbeat interval, running what each step brings.
  void pass(std::chrono::milliseconds total, bool heartbeats = false) {
    for (auto t = 0ms; t < total; t += 100ms) {
      if (heartbeats) caf::anon_send(monitor, work_report_msg{0, 1, 1, 1000, false});
      sched->run();
      sched->advance_time(100ms);
      sched->run();
    }
  }

  size_t count(const std::string& topic) const {
    size_t n = 0;
    for (auto& e : published) n += e.topic == topic;
    return n;
  }
};

}  // namespace

TEST_F(Monitor, ASilentWorkerIsReportedOnceAfterTheTimeout) {
  pass(900ms);
  EXPECT_TRUE(told.empty()) << "reported before the timeout";
  EXPECT_EQ(count("worker.degraded"), 1u) << "a late heartbeat is a warning first";
  pass(300ms);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].worker, 0);
  EXPECT_EQ(told[0].generation, 1u);
  EXPECT_GT(told[0].silent_ms, 1000.0);
  pass(2000ms);
  EXPECT_EQ(told.size(), 1u) << "reported again";
}

TEST_F(Monitor, AWorkerThatKeepsReportingIsNeverReported) {
  pass(3000ms, true);
  EXPECT_TRUE(told.empty());
  EXPECT_EQ(count("worker.degraded"), 0u);
}

TEST_F(Monitor, AReplacedWorkersLateReportDoesNotCountAsAHeartbeat) {
  caf::anon_send(monitor, worker_state_msg{0, "up", 1, 2});  // generation 2 replaced 1
  sched->run();
  for (int i = 0; i < 12; ++i) {
    caf::anon_send(monitor, work_report_msg{0, 1, 1, 1000, false});  // the old generation
    sched->run();
    sched->advance_time(100ms);
    sched->run();
  }
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].generation, 2u);
}
