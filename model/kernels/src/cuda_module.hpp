#pragma once
// The CUDA module (libtroupe_cuda.so): every function of troupe that touches the CUDA runtime or
// cuBLAS, behind one table of function pointers. troupe_kernels loads it with dlopen the first
// time GPUs are looked for, so a program that never looks for a GPU (the CLI's --help, status,
// submit, watch; a client) never loads cudart or cuBLAS. Private to model/kernels.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "troupe/kernels/builtins.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/model/gpu_pool.hpp"

namespace troupe::kernels {

/// Bumped whenever the table changes: a module of another version is refused.
/// 2: payloads and output bytes became troupe::shared_bytes.
inline constexpr uint32_t cuda_api_version = 2;

struct cuda_api {
  uint32_t version;
  gpu_inventory (*discover)();
  std::shared_ptr<cuda::gpu_cache> (*make_gpu_cache)(int32_t device, gpu_memory_gauge* gauge,
                                                     uint64_t budget);
  void (*attach_lane)(const std::shared_ptr<cuda::gpu_cache>& cache);
  void* (*lane_stream)(int32_t device);
  gpu_allocator& (*lane_allocator)(int32_t device);
  void (*settle_lane)();
  void (*sample_device_memory)(int32_t device, gpu_memory_gauge& gauge);
  task_output (*gemm)(const task_context& ctx);
  std::vector<task_output> (*mlp_batch)(const std::vector<const task_spec*>& specs,
                                        const task_context& ctx);
  void (*illegal_address)(const task_context& ctx);
  bool (*release_after_crash)();
  // The benchmark's direct cuBLAS baseline (troupe bench gpu-gemm).
  void* (*direct_gemm_open)(int32_t device, int64_t n, const float* a, const float* b);
  double (*direct_gemm_rate)(void* state, size_t count, bool bf16);
  void (*direct_gemm_close)(void* state);
};

/// The loaded module's table, or null with why (no module file, no libcudart, a version
/// mismatch). Loads once; thread-safe.
const cuda_api* cuda_module(std::string* why = nullptr);

}  // namespace troupe::kernels

/// The module's one exported symbol.
extern "C" const troupe::kernels::cuda_api* troupe_cuda_api();
