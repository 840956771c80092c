#pragma once
// cpu_worker: one per CPU slot, detached (its own thread: kernels block). Runs its assigned tasks
// in order, reports results in batches (at the end of a batch, or every millisecond during a long
// one), and heartbeats the monitor. An implementation that throws crashes the worker on purpose:
// it reports what it was running and quits, and its supervisor restarts it.
#include "troupe/actors/core.hpp"
#include "troupe/actors/messages.hpp"

namespace troupe {

struct cpu_worker_state {
  static inline const char* name = "cpu_worker";
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

worker_actor::behavior_type cpu_worker_impl(worker_actor::stateful_pointer<cpu_worker_state> self,
                                            runtime_core* core, int32_t index, uint32_t generation,
                                            balancer_actor balancer, monitor_actor monitor,
                                            supervisor_actor supervisor, event_bus_actor bus);

}  // namespace troupe
