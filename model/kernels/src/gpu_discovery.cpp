#include "troupe/kernels/gpu_discovery.hpp"

#include <string>

#ifdef TROUPE_WITH_CUDA
#include "cuda_module.hpp"
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
#ifdef TROUPE_WITH_CUDA
  std::string why;
  if (auto* api = kernels::cuda_module(&why)) return api->discover();
  gpu_inventory inv;
  inv.note = why;
  return inv;
#else
  gpu_inventory inv;
  inv.note = "built without CUDA (TROUPE_WITH_CUDA=OFF or no nvcc at build time)";
  return inv;
#endif
}

}  // namespace troupe
