#include "troupe/model/devices.hpp"

#include <algorithm>

namespace troupe {

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
