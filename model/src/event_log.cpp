#include "troupe/model/event_log.hpp"

namespace troupe {

std::string topic_state(const std::string& topic) {
  auto dot = topic.rfind('.');
  return dot == std::string::npos ? topic : topic.substr(dot + 1);
}

bool is_terminal_task_topic(const std::string& topic) {
  return topic == "task.completed" || topic == "task.failed" || topic == "task.cancelled" ||
         topic == "task.expired";
}

void apply(state_snapshot& s, const event& e) {
  s.seq = e.seq;
  if (e.topic.compare(0, 5, "task.") == 0 && e.task != 0) {
    if (is_terminal_task_topic(e.topic)) {
      s.tasks.erase(e.task);
      s.finished[e.task] = topic_state(e.topic);
    } else
      s.tasks[e.task] = topic_state(e.topic);
  } else if (e.topic.compare(0, 7, "worker.") == 0 && e.worker >= 0) {
    s.workers[e.worker] = topic_state(e.topic);
  } else if (e.topic.compare(0, 5, "node.") == 0 && !e.node.empty()) {
    s.nodes[e.node] = topic_state(e.topic);
  }
}

void event_log::record(const event& e) {
  apply(state_, e);
  if (e.task != 0 && is_terminal_task_topic(e.topic)) {
    finished_order_.push_back(e.task);
    while (finished_order_.size() > finished_capacity_) {
      state_.finished.erase(finished_order_.front());
      finished_order_.pop_front();
    }
  }
  if (capacity_ == 0) return;
  ring_.push_back(e);
  while (ring_.size() > capacity_) ring_.pop_front();
}

std::optional<std::vector<event>> event_log::since(uint64_t since, size_t max_events) const {
  if (since > state_.seq) return std::vector<event>{};  // nothing new yet
  if (ring_.empty() || since < ring_.front().seq) return std::nullopt;
  auto first = size_t(since - ring_.front().seq);
  std::vector<event> out;
  for (size_t i = first; i < ring_.size() && out.size() < max_events; ++i) out.push_back(ring_[i]);
  return out;
}

}  // namespace troupe
