#pragma once
// The graph outputs a node keeps for the inputs of their children (docs/graphs.md, "Where data
// moves"): bounded by bytes, least recently used first out. A child placed on the node binds its
// inputs from here instead of receiving them from the head, and other nodes fetch them from here.
// Thread-safe: the node's agent keeps and binds, its data socket's thread serves other nodes.
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "troupe/model/task.hpp"

namespace troupe {

class kept_outputs {
 public:
  explicit kept_outputs(uint64_t capacity_bytes = 0) : capacity_(capacity_bytes) {}

  /// Keeps a copy of the output of task `id`, making room by dropping the least recently used.
  /// An output larger than the whole capacity is not kept (its children get it from the head).
  void keep(task_id id, const task_output& out);
  /// The output kept for `id`, now the most recently used; null if not kept (never, or dropped).
  std::shared_ptr<const task_output> find(task_id id);
  void clear();

  uint64_t bytes() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return bytes_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return index_.size();
  }

 private:
  mutable std::mutex mutex_;
  struct entry {
    task_id id;
    std::shared_ptr<const task_output> out;
    uint64_t bytes;
  };
  uint64_t capacity_;
  uint64_t bytes_ = 0;
  std::list<entry> lru_;  ///< most recently used first
  std::unordered_map<task_id, std::list<entry>::iterator> index_;
};

}  // namespace troupe
