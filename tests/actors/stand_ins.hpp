#pragma once
// Stand-ins for an actor's neighbours in the tests of one actor: they take every message of the
// real one's interface and keep what the test wants to look at.
#include <caf/all.hpp>
#include <chrono>
#include <functional>

#include "troupe/actors/messages.hpp"

namespace troupe::testing {

/// An event bus that drops everything.
inline event_bus_actor spawn_silent_bus(caf::actor_system& sys) {
  return sys.spawn([](event_bus_actor::pointer) -> event_bus_actor::behavior_type {
    return {[](publish_msg&) {}, [](subscribe_msg&) {}, [](const unsubscribe_msg&) {}};
  });
}

/// A monitor that answers stats requests with empty stats and hands finished records to
/// `on_finished`, if given.
inline monitor_actor spawn_stand_in_monitor(
    caf::actor_system& sys, std::function<void(const finished_msg&)> on_finished = {}) {
  return sys.spawn([on_finished](monitor_actor::pointer) -> monitor_actor::behavior_type {
    return {[on_finished](const finished_msg& m) {
              if (on_finished) on_finished(m);
            },
            [](const work_report_msg&) {},
            [](const worker_state_msg&) {},
            [](const monitor_tick_msg&) {},
            [](const metrics_tick_msg&) {},
            [](supervisor_actor&) {},
            [](const stats_request&) { return runtime_stats{}; }};
  });
}

/// Moves the test clock forward by `total` in steps of `step`, running what each step makes due
/// (timers that re-arm themselves fire once per step, as they would in real time).
inline void let_time_pass(caf::scheduler::test_coordinator& sched, std::chrono::milliseconds total,
                          std::chrono::milliseconds step) {
  for (auto t = std::chrono::milliseconds{0}; t < total; t += step) {
    sched.advance_time(step);
    sched.run();
  }
}

}  // namespace troupe::testing
