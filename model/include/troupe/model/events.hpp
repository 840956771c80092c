#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "troupe/model/params.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

/// One state change. Topics (docs/protocol.md has the catalogue): task.submitted, task.queued,
/// task.placed, task.started, task.retrying, task.preempted, task.completed, task.failed,
/// task.cancelled, task.expired, worker.up, worker.down, worker.restarting, worker.degraded,
/// node.joined, node.suspect, node.left, queue.rejected, queue.pressure, metrics.snapshot.
struct event {
  uint64_t seq = 0;     ///< per publisher, gap-free
  int64_t time_ns = 0;  ///< system clock, ns since the epoch
  std::string topic;
  task_id task = 0;     ///< 0 if the event concerns no task
  int32_t worker = -1;  ///< -1 if it concerns no worker
  std::string detail;   ///< kind, error message, reason
  std::string node;     ///< the node it concerns (node.* events), else empty
  std::string kind;     ///< the task's kind (task.* and queue.rejected events), else empty
  /// Figures as structured values, with flat dotted keys (metrics.snapshot: "throughput_tps",
  /// "worker.cpu-0.utilisation", "latency_ms.gemm.p99", ...); empty for most events. On the wire
  /// a MessagePack map.
  param_map values;
  /// The head that published it (its incarnation, a new number each time it starts); 0 for the
  /// events of an embedded runtime. Sequence numbers start again at 1 with each incarnation.
  uint64_t incarnation = 0;
};

using event_callback = std::function<void(const event&)>;

}  // namespace troupe
