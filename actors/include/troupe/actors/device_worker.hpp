#pragma once
// device_worker: one per CPU slot. The actor lives on the cooperative scheduler and owns a
// thread of its own, its runner, which runs the assigned tasks in order with the kind's CPU
// implementation (kernels block; a scheduler thread never runs one). Because the actor is never
// blocked by a task, it heartbeats the monitor whatever runs, so a task may take hours; and it
// enforces each attempt's timeout and deadline: past the limit it sets the attempt's stop flag
// (ctx.cancelled()); past workers.timeout_grace_ms more it abandons that runner thread (left to
// end on its own, its result dropped), reports the attempt, and hands the tasks waiting behind
// it to a fresh runner: the worker stays in service and no restart is charged. Results go to the
// balancer in batches (at the end of a batch, every millisecond of a long one, and at every
// heartbeat). An implementation that throws crashes the worker on purpose: it reports what it
// was running and quits, and its supervisor restarts it. GPUs have their own actor: cuda_worker.
//
// With workers.detached = false (deterministic tests) tasks run in the actor's handler and time
// limits are not enforced while they run.
#include <memory>

#include "troupe/actors/messages.hpp"

namespace troupe {

class cpu_runner;  // device_worker.cpp

struct device_worker_state : worker_links {
  static inline const char* name = "device_worker";
  std::shared_ptr<cpu_runner> runner;
  uint64_t armed_run = 0;  ///< the attempt whose limit timer is set
  uint32_t abandoned = 0;  ///< runner threads left behind, still inside a task
  ~device_worker_state();
};

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, worker_env env, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus);

}  // namespace troupe
