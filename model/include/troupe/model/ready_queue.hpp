#pragma once
// Ordering of admitted tasks, without threads: fifo, priority with aging, earliest deadline
// first, shortest estimated first, or weighted fair share between clients (queue.order).
//
// Priority with aging: a task of priority p enqueued at time t is ordered by its virtual time
// v = t - p * aging_interval (smallest first). That is the same order as "effective priority
// p + waited / aging_interval", computed once at push. Starvation bound: a task of priority p is
// overtaken only by tasks enqueued before t + (p_max - p) * aging_interval.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "troupe/model/config.hpp"
#include "troupe/model/task_state.hpp"

namespace troupe {

class ready_queue {
 public:
  virtual ~ready_queue() = default;
  /// Also sets t->order_key: where it stands in this order (smaller comes out sooner).
  virtual void push(task_ptr t, time_point now) = 0;
  /// nullptr when empty.
  virtual task_ptr pop() = 0;
  /// The task pop() would return, left in place; nullptr when empty.
  virtual const task_state* peek() const = 0;
  virtual size_t size() const = 0;
  bool empty() const { return size() == 0; }
};

class fifo_queue final : public ready_queue {
 public:
  void push(task_ptr t, time_point) override {
    t->order_key = double(seq_++);
    q_.push(std::move(t));
  }
  task_ptr pop() override;
  const task_state* peek() const override { return q_.empty() ? nullptr : q_.front().get(); }
  size_t size() const override { return q_.size(); }

 private:
  std::queue<task_ptr> q_;
  uint64_t seq_ = 0;
};

class aging_priority_queue final : public ready_queue {
 public:
  static constexpr int32_t max_priority = 1000;  ///< priorities are clamped to +-max_priority
  explicit aging_priority_queue(std::chrono::nanoseconds aging_interval);
  void push(task_ptr t, time_point now) override;
  task_ptr pop() override;
  const task_state* peek() const override;
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

/// A heap of tasks by a key fixed at push (smallest first), fifo among equal keys: the base of
/// the orders below.
class keyed_queue : public ready_queue {
 public:
  task_ptr pop() override;
  const task_state* peek() const override {
    return heap_.empty() ? nullptr : heap_.top().task.get();
  }
  size_t size() const override { return heap_.size(); }

 protected:
  void push_keyed(double key, task_ptr t);
  /// The task with the smallest key, and that key; nullptr when empty.
  task_ptr pop_keyed(double& key);

 private:
  struct entry {
    double key;
    uint64_t seq;
    task_ptr task;
  };
  struct later {
    bool operator()(const entry& a, const entry& b) const {
      return a.key != b.key ? a.key > b.key : a.seq > b.seq;
    }
  };
  std::priority_queue<entry, std::vector<entry>, later> heap_;
  uint64_t seq_ = 0;
};

/// Earliest deadline first. Tasks without a deadline come after every task with one, in
/// arrival order: under a steady stream of deadlines they wait (use priority for a bound).
class deadline_queue final : public ready_queue {
 public:
  void push(task_ptr t, time_point now) override;
  task_ptr pop() override;
  const task_state* peek() const override { return with_.empty() ? without_.peek() : with_.peek(); }
  size_t size() const override { return with_.size() + without_.size(); }

 private:
  struct by_deadline final : keyed_queue {
    using keyed_queue::push_keyed;
    void push(task_ptr, time_point) override {}
  };
  by_deadline with_;
  fifo_queue without_;
};

/// Shortest estimated run time first, from the performance model at push (a kind never seen
/// has the model's default). Long tasks wait while shorter ones keep coming: no aging.
class shortest_first_queue final : public keyed_queue {
 public:
  /// Seconds a task is expected to run.
  using estimator = std::function<double(const task_state&)>;
  explicit shortest_first_queue(estimator estimate) : estimate_(std::move(estimate)) {}
  void push(task_ptr t, time_point) override;

 private:
  estimator estimate_;
};

/// Weighted fair share between clients (a task's `client` label; "" for none), by start-time
/// fair queuing: each task is tagged max(virtual time, its client's last finish tag) and its
/// finish tag adds 1 / weight; the smallest start tag goes first, and the virtual time follows
/// it. A client with weight 2 gets twice the tasks of one with weight 1 while both have tasks
/// waiting; a client that was idle starts at the virtual time (no credit saved up). Within a
/// client, arrival order.
class fair_share_queue final : public keyed_queue {
 public:
  explicit fair_share_queue(std::map<std::string, double> weights) : weights_(std::move(weights)) {}
  void push(task_ptr t, time_point) override;
  task_ptr pop() override;

 private:
  struct client_tags {
    double last_finish = 0;
    size_t waiting = 0;
  };
  std::map<std::string, double> weights_;
  std::map<std::string, client_tags> clients_;
  double virtual_time_ = 0;
};

/// The client a task counts for in fair share: its `client` label.
const std::string& client_of(const task_state& t);

std::unique_ptr<ready_queue> make_ready_queue(queue_order order,
                                              std::chrono::nanoseconds aging_interval,
                                              shortest_first_queue::estimator estimate = {},
                                              std::map<std::string, double> shares = {});

}  // namespace troupe
