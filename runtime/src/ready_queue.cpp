#include "troupe/ready_queue.hpp"

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
  int64_t v = now.time_since_epoch().count() - int64_t(p) * aging_ns_;
  heap_.push(entry{v, seq_++, std::move(t)});
}

task_ptr aging_priority_queue::pop() {
  if (heap_.empty()) return nullptr;
  // top() is const; the entry is discarded right after, so moving its pointer out is safe.
  auto t = std::move(const_cast<entry&>(heap_.top()).task);
  heap_.pop();
  return t;
}

std::unique_ptr<ready_queue> make_ready_queue(queue_order order,
                                              std::chrono::nanoseconds aging_interval) {
  if (order == queue_order::fifo) return std::make_unique<fifo_queue>();
  return std::make_unique<aging_priority_queue>(aging_interval);
}

}  // namespace troupe
