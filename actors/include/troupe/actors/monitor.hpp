#pragma once
// monitor: the live view. Worker heartbeats and load, throughput, latency percentiles per kind,
// error detection and handling times. Reports silent workers to the supervisor.
#include <map>
#include <vector>

#include "troupe/actors/admission_gate.hpp"
#include "troupe/actors/messages.hpp"
#include "troupe/model/histogram.hpp"

namespace troupe {

struct monitor_state {
  static inline const char* name = "monitor";
  struct worker_view {
    uint32_t generation = 0;
    std::string state = "starting";
    time_point last_heard{};
    uint64_t tasks = 0;
    int64_t busy_ns = 0;
    uint32_t restarts = 0;
    bool reported_silent = false;
    bool reported_late = false;            ///< worker.degraded sent for this silence
    std::vector<time_point> restarted_at;  ///< within the restart period (supervision)
  };
  setup_ptr setup;
  std::shared_ptr<const event_gate> gate;
  std::shared_ptr<const worker_gauges> gauges;      ///< GPU memory figures
  std::shared_ptr<const admission_gate> admission;  ///< queue depth, submitted, rejected
  event_bus_actor bus;
  supervisor_actor supervisor;
  uint64_t finished_at_last_metrics = 0;
  time_point last_metrics{};
  std::vector<worker_view> workers;
  std::map<std::string, latency_histogram> latency;
  runtime_stats totals;        ///< counters only; the rest is computed on request
  bool pressure_high = false;  ///< the last queue.pressure said "high"
  double detection_sum_ms = 0, handling_sum_ms = 0, recovery_sum_ms = 0;
  uint64_t detection_n = 0, handling_n = 0;
  time_point started = clock::now();
  time_point first_submit{}, last_finish{};
};

monitor_actor::behavior_type monitor_impl(monitor_actor::stateful_pointer<monitor_state> self,
                                          setup_ptr setup, std::shared_ptr<const event_gate> gate,
                                          std::shared_ptr<const worker_gauges> gauges,
                                          std::shared_ptr<const admission_gate> admission,
                                          event_bus_actor bus);

}  // namespace troupe
