#include "troupe/devices.hpp"

#include <algorithm>

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

std::vector<worker_desc> layout_workers(const runtime_config& cfg, const gpu_inventory& gpus) {
  std::vector<worker_desc> out;
  for (uint32_t i = 0; i < cfg.cpu_workers; ++i) {
    worker_desc w;
    w.name = "cpu-" + std::to_string(i);
    w.capacity = {1, cfg.worker_memory_bytes, 0, 0};
    out.push_back(w);
  }
  std::vector<int32_t> chosen;
  if (cfg.cuda == cuda_selection::all) {
    for (auto& g : gpus.gpus) chosen.push_back(g.index);
  } else if (cfg.cuda == cuda_selection::list) {
    for (auto idx : cfg.cuda_devices) {
      auto it = std::find_if(gpus.gpus.begin(), gpus.gpus.end(),
                             [&](const gpu_device& g) { return g.index == idx; });
      if (it == gpus.gpus.end())
        throw config_error("workers.cuda", 0, "workers.cuda",
                           "GPU " + std::to_string(idx) + " does not exist here (" +
                               std::to_string(gpus.gpus.size()) + " found" +
                               (gpus.note.empty() ? "" : ": " + gpus.note) + ")");
      chosen.push_back(idx);
    }
  }
  for (auto idx : chosen) {
    auto& g = *std::find_if(gpus.gpus.begin(), gpus.gpus.end(),
                            [&](const gpu_device& d) { return d.index == idx; });
    worker_desc w;
    w.device = device_class::cuda;
    w.device_index = idx;
    w.name = "cuda-" + std::to_string(idx);
    auto kept = cfg.gpu_memory_headroom_bytes + cfg.gpu_cache_bytes;
    auto usable = g.total_memory > kept ? g.total_memory - kept : 0;
    // One host slot drives the GPU; host memory for staging is bounded like a CPU worker's.
    w.capacity = {1, cfg.worker_memory_bytes, 1, usable};
    out.push_back(w);
  }
  for (uint32_t i = 0; i < cfg.fake_gpus; ++i) {
    worker_desc w;
    w.device = device_class::cuda;
    w.name = "fake-gpu-" + std::to_string(i);
    w.fake = true;
    w.capacity = {1, cfg.worker_memory_bytes, 1, cfg.fake_gpu_memory_bytes};
    out.push_back(w);
  }
  return out;
}

}  // namespace troupe
