#include "troupe/model/gpu_pool.hpp"

#include <cstdlib>
#include <string>

namespace troupe {

void* host_gpu_allocator::allocate(size_t bytes) {
  return std::malloc(bytes ? bytes : 1);
}
void host_gpu_allocator::free(void* p) {
  std::free(p);
}

task_gpu_memory::task_gpu_memory(gpu_allocator& allocator, uint64_t limit,
                                 std::atomic<uint64_t>* in_use)
    : allocator_(allocator), limit_(limit), in_use_(in_use) {}

void* task_gpu_memory::allocate(size_t bytes, const char* what) {
  if (bytes > limit_ - used_)
    throw task_failure{
        errc::out_of_memory,
        std::string{what} + " needs " + std::to_string(bytes) +
            " bytes of GPU memory, beyond the task's reservation: " + std::to_string(used_) +
            " of " + std::to_string(limit_) + " bytes in use (needs.gpu_memory_bytes)"};
  void* p = allocator_.allocate(bytes);
  if (!p)
    throw task_failure{errc::out_of_memory, std::string{what} + ": the GPU has no room for " +
                                                std::to_string(bytes) + " bytes"};
  blocks_.emplace_back(p, bytes);
  used_ += bytes;
  if (in_use_) in_use_->fetch_add(bytes, std::memory_order_relaxed);
  return p;
}

void task_gpu_memory::release() {
  for (auto& [p, bytes] : blocks_) allocator_.free(p);
  blocks_.clear();
  if (in_use_) in_use_->fetch_sub(used_, std::memory_order_relaxed);
  used_ = 0;
}

}  // namespace troupe
