#pragma once
// device_worker: one per CPU slot and one per GPU, detached (its own thread: kernels and GPU
// synchronisation block it, never a scheduler thread). Runs its assigned tasks in order with the
// kind's implementation for its device, reports results in batches (at the end of a batch, or
// every millisecond during a long one), and heartbeats the monitor. On a GPU it merges batchable
// tasks (same batch key) into one launch. An implementation that throws crashes the worker on
// purpose: it reports what it was running and quits, and its supervisor restarts it (or retires
// it, when the GPU context is poisoned).
#include "troupe/actors/core.hpp"
#include "troupe/actors/messages.hpp"

namespace troupe {

struct device_worker_state {
  static inline const char* name = "device_worker";
  runtime_core* core = nullptr;
  int32_t index = -1;
  uint32_t generation = 0;
  balancer_actor balancer;
  monitor_actor monitor;
  supervisor_actor supervisor;
  event_bus_actor bus;
  std::vector<assignment> waiting;  ///< batchable tasks waiting for company (CUDA workers)
  bool flush_armed = false;
  time_point last_launch_end{};  ///< end of the last batched launch: recent means busy
  uint64_t tasks_since_report = 0;
  int64_t busy_ns_since_report = 0;
};

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, runtime_core* core, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus);

}  // namespace troupe
