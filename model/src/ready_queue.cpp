#include "troupe/model/ready_queue.hpp"

#include <algorithm>
#include <limits>

namespace troupe {

task_ptr fifo_queue::pop() {
  if (q_.empty()) return nullptr;
  auto t = std::move(q_.front());
  q_.pop();
  return t;
}

aging_priority_queue::aging_priority_queue(std::chrono::nanoseconds aging_interval)
    : aging_ns_(std::max<int64_t>(1, aging_interval.count())) {}

void aging_priority_queue::push(task_ptr t, time_point now) {
  auto p = std::clamp<int32_t>(t->spec.priority, -max_priority, max_priority);
  entry e{now.time_since_epoch().count() - int64_t(p) * aging_ns_, seq_++, std::move(t)};
  e.task->order_key = double(e.virtual_time);
  auto& l = levels_[p];
  if (l.in_order.empty() || !e.before(l.in_order.back()))
    l.in_order.push_back(std::move(e));
  else
    l.late.push(std::move(e));
  ++size_;
}

const task_state* aging_priority_queue::peek() const {
  const level* best = nullptr;
  for (auto& [p, l] : levels_)
    if (!l.empty() && (!best || l.head().before(best->head()))) best = &l;
  return best ? best->head().task.get() : nullptr;
}

task_ptr aging_priority_queue::pop() {
  level* best = nullptr;
  for (auto i = levels_.begin(); i != levels_.end();) {
    if (i->second.empty()) {
      i = levels_.erase(i);
      continue;
    }
    if (!best || i->second.head().before(best->head())) best = &i->second;
    ++i;
  }
  if (!best) return nullptr;
  task_ptr t;
  bool from_late = !best->late.empty() &&
                   (best->in_order.empty() || best->late.top().before(best->in_order.front()));
  if (from_late) {
    // top() is const; the entry is discarded right after, so moving its pointer out is safe.
    t = std::move(const_cast<entry&>(best->late.top()).task);
    best->late.pop();
  } else {
    t = std::move(best->in_order.front().task);
    best->in_order.pop_front();
  }
  --size_;
  return t;
}

void keyed_queue::push_keyed(double key, task_ptr t) {
  t->order_key = key;
  heap_.push({key, seq_++, std::move(t)});
}

task_ptr keyed_queue::pop_keyed(double& key) {
  if (heap_.empty()) return nullptr;
  // top() is const; the entry is discarded right after, so moving its pointer out is safe.
  auto& top = const_cast<entry&>(heap_.top());
  key = top.key;
  auto t = std::move(top.task);
  heap_.pop();
  return t;
}

task_ptr keyed_queue::pop() {
  double key;
  return pop_keyed(key);
}

void deadline_queue::push(task_ptr t, time_point now) {
  if (!t->spec.deadline) {
    without_.push(t, now);
    t->order_key = std::numeric_limits<double>::infinity();  // after every deadline
    return;
  }
  auto key = double(t->spec.deadline->time_since_epoch().count());  // before t is moved
  with_.push_keyed(key, std::move(t));
}

task_ptr deadline_queue::pop() {
  if (!with_.empty()) return with_.pop();
  return without_.pop();
}

void shortest_first_queue::push(task_ptr t, time_point) {
  auto estimate = estimate_ ? estimate_(*t) : 0.0;
  push_keyed(estimate, std::move(t));
}

const std::string& client_of(const task_state& t) {
  static const std::string none;
  auto i = t.spec.labels.find("client");
  return i == t.spec.labels.end() ? none : i->second;
}

void fair_share_queue::push(task_ptr t, time_point) {
  auto& client = client_of(*t);
  auto w = weights_.find(client);
  double weight = w == weights_.end() ? 1.0 : w->second;
  auto& tags = clients_[client];
  double start = std::max(virtual_time_, tags.last_finish);
  tags.last_finish = start + 1.0 / weight;
  ++tags.waiting;
  push_keyed(start, std::move(t));
}

task_ptr fair_share_queue::pop() {
  double start = 0;
  auto t = pop_keyed(start);
  if (!t) return nullptr;
  virtual_time_ = std::max(virtual_time_, start);
  auto c = clients_.find(client_of(*t));
  // A client with nothing waiting and no tag ahead of the virtual time holds nothing worth
  // keeping: it would start at the virtual time anyway (the map stays as small as the clients
  // with tasks waiting).
  if (c != clients_.end() && --c->second.waiting == 0 && c->second.last_finish <= virtual_time_)
    clients_.erase(c);
  return t;
}

std::unique_ptr<ready_queue> make_ready_queue(queue_order order,
                                              std::chrono::nanoseconds aging_interval,
                                              shortest_first_queue::estimator estimate,
                                              std::map<std::string, double> shares) {
  switch (order) {
    case queue_order::fifo:
      return std::make_unique<fifo_queue>();
    case queue_order::deadline:
      return std::make_unique<deadline_queue>();
    case queue_order::shortest:
      return std::make_unique<shortest_first_queue>(std::move(estimate));
    case queue_order::fair:
      return std::make_unique<fair_share_queue>(std::move(shares));
    case queue_order::priority:
      break;
  }
  return std::make_unique<aging_priority_queue>(aging_interval);
}

}  // namespace troupe
