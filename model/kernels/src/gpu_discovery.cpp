#include "troupe/kernels/gpu_discovery.hpp"

#include <string>

#ifdef TROUPE_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace troupe {

bool cuda_compiled() noexcept {
#ifdef TROUPE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

gpu_inventory discover_gpus() {
  gpu_inventory inv;
#ifdef TROUPE_WITH_CUDA
  int count = 0;
  auto rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    inv.note = std::string{"CUDA unavailable: "} + cudaGetErrorName(rc) + " (" +
               cudaGetErrorString(rc) + ")";
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return inv;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    int pools = 0;  // the lanes allocate task memory from CUDA's stream-ordered pool
    if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, i) != cudaSuccess ||
        !pools) {
      inv.left_out.push_back("GPU " + std::to_string(i) + " (" + p.name +
                             "): no stream-ordered memory pools (CUDA 11.2+ devices have them)");
      continue;
    }
    gpu_device d;
    d.index = i;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.total_memory = p.totalGlobalMem;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      d.free_memory = free_b;
    inv.gpus.push_back(d);
  }
  if (inv.gpus.empty())
    inv.note = inv.left_out.empty() ? "no CUDA device found" : "no usable CUDA device";
#else
  inv.note = "built without CUDA (TROUPE_WITH_CUDA=OFF or no nvcc at build time)";
#endif
  return inv;
}

}  // namespace troupe
