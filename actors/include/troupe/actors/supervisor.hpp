#pragma once
// supervisor: spawns the workers, watches them, restarts a dead one (one_for_one) within a
// restart intensity (N restarts in T) with exponential backoff, and triggers reclamation: the
// balancer gets the dead worker's tasks back and releases its reservations. Past the intensity it
// escalates: the runtime stops accepting and fails what it holds with supervisor_gave_up.
// It does nothing else: no scheduling, no I/O.
#include <deque>
#include <optional>
#include <vector>

#include "troupe/actors/messages.hpp"
#include "troupe/model/restart_intensity.hpp"

namespace troupe {

struct supervisor_state {
  static inline const char* name = "supervisor";
  struct child {
    worker_actor handle;
    uint32_t generation = 0;
    uint32_t restarts = 0;
    crash_report_msg last_crash;
    bool alive = false;
  };
  worker_env env;                        ///< what each worker it spawns gets
  const runtime_setup* setup = nullptr;  ///< env.setup
  const event_gate* gate = nullptr;      ///< env.gate
  balancer_actor balancer;
  monitor_actor monitor;
  escalation_actor escalation;
  event_bus_actor bus;
  std::vector<child> children;
  std::optional<restart_intensity> budget;  ///< restarts of any child within the window
  bool escalated = false;
};

supervisor_actor::behavior_type supervisor_impl(
    supervisor_actor::stateful_pointer<supervisor_state> self, worker_env env,
    balancer_actor balancer, monitor_actor monitor, escalation_actor escalation,
    event_bus_actor bus);

}  // namespace troupe
