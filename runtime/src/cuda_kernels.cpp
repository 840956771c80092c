// CUDA implementations of built-in kinds, through cuBLAS. Compiled only with TROUPE_WITH_CUDA.
//
// Each CUDA worker owns its thread, so per-thread state is per worker: the cuBLAS handle, a
// stream, grow-only device buffers, a pinned staging buffer, and the device copies of inputs
// generated from a seed (kept like a served model's weights, a few at most).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <stdexcept>
#include <string>

#include "cuda_launch.hpp"
#include "troupe/kernels.hpp"

namespace troupe::kernels::cuda {

namespace {

void check(cudaError_t rc, const char* what) {
  if (rc == cudaSuccess) return;
  if (rc == cudaErrorMemoryAllocation)
    throw task_failure{errc::out_of_memory, std::string{what} + ": GPU out of memory"};
  // Anything else may have poisoned the context: a crash, so the worker restarts fresh.
  throw std::runtime_error(std::string{what} + ": " + cudaGetErrorName(rc) + " (" +
                           cudaGetErrorString(rc) + ")");
}

void check(cublasStatus_t rc, const char* what) {
  if (rc == CUBLAS_STATUS_SUCCESS) return;
  if (rc == CUBLAS_STATUS_ALLOC_FAILED)
    throw task_failure{errc::out_of_memory, std::string{what} + ": cuBLAS out of memory"};
  throw std::runtime_error(std::string{what} + ": cuBLAS status " + std::to_string(int(rc)));
}

/// A grow-only buffer in device memory, or in pinned host memory (for full-speed copies).
template <class T, bool Pinned = false>
struct cuda_buffer {
  T* ptr = nullptr;
  size_t capacity = 0;
  T* reserve(size_t n) {
    if (n > capacity) {
      release();
      auto** out = reinterpret_cast<void**>(&ptr);
      if (Pinned)
        check(cudaMallocHost(out, n * sizeof(T)), "cudaMallocHost");
      else
        check(cudaMalloc(out, n * sizeof(T)), "cudaMalloc");
      capacity = n;
    }
    return ptr;
  }
  void release() {
    if (ptr) Pinned ? cudaFreeHost(ptr) : cudaFree(ptr);
    ptr = nullptr;
    capacity = 0;
  }
  ~cuda_buffer() { release(); }
};

template <class T>
using device_buffer = cuda_buffer<T, false>;

struct cached_inputs {
  int64_t m, n, k;
  uint64_t seed;
  device_buffer<float> data;  // A (m x k) then B (k x n)
};

struct device_mlp {
  std::vector<int64_t> widths;
  uint64_t seed;
  device_buffer<float> params;  // W_0, b_0, W_1, b_1, ... back to back
  std::vector<size_t> w_offset, b_offset;
};

struct gpu_context {
  int device = -1;
  cublasHandle_t blas = nullptr;
  cudaStream_t stream = nullptr;
  device_buffer<float> inputs, output, ones;
  cuda_buffer<float, true> pinned;     // staging for host <-> device copies
  std::list<cached_inputs> generated;  // most recently used first, at most 4
  std::list<device_mlp> models;        // most recently used first, at most 4
  device_buffer<float> act_a, act_b;   // activations, ping-pong between layers

  void bind(int dev) {
    if (device == dev) return;
    if (device >= 0) throw std::runtime_error("a CUDA worker thread switched devices");
    check(cudaSetDevice(dev), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasCreate(&blas), "cublasCreate");
    check(cublasSetStream(blas, stream), "cublasSetStream");
    device = dev;
  }
  float* staging(size_t n) { return pinned.reserve(n); }
  /// Frees everything this thread holds on its device; errors are ignored (the context may be
  /// poisoned). Safe to call twice.
  void release() {
    generated.clear();
    models.clear();
    inputs.release();
    output.release();
    ones.release();
    act_a.release();
    act_b.release();
    pinned.release();
    if (blas) cublasDestroy(blas);
    blas = nullptr;
    if (stream) cudaStreamDestroy(stream);
    stream = nullptr;
    device = -1;
  }
  ~gpu_context() { release(); }
};

thread_local gpu_context gpu;

const float* generated_inputs(int64_t m, int64_t n, int64_t k, uint64_t seed) {
  for (auto i = gpu.generated.begin(); i != gpu.generated.end(); ++i) {
    if (i->m == m && i->n == n && i->k == k && i->seed == seed) {
      gpu.generated.splice(gpu.generated.begin(), gpu.generated, i);
      return gpu.generated.front().data.ptr;
    }
  }
  std::vector<float> a, b;
  gemm_inputs(m, n, k, seed, a, b);
  if (gpu.generated.size() >= 4) gpu.generated.pop_back();
  gpu.generated.push_front(cached_inputs{m, n, k, seed, {}});
  auto* d = gpu.generated.front().data.reserve(a.size() + b.size());
  check(cudaMemcpy(d, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice), "upload A");
  check(cudaMemcpy(d + a.size(), b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice),
        "upload B");
  return d;
}

const device_mlp& mlp_model_on_device(const std::vector<int64_t>& widths, uint64_t seed) {
  for (auto i = gpu.models.begin(); i != gpu.models.end(); ++i) {
    if (i->widths == widths && i->seed == seed) {
      gpu.models.splice(gpu.models.begin(), gpu.models, i);
      return gpu.models.front();
    }
  }
  auto host = make_mlp_model(widths, seed);  // the same weights as the CPU path
  if (gpu.models.size() >= 4) gpu.models.pop_back();
  gpu.models.push_front(device_mlp{widths, seed, {}, {}, {}});
  auto& m = gpu.models.front();
  size_t total = 0;
  for (size_t l = 0; l < host.weights.size(); ++l) {
    m.w_offset.push_back(total);
    total += host.weights[l].size();
    m.b_offset.push_back(total);
    total += host.biases[l].size();
  }
  auto* d = m.params.reserve(total);
  for (size_t l = 0; l < host.weights.size(); ++l) {
    check(cudaMemcpy(d + m.w_offset[l], host.weights[l].data(), host.weights[l].size() * 4,
                     cudaMemcpyHostToDevice),
          "upload weights");
    check(cudaMemcpy(d + m.b_offset[l], host.biases[l].data(), host.biases[l].size() * 4,
                     cudaMemcpyHostToDevice),
          "upload biases");
  }
  return m;
}

}  // namespace

std::vector<task_output> mlp_batch(const std::vector<const task_spec*>& specs,
                                   const task_context& ctx) {
  gpu.bind(ctx.device_index);
  auto widths = specs.front()->params.get_int_list("layers");
  auto seed = uint64_t(specs.front()->params.get_int("seed", 1));
  auto& model = mlp_model_on_device(widths, seed);
  // All tasks' rows become one input matrix: one pass over the weights serves every task.
  std::vector<int64_t> rows_of;
  int64_t rows = 0;
  for (auto* s : specs) rows_of.push_back(s->params.get_int("batch", 1)), rows += rows_of.back();
  int64_t widest = *std::max_element(widths.begin(), widths.end());
  auto in_width = widths.front(), classes = widths.back();
  auto* host = gpu.staging(size_t(rows * std::max(in_width, classes)));
  int64_t at = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    mlp_input(*specs[i], rows_of[i], in_width, host + at * in_width);
    at += rows_of[i];
  }
  auto* x = gpu.act_a.reserve(size_t(rows * widest));
  auto* y = gpu.act_b.reserve(size_t(rows * widest));
  check(cudaMemcpyAsync(x, host, size_t(rows * in_width) * 4, cudaMemcpyHostToDevice, gpu.stream),
        "upload inputs");
  const float one = 1.0f, zero = 0.0f;
  auto layers = widths.size() - 1;
  for (size_t l = 0; l < layers; ++l) {
    auto in = int(widths[l]), out = int(widths[l + 1]);
    // Row-major Y (rows x out) = X (rows x in) W (in x out): column-major Y^T = W^T X^T.
    check(cublasSgemm(gpu.blas, CUBLAS_OP_N, CUBLAS_OP_N, out, int(rows), in, &one,
                      model.params.ptr + model.w_offset[l], out, x, in, &zero, y, out),
          "cublasSgemm");
    launch_bias_activation(y, model.params.ptr + model.b_offset[l], int(rows), out, l + 1 < layers,
                           gpu.stream);
    std::swap(x, y);
  }
  launch_softmax_rows(x, int(rows), int(classes), gpu.stream);
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpyAsync(host, x, size_t(rows * classes) * 4, cudaMemcpyDeviceToHost, gpu.stream),
        "download probabilities");
  // This worker owns its thread (detached): waiting here blocks no scheduler thread.
  check(cudaStreamSynchronize(gpu.stream), "mlp forward");
  std::vector<task_output> outs;
  at = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    outs.push_back(mlp_output(host + at * classes, rows_of[i], classes));
    outs.back().values.set("device", std::string{"cuda"});
    at += rows_of[i];
  }
  return outs;
}

void illegal_address(const task_context& ctx) {
  gpu.bind(ctx.device_index);
  launch_illegal_write(gpu.stream);
  check(cudaStreamSynchronize(gpu.stream), "illegal write");
}

bool release_after_crash() {
  bool poisoned = false;
  if (gpu.device >= 0) {
    // A sticky error is returned by every later call; a transient one is cleared by reading it.
    cudaGetLastError();
    poisoned = cudaDeviceSynchronize() != cudaSuccess;
  }
  gpu.release();
  return poisoned;
}

task_output gemm(const task_context& ctx) {
  gpu.bind(ctx.device_index);
  auto& p = ctx.spec.params;
  auto size = p.get_int("size", 0);
  auto m = p.get_int("m", size ? size : 1), n = p.get_int("n", size ? size : 1),
       k = p.get_int("k", size ? size : 1);
  size_t in_count = size_t(m * k + k * n), out_count = size_t(m * n);
  const float* d_in;
  if (!ctx.spec.payload.empty()) {
    auto* host = gpu.staging(in_count);  // pinned: the copy runs at full bus speed
    std::memcpy(host, ctx.spec.payload.data(), in_count * sizeof(float));
    auto* d = gpu.inputs.reserve(in_count);
    check(cudaMemcpyAsync(d, host, in_count * sizeof(float), cudaMemcpyHostToDevice, gpu.stream),
          "upload payload");
    d_in = d;
  } else {
    d_in = generated_inputs(m, n, k, uint64_t(p.get_int("seed", 1)));
  }
  auto* d_c = gpu.output.reserve(out_count);
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A B is column-major C^T = B^T A^T.
  check(cublasSgemm(gpu.blas, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &one, d_in + m * k,
                    int(n), d_in, int(k), &zero, d_c, int(n)),
        "cublasSgemm");
  // Checksum on the device: dot(C, ones). Host pointer mode: returns when the stream is done.
  if (gpu.ones.capacity < out_count) {
    auto* ones = gpu.ones.reserve(out_count);
    std::vector<float> h(out_count, 1.0f);
    check(cudaMemcpy(ones, h.data(), out_count * sizeof(float), cudaMemcpyHostToDevice),
          "upload ones");
  }
  float sum = 0;
  check(cublasSdot(gpu.blas, int(out_count), d_c, 1, gpu.ones.ptr, 1, &sum), "cublasSdot");
  task_output out;
  out.values.set("checksum", double(sum));
  out.values.set("device", std::string{"cuda"});
  if (p.get_string("output", "checksum") == "matrix") {
    out.bytes.resize(out_count * sizeof(float));
    check(cudaMemcpy(out.bytes.data(), d_c, out.bytes.size(), cudaMemcpyDeviceToHost),
          "download C");
  }
  return out;
}

}  // namespace troupe::kernels::cuda
