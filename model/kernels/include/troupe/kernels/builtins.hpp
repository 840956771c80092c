#pragma once
// Built-in task kinds: noop, sleep, fail, gemm, mlp (CPU through OpenBLAS).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "troupe/model/registry.hpp"

namespace troupe {
struct gpu_memory_gauge;
class gpu_allocator;
}  // namespace troupe

namespace troupe::kernels {

/// Registers noop, sleep, fail, gemm and mlp.
void register_builtins(task_registry& registry);

/// Deterministic uniform floats in [-scale, scale) from a seed (splitmix64). Used to generate
/// gemm inputs and mlp weights, so a caller can recompute any result.
void fill_uniform(float* out, size_t n, uint64_t seed, float scale);

/// Sum of all elements, in double: the checksum gemm returns.
double checksum(const float* data, size_t n);

/// Weights of an mlp: per layer i, W_i (widths[i] x widths[i+1], row-major) and b_i.
struct mlp_model {
  std::vector<int64_t> widths;
  std::vector<std::vector<float>> weights, biases;
};
mlp_model make_mlp_model(const std::vector<int64_t>& widths, uint64_t seed);

/// Forward pass with OpenBLAS: ReLU hidden layers, softmax output. x: batch x widths[0].
/// Returns batch x widths.back() probabilities.
std::vector<float> mlp_forward(const mlp_model& model, const std::vector<float>& x, int64_t batch);

/// What an mlp task returns, from its softmax output (rows x classes): argmax per row and
/// checksum = sum of p * (class + 1). Shared by the CPU and CUDA paths.
task_output mlp_output(const float* probs, int64_t rows, int64_t classes);

/// The input batch of an mlp task: its payload, or rows generated from its seed.
void mlp_input(const task_spec& spec, int64_t rows, int64_t width, float* out);

/// mlp tasks batch by model: same layer widths and seed.
std::string mlp_batch_key(const task_spec& spec);

/// Inputs gemm generates from its seed when no payload is given.
void gemm_inputs(int64_t m, int64_t n, int64_t k, uint64_t seed, std::vector<float>& a,
                 std::vector<float>& b);

/// gemm's `precision` parameter: the inputs' type on the GPU (bf16/fp16 products accumulate in
/// float32). The CPU path rounds its inputs the same way, so both agree.
enum class gemm_precision : uint8_t { fp32, bf16, fp16 };
gemm_precision gemm_precision_of(const param_map& p);  ///< throws invalid_params
/// Rounds floats to the precision's nearest value (round to nearest even), in place.
void round_inputs(float* data, size_t n, gemm_precision precision);

/// GPU memory a task uses on a CUDA worker (what validate fills into needs.gpu_memory_bytes).
/// Generated inputs and mlp weights live in the worker's cache (workers.gpu_cache_bytes) instead.
uint64_t gemm_gpu_bytes(int64_t m, int64_t n, int64_t k, gemm_precision precision);
uint64_t mlp_gpu_bytes(int64_t rows, int64_t widest);

#ifdef TROUPE_WITH_CUDA
// Everything that touches CUDA lives in the CUDA module, libtroupe_cuda.so, which is loaded the
// first time GPUs are looked for (discover_gpus()): a program that never looks (a client, the
// CLI's status or submit) never loads cudart or cuBLAS. These forward to it; calling one when
// the module could not be loaded throws std::runtime_error saying why (discover_gpus() says it
// as its note instead, so no GPU worker is ever started without it).
namespace cuda {
struct gpu_cache;
/// What the lanes of one GPU worker share: model weights and inputs generated from a seed, at
/// most `budget` bytes (least recently used dropped), shown in the gauge. Freed with its last
/// lane, so a restarted worker starts empty.
std::shared_ptr<gpu_cache> make_gpu_cache(int32_t device, gpu_memory_gauge* gauge, uint64_t budget);
/// Makes the calling thread one lane of the worker that owns `cache`: its own stream, cuBLAS
/// handle and pinned staging buffer, on the cache's GPU.
void attach_lane(const std::shared_ptr<gpu_cache>& cache);
/// The calling lane's stream (a cudaStream_t), attaching with defaults if needed.
void* lane_stream(int32_t device);
/// The calling lane's allocator: CUDA's stream-ordered memory pool, on the lane's stream.
gpu_allocator& lane_allocator(int32_t device);
/// Waits for what the calling lane's stream still has queued (after a failed launch), ignoring
/// errors.
void settle_lane();
/// Samples the device's memory use (NVML where libnvidia-ml loads, else cudaMemGetInfo) into
/// the gauge. Never throws.
void sample_device_memory(int32_t device, gpu_memory_gauge& gauge);
/// gemm through cuBLAS on the calling worker's GPU (ctx.device_index).
task_output gemm(const task_context& ctx);
/// mlp inference of several tasks of one model in one pass: cuBLAS per layer, the project's
/// fused bias+ReLU and softmax kernels. One output per spec, in order.
std::vector<task_output> mlp_batch(const std::vector<const task_spec*>& specs,
                                   const task_context& ctx);
/// Launches a kernel that writes to an illegal address and waits for it: throws, and leaves
/// the context poisoned. For fault-injection tests (fail kind, error = "gpu_fault").
void illegal_address(const task_context& ctx);
/// After a crash on this lane: whether the device context is poisoned (a sticky error: illegal
/// address, launch failure...). Such a context cannot be used again by this process; NVIDIA
/// documents that only a new process recovers (cudaDeviceReset leaves the device "busy or
/// unavailable", measured on an H200). Drops this lane's CUDA state either way, and the
/// device's cache when poisoned.
bool release_after_crash();

/// The benchmark's baseline: back-to-back cuBLAS products of n x n inputs already on the
/// device (float32, or bf16 copies converted beforehand), float32 results.
class direct_gemm {
 public:
  direct_gemm(int32_t device, int64_t n, const std::vector<float>& a, const std::vector<float>& b);
  ~direct_gemm();
  direct_gemm(const direct_gemm&) = delete;
  direct_gemm& operator=(const direct_gemm&) = delete;
  /// Runs `count` products and waits for them: calls per second.
  double calls_per_s(size_t count, bool bf16);

 private:
  void* state_;
};
}  // namespace cuda
#endif

}  // namespace troupe::kernels
