#include "troupe/model/kept_outputs.hpp"

namespace troupe {

void kept_outputs::keep(task_id id, const task_output& out) {
  uint64_t size = output_bytes(out);
  std::shared_ptr<const task_output> copy;
  if (size <= capacity_) copy = std::make_shared<const task_output>(out);  // outside the lock
  std::lock_guard<std::mutex> guard{mutex_};
  if (auto i = index_.find(id); i != index_.end()) {  // an earlier attempt's: replaced
    bytes_ -= i->second->bytes;
    lru_.erase(i->second);
    index_.erase(i);
  }
  if (!copy) return;
  while (bytes_ + size > capacity_ && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().id);
    lru_.pop_back();
  }
  lru_.push_front({id, std::move(copy), size});
  index_[id] = lru_.begin();
  bytes_ += size;
}

std::shared_ptr<const task_output> kept_outputs::find(task_id id) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = index_.find(id);
  if (i == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, i->second);
  return i->second->out;
}

void kept_outputs::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace troupe
