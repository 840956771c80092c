#pragma once
// Preemption (docs/preemption.md), without threads: which running attempt on a worker, if any,
// makes way for a task of higher priority or earlier deadline. The balancer asks as it places a
// task on a worker; the worker stops that attempt at its cancellation token and the queue takes
// the task back.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "troupe/model/config.hpp"
#include "troupe/model/task.hpp"
#include "troupe/model/task_state.hpp"

namespace troupe {

/// The orders under which a task may preempt another: priority (a higher priority) and
/// deadline (an earlier deadline). Under the others tasks wait their turn.
inline bool preempts_by(queue_order o) {
  return o == queue_order::priority || o == queue_order::deadline;
}

/// What preemption compares (smaller outranks): minus the priority, or the deadline (none: last).
/// Not the queue's order key: aging or a retry's kept arrival time must not make a task of the
/// same priority stop another.
inline double preemption_rank(const task_spec& s, queue_order o) {
  if (o == queue_order::priority) return -double(s.priority);
  if (!s.deadline) return std::numeric_limits<double>::infinity();
  return std::chrono::duration<double>(s.deadline->time_since_epoch()).count();
}

/// An attempt a worker holds, as preemption sees it.
struct held_attempt {
  double rank = 0;   ///< preemption_rank of its task (smaller outranks)
  double order = 0;  ///< its place in the worker's lane (the queue's order key; smaller first)
  bool running = false;
  bool preemptible = false;
  uint32_t preemptions = 0;  ///< times the task was preempted already
  bool asked = false;        ///< already asked to make way
};

/// How preemption sees attempt `running`-or-not of task t, held at order key `order`.
inline held_attempt held_attempt_of(const task_state& t, double order, bool running,
                                    queue_order o) {
  return held_attempt{preemption_rank(t.spec, o),
                      order,
                      running,
                      t.spec.preemptible,
                      t.preemptions,
                      t.preempt_requested.load(std::memory_order_relaxed)};
}

/// Attempt `attempt` of t no longer runs: the balancer must not pick it to make way. A later
/// attempt that runs now keeps its mark (an abandoned attempt's thread cannot clear it).
inline void stopped_running(task_state& t, uint32_t attempt) {
  t.running_attempt.compare_exchange_strong(attempt, 0);
}

/// Whether `h` may be stopped for a task of rank `urgent_rank`: it runs now, was marked
/// preemptible, is less urgent, has not used up its preemptions and is not on its way out.
inline bool may_preempt(const held_attempt& h, double urgent_rank, uint32_t max_preemptions) {
  return h.running && h.preemptible && !h.asked && h.preemptions < max_preemptions &&
         urgent_rank < h.rank;
}

/// Of the attempts a worker holds (get(i) for i < n), the one to stop for a task of rank
/// `urgent_rank` and order key `urgent_order`: the least urgent that may be preempted. None:
/// the task waits its turn, also when it would not run next there (a task the worker holds
/// goes before it in the lane: stopping one for it would only run that one sooner).
template <class Get>
std::optional<size_t> preemption_victim(size_t n, Get&& get, double urgent_rank,
                                        double urgent_order, uint32_t max_preemptions) {
  std::optional<size_t> best;
  double best_rank = 0;
  for (size_t i = 0; i < n; ++i) {
    held_attempt h = get(i);
    if (!h.running && h.order <= urgent_order) return std::nullopt;
    if (!may_preempt(h, urgent_rank, max_preemptions)) continue;
    if (!best || h.rank > best_rank) best = i, best_rank = h.rank;
  }
  return best;
}

}  // namespace troupe
