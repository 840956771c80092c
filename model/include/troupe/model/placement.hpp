#pragma once
// Which worker a task goes to: the balancer's decision, without the balancer. The caller says,
// per worker index, whether it can take the task now (kind, credit, resources), the task's
// estimated time there, the worker's estimated backlog, and how long the task's inputs take to
// reach it (0 where they are already); the placer picks.
//   least_loaded: the earliest estimated finish (backlog + moving its inputs + this task's time
//                 on that device): a graph task goes where its biggest inputs are, unless that
//                 worker is busier than moving them costs
//   round_robin:  the next worker after the last one chosen that can take it
#include <cstddef>
#include <cstdint>

#include "troupe/model/config.hpp"

namespace troupe {

class placer {
 public:
  explicit placer(placement_policy policy) : policy_(policy) {}

  /// The chosen worker, or -1 if none of the n can take the task; `estimate_s` gets the task's
  /// estimated time on the chosen one. can_take(w) -> bool, estimate(w) -> seconds,
  /// backlog(w) -> seconds, moving(w) -> seconds. Ties go to the lower index.
  template <class CanTake, class Estimate, class Backlog, class Moving>
  int32_t choose(size_t n, CanTake&& can_take, Estimate&& estimate, Backlog&& backlog,
                 Moving&& moving, double& estimate_s) {
    if (policy_ == placement_policy::round_robin) {
      for (size_t i = 0; i < n; ++i) {
        auto w = (next_rr_ + i) % n;
        if (!can_take(w)) continue;
        next_rr_ = w + 1;
        estimate_s = estimate(w);
        return int32_t(w);
      }
      return -1;
    }
    int32_t best = -1;
    double best_finish = 0;
    for (size_t w = 0; w < n; ++w) {
      if (!can_take(w)) continue;
      auto est = estimate(w);
      auto finish = backlog(w) + moving(w) + est;
      if (best < 0 || finish < best_finish) {
        best = int32_t(w);
        best_finish = finish;
        estimate_s = est;
      }
    }
    return best;
  }

 private:
  placement_policy policy_;
  size_t next_rr_ = 0;
};

}  // namespace troupe
