#pragma once
// The runtime's record of one accepted task. It is handed from actor to actor with the messages
// (queue -> balancer -> worker -> balancer -> queue), so exactly one actor touches the mutable
// fields at a time; only cancel_requested is shared, hence atomic.
#include <atomic>
#include <functional>
#include <memory>

#include "troupe/model/completion.hpp"
#include "troupe/model/graph.hpp"
#include "troupe/model/registry.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

struct task_state;

/// The tasks of one graph submission as the queue tracks them (queue.cpp): built by the runtime
/// at submit, owned by the queue from then on.
struct graph_run {
  failure_policy on_failure = failure_policy::cancel_dependents;
  /// In submission order. They point back here: the queue clears this once all have ended.
  std::vector<std::shared_ptr<task_state>> members;
  std::vector<std::vector<uint32_t>> children;  ///< per member, the members that run after it
  std::vector<uint32_t> waiting;                ///< per member, its parents not ended yet
  size_t unfinished = 0;
};

struct task_state {
  task_id id = 0;
  const kind_entry* kind = nullptr;
  task_spec spec;
  double cost = 0;  ///< from the kind's validate(), in the kind's unit
  uint32_t max_retries = 0;
  std::chrono::milliseconds retry_backoff{0};
  completion done;
  std::shared_ptr<const std::function<void(const task_result&)>> callback;  ///< shared by a batch
  std::atomic<bool> cancel_requested{false};
  /// Shared between the balancer (asks) and a CPU worker (runs): the attempt running now (0:
  /// none; an abandoned attempt's thread cannot clear a later one's), and whether it was asked
  /// to make way for a more urgent task (preemption).
  std::atomic<uint32_t> running_attempt{0};
  std::atomic<bool> preempt_requested{false};

  // Owned by the queue.
  /// waiting: a graph task whose parents have not all ended (not in the ready queue yet).
  enum class place : uint8_t { queued, backoff, dispatched, waiting };
  place at = place::queued;
  uint32_t attempts = 0;
  uint32_t preemptions = 0;  ///< attempts stopped for a more urgent task (not counted above)
  bool finished = false;
  task_timings timings;
  error_info last_error;
  time_point failure_detected{};  ///< when the queue learned of the last failed attempt
  time_point first_failure{};     ///< when it learned of the first one (recovery time)
  /// Its failed attempts, oldest first (the last few): told with its final failure.
  std::vector<std::string> history;
  /// The worker its last attempt crashed on, was lost with or timed out on: the next attempt
  /// goes elsewhere when another worker can run it. -1: anywhere.
  int32_t avoid_worker = -1;
  /// Where the ready queue put it (smaller runs sooner): set at each push, copied into its
  /// assignment so that a worker orders what it holds the same way.
  double order_key = 0;
  /// Sent to the balancer beyond its demand because it is more urgent than what was already
  /// handed out (queue.cpp); counted until a record of it comes back.
  bool urgent = false;
  /// A graph task: its graph and its place in it; null for a plain task.
  std::shared_ptr<graph_run> graph;
  uint32_t graph_index = 0;
  /// A gang member (runtime::submit_gang): the id of its gang's first task and how many tasks
  /// the gang has; the balancer places them all at once (gang.hpp). 0: not in a gang. Set at
  /// submit, read-only afterwards.
  task_id gang = 0;
  uint32_t gang_size = 0;
  /// A graph child takes an input from its output: the node that runs it keeps the output
  /// (docs/graphs.md). Set at submit, read-only afterwards.
  bool feeds_inputs = false;
  /// Where each bound input came from (docs/graphs.md, "Where data moves"): the head holds every
  /// output, and a node keeps those of the tasks it ran (cluster.kept_output_bytes), so the
  /// head need not send them to that node, and the balancer counts what would move elsewhere.
  /// Set by the queue as the parent ends, before the task is placed; read by the balancer and
  /// membership afterwards.
  struct input_home {
    uint32_t input = 0;   ///< index into spec.inputs
    task_id parent = 0;   ///< whose output it is
    int32_t worker = -1;  ///< the worker that produced it
    uint64_t bytes = 0;   ///< what the bound value weighs
    /// The epoch of the node that produced it (0: the head's own worker): a node that has
    /// restarted since keeps none of it, so it is neither bound there nor fetched from there.
    uint64_t epoch = 0;
  };
  std::vector<input_home> input_homes;
  /// A node did not have an output it was told it keeps (evicted, restarted): from now on the
  /// head sends this task's inputs whole. Membership's.
  bool inputs_inline = false;
  /// On the head: the epoch of the node that ran the task's last attempt (0: the head's own
  /// worker), beside timings.worker. The queue's, as the children's input_homes.
  uint64_t output_epoch = 0;
  /// On a node: the head asked it to keep this task's output for a child's input.
  bool keep_output = false;

  // Owned by the balancer while placed.
  double estimate_s = 0;
};

using task_ptr = std::shared_ptr<task_state>;

/// One attempt's outcome, produced by a worker (or by reclamation when the worker died).
struct attempt_record {
  task_ptr task;
  uint32_t attempt = 0;
  int32_t worker = -1;
  errc code = errc::none;
  std::string message;
  task_output output;
  time_point started{};
  time_point finished{};
  bool counts_as_attempt = true;  ///< false: the task never started (requeued from a lost worker)
  uint64_t node_epoch = 0;  ///< the epoch of the node that reported it (0: a head-local worker)
};

}  // namespace troupe
