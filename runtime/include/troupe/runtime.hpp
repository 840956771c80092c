#pragma once
// The embedding API: a runtime in your process, all local CPU cores by default.
//
//   troupe::runtime rt{troupe::runtime_config{}};
//   auto h = rt.submit({.kind = "gemm", .params = {{"size", int64_t{256}}}});
//   const troupe::task_result& r = h.get();   // or a callback, or h.wait_for(...)
//
// No CAF type appears here: the actors live behind the pimpl.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/completion.hpp"
#include "troupe/model/config.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/model/events.hpp"
#include "troupe/model/graph.hpp"
#include "troupe/model/registry.hpp"
#include "troupe/model/stats.hpp"
#include "troupe/model/task.hpp"

namespace caf {
class actor_system;
}

namespace troupe {

using result_callback = std::function<void(const task_result&)>;

enum class shutdown_mode { drain, cancel };

class runtime {
 public:
  /// Own actor system, built from the config (after troupe::resolve()).
  explicit runtime(runtime_config cfg = {});
  /// Attached to the caller's actor system: the runtime spawns its actors there.
  runtime(caf::actor_system& system, runtime_config cfg);
  static std::unique_ptr<runtime> from_file(const std::string& path);
  ~runtime();  ///< shutdown(drain) if not done yet
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Built-in kinds are registered; add your own here (before or while submitting).
  task_registry& registry();
  const runtime_config& config() const;
  /// The GPUs found at start (with why there are none, if so).
  const gpu_inventory& gpus() const;

  /// Validates (kind, parameters, resource needs, deadline), admits against the queue bound and
  /// hands the task to the queue. Never throws for bad input: the handle says what was wrong.
  task_handle submit(task_spec spec, result_callback on_done = {});
  /// Same, in one message to the queue; handles are in the order of the specs.
  std::vector<task_handle> submit_batch(std::vector<task_spec> specs, result_callback on_done = {});
  /// A task graph (docs/graphs.md): names, `after` edges, inputs from parents' outputs. Checked
  /// whole (names, edges, cycles, each task as submit() would) and admitted whole, or refused
  /// whole: then every handle ended rejected and refused() says why. on_done runs per task.
  graph_handle submit_graph(graph_spec graph, result_callback on_done = {});
  /// A gang (docs/reservations.md): tasks placed on distinct workers all at once or not at all,
  /// e.g. a step over several GPUs. The balancer holds them until enough workers are free at
  /// the same moment (it stops giving those workers other tasks meanwhile). A gang runs once,
  /// whole: a member that fails, expires or is cancelled ends the others cancelled with
  /// errc::upstream_failed, nothing is retried. Refused whole (every handle rejected, naming
  /// why) when no set of this runtime's workers could ever hold it, or a task is preemptible
  /// or has graph links. Handles in the order of the specs.
  std::vector<task_handle> submit_gang(std::vector<task_spec> tasks, result_callback on_done = {});
  /// Cancels every unfinished task of the graph (those waiting end cancelled too).
  void cancel(const graph_handle& graph);
  /// Cancels a queued or running task (a running implementation may poll its context). Unknown
  /// or finished ids are ignored. Asynchronous: the task's handle reports the outcome.
  void cancel(task_id id);

  /// Events whose topic starts with prefix ("" for all, "task.", "worker.down"). The callback
  /// runs on the runtime's event thread; keep it short. Returns an id for unsubscribe().
  uint64_t subscribe(std::string prefix, event_callback callback);
  void unsubscribe(uint64_t id);

  /// Counters, latency percentiles per kind, per-worker load. Asks the monitor (not a hot path).
  runtime_stats stats();

  /// drain: stop accepting, finish everything admitted. cancel: stop accepting, cancel what is
  /// queued or running. Then stop the actors. Idempotent.
  void shutdown(shutdown_mode mode = shutdown_mode::drain);
  /// Waits until every admitted task has finished, or the timeout passes. True if idle.
  bool wait_idle(std::chrono::milliseconds timeout);

 private:
  friend class head;  // a head is a runtime whose workers include those of node processes
  runtime(runtime_config cfg, std::vector<worker_desc> remote_workers);
  void start_triggers();  ///< [[triggers]] of the config
  /// A subscription whose callback runs on the event bus's thread (it must never block): the
  /// head's publisher. Returns its id.
  uint64_t subscribe_direct(std::string prefix, event_callback callback);
  /// Counts events that were lost on their way to subscribers (stats, metrics).
  void count_dropped_events(uint64_t n);
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
