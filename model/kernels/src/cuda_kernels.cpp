// CUDA implementations of built-in kinds, through cuBLAS: part of the CUDA module
// (libtroupe_cuda.so, loaded at run time; cuda_module.hpp).
//
// A GPU worker runs its tasks on several lanes: threads of its own, each with its own stream,
// cuBLAS handle and pinned staging buffer (thread_local here), so tasks on one GPU overlap.
// Task memory comes from CUDA's stream-ordered pool through task_gpu_memory, held to each
// task's reservation. What tasks share (model weights, inputs generated from a seed) lives in
// one cache per device, bounded by workers.gpu_cache_bytes.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda_impl.hpp"
#include "troupe/kernels/builtins.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/model/gpu_pool.hpp"

namespace troupe::kernels::cuda_impl {

namespace {

void check(cudaError_t rc, const char* what) {
  if (rc == cudaSuccess) return;
  if (rc == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it, or the lane's next launch would report it
    throw task_failure{errc::out_of_memory, std::string{what} + ": GPU out of memory"};
  }
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

// --- the device cache ------------------------------------------------------------------------

/// Device memory shared by the tasks of one GPU; freed when the cache and every task using it
/// have let go.
struct cache_block {
  int32_t device = -1;
  float* ptr = nullptr;
  uint64_t bytes = 0;
  std::atomic<uint64_t>* gauge = nullptr;
  std::vector<size_t> w_offset, b_offset;  // mlp: where each layer's weights and biases are
  ~cache_block() {
    // Whichever thread lets go last (a lane, or the worker after its lanes) frees it on its
    // device; every task that used it has synchronised already. Errors are ignored: the context
    // may be poisoned.
    if (ptr && cudaSetDevice(device) == cudaSuccess) cudaFreeAsync(ptr, nullptr);
    if (gauge) gauge->fetch_sub(bytes, std::memory_order_relaxed);
  }
};
using block_ptr = std::shared_ptr<const cache_block>;

}  // namespace

}  // namespace troupe::kernels::cuda_impl

// The opaque type of builtins.hpp, defined here in its own namespace.
namespace troupe::kernels::cuda {
/// What the tasks of one GPU worker share; its lanes hold it, and it goes with the last of them.
struct gpu_cache {
  int32_t device = -1;
  std::mutex mutex;
  uint64_t budget = uint64_t(1) << 30, bytes = 0;
  gpu_memory_gauge* gauge = nullptr;
  std::list<std::pair<std::string, cuda_impl::block_ptr>> lru;  // most recently used first
};
}  // namespace troupe::kernels::cuda

namespace troupe::kernels::cuda_impl {

namespace {

/// Finds `key`, or makes it with fill(block, stream) (under the lock: a lane that needs the same
/// model waits for the upload instead of repeating it). Past the budget the least recently used
/// entries go; an entry larger than the whole budget is an out-of-memory failure of the task.
template <class Fill>
block_ptr cached(gpu_cache& c, const std::string& key, uint64_t bytes, cudaStream_t stream,
                 Fill&& fill) {
  std::lock_guard<std::mutex> guard{c.mutex};
  for (auto i = c.lru.begin(); i != c.lru.end(); ++i) {
    if (i->first == key) {
      c.lru.splice(c.lru.begin(), c.lru, i);
      return i->second;
    }
  }
  if (bytes > c.budget)
    throw task_failure{errc::out_of_memory,
                       key + " needs " + std::to_string(bytes) +
                           " bytes of the GPU cache, more than workers.gpu_cache_bytes = " +
                           std::to_string(c.budget)};
  while (!c.lru.empty() && c.bytes + bytes > c.budget) {
    c.bytes -= c.lru.back().second->bytes;
    c.lru.pop_back();  // freed once the last task using it lets go
  }
  auto block = std::make_shared<cache_block>();
  block->device = c.device;
  check(cudaMallocAsync(reinterpret_cast<void**>(&block->ptr), bytes, stream), "cache allocation");
  block->bytes = bytes;
  if (c.gauge) {
    block->gauge = &c.gauge->cache_bytes;
    block->gauge->fetch_add(bytes, std::memory_order_relaxed);
  }
  fill(*block, stream);
  check(cudaStreamSynchronize(stream), "cache upload");  // every lane may use it from now on
  c.lru.emplace_front(key, block);
  c.bytes += bytes;
  return block;
}

// --- lanes -----------------------------------------------------------------------------------

/// CUDA's stream-ordered pool, on one lane's stream: freed blocks are reused without a device
/// synchronisation (cudaFree would wait for every lane).
class stream_pool_allocator final : public gpu_allocator {
 public:
  cudaStream_t stream = nullptr;
  void* allocate(size_t bytes) override {
    void* p = nullptr;
    auto rc = cudaMallocAsync(&p, bytes ? bytes : 1, stream);
    if (rc == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    check(rc, "cudaMallocAsync");
    return p;
  }
  void free(void* p) override { cudaFreeAsync(p, stream); }
};

/// Grow-only pinned host memory: copies from and to it run at full bus speed, asynchronously.
struct pinned_buffer {
  void* ptr = nullptr;
  size_t capacity = 0;
  void* reserve(size_t bytes) {
    if (bytes > capacity) {
      release();
      // Doubling, from 1 MiB: pinning is slow, and batch sizes vary from launch to launch.
      auto grown = std::max<size_t>({bytes, 2 * capacity, size_t(1) << 20});
      check(cudaMallocHost(&ptr, grown), "cudaMallocHost");
      capacity = grown;
    }
    return ptr;
  }
  void release() {
    if (ptr) cudaFreeHost(ptr);
    ptr = nullptr;
    capacity = 0;
  }
};

/// Once per device and process: freed memory stays in CUDA's pool (the next allocation is
/// then a cheap reuse); devices without stream-ordered pools are refused.
void prepare_device(int32_t dev) {
  static std::mutex mutex;
  static std::map<int32_t, bool> ready;
  std::lock_guard<std::mutex> guard{mutex};
  if (ready.count(dev)) return;
  int supported = 0;
  cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, dev);
  if (!supported)
    throw std::runtime_error("GPU " + std::to_string(dev) +
                             " has no stream-ordered memory pools (CUDA 11.2+ devices do)");
  cudaMemPool_t mp;
  uint64_t keep = UINT64_MAX;
  check(cudaDeviceGetDefaultMemPool(&mp, dev), "cudaDeviceGetDefaultMemPool");
  check(cudaMemPoolSetAttribute(mp, cudaMemPoolAttrReleaseThreshold, &keep), "memory pool");
  ready[dev] = true;
}

struct lane_state {
  int32_t device = -1;
  cublasHandle_t blas = nullptr;
  stream_pool_allocator pool;
  pinned_buffer staging, scalar;
  std::shared_ptr<gpu_cache> cache;

  void attach(std::shared_ptr<gpu_cache> shared) {
    if (device == shared->device) return;
    if (device >= 0) throw std::runtime_error("a CUDA lane switched devices");
    check(cudaSetDevice(shared->device), "cudaSetDevice");
    // Bound from here on, so that a failure below (a context poisoned by another lane) is
    // examined by release_after_crash.
    device = shared->device;
    cache = std::move(shared);
    prepare_device(device);
    check(cudaStreamCreateWithFlags(&pool.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasCreate(&blas), "cublasCreate");
    check(cublasSetStream(blas, pool.stream), "cublasSetStream");
  }
  cudaStream_t stream() const { return pool.stream; }
  /// Frees what this lane holds; errors are ignored (the context may be poisoned).
  void release() {
    staging.release();
    scalar.release();
    if (blas) cublasDestroy(blas);
    blas = nullptr;
    if (pool.stream) cudaStreamDestroy(pool.stream);
    pool.stream = nullptr;
    cache.reset();
    device = -1;
  }
  ~lane_state() { release(); }
};

thread_local lane_state lane;

lane_state& lane_for(int32_t device) {
  if (lane.device < 0) lane.attach(make_gpu_cache(device, nullptr, uint64_t(1) << 30));
  return lane;
}

/// The task's memory: the worker's (ctx.gpu), or, when called outside a worker, one held to
/// the task's reservation all the same.
struct memory_of {
  std::unique_ptr<task_gpu_memory> own;
  gpu_memory* mem;
  memory_of(const task_context& ctx, lane_state& l, uint64_t limit) : mem(ctx.gpu) {
    if (!mem) {
      own = std::make_unique<task_gpu_memory>(l.pool, limit, nullptr);
      mem = own.get();
    }
  }
  template <class T>
  T* get(size_t count, const char* what) {
    return static_cast<T*>(mem->allocate(count * sizeof(T), what));
  }
};

/// The 16 bits of a half-precision value, from a float already rounded to it (round_inputs).
uint16_t half_bits(float rounded, gemm_precision precision) {
  if (precision == gemm_precision::fp16) {
    _Float16 h = _Float16(rounded);
    uint16_t bits;
    std::memcpy(&bits, &h, 2);
    return bits;
  }
  uint32_t bits;
  std::memcpy(&bits, &rounded, 4);
  return uint16_t(bits >> 16);
}

/// A then B, generated from the seed, in the task's input precision: half-precision inputs
/// are converted once, like the float ones are uploaded once.
/// Declared after the cache blocks a launch uses, so destroyed before them: when the launch
/// throws, its queued work ends before they may be freed (another lane may have evicted them).
struct settle_on_throw {
  cudaStream_t stream;
  int pending = std::uncaught_exceptions();
  ~settle_on_throw() {
    if (std::uncaught_exceptions() > pending && cudaStreamSynchronize(stream) != cudaSuccess)
      cudaGetLastError();
  }
};

block_ptr generated_inputs(lane_state& l, int64_t m, int64_t n, int64_t k, uint64_t seed,
                           gemm_precision precision) {
  static const char* names[] = {"fp32", "bf16", "fp16"};
  auto key = std::string{"gemm inputs "} + names[int(precision)] + " " + std::to_string(m) + "x" +
             std::to_string(n) + "x" + std::to_string(k) + " seed " + std::to_string(seed);
  size_t count = size_t(m * k + k * n);
  size_t width = precision == gemm_precision::fp32 ? 4 : 2;
  return cached(*l.cache, key, count * width, l.stream(), [&](cache_block& b, cudaStream_t s) {
    std::vector<float> a, bm;
    gemm_inputs(m, n, k, seed, a, bm);
    a.insert(a.end(), bm.begin(), bm.end());
    std::vector<uint16_t> halves;
    const void* host = a.data();
    if (precision != gemm_precision::fp32) {
      round_inputs(a.data(), a.size(), precision);
      halves.resize(a.size());
      for (size_t i = 0; i < a.size(); ++i) halves[i] = half_bits(a[i], precision);
      host = halves.data();
    }
    check(cudaMemcpyAsync(b.ptr, host, count * width, cudaMemcpyHostToDevice, s), "upload A, B");
    check(cudaStreamSynchronize(s), "upload inputs");  // the host vectors go out of scope
  });
}

block_ptr mlp_model_on_device(lane_state& l, const std::vector<int64_t>& widths, uint64_t seed) {
  std::string key = "mlp model";
  for (auto w : widths) key += " " + std::to_string(w);
  key += " seed " + std::to_string(seed);
  uint64_t floats = 0;
  for (size_t i = 0; i + 1 < widths.size(); ++i)
    floats += uint64_t(widths[i] * widths[i + 1] + widths[i + 1]);
  return cached(*l.cache, key, floats * 4, l.stream(), [&](cache_block& b, cudaStream_t s) {
    auto host = make_mlp_model(widths, seed);  // the same weights as the CPU path
    size_t total = 0;
    for (size_t i = 0; i < host.weights.size(); ++i) {
      b.w_offset.push_back(total);
      total += host.weights[i].size();
      b.b_offset.push_back(total);
      total += host.biases[i].size();
    }
    for (size_t i = 0; i < host.weights.size(); ++i) {
      check(cudaMemcpyAsync(b.ptr + b.w_offset[i], host.weights[i].data(),
                            host.weights[i].size() * 4, cudaMemcpyHostToDevice, s),
            "upload weights");
      check(cudaMemcpyAsync(b.ptr + b.b_offset[i], host.biases[i].data(), host.biases[i].size() * 4,
                            cudaMemcpyHostToDevice, s),
            "upload biases");
    }
    check(cudaStreamSynchronize(s), "upload model");
  });
}

// --- NVML, loaded at run time ------------------------------------------------------------------

struct nvml_api {
  struct memory {
    unsigned long long total, free, used;
  };
  using device = void*;
  int (*init)() = nullptr;
  int (*by_pci)(const char*, device*) = nullptr;
  int (*memory_info)(device, memory*) = nullptr;
  bool loaded = false;

  nvml_api() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    by_pci = reinterpret_cast<int (*)(const char*, device*)>(
        dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    memory_info = reinterpret_cast<int (*)(device, memory*)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
    loaded = init && by_pci && memory_info && init() == 0;
  }
};

}  // namespace

std::shared_ptr<gpu_cache> make_gpu_cache(int32_t device, gpu_memory_gauge* gauge,
                                          uint64_t budget) {
  auto c = std::make_shared<gpu_cache>();
  c->device = device;
  c->gauge = gauge;
  c->budget = budget;
  return c;
}

void attach_lane(const std::shared_ptr<gpu_cache>& cache) {
  lane.attach(cache);
}

void* lane_stream(int32_t device) {
  return lane_for(device).stream();
}

gpu_allocator& lane_allocator(int32_t device) {
  return lane_for(device).pool;
}

void settle_lane() {
  if (lane.device >= 0 && cudaStreamSynchronize(lane.stream()) != cudaSuccess) cudaGetLastError();
  cudaGetLastError();  // a failed launch's own error must not fail the next one
}

void sample_device_memory(int32_t device, gpu_memory_gauge& gauge) {
  static nvml_api nvml;  // NVML is thread-safe once initialised
  char bus[32] = {};
  if (nvml.loaded && cudaDeviceGetPCIBusId(bus, sizeof bus, device) == cudaSuccess) {
    nvml_api::device handle = nullptr;
    nvml_api::memory m{};
    if (nvml.by_pci(bus, &handle) == 0 && nvml.memory_info(handle, &m) == 0) {
      gauge.device_used.store(m.used, std::memory_order_relaxed);
      gauge.device_total.store(m.total, std::memory_order_relaxed);
      gauge.device_source.store("nvml", std::memory_order_relaxed);
      return;
    }
  }
  size_t free_b = 0, total_b = 0;
  int current = -1;
  cudaGetDevice(&current);
  if (current != device) cudaSetDevice(device);
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
    gauge.device_used.store(total_b - free_b, std::memory_order_relaxed);
    gauge.device_total.store(total_b, std::memory_order_relaxed);
    gauge.device_source.store("cuda", std::memory_order_relaxed);
  } else {
    cudaGetLastError();
  }
}

std::vector<task_output> mlp_batch(const std::vector<const task_spec*>& specs,
                                   const task_context& ctx) {
  auto& l = lane_for(ctx.device_index);
  auto stream = l.stream();
  auto widths = specs.front()->params.get_int_list("layers");
  auto seed = uint64_t(specs.front()->params.get_int("seed", 1));
  auto model = mlp_model_on_device(l, widths, seed);
  settle_on_throw settle{stream};
  // All tasks' rows become one input matrix: one pass over the weights serves every task.
  std::vector<int64_t> rows_of;
  int64_t rows = 0;
  uint64_t reserved = 0;
  for (auto* s : specs) {
    rows_of.push_back(s->params.get_int("batch", 1));
    rows += rows_of.back();
    reserved += s->needs.gpu_memory_bytes;
  }
  int64_t widest = *std::max_element(widths.begin(), widths.end());
  auto in_width = widths.front(), classes = widths.back();
  memory_of mem{ctx, l, reserved};
  auto* x = mem.get<float>(size_t(rows * widest), "mlp activations");
  auto* y = mem.get<float>(size_t(rows * widest), "mlp activations");
  auto* host =
      static_cast<float*>(l.staging.reserve(size_t(rows * std::max(in_width, classes)) * 4));
  int64_t at = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    mlp_input(*specs[i], rows_of[i], in_width, host + at * in_width);
    at += rows_of[i];
  }
  check(cudaMemcpyAsync(x, host, size_t(rows * in_width) * 4, cudaMemcpyHostToDevice, stream),
        "upload inputs");
  const float one = 1.0f, zero = 0.0f;
  auto layers = widths.size() - 1;
  for (size_t i = 0; i < layers; ++i) {
    auto in = int(widths[i]), out = int(widths[i + 1]);
    // Row-major Y (rows x out) = X (rows x in) W (in x out): column-major Y^T = W^T X^T.
    check(cublasSgemm(l.blas, CUBLAS_OP_N, CUBLAS_OP_N, out, int(rows), in, &one,
                      model->ptr + model->w_offset[i], out, x, in, &zero, y, out),
          "cublasSgemm");
    launch_bias_activation(y, model->ptr + model->b_offset[i], int(rows), out, i + 1 < layers,
                           stream);
    std::swap(x, y);
  }
  launch_softmax_rows(x, int(rows), int(classes), stream);
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpyAsync(host, x, size_t(rows * classes) * 4, cudaMemcpyDeviceToHost, stream),
        "download probabilities");
  // A lane owns its thread: waiting here blocks neither a scheduler thread nor the other lanes.
  check(cudaStreamSynchronize(stream), "mlp forward");
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
  auto& l = lane_for(ctx.device_index);
  launch_illegal_write(l.stream());
  check(cudaStreamSynchronize(l.stream()), "illegal write");
}

bool release_after_crash() {
  bool poisoned = false;
  if (lane.device >= 0) {
    // A sticky error is returned by every later call; a transient one is cleared by reading it.
    cudaGetLastError();
    poisoned = cudaDeviceSynchronize() != cudaSuccess;
  }
  if (poisoned && lane.cache) {
    std::lock_guard<std::mutex> guard{lane.cache->mutex};
    lane.cache->lru.clear();
    lane.cache->bytes = 0;
  }
  lane.release();
  return poisoned;
}

task_output gemm(const task_context& ctx) {
  auto& l = lane_for(ctx.device_index);
  auto stream = l.stream();
  auto& p = ctx.spec.params;
  auto size = p.get_int("size", 0);
  auto m = p.get_int("m", size ? size : 1), n = p.get_int("n", size ? size : 1),
       k = p.get_int("k", size ? size : 1);
  auto precision = gemm_precision_of(p);
  size_t in_count = size_t(m * k + k * n), out_count = size_t(m * n);
  bool matrix = p.get_string("output", "checksum") == "matrix";
  memory_of mem{ctx, l, ctx.spec.needs.gpu_memory_bytes};
  const float* d_in = nullptr;       // float32 inputs (a payload, or generated at fp32)
  const uint16_t* d_half = nullptr;  // half-precision inputs
  block_ptr inputs;                  // held until the stream is done with it
  settle_on_throw settle{stream};
  auto* host = static_cast<float*>(l.staging.reserve(
      std::max(ctx.spec.payload.empty() ? 0 : in_count, matrix ? out_count : 0) * 4 + 4));
  if (!ctx.spec.payload.empty()) {
    std::memcpy(host, ctx.spec.payload.data(), in_count * sizeof(float));
    auto* d = mem.get<float>(in_count, "gemm inputs");
    check(cudaMemcpyAsync(d, host, in_count * sizeof(float), cudaMemcpyHostToDevice, stream),
          "upload payload");
    d_in = d;
  } else {
    inputs = generated_inputs(l, m, n, k, uint64_t(p.get_int("seed", 1)), precision);
    if (precision == gemm_precision::fp32)
      d_in = inputs->ptr;
    else
      d_half = reinterpret_cast<const uint16_t*>(inputs->ptr);
  }
  auto* d_c = mem.get<float>(out_count, "gemm output");
  auto* d_sum = mem.get<double>(1, "gemm checksum");
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A B is column-major C^T = B^T A^T.
  if (precision == gemm_precision::fp32) {
    check(cublasSgemm(l.blas, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &one, d_in + m * k,
                      int(n), d_in, int(k), &zero, d_c, int(n)),
          "cublasSgemm");
  } else {
    bool bf16 = precision == gemm_precision::bf16;
    auto type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    if (!d_half) {  // a payload: converted on the device, into the task's memory
      auto* half = mem.get<uint16_t>(in_count, "gemm half-precision inputs");
      launch_to_half(d_in, half, in_count, bf16, stream);
      d_half = half;
    }
    check(cublasGemmEx(l.blas, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &one,
                       d_half + m * k, type, int(n), d_half, type, int(k), &zero, d_c, CUDA_R_32F,
                       int(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  }
  check(cudaMemsetAsync(d_sum, 0, sizeof(double), stream), "checksum");
  launch_sum(d_c, out_count, d_sum, stream);
  check(cudaGetLastError(), "kernel launch");
  auto* sum = static_cast<double*>(l.scalar.reserve(sizeof(double)));
  check(cudaMemcpyAsync(sum, d_sum, sizeof(double), cudaMemcpyDeviceToHost, stream),
        "download checksum");
  if (matrix)
    check(cudaMemcpyAsync(host, d_c, out_count * 4, cudaMemcpyDeviceToHost, stream), "download C");
  check(cudaStreamSynchronize(stream), "gemm");
  task_output out;
  out.values.set("checksum", *sum);
  out.values.set("device", std::string{"cuda"});
  if (matrix) {
    auto* floats = reinterpret_cast<const uint8_t*>(host);
    out.bytes.assign(floats, floats + out_count * sizeof(float));
  }
  return out;
}

}  // namespace troupe::kernels::cuda_impl
