#pragma once
// Learned run-time estimates per task kind: seconds per cost unit (flops) when the kind reports a
// cost, else seconds per task. Exponentially weighted, so it follows a warming machine.
#include <cstdint>
#include <vector>

namespace troupe {

class perf_model {
 public:
  explicit perf_model(double default_task_s = 1e-4, double weight = 0.2)
      : default_s_(default_task_s), weight_(weight) {}
  double estimate_s(uint32_t kind, double cost) const;
  void observe(uint32_t kind, double cost, double seconds);

 private:
  struct kind_model {
    double per_task_s = 0, per_cost_s = 0;
    uint64_t samples = 0, cost_samples = 0;
  };
  double default_s_, weight_;
  std::vector<kind_model> kinds_;
};

}  // namespace troupe
