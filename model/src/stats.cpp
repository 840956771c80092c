#include "troupe/model/stats.hpp"

#include <algorithm>

namespace troupe {

schedule_figures figures_of(const runtime_stats& s, double makespan_s, double longest_task_s) {
  schedule_figures f;
  f.makespan_s = makespan_s;
  auto ended = s.completed + s.failed + s.cancelled + s.expired;
  f.throughput_tps = makespan_s > 0 ? double(ended) / makespan_s : 0;
  f.sum_completion_s = s.sum_completion_s;
  std::map<std::string, std::pair<double, size_t>> by_class;  // busy seconds, workers
  double work = 0;
  for (auto& w : s.workers) {
    auto cls = w.device.substr(0, w.device.find(':'));  // "cuda:0" -> "cuda"
    by_class[cls].first += w.busy_s;
    ++by_class[cls].second;
    work += w.busy_s;
  }
  for (auto& [cls, b] : by_class)
    f.utilisation[cls] = makespan_s > 0 ? b.first / (makespan_s * double(b.second)) : 0;
  f.error_rate = s.attempts ? double(s.errors_detected) / double(s.attempts) : 0;
  f.detection_ms = s.mean_error_detection_ms;
  f.handling_ms = s.mean_error_handling_ms;
  f.recovery_ms = s.mean_recovery_ms;
  double cost_s = (f.error_rate * f.detection_ms + f.handling_ms) / 1000;
  if (cost_s > 0) f.efficiency = 1 / cost_s;
  double by_work = s.workers.empty() ? 0 : work / double(s.workers.size());
  f.lower_bound_s = std::max(by_work, longest_task_s);
  f.lower_bound_is = longest_task_s > by_work ? "the longest task" : "work / workers";
  return f;
}

}  // namespace troupe
