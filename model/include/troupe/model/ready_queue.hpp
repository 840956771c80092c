#pragma once
// Ordering of admitted tasks, without threads: fifo, or priority with aging.
//
// Priority with aging: a task of priority p enqueued at time t is ordered by its virtual time
// v = t - p * aging_interval (smallest first). That is the same order as "effective priority
// p + waited / aging_interval", computed once at push. Starvation bound: a task of priority p is
// overtaken only by tasks enqueued before t + (p_max - p) * aging_interval.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <vector>

#include "troupe/model/config.hpp"
#include "troupe/model/task_state.hpp"

namespace troupe {

class ready_queue {
 public:
  virtual ~ready_queue() = default;
  virtual void push(task_ptr t, time_point now) = 0;
  /// nullptr when empty.
  virtual task_ptr pop() = 0;
  virtual size_t size() const = 0;
  bool empty() const { return size() == 0; }
};

class fifo_queue final : public ready_queue {
 public:
  void push(task_ptr t, time_point) override { q_.push(std::move(t)); }
  task_ptr pop() override;
  size_t size() const override { return q_.size(); }

 private:
  std::queue<task_ptr> q_;
};

class aging_priority_queue final : public ready_queue {
 public:
  static constexpr int32_t max_priority = 1000;  ///< priorities are clamped to +-max_priority
  explicit aging_priority_queue(std::chrono::nanoseconds aging_interval);
  void push(task_ptr t, time_point now) override;
  task_ptr pop() override;
  size_t size() const override { return size_; }

 private:
  struct entry {
    int64_t virtual_time;
    uint64_t seq;  ///< fifo among equal virtual times
    task_ptr task;
    bool before(const entry& o) const {
      return virtual_time != o.virtual_time ? virtual_time < o.virtual_time : seq < o.seq;
    }
  };
  struct later {
    bool operator()(const entry& a, const entry& b) const { return b.before(a); }
  };
  // One level per priority. Within a level, arrivals come in time order, so a fifo holds them
  // in virtual-time order already: O(1) push and pop instead of a heap over every task. The
  // rare out-of-order arrival (a retry keeps its first arrival time) goes to the level's heap.
  // pop() compares the heads of the few non-empty levels.
  struct level {
    std::deque<entry> in_order;
    std::priority_queue<entry, std::vector<entry>, later> late;
    bool empty() const { return in_order.empty() && late.empty(); }
    const entry& head() const {
      if (late.empty()) return in_order.front();
      if (in_order.empty()) return late.top();
      return late.top().before(in_order.front()) ? late.top() : in_order.front();
    }
  };
  int64_t aging_ns_;
  uint64_t seq_ = 0;
  size_t size_ = 0;
  std::map<int32_t, level> levels_;
};

std::unique_ptr<ready_queue> make_ready_queue(queue_order order,
                                              std::chrono::nanoseconds aging_interval);

}  // namespace troupe
