#pragma once
// The queue's index of unfinished tasks by id (for cancel and shutdown). Ids are handed out in
// increasing order and tasks mostly finish in order, so a ring indexed by (id - first) replaces
// a hash map: O(1) insert, find and erase without a node allocation per task. Empty slots at the
// front are trimmed; an id that arrives below the front (a slower submitting thread) goes to a
// small side map. Memory: one pointer per id between the oldest unfinished task and the newest.
#include <deque>
#include <unordered_map>

#include "troupe/model/task_state.hpp"

namespace troupe {

class live_index {
 public:
  void insert(const task_ptr& t);
  /// nullptr if the id is not live.
  const task_ptr* find(task_id id) const;
  /// Returns whether the id was there.
  bool erase(task_id id);
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  /// Every live task, in id order for the ring part.
  std::vector<task_ptr> all() const;

 private:
  void trim();
  std::deque<task_ptr> ring_;
  task_id first_ = 0;  ///< id of ring_[0]
  size_t count_ = 0;
  std::unordered_map<task_id, task_ptr> side_;
};

}  // namespace troupe
