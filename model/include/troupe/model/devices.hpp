#pragma once
// Devices of this process: the GPUs found (see troupe/kernels/gpu_discovery.hpp) and the layout of
// workers over CPU slots and GPUs.
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "troupe/model/config.hpp"
#include "troupe/model/ledger.hpp"
#include "troupe/model/registry.hpp"

namespace troupe {

struct gpu_device {
  int32_t index = -1;
  std::string name;
  int32_t cc_major = 0, cc_minor = 0;
  uint64_t total_memory = 0, free_memory = 0;
};

struct gpu_inventory {
  std::vector<gpu_device> gpus;
  /// Why there are none (no driver, driver too old, no device, built without CUDA); empty if
  /// some were found.
  std::string note;
  /// Devices found but not usable by troupe, each with why (no stream-ordered memory pools).
  std::vector<std::string> left_out;
};

/// One worker of the runtime: which device it drives and what it can hold.
struct worker_desc {
  device_class device = device_class::cpu;
  int32_t device_index = -1;  ///< GPU ordinal for cuda workers
  std::string name;           ///< "cpu-0", "cuda-0"
  worker_capacity capacity;
  std::string node;          ///< the node process that runs it; empty: this process
  int32_t node_worker = -1;  ///< its index among that node's workers
  bool remote() const { return !node.empty(); }
  /// A CUDA worker without a GPU behind it (tests: runtime_config::fake_gpus). Its kinds'
  /// `cuda` implementations run on its lanes, and its task memory is host memory with the same
  /// accounting: the lanes, batching and memory rules run everywhere.
  bool fake = false;
};

/// What one GPU worker holds, for the monitor: written by the balancer (reserved) and the
/// worker's lanes, read by whoever builds stats. Relaxed atomics: figures, not synchronisation.
struct gpu_memory_gauge {
  std::atomic<uint64_t> capacity{0};     ///< what tasks may reserve there (the ledger's)
  std::atomic<uint64_t> reserved{0};     ///< reserved in the ledger for tasks assigned there
  std::atomic<uint64_t> task_bytes{0};   ///< allocated now by running tasks (the pool)
  std::atomic<uint64_t> cache_bytes{0};  ///< cached model weights and generated inputs
  std::atomic<uint64_t> device_used{0};  ///< the whole device, all processes (NVML or CUDA)
  std::atomic<uint64_t> device_total{0};
  std::atomic<const char*> device_source{""};  ///< "nvml", "cuda", or "" (never sampled)
};

/// CPU workers first (cfg.cpu_workers, after resolve()), then one worker per selected GPU (its
/// ledger capacity: total memory minus headroom minus the cache), then cfg.fake_gpus fakes.
/// Unknown GPU indices in cfg.cuda_devices are config errors naming the key.
std::vector<worker_desc> layout_workers(const runtime_config& cfg, const gpu_inventory& gpus);

}  // namespace troupe
