#pragma once
// balancer: placement. Workers pull: each has a credit (prefetch count and an estimated-work
// backlog); the balancer asks the queue only for what the workers have room for, never floods a
// mailbox, and reserves resources in the ledger so no worker is over-committed.
#include <deque>
#include <map>
#include <vector>

#include "troupe/actors/messages.hpp"
#include "troupe/model/ledger.hpp"
#include "troupe/model/perf_model.hpp"
#include "troupe/model/placement.hpp"

namespace troupe {

struct balancer_state {
  static inline const char* name = "balancer";
  struct worker_slot {
    worker_actor handle;
    uint32_t generation = 0;
    bool up = false;
    std::deque<assignment> in_flight;  ///< assigned, results pending, in assignment order
    double backlog_s = 0;              ///< estimated work of in_flight
    bool retired = false;              ///< out of service for good
    kind_set kinds;                    ///< a remote worker's kinds (worker_up_msg)
    size_t min_tasks = 2;  ///< credit floor, whatever the estimates: the worker never starves
    size_t urgent = 0;     ///< of in_flight, placed past the credit as urgent (place_urgent)
    /// Held for a waiting gang (the id of its first task): gets no other task until the gang is
    /// placed, so that enough workers are free at once. 0: not held.
    task_id held_for = 0;
  };
  setup_ptr setup;
  std::shared_ptr<const event_gate> gate;
  std::shared_ptr<worker_gauges> gauges;  ///< shows GPU reservations (status, metrics)
  queue_actor queue;
  event_bus_actor bus;
  std::vector<worker_slot> workers;
  resource_ledger ledger;
  perf_model model;
  std::deque<assignment> pending;  ///< received from the queue, not yet placed
  /// Gang members received, by gang (the id of its first task, so oldest first), until the
  /// whole gang is placed at once (place_gangs).
  std::map<task_id, std::vector<assignment>> gangs;
  bool tick_armed = false;                           ///< a reservation_tick_msg is on its way
  uint32_t requested = 0;                            ///< demanded from the queue, not yet received
  double typical_task_s = 1e-4;                      ///< recent estimate, sizes the demand
  placer placement{placement_policy::least_loaded};  ///< set from the config at start
};

balancer_actor::behavior_type balancer_impl(balancer_actor::stateful_pointer<balancer_state> self,
                                            setup_ptr setup, std::shared_ptr<const event_gate> gate,
                                            std::shared_ptr<worker_gauges> gauges,
                                            queue_actor queue, event_bus_actor bus);

}  // namespace troupe
