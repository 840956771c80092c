#pragma once
// Per-worker figures that threads outside the actors read (a submitting caller asks "is this
// worker out of service?", status asks for GPU memory). Each figure has one writer: the
// supervisor retires a worker; a GPU worker writes its memory in use and cached (on a head,
// membership writes them from the node's heartbeats); the balancer writes the reserved memory
// and capacity. Everyone else reads.
#include <atomic>
#include <cstddef>
#include <memory>

#include "troupe/model/devices.hpp"

namespace troupe {

class worker_gauges {
 public:
  explicit worker_gauges(size_t workers)
      : size_(workers),
        retired_(std::make_unique<std::atomic<bool>[]>(workers)),
        gpu_(std::make_unique<gpu_memory_gauge[]>(workers)) {}

  size_t size() const { return size_; }
  /// Out of service for good (a poisoned GPU context). Written by the supervisor only.
  void retire(size_t worker) { retired_[worker].store(true, std::memory_order_release); }
  bool retired(size_t worker) const { return retired_[worker].load(std::memory_order_acquire); }
  /// GPU memory of a GPU worker; written by that worker (and, on a head, by membership from
  /// its node's heartbeats).
  gpu_memory_gauge& gpu(size_t worker) { return gpu_[worker]; }
  const gpu_memory_gauge& gpu(size_t worker) const { return gpu_[worker]; }

 private:
  size_t size_;
  std::unique_ptr<std::atomic<bool>[]> retired_;
  std::unique_ptr<gpu_memory_gauge[]> gpu_;
};

}  // namespace troupe
