#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct latency_summary {
  uint64_t count = 0;
  double mean_ms = 0, p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
};

struct worker_stats {
  int32_t index = -1;
  std::string name;
  std::string device;  ///< "cpu" or "cuda:N"
  std::string state;   ///< starting, idle, busy, restarting, down
  uint64_t tasks = 0;  ///< attempts run
  double busy_s = 0;   ///< time spent inside implementations
  uint32_t restarts = 0;
  double heartbeat_age_ms = 0;
  /// GPU workers: memory in bytes. capacity: what tasks may reserve (total - headroom - cache);
  /// reserved: by the tasks assigned there now; in_use: allocated by running tasks (the pool);
  /// cache: model weights and generated inputs; device_used/total: the whole GPU, all
  /// processes, from `device_source` ("nvml", "cuda", or "" before the first sample).
  struct gpu_memory_figures {
    uint64_t capacity = 0, reserved = 0, in_use = 0, cache = 0, device_used = 0, device_total = 0;
    std::string device_source;
  };
  std::optional<gpu_memory_figures> gpu_memory;
};

/// One [reservations.NAME] now (docs/reservations.md).
struct reservation_stats {
  std::string name;
  std::vector<std::string> workers;
  std::vector<std::string> clients;  ///< empty: any client
  bool active = false;               ///< holding its workers now
  /// Of its workers: running a task now, and held but idle (unused capacity; 0 when inactive).
  uint32_t busy = 0, idle = 0;
  double starts_in_s = 0, ends_in_s = -1;  ///< 0: started; -1: never ends
};

struct runtime_stats {
  uint64_t submitted = 0, rejected = 0, completed = 0, failed = 0, cancelled = 0, expired = 0;
  uint64_t retries = 0;    ///< attempts beyond the first
  uint64_t preempted = 0;  ///< attempts stopped for a more urgent task (the task queued again)
  uint64_t duplicates_dropped = 0;  ///< terminal records after the first (idempotent completion)
  uint64_t queued = 0, in_flight = 0;
  uint64_t errors_detected = 0;
  /// Events lost on the way to subscribers: an in-process subscriber past its high-water mark
  /// (monitor.subscriber_high_water), or the head's PUB thread full. (What ZeroMQ drops per
  /// remote subscriber at cluster.event_high_water, each subscriber sees as a gap.)
  uint64_t events_dropped = 0;
  double mean_error_detection_ms = 0;  ///< failure inside the worker -> queue knows of it
  double mean_error_handling_ms = 0;   ///< queue knows -> next attempt started (or final record)
  /// Recovery: a task's first failed attempt known -> the task completed anyway (retried), mean
  /// over such tasks, and how many.
  double mean_recovery_ms = 0;
  uint64_t recovered = 0;
  uint64_t attempts = 0;        ///< of the tasks that ended (the error rate's denominator)
  double sum_completion_s = 0;  ///< over the tasks that ended: submit -> terminal record
  double uptime_s = 0;
  double busy_window_s = 0;                        ///< first submit to last terminal record
  std::map<std::string, latency_summary> latency;  ///< submit -> terminal record, by kind
  std::vector<worker_stats> workers;
  std::vector<reservation_stats> reservations;
};

/// The figures of the seed's performance model, from a run's stats (plain arithmetic, shared by
/// `troupe run` and `troupe status`).
struct schedule_figures {
  double makespan_s = 0, throughput_tps = 0, sum_completion_s = 0;
  std::map<std::string, double>
      utilisation;        ///< per device class ("cpu", "cuda"): busy / (makespan x workers)
  double error_rate = 0;  ///< P_e: failed attempts / attempts
  double detection_ms = 0, handling_ms = 0, recovery_ms = 0;  ///< T_d, T_h, T_r (means)
  /// 1 / (P_e * T_d + T_h), T in seconds; none without any error (nothing to divide by).
  std::optional<double> efficiency;
  /// No schedule finishes sooner: the larger of work / workers and the longest task (the
  /// critical path of tasks without dependencies), named in lower_bound_is.
  double lower_bound_s = 0;
  std::string lower_bound_is;
};

/// longest_task_s: the longest single run (0 if not known).
schedule_figures figures_of(const runtime_stats& s, double makespan_s, double longest_task_s = 0);

}  // namespace troupe
