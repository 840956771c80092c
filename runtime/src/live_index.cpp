#include "troupe/live_index.hpp"

namespace troupe {

void live_index::insert(const task_ptr& t) {
  auto id = t->id;
  if (ring_.empty()) first_ = id;
  if (id < first_) {
    if (side_.emplace(id, t).second) ++count_;
    return;
  }
  auto slot = size_t(id - first_);
  if (slot >= ring_.size()) ring_.resize(slot + 1);
  if (!ring_[slot]) ++count_;
  ring_[slot] = t;
}

const task_ptr* live_index::find(task_id id) const {
  if (id >= first_ && id - first_ < ring_.size()) {
    auto& slot = ring_[size_t(id - first_)];
    return slot ? &slot : nullptr;
  }
  auto i = side_.find(id);
  return i == side_.end() ? nullptr : &i->second;
}

bool live_index::erase(task_id id) {
  if (id >= first_ && id - first_ < ring_.size()) {
    auto& slot = ring_[size_t(id - first_)];
    if (!slot) return false;
    slot.reset();
    --count_;
    trim();
    return true;
  }
  if (side_.erase(id) == 0) return false;
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
