#include "troupe/model/live_index.hpp"

namespace troupe {

void live_index::insert(const task_ptr& t) {
  auto id = t->id;
  if (ring_.empty()) first_ = id;
  if (id < first_ || (!side_.empty() && side_.count(id))) {
    if (side_.emplace(id, t).second) ++count_;
    return;
  }
  auto slot = size_t(id - first_);
  if (slot >= ring_.size()) ring_.resize(slot + 1);
  if (!ring_[slot]) ++count_;
  ring_[slot] = t;
}

// An id in the side map may later fall inside the ring's range (the ring emptied and restarted
// below it), so an empty ring slot still means "look in the side map".
const task_ptr* live_index::find(task_id id) const {
  if (id >= first_ && id - first_ < ring_.size()) {
    auto& slot = ring_[size_t(id - first_)];
    if (slot) return &slot;
  }
  if (side_.empty()) return nullptr;
  auto i = side_.find(id);
  return i == side_.end() ? nullptr : &i->second;
}

bool live_index::erase(task_id id) {
  if (id >= first_ && id - first_ < ring_.size()) {
    auto& slot = ring_[size_t(id - first_)];
    if (slot) {
      slot.reset();
      --count_;
      trim();
      return true;
    }
  }
  if (side_.empty() || side_.erase(id) == 0) return false;
  --count_;
  return true;
}

void live_index::trim() {
  while (!ring_.empty() && !ring_.front()) {
    ring_.pop_front();
    ++first_;
  }
}

std::vector<task_ptr> live_index::all() const {
  std::vector<task_ptr> out;
  out.reserve(count_);
  for (auto& t : ring_)
    if (t) out.push_back(t);
  for (auto& [id, t] : side_) out.push_back(t);
  return out;
}

}  // namespace troupe
