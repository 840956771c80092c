#include "troupe/model/ready_queue.hpp"

#include <algorithm>

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
  auto& l = levels_[p];
  if (l.in_order.empty() || !e.before(l.in_order.back()))
    l.in_order.push_back(std::move(e));
  else
    l.late.push(std::move(e));
  ++size_;
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

std::unique_ptr<ready_queue> make_ready_queue(queue_order order,
                                              std::chrono::nanoseconds aging_interval) {
  if (order == queue_order::fifo) return std::make_unique<fifo_queue>();
  return std::make_unique<aging_priority_queue>(aging_interval);
}

}  // namespace troupe
