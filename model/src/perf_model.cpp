#include "troupe/model/perf_model.hpp"

#include <algorithm>

namespace troupe {

double perf_model::estimate_s(uint32_t kind, double cost) const {
  if (kind >= kinds_.size() || kinds_[kind].samples == 0) return default_s_;
  auto& k = kinds_[kind];
  if (cost > 0 && k.cost_samples > 0) return std::max(k.per_cost_s * cost, 1e-8);
  return std::max(k.per_task_s, 1e-8);
}

void perf_model::observe(uint32_t kind, double cost, double seconds) {
  if (kind >= kinds_.size()) kinds_.resize(kind + 1);
  auto& k = kinds_[kind];
  auto blend = [this](double old, double x, uint64_t n) {
    return n == 0 ? x : old + weight_ * (x - old);
  };
  k.per_task_s = blend(k.per_task_s, seconds, k.samples++);
  if (cost > 0) k.per_cost_s = blend(k.per_cost_s, seconds / cost, k.cost_samples++);
}

}  // namespace troupe
