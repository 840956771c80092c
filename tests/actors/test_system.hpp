#pragma once
// An actor system on CAF's deterministic test coordinator: nothing runs until the test says so
// (run(), run_once()), and timers fire when the test moves the clock (advance_time()).
#include <caf/all.hpp>
#include <memory>

namespace troupe::testing {

inline caf::scheduler::test_coordinator& start_test_system(
    caf::actor_system_config& cfg, std::unique_ptr<caf::actor_system>& sys) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.console", caf::atom("none"));
  sys = std::make_unique<caf::actor_system>(cfg);
  return dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
}

}  // namespace troupe::testing
