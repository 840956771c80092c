#include "troupe/model/batching.hpp"

#include <unordered_map>

namespace troupe {

std::vector<std::vector<size_t>> plan_batches(const std::vector<std::string>& keys,
                                              size_t max_tasks) {
  std::vector<std::vector<size_t>> groups;
  std::unordered_map<std::string, size_t> open;  // key -> index of its group still filling
  if (max_tasks == 0) max_tasks = 1;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty()) {
      groups.push_back({i});
      continue;
    }
    auto it = open.find(keys[i]);
    if (it == open.end() || groups[it->second].size() >= max_tasks) {
      groups.push_back({i});
      open[keys[i]] = groups.size() - 1;
    } else {
      groups[it->second].push_back(i);
    }
  }
  return groups;
}

}  // namespace troupe
