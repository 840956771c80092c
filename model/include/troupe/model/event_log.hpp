#pragma once
// event_log: what a publisher keeps so that a subscriber can catch up. A bounded ring of the
// latest events (for "everything since seq N") and a mirror of current state built from the same
// events (for a snapshot when N has left the ring): tasks not yet ended with their last state,
// workers and nodes with theirs. Plain logic, no threads: the caller serialises access.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/model/events.hpp"

namespace troupe {

/// Current state as of one sequence number.
struct state_snapshot {
  uint64_t seq = 0;                          ///< the last event applied; continue with seq + 1
  std::map<task_id, std::string> tasks;      ///< unfinished tasks: queued, placed, started, ...
  std::map<int32_t, std::string> workers;    ///< worker index -> up, down, restarting, degraded
  std::map<std::string, std::string> nodes;  ///< node name -> joined, suspect, left
  /// Tasks that ended, with how (completed, failed, cancelled, expired): the most recent ones,
  /// up to the publisher's bound, so that a subscriber that lost their events still learns them.
  std::map<task_id, std::string> finished;
};

/// Applies one event to a snapshot (used by publishers and by subscribers that follow state).
void apply(state_snapshot& s, const event& e);
/// The last part of a topic ("task.started" -> "started").
std::string topic_state(const std::string& topic);
/// Whether a task topic ends the task.
bool is_terminal_task_topic(const std::string& topic);

class event_log {
 public:
  /// capacity: events kept for replay; finished_capacity: ended tasks kept in the snapshot.
  explicit event_log(size_t capacity, size_t finished_capacity = 1 << 20)
      : capacity_(capacity), finished_capacity_(finished_capacity) {}

  /// Records an event (its seq must follow the previous one).
  void record(const event& e);
  /// Events with seq >= since, if the ring still holds them all; nullopt if some are gone.
  std::optional<std::vector<event>> since(uint64_t since, size_t max_events) const;
  const state_snapshot& snapshot() const { return state_; }
  uint64_t last_seq() const { return state_.seq; }
  uint64_t oldest_seq() const { return ring_.empty() ? state_.seq + 1 : ring_.front().seq; }

 private:
  size_t capacity_, finished_capacity_;
  std::deque<event> ring_;
  std::deque<task_id> finished_order_;
  state_snapshot state_;
};

}  // namespace troupe
