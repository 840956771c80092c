// The CUDA module's entry: GPU discovery, the benchmark's direct cuBLAS baseline, and the table
// of everything troupe_kernels calls in here (cuda_module.hpp).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <string>

#include "cuda_impl.hpp"
#include "cuda_module.hpp"

namespace troupe::kernels::cuda_impl {
namespace {

gpu_inventory discover() {
  gpu_inventory inv;
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
  return inv;
}

/// Back-to-back products of inputs already on the device: what troupe's gemm is compared with.
struct direct_gemm_state {
  int64_t n = 0;
  float *a = nullptr, *b = nullptr, *c = nullptr;
  void *a16 = nullptr, *b16 = nullptr;
  cublasHandle_t handle = nullptr;
};

void* direct_gemm_open(int32_t device, int64_t n, const float* a, const float* b) {
  auto* s = new direct_gemm_state;
  s->n = n;
  auto bytes = size_t(n * n) * sizeof(float);
  cudaSetDevice(device);
  cudaMalloc(reinterpret_cast<void**>(&s->a), bytes);
  cudaMalloc(reinterpret_cast<void**>(&s->b), bytes);
  cudaMalloc(reinterpret_cast<void**>(&s->c), bytes);
  cudaMemcpy(s->a, a, bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(s->b, b, bytes, cudaMemcpyHostToDevice);
  // bf16 copies converted beforehand: the baseline pays no conversion (a troupe task does).
  cudaMalloc(&s->a16, size_t(n * n) * 2);
  cudaMalloc(&s->b16, size_t(n * n) * 2);
  launch_to_half(s->a, s->a16, size_t(n * n), true, nullptr);
  launch_to_half(s->b, s->b16, size_t(n * n), true, nullptr);
  cudaDeviceSynchronize();
  cublasCreate(&s->handle);
  return s;
}

double direct_gemm_rate(void* state, size_t count, bool bf16) {
  auto* s = static_cast<direct_gemm_state*>(state);
  const float one = 1, zero = 0;
  int n = int(s->n);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < count; ++i) {
    if (bf16)
      cublasGemmEx(s->handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, s->b16, CUDA_R_16BF, n,
                   s->a16, CUDA_R_16BF, n, &zero, s->c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                   CUBLAS_GEMM_DEFAULT);
    else
      cublasSgemm(s->handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, s->b, n, s->a, n, &zero, s->c,
                  n);
  }
  cudaDeviceSynchronize();
  return double(count) /
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void direct_gemm_close(void* state) {
  auto* s = static_cast<direct_gemm_state*>(state);
  cublasDestroy(s->handle);
  for (void* p : {static_cast<void*>(s->a), static_cast<void*>(s->b), static_cast<void*>(s->c),
                  s->a16, s->b16})
    cudaFree(p);
  delete s;
}

const cuda_api table{cuda_api_version,
                     discover,
                     make_gpu_cache,
                     attach_lane,
                     lane_stream,
                     lane_allocator,
                     settle_lane,
                     sample_device_memory,
                     gemm,
                     mlp_batch,
                     illegal_address,
                     release_after_crash,
                     direct_gemm_open,
                     direct_gemm_rate,
                     direct_gemm_close};

}  // namespace
}  // namespace troupe::kernels::cuda_impl

extern "C" __attribute__((visibility("default"))) const troupe::kernels::cuda_api*
troupe_cuda_api() {
  return &troupe::kernels::cuda_impl::table;
}
