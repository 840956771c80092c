// Loads the CUDA module (libtroupe_cuda.so) on first use and forwards kernels::cuda::* to it.
#include "cuda_module.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace troupe::kernels {
namespace {

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

/// Where to look, in order: $TROUPE_CUDA_MODULE, next to the program or library that holds
/// this code (and ../lib from there), where the build put it, where it is installed, and
/// finally the loader's own search (LD_LIBRARY_PATH).
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("TROUPE_CUDA_MODULE"); env && *env) out.emplace_back(env);
  Dl_info info{};
  // Only a name with a directory: a program started through PATH reports a bare name, which
  // would make the current directory a place to load code from.
  if (dladdr(reinterpret_cast<void*>(&candidates), &info) && info.dli_fname &&
      std::string{info.dli_fname}.find('/') != std::string::npos) {
    auto dir = directory_of(info.dli_fname);
    out.push_back(dir + "/libtroupe_cuda.so");
    out.push_back(dir + "/../lib/libtroupe_cuda.so");
  }
#ifdef TROUPE_CUDA_MODULE_BUILD_PATH
  out.emplace_back(TROUPE_CUDA_MODULE_BUILD_PATH);
#endif
#ifdef TROUPE_CUDA_MODULE_INSTALL_PATH
  out.emplace_back(TROUPE_CUDA_MODULE_INSTALL_PATH);
#endif
  out.emplace_back("libtroupe_cuda.so");
  return out;
}

struct loaded_module {
  const cuda_api* api = nullptr;
  std::string why;
};

loaded_module load() {
  loaded_module m;
  std::string tried;
  for (auto& path : candidates()) {
    // A path with a slash that does not exist is skipped quietly; a file that exists but does
    // not load (its CUDA libraries are missing) says why.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* err = dlerror();
      tried += (tried.empty() ? "" : "; ") + std::string{err ? err : path};
      continue;
    }
    // Never closed: tasks, caches and lanes hold its code for the life of the process.
    auto entry = reinterpret_cast<const cuda_api* (*)()>(dlsym(handle, "troupe_cuda_api"));
    if (!entry) {
      tried += "; " + path + ": no troupe_cuda_api";
      continue;
    }
    auto* api = entry();
    if (!api || api->version != cuda_api_version) {
      tried += "; " + path + ": module version " + std::to_string(api ? api->version : 0) +
               ", this build needs " + std::to_string(cuda_api_version);
      continue;
    }
    m.api = api;
    return m;
  }
  m.why = "the CUDA module libtroupe_cuda.so did not load (" + tried + ")";
  return m;
}

const cuda_api& required() {
  std::string why;
  if (auto* api = cuda_module(&why)) return *api;
  throw std::runtime_error(why);
}

}  // namespace

const cuda_api* cuda_module(std::string* why) {
  static const loaded_module m = load();  // thread-safe, once
  if (!m.api && why) *why = m.why;
  return m.api;
}

namespace cuda {

std::shared_ptr<gpu_cache> make_gpu_cache(int32_t device, gpu_memory_gauge* gauge,
                                          uint64_t budget) {
  return required().make_gpu_cache(device, gauge, budget);
}
void attach_lane(const std::shared_ptr<gpu_cache>& cache) {
  required().attach_lane(cache);
}
void* lane_stream(int32_t device) {
  return required().lane_stream(device);
}
gpu_allocator& lane_allocator(int32_t device) {
  return required().lane_allocator(device);
}
void settle_lane() {
  required().settle_lane();
}
void sample_device_memory(int32_t device, gpu_memory_gauge& gauge) {
  if (auto* api = cuda_module()) api->sample_device_memory(device, gauge);  // never throws
}
task_output gemm(const task_context& ctx) {
  return required().gemm(ctx);
}
std::vector<task_output> mlp_batch(const std::vector<const task_spec*>& specs,
                                   const task_context& ctx) {
  return required().mlp_batch(specs, ctx);
}
void illegal_address(const task_context& ctx) {
  required().illegal_address(ctx);
}
bool release_after_crash() {
  return required().release_after_crash();
}

direct_gemm::direct_gemm(int32_t device, int64_t n, const std::vector<float>& a,
                         const std::vector<float>& b)
    : state_(required().direct_gemm_open(device, n, a.data(), b.data())) {}
direct_gemm::~direct_gemm() {
  required().direct_gemm_close(state_);
}
double direct_gemm::calls_per_s(size_t count, bool bf16) {
  return required().direct_gemm_rate(state_, count, bf16);
}

}  // namespace cuda
}  // namespace troupe::kernels
