#pragma once
// Resource ledger: what each worker can hold and what is reserved on it. Plain logic, no threads.
//
// Memory (host and GPU) is reserved for every task assigned to a worker, queued there or running,
// so the sum never exceeds the worker's capacity. CPU slots and GPU count are per-task limits: a
// worker runs its tasks one at a time per slot, so a task fits if its needs fit the worker.
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "troupe/model/task.hpp"

namespace troupe {

struct worker_capacity {
  uint32_t cpu_slots = 1;
  uint64_t memory_bytes = 0;
  uint32_t gpu_count = 0;
  uint64_t gpu_memory_bytes = 0;
};

class resource_ledger {
 public:
  /// Returns the new worker's index.
  int32_t add_worker(worker_capacity cap);
  size_t worker_count() const { return workers_.size(); }
  void set_available(int32_t worker, bool available);
  /// What a worker can hold, as it reports itself (a remote worker, when its node joins).
  void set_capacity(int32_t worker, worker_capacity cap) { workers_.at(worker).cap = cap; }
  bool available(int32_t worker) const { return workers_.at(worker).available; }

  /// Whether any worker (available or not) could ever hold a task with these needs.
  bool fits_some_worker(const resources& needs) const;
  /// Whether the needs fit this worker's capacity at all.
  bool fits_capacity(int32_t worker, const resources& needs) const;
  /// Whether the needs fit now, beside what is reserved.
  bool can_reserve(int32_t worker, const resources& needs) const;
  /// Reserves; returns false (and reserves nothing) if it does not fit now. Needs without memory
  /// are checked but not recorded: there is nothing to release for them.
  bool reserve(int32_t worker, task_id id, const resources& needs);
  /// Releases one reservation; unknown ids are ignored (returns false).
  bool release(int32_t worker, task_id id);
  /// Releases every reservation of a worker (it died); returns how many there were.
  size_t release_all(int32_t worker);

  uint64_t reserved_memory(int32_t worker) const { return workers_.at(worker).memory; }
  uint64_t reserved_gpu_memory(int32_t worker) const { return workers_.at(worker).gpu_memory; }
  size_t reservations(int32_t worker) const { return workers_.at(worker).held.size(); }
  const worker_capacity& capacity(int32_t worker) const { return workers_.at(worker).cap; }

 private:
  struct worker_entry {
    worker_capacity cap;
    bool available = true;
    uint64_t memory = 0, gpu_memory = 0;
    std::unordered_map<task_id, resources> held;
  };
  std::vector<worker_entry> workers_;
};

}  // namespace troupe
