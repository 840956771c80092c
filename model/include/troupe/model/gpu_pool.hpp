#pragma once
// The GPU memory of one task: allocations through a worker's pool, held to the task's
// reservation. Plain logic over an allocator, so the rules are tested without a GPU.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "troupe/model/registry.hpp"

namespace troupe {

/// Where a GPU worker's memory comes from: CUDA's stream-ordered pool on a real GPU, the heap on
/// a fake one. allocate returns nullptr when the device itself has no room.
class gpu_allocator {
 public:
  virtual ~gpu_allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void free(void* p) = 0;
};

/// gpu_allocator on the heap, for fake GPU workers.
class host_gpu_allocator final : public gpu_allocator {
 public:
  void* allocate(size_t bytes) override;
  void free(void* p) override;
};

class task_gpu_memory final : public gpu_memory {
 public:
  /// in_use: the worker's gauge of task bytes (may be null).
  task_gpu_memory(gpu_allocator& allocator, uint64_t limit, std::atomic<uint64_t>* in_use);
  ~task_gpu_memory() override { release(); }
  task_gpu_memory(const task_gpu_memory&) = delete;
  task_gpu_memory& operator=(const task_gpu_memory&) = delete;

  /// Throws task_failure{out_of_memory} past the limit, or when the device has no room.
  void* allocate(size_t bytes, const char* what) override;
  uint64_t limit() const override { return limit_; }
  uint64_t used() const override { return used_; }
  /// Frees everything (also done by the destructor).
  void release();

 private:
  gpu_allocator& allocator_;
  uint64_t limit_, used_ = 0;
  std::atomic<uint64_t>* in_use_;
  std::vector<std::pair<void*, size_t>> blocks_;
};

}  // namespace troupe
