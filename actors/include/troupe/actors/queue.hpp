#pragma once
// queue: admission, ordering (queue.order: fifo, priority with aging, earliest deadline,
// shortest estimated, fair share between clients), retries with backoff, deadlines while
// queued, cancellation, a dead-letter list, and idempotent completion: the first terminal record
// of a task wins, later ones are counted and dropped. It answers the balancer's demand, never
// pushing more than was asked for.
#include <deque>
#include <limits>
#include <memory>
#include <queue>
#include <unordered_map>

#include "troupe/actors/admission_gate.hpp"
#include "troupe/actors/messages.hpp"
#include "troupe/model/live_index.hpp"
#include "troupe/model/perf_model.hpp"
#include "troupe/model/ready_queue.hpp"

namespace troupe {
class callback_runner;

struct queue_state {
  static inline const char* name = "queue";
  setup_ptr setup;
  std::shared_ptr<const event_gate> gate;
  std::shared_ptr<admission_gate> admission;  ///< gets places back as tasks end
  /// Where tasks whose submitter gave a callback go; null: run them inline (tests that drive
  /// the queue actor alone).
  std::shared_ptr<callback_runner> callbacks;
  monitor_actor monitor;
  event_bus_actor bus;
  balancer_actor balancer;
  std::unique_ptr<ready_queue> ready;
  /// Run times by kind, from the records that come back: what "shortest first" orders by.
  perf_model model;
  live_index live;
  uint32_t demand = 0;  ///< tasks the balancer asked for and has not received
  /// The largest order key handed to the balancer: a task that arrives with a smaller one is
  /// more urgent than tasks already on their way to workers.
  double frontier = -std::numeric_limits<double>::infinity();
  /// Urgent tasks handed out beyond the demand and not back yet: at most two per worker (one
  /// running, the next one waiting behind it), so that a burst of urgent tasks cannot flood
  /// the workers past their credit.
  uint32_t urgent_out = 0;
  std::deque<task_id> dead_letters;  ///< failed for good, most recent last (bounded)
  // Deadlines: earliest first; a single timer is armed for the earliest.
  using deadline_entry = std::pair<time_point, task_ptr>;
  struct later {
    bool operator()(const deadline_entry& a, const deadline_entry& b) const {
      return a.first > b.first;
    }
  };
  std::priority_queue<deadline_entry, std::vector<deadline_entry>, later> deadlines;
  time_point timer_at = time_point::max();
  bool escalated = false;
  std::string escalation;
  finished_msg report;  ///< filled during a handler, sent to the monitor at its end
};

queue_actor::behavior_type queue_impl(queue_actor::stateful_pointer<queue_state> self,
                                      setup_ptr setup, std::shared_ptr<const event_gate> gate,
                                      std::shared_ptr<admission_gate> admission,
                                      std::shared_ptr<callback_runner> callbacks,
                                      monitor_actor monitor, event_bus_actor bus);

}  // namespace troupe
