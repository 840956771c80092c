#pragma once
// A troupe::runtime attached to an actor system that runs on CAF's deterministic test
// coordinator: nothing runs until the test says so, and timers fire when the test advances the
// clock. Workers and the event bus run on that scheduler too (detached_workers = false).
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <memory>
#include <vector>

#include "test_system.hpp"
#include "troupe/runtime.hpp"

namespace troupe::testing {

class deterministic_runtime : public ::testing::Test {
 protected:
  void start(runtime_config rc) {
    sched_ = &start_test_system(caf_cfg_, sys_);
    rc.detached_workers = false;
    if (rc.cpu_workers == 0) rc.cpu_workers = 1;
    if (rc.worker_memory_bytes == 0) rc.worker_memory_bytes = uint64_t(1) << 30;
    rc.log_level = "off";
    rt_ = std::make_unique<runtime>(*sys_, rc);
    rt_->subscribe("", [this](const event& e) { events_.push_back(e); });
    sched_->run();
  }

  /// Runs every ready message; when none is left and the predicate still fails, fires the next
  /// timer. Bounded: gives up after max_timers timers.
  template <class Pred>
  bool run_until(Pred done, int max_timers = 200) {
    for (int fired = 0;; ++fired) {
      sched_->run();
      if (done()) return true;
      if (fired >= max_timers || !sched_->trigger_timeout()) return done();
    }
  }

  bool all_ready(const std::vector<task_handle>& hs) {
    return run_until([&] {
      for (auto& h : hs)
        if (!h.ready()) return false;
      return true;
    });
  }

  size_t count_events(const std::string& topic, int32_t worker = -2) const {
    size_t n = 0;
    for (auto& e : events_) n += e.topic == topic && (worker == -2 || e.worker == worker);
    return n;
  }

  void TearDown() override {
    if (!rt_) return;
    sched_->run();
    rt_->shutdown(shutdown_mode::drain);  // all tasks have ended: returns at once
    sched_->run();
    rt_.reset();
    sched_->run();
    sys_.reset();
  }

  static task_spec spec(std::string kind, param_map params = {}) {
    task_spec s;
    s.kind = std::move(kind);
    s.params = std::move(params);
    return s;
  }

  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::unique_ptr<runtime> rt_;
  std::vector<event> events_;
};

}  // namespace troupe::testing
