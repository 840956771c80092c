#pragma once
// Which GPUs this process can use: asks the CUDA runtime (in the kernels target, so that code
// that never runs a kernel never links CUDA).
#include "troupe/model/devices.hpp"

namespace troupe {

/// Whether this build has CUDA support compiled in.
bool cuda_compiled() noexcept;
/// Asks the CUDA runtime. Never throws: no device, no driver or an old driver is a normal
/// situation, described in `note`.
gpu_inventory discover_gpus();

}  // namespace troupe
