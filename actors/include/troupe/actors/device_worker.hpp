#pragma once
// device_worker: one per CPU slot, detached (its own thread: kernels block it, never a scheduler
// thread). Runs its assigned tasks in order with the kind's CPU implementation, reports results
// in batches (at the end of a batch, or every millisecond during a long one), and heartbeats the
// monitor. An implementation that throws crashes the worker on purpose: it reports what it was
// running and quits, and its supervisor restarts it. GPUs have their own actor: cuda_worker.
#include "troupe/actors/messages.hpp"

namespace troupe {

struct device_worker_state : worker_links {
  static inline const char* name = "device_worker";
};

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, worker_env env, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus);

}  // namespace troupe
