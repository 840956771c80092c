#pragma once
// Dynamic batching, as plain logic: which of a worker's waiting tasks run together in one launch.
#include <cstddef>
#include <string>
#include <vector>

namespace troupe {

struct batching_config {
  bool enabled = true;
  size_t max_tasks = 64;  ///< most tasks merged into one launch
};

/// Groups tasks by batch key. Tasks with an empty key run alone. Tasks with equal keys form
/// groups of at most max_tasks, in order of first appearance; within a group, submission order
/// is kept. Returns the groups as lists of indices into keys; every index appears exactly once.
std::vector<std::vector<size_t>> plan_batches(const std::vector<std::string>& keys,
                                              size_t max_tasks);

}  // namespace troupe
