#pragma once
// Inside the CUDA module: what kernels::cuda::* forward to (cuda_kernels.cpp, documented in
// troupe/kernels/builtins.hpp).
#include <memory>
#include <vector>

#include "cuda_launch.hpp"
#include "troupe/kernels/builtins.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/model/gpu_pool.hpp"

namespace troupe::kernels::cuda_impl {

using cuda::gpu_cache;
std::shared_ptr<gpu_cache> make_gpu_cache(int32_t device, gpu_memory_gauge* gauge, uint64_t budget);
void attach_lane(const std::shared_ptr<gpu_cache>& cache);
void* lane_stream(int32_t device);
gpu_allocator& lane_allocator(int32_t device);
void settle_lane();
void sample_device_memory(int32_t device, gpu_memory_gauge& gauge);
task_output gemm(const task_context& ctx);
std::vector<task_output> mlp_batch(const std::vector<const task_spec*>& specs,
                                   const task_context& ctx);
void illegal_address(const task_context& ctx);
bool release_after_crash();

}  // namespace troupe::kernels::cuda_impl
