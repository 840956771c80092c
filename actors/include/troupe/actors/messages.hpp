#pragma once
// Messages between the actors of one process, and the actors' typed interfaces.
//
// In-process messages hand task records (task_ptr) from actor to actor; they never leave the
// process (the wire schema, MessagePack, lives in transport/), hence CAF_ALLOW_UNSAFE_MESSAGE_TYPE.
// The hot path carries batches: one message moves many tasks.
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <optional>
#include <string>
#include <vector>

#include "troupe/actors/event_gate.hpp"
#include "troupe/actors/runtime_setup.hpp"
#include "troupe/actors/worker_gauges.hpp"
#include "troupe/model/events.hpp"
#include "troupe/model/stats.hpp"
#include "troupe/model/task_state.hpp"

namespace troupe {

struct assignment {
  task_ptr task;
  uint32_t attempt = 0;  ///< copied so a worker never reads queue-owned fields
  double order = 0;      ///< the queue's order key (smaller runs sooner), copied likewise
  bool urgent = false;   ///< the balancer's: placed past the worker's credit (place_urgent)
};

// runtime -> queue
struct submit_msg {
  std::vector<task_ptr> tasks;
};
struct cancel_msg {
  task_id id = 0;
};
struct cancel_all_msg {
  errc reason = errc::cancelled;
  std::string message;
};
// queue -> queue (timers)
struct retry_msg {
  task_ptr task;
};
struct deadline_tick_msg {};
/// balancer -> itself: a reservation starts or ends now (reservations.hpp).
struct reservation_tick_msg {};
// queue <-> balancer
struct demand_msg {
  uint32_t tasks = 0;
};
struct dispatch_msg {
  std::vector<assignment> tasks;
  /// Beyond the demand: more urgent than tasks already handed to workers. The balancer places
  /// them past a worker's credit, and the worker runs them before what it holds.
  bool urgent = false;
};
struct completions_msg {
  std::vector<attempt_record> records;
};
// balancer -> worker, worker -> balancer
struct assign_msg {
  std::vector<assignment> tasks;
};
struct results_msg {
  int32_t worker = -1;
  uint32_t generation = 0;  ///< fencing: results of a replaced worker never touch the ledger
  std::vector<attempt_record> records;
};
// worker -> monitor: proof of life and work done since the last report
struct work_report_msg {
  int32_t worker = -1;
  uint32_t generation = 0;
  uint64_t tasks = 0;
  int64_t busy_ns = 0;
  bool busy = false;
};
struct heartbeat_tick_msg {};
struct batch_flush_msg {};  ///< a worker's own timer: run the tasks waiting to be batched
/// A GPU worker's lane -> its worker: launch `job` has finished (its outcome is in the job).
struct gpu_done_msg {
  uint64_t job = 0;
};
/// A CPU worker's runner thread -> its worker, and the worker's own timers: an attempt whose
/// time limit is near began, its limit passed, the grace after it passed, or the implementation
/// threw. Timers carry no task record: an attempt's details stay with the runner.
struct runner_msg {
  enum class what : uint8_t { began, limit_passed, grace_passed, crashed };
  what event = what::began;
  uint64_t run = 0;  ///< the attempt's number on this worker
  task_id task = 0;  ///< crashed: the task whose implementation threw
  std::string text;  ///< crashed: what was thrown
};
// worker -> supervisor, right before it quits because an implementation threw
struct crash_report_msg {
  int32_t worker = -1;
  uint32_t generation = 0;
  task_id task = 0;
  std::string what;
  time_point at{};
  bool device_lost = false;           ///< the GPU context is poisoned: no restart can use it again
  std::vector<task_id> also_running;  ///< see worker_lost_msg
};
// supervisor -> balancer / monitor
struct worker_up_msg;
struct worker_lost_msg {
  int32_t worker = -1;
  uint32_t generation = 0;
  task_id crashed_task = 0;  ///< 0 if the worker died between tasks or was killed
  std::string reason;
  time_point at{};
  bool retired = false;  ///< no replacement will come: tasks only it could run must fail
  /// Other tasks that were running when it crashed (a GPU worker's other lanes, the rest of a
  /// batch): they ran, so they are charged an attempt too. With a poisoned context any of them
  /// may be the culprit.
  std::vector<task_id> also_running;
};
struct worker_state_msg {
  int32_t worker = -1;
  std::string state;  ///< up, restarting, down
  uint32_t restarts = 0;
  uint32_t generation = 0;
};
// monitor -> supervisor
struct unresponsive_msg {
  int32_t worker = -1;
  uint32_t generation = 0;
  double silent_ms = 0;
};
struct restart_msg {
  int32_t worker = -1;
};
struct monitor_tick_msg {};
struct metrics_tick_msg {};
// queue -> monitor
struct finished_record {
  const std::string* kind = nullptr;  ///< points into the registry, which never drops kinds
  outcome status = outcome::pending;
  uint32_t attempts = 0;
  int64_t latency_ns = 0;
  time_point submitted{}, finished{};
};
struct finished_msg {
  std::vector<finished_record> records;
  std::vector<double> detection_ms, handling_ms;
  std::vector<double> recovery_ms;  ///< first failure known -> completed, per recovered task
  uint64_t retries = 0, duplicates = 0;
  uint64_t preempted = 0;  ///< attempts stopped for a more urgent task, queued again
  uint64_t queued = 0;     ///< depth of the ready queue after this batch
};
struct stats_request {};
// anyone -> event bus
struct publish_msg {
  std::vector<event> events;
};
struct subscribe_msg {
  uint64_t id = 0;
  std::string prefix;
  event_callback callback;
  /// false: the callback runs on a thread of its own, behind a bounded queue, so a slow one
  /// loses events (a gap in seq) instead of holding the bus. true: on the bus's thread (the
  /// head's publisher only: it must never block).
  bool direct = false;
};
struct unsubscribe_msg {
  uint64_t id = 0;
};
// supervisor -> queue: restart intensity exceeded
struct escalate_msg {
  std::string reason;
};

using event_bus_actor = caf::typed_actor<caf::reacts_to<publish_msg>, caf::reacts_to<subscribe_msg>,
                                         caf::reacts_to<unsubscribe_msg>>;

using worker_actor =
    caf::typed_actor<caf::reacts_to<assign_msg>, caf::reacts_to<heartbeat_tick_msg>,
                     caf::reacts_to<batch_flush_msg>, caf::reacts_to<gpu_done_msg>,
                     caf::reacts_to<runner_msg>>;

using supervisor_actor =
    caf::typed_actor<caf::reacts_to<crash_report_msg>, caf::reacts_to<unresponsive_msg>,
                     caf::reacts_to<restart_msg>>;

using monitor_actor =
    caf::typed_actor<caf::reacts_to<finished_msg>, caf::reacts_to<work_report_msg>,
                     caf::reacts_to<worker_state_msg>, caf::reacts_to<monitor_tick_msg>,
                     caf::reacts_to<metrics_tick_msg>, caf::reacts_to<supervisor_actor>,
                     caf::replies_to<stats_request>::with<runtime_stats>>;

/// The kinds a remote worker runs, by registry index (kind_entry::index).
using kind_set = std::shared_ptr<const std::vector<bool>>;

struct worker_up_msg {
  int32_t worker = -1;
  uint32_t generation = 0;
  worker_actor handle;
  /// A remote worker's capacity as its node reports it; local workers keep the layout's.
  std::optional<worker_capacity> capacity;
  /// A remote worker: the kinds its node runs on its device class (its hello). Null for a local
  /// worker, which runs what this process's registry implements for its device class. Sent
  /// again, same generation, when the node's kinds change.
  kind_set kinds;
};

using balancer_actor =
    caf::typed_actor<caf::reacts_to<dispatch_msg>, caf::reacts_to<results_msg>,
                     caf::reacts_to<worker_up_msg>, caf::reacts_to<worker_lost_msg>,
                     caf::reacts_to<reservation_tick_msg>>;

/// Whoever learns that a supervisor gave up: the queue in one process, the node agent in a node.
using escalation_actor = caf::typed_actor<caf::reacts_to<escalate_msg>>;

using queue_actor =
    caf::typed_actor<caf::reacts_to<submit_msg>, caf::reacts_to<cancel_msg>,
                     caf::reacts_to<cancel_all_msg>, caf::reacts_to<retry_msg>,
                     caf::reacts_to<deadline_tick_msg>, caf::reacts_to<demand_msg, balancer_actor>,
                     caf::reacts_to<completions_msg>, caf::reacts_to<escalate_msg>>;

/// Collects the events of one handler run and publishes them in one message, only if someone
/// subscribed.
class event_batch {
 public:
  event_batch() = default;
  explicit event_batch(const event_gate& gate) : gate_(&gate) {}
  ~event_batch() { report_skipped(); }
  event_batch(event_batch&&) = delete;
  void bind(const event_gate& gate) { gate_ = &gate; }
  /// Whether to build the next n events. While every subscriber is saturated it says no and
  /// counts them as skipped (so call it once per event, or pass how many).
  bool wanted(uint64_t n = 1) {
    if (!gate_) return false;
    if (gate_->active()) return true;
    if (gate_->subscribers.load(std::memory_order_relaxed) != 0) skipped_ += n;
    return false;
  }
  /// The event added, or nullptr when it is not wanted (then it is counted as skipped).
  event* add(std::string topic, task_id task = 0, int32_t worker = -1, std::string detail = {},
             std::string node = {});
  /// An event about a task: carries its kind (triggers match on it).
  event* add_task(std::string topic, const task_state& t, int32_t worker = -1,
                  std::string detail = {});
  /// Sends and clears; no-op when empty.
  template <class Self>
  void flush(Self* self, const event_bus_actor& bus) {
    report_skipped();
    if (events_.empty()) return;
    self->send(bus, publish_msg{std::move(events_)});
    events_.clear();
    now_ns_ = 0;
  }
  /// From a thread that is not an actor (a submitting caller).
  void flush_from_outside(const event_bus_actor& bus);

 private:
  void report_skipped() {
    if (skipped_ == 0) return;
    gate_->skipped.fetch_add(skipped_, std::memory_order_relaxed);
    skipped_ = 0;
  }
  const event_gate* gate_ = nullptr;
  std::vector<event> events_;
  uint64_t skipped_ = 0;
  /// One clock reading per batch: the events of one handler happen at one instant, and reading
  /// the clock per event cost ~5% of scheduling with a subscriber attached.
  int64_t now_ns_ = 0;
};

/// What the supervisor hands every worker it spawns: the runtime's setup, the event gate, and
/// the gauges a GPU worker writes.
struct worker_env {
  setup_ptr setup;
  std::shared_ptr<const event_gate> gate;
  std::shared_ptr<worker_gauges> gauges;
};

/// What every worker actor (device_worker, cuda_worker) knows and counts: its place, the actors
/// it reports to, and the work done since its last report to the monitor.
struct worker_links {
  setup_ptr setup;
  std::shared_ptr<const event_gate> gate;
  std::shared_ptr<worker_gauges> gauges;  ///< a GPU worker writes its own memory figures
  int32_t index = -1;
  uint32_t generation = 0;
  balancer_actor balancer;
  monitor_actor monitor;
  supervisor_actor supervisor;
  event_bus_actor bus;
  uint64_t tasks_since_report = 0;
  int64_t busy_ns_since_report = 0;

  void link(const worker_env& env, int32_t i, uint32_t g, balancer_actor b, monitor_actor m,
            supervisor_actor s, event_bus_actor e) {
    setup = env.setup, gate = env.gate, gauges = env.gauges, index = i, generation = g;
    balancer = std::move(b), monitor = std::move(m), supervisor = std::move(s), bus = std::move(e);
  }
};

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::submit_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::cancel_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::cancel_all_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::retry_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::deadline_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::reservation_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::demand_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::dispatch_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::completions_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::assign_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::results_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::work_report_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::heartbeat_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::batch_flush_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::gpu_done_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::runner_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::crash_report_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::worker_lost_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::worker_up_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::worker_state_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::unresponsive_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::restart_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::monitor_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::metrics_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::finished_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::stats_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::runtime_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::publish_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::subscribe_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::unsubscribe_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::escalate_msg)
