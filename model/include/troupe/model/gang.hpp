#pragma once
// Gang placement (docs/reservations.md), without threads: N tasks on N distinct workers, all at
// once or not at all. The balancer asks twice: could the gang ever be placed (capacity of the
// workers in service), and can it be placed now (workers idle, resources free)?
#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

namespace troupe {

/// A worker for each member, no worker twice, such that can(member, worker) holds for each
/// pair; none if there is no such assignment. Bipartite matching by augmenting paths (Kuhn),
/// O(members * edges): gangs are a handful of tasks. Members try workers in index order, so
/// the same inputs give the same answer.
template <class Can>
std::optional<std::vector<size_t>> match_gang(size_t members, size_t workers, Can&& can) {
  if (members > workers) return std::nullopt;
  constexpr size_t none = size_t(-1);
  std::vector<size_t> member_of(workers, none);
  std::vector<char> seen(workers);
  // Finds a worker for member m, moving earlier members to other workers when that helps.
  auto augment = [&](auto& self, size_t m) -> bool {
    for (size_t w = 0; w < workers; ++w) {
      if (seen[w] || !can(m, w)) continue;
      seen[w] = 1;
      if (member_of[w] == none || self(self, member_of[w])) {
        member_of[w] = m;
        return true;
      }
    }
    return false;
  };
  for (size_t m = 0; m < members; ++m) {
    std::fill(seen.begin(), seen.end(), 0);
    if (!augment(augment, m)) return std::nullopt;
  }
  std::vector<size_t> worker_of(members, none);
  for (size_t w = 0; w < workers; ++w)
    if (member_of[w] != none) worker_of[member_of[w]] = w;
  return worker_of;
}

}  // namespace troupe
