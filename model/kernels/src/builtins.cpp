#include "troupe/kernels/builtins.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace troupe::kernels {

namespace {

constexpr int64_t max_dim = 1 << 15;  // 32768: beyond this a single task is not reasonable

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void require(bool ok, const std::string& what) {
  if (!ok) throw task_failure{errc::invalid_params, what};
}

int64_t dim(const param_map& p, const std::string& key, int64_t fallback) {
  auto v = p.get_int(key, fallback);
  require(v >= 1 && v <= max_dim, "parameter '" + key + "' must be in [1, " +
                                      std::to_string(max_dim) + "], got " + std::to_string(v));
  return v;
}

// A payload of floats of the expected count, or empty (generate from the seed).
bool payload_floats(const task_spec& spec, size_t expected, const char* what) {
  if (spec.payload.empty()) return false;
  require(spec.payload.size() == expected * sizeof(float),
          std::string{"payload must hold "} + what + " (" + std::to_string(expected * 4) +
              " bytes), got " + std::to_string(spec.payload.size()) + " bytes");
  return true;
}

// --- gemm ---------------------------------------------------------------------------------
struct gemm_dims {
  int64_t m, n, k;
};

gemm_dims gemm_dims_of(const param_map& p) {
  auto size = p.contains("size") ? dim(p, "size", 1) : 0;
  return {dim(p, "m", size ? size : 1), dim(p, "n", size ? size : 1), dim(p, "k", size ? size : 1)};
}

double gemm_validate(task_spec& spec) {
  auto d = gemm_dims_of(spec.params);
  spec.params.get_int("seed", 1);
  auto precision = gemm_precision_of(spec.params);
  payload_floats(spec, size_t(d.m * d.k + d.k * d.n), "A (m x k) then B (k x n) as float32");
  if (spec.needs.memory_bytes == 0)
    spec.needs.memory_bytes = uint64_t(4) * uint64_t(d.m * d.k + d.k * d.n + d.m * d.n);
  if (spec.needs.gpu_memory_bytes == 0)
    spec.needs.gpu_memory_bytes = gemm_gpu_bytes(d.m, d.n, d.k, precision);
  return 2.0 * double(d.m) * double(d.n) * double(d.k);
}

task_output gemm_cpu(const task_context& ctx) {
  auto& spec = ctx.spec;
  auto d = gemm_dims_of(spec.params);
  std::unique_ptr<float[]> c{new float[size_t(d.m * d.n)]};  // beta = 0: no need to zero it
  const float *a, *b;
  std::vector<float> ga, gb;
  if (payload_floats(spec, size_t(d.m * d.k + d.k * d.n), "A then B")) {
    a = reinterpret_cast<const float*>(spec.payload.data());
    b = a + d.m * d.k;
  } else {
    gemm_inputs(d.m, d.n, d.k, uint64_t(spec.params.get_int("seed", 1)), ga, gb);
    a = ga.data();
    b = gb.data();
  }
  auto precision = gemm_precision_of(spec.params);
  if (precision != gemm_precision::fp32) {
    // The inputs rounded as the GPU rounds them; products and sums stay in float, as there.
    if (ga.empty()) ga.assign(a, a + d.m * d.k), gb.assign(b, b + d.k * d.n);
    round_inputs(ga.data(), ga.size(), precision);
    round_inputs(gb.data(), gb.size(), precision);
    a = ga.data();
    b = gb.data();
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(d.m), int(d.n), int(d.k), 1.0f, a,
              int(d.k), b, int(d.n), 0.0f, c.get(), int(d.n));
  auto count = size_t(d.m * d.n);
  task_output out;
  out.values.set("checksum", checksum(c.get(), count));
  if (spec.params.get_string("output", "checksum") == "matrix") {
    auto* floats = reinterpret_cast<const uint8_t*>(c.get());
    out.bytes.assign(floats, floats + count * sizeof(float));
  }
  return out;
}

// --- mlp ----------------------------------------------------------------------------------
std::vector<int64_t> mlp_widths(const param_map& p) {
  auto w = p.get_int_list("layers");
  require(w.size() >= 2 && w.size() <= 64, "parameter 'layers' must list 2 to 64 widths");
  for (auto x : w) require(x >= 1 && x <= max_dim, "every width in 'layers' must be in [1, 32768]");
  return w;
}

double mlp_validate(task_spec& spec) {
  auto w = mlp_widths(spec.params);
  auto batch = dim(spec.params, "batch", 1);
  spec.params.get_int("seed", 1);
  payload_floats(spec, size_t(batch * w.front()), "the input batch (batch x layers[0])");
  double flops = 0, widest = 0;
  for (size_t i = 0; i + 1 < w.size(); ++i)
    flops += 2.0 * double(batch) * double(w[i]) * double(w[i + 1]);
  for (auto x : w) widest = std::max(widest, double(x));
  // The weights are shared by every task of the model (cached, on the host and on each GPU):
  // a task needs its input and activations.
  if (spec.needs.memory_bytes == 0)
    spec.needs.memory_bytes =
        uint64_t(4 * (double(batch) * double(w.front()) + 2 * double(batch) * widest));
  if (spec.needs.gpu_memory_bytes == 0)
    spec.needs.gpu_memory_bytes = mlp_gpu_bytes(batch, int64_t(widest));
  return flops;
}

// Weights are generated once per (widths, seed) and kept, as a served model would be. Bounded:
// the least recently used model is dropped past the limit.
class model_cache {
 public:
  std::shared_ptr<const mlp_model> get(const std::vector<int64_t>& widths, uint64_t seed) {
    std::lock_guard<std::mutex> guard{mutex_};
    for (auto i = models_.begin(); i != models_.end(); ++i) {
      if ((*i)->widths == widths && seeds_[i->get()] == seed) {
        models_.splice(models_.begin(), models_, i);
        return models_.front();
      }
    }
    auto m = std::make_shared<const mlp_model>(make_mlp_model(widths, seed));
    seeds_[m.get()] = seed;
    models_.push_front(m);
    if (models_.size() > capacity) {
      seeds_.erase(models_.back().get());
      models_.pop_back();
    }
    return m;
  }

 private:
  static constexpr size_t capacity = 16;
  std::mutex mutex_;
  std::list<std::shared_ptr<const mlp_model>> models_;
  std::unordered_map<const mlp_model*, uint64_t> seeds_;
};

model_cache& models() {
  static model_cache cache;
  return cache;
}

task_output mlp_cpu(const task_context& ctx) {
  auto& spec = ctx.spec;
  auto widths = mlp_widths(spec.params);
  auto batch = spec.params.get_int("batch", 1);
  auto seed = uint64_t(spec.params.get_int("seed", 1));
  auto model = models().get(widths, seed);
  std::vector<float> x(size_t(batch * widths.front()));
  mlp_input(spec, batch, widths.front(), x.data());
  auto probs = mlp_forward(*model, x, batch);
  return mlp_output(probs.data(), batch, widths.back());
}

// --- noop, sleep, fail ----------------------------------------------------------------------
double sleep_validate(task_spec& spec) {
  auto ms = spec.params.get_double("ms", 0);
  require(ms >= 0 && ms <= 600000, "parameter 'ms' must be in [0, 600000]");
  return 0;
}

task_output sleep_cpu(const task_context& ctx) {
  // The worker is a detached actor with its own thread: sleeping here blocks nobody else.
  auto ms = ctx.spec.params.get_double("ms", 0);
  using std::chrono::steady_clock;
  auto until = steady_clock::now() + std::chrono::duration_cast<steady_clock::duration>(
                                         std::chrono::duration<double, std::milli>(ms));
  // Sleeps in slices so that a cancelled task gives its worker back promptly.
  for (auto now = steady_clock::now(); now < until && !ctx.cancelled(); now = steady_clock::now())
    std::this_thread::sleep_for(
        std::min<steady_clock::duration>(until - now, std::chrono::milliseconds(10)));
  return {};
}

errc fail_code(const std::string& name) {
  if (name == "task_failed") return errc::task_failed;
  if (name == "task_failed_permanently") return errc::task_failed_permanently;
  if (name == "out_of_memory") return errc::out_of_memory;
  if (name == "crash" || name == "gpu_fault") return errc::kernel_crashed;
  throw task_failure{errc::invalid_params,
                     "parameter 'error' must be one of task_failed, task_failed_permanently, "
                     "out_of_memory, crash, gpu_fault; got '" +
                         name + "'"};
}

double fail_validate(task_spec& spec) {
  fail_code(spec.params.get_string("error", "task_failed"));
  require(spec.params.get_int("first_attempts", 0) >= 0, "'first_attempts' must be >= 0");
  return 0;
}

task_output fail_cpu(const task_context& ctx) {
  auto& p = ctx.spec.params;
  auto first = p.get_int("first_attempts", 0);  // 0: every attempt fails
  if (first > 0 && int64_t(ctx.attempt) > first) {
    task_output out;
    out.values.set("attempt", int64_t(ctx.attempt));
    return out;
  }
  auto name = p.get_string("error", "task_failed");
  auto code = fail_code(name);
  auto msg = p.get_string("message", "fail task, attempt " + std::to_string(ctx.attempt));
#ifdef TROUPE_WITH_CUDA
  // On a CUDA worker, gpu_fault really faults: a kernel writes to an illegal address, which
  // poisons the device context (what a buggy kernel does).
  if (name == "gpu_fault" && ctx.device == device_class::cuda) cuda::illegal_address(ctx);
#endif
  if (code == errc::kernel_crashed) throw std::runtime_error(msg);
  throw task_failure{code, msg};
}

}  // namespace

gemm_precision gemm_precision_of(const param_map& p) {
  auto name = p.get_string("precision", "fp32");
  if (name == "fp32") return gemm_precision::fp32;
  if (name == "bf16") return gemm_precision::bf16;
  if (name == "fp16") return gemm_precision::fp16;
  throw task_failure{errc::invalid_params,
                     "parameter 'precision' must be fp32, bf16 or fp16; got '" + name + "'"};
}

void round_inputs(float* data, size_t n, gemm_precision precision) {
  if (precision == gemm_precision::fp16) {
    for (size_t i = 0; i < n; ++i) data[i] = float(_Float16(data[i]));  // round to nearest even
    return;
  }
  if (precision != gemm_precision::bf16) return;
  for (size_t i = 0; i < n; ++i) {  // bf16: the top 16 bits, rounded to nearest even
    uint32_t bits;
    std::memcpy(&bits, &data[i], 4);
    if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
    std::memcpy(&data[i], &bits, 4);
  }
}

uint64_t gemm_gpu_bytes(int64_t m, int64_t n, int64_t k, gemm_precision precision) {
  auto in = uint64_t(m * k + k * n), out = uint64_t(m * n);
  // A and B (when sent as payload), C, the checksum; half-precision copies of A and B.
  return 4 * (in + out) + 8 + (precision == gemm_precision::fp32 ? 0 : 2 * in);
}

uint64_t mlp_gpu_bytes(int64_t rows, int64_t widest) {
  return 2 * 4 * uint64_t(rows * widest);  // activations, ping-pong between layers
}

task_output mlp_output(const float* probs, int64_t rows, int64_t classes) {
  std::vector<int64_t> argmax(static_cast<size_t>(rows));
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    auto* row = probs + r * classes;
    argmax[size_t(r)] = std::max_element(row, row + classes) - row;
    for (int64_t j = 0; j < classes; ++j) sum += double(row[j]) * double(j + 1);
  }
  task_output out;
  out.values.set("argmax", std::move(argmax));
  out.values.set("checksum", sum);
  return out;
}

void mlp_input(const task_spec& spec, int64_t rows, int64_t width, float* out) {
  auto n = size_t(rows * width);
  if (payload_floats(spec, n, "the input batch"))
    std::memcpy(out, spec.payload.data(), spec.payload.size());
  else
    fill_uniform(out, n, uint64_t(spec.params.get_int("seed", 1)) ^ 0x5eedull, 1.0f);
}

std::string mlp_batch_key(const task_spec& spec) {
  std::string key = "mlp";
  for (auto w : spec.params.get_int_list("layers")) key += ":" + std::to_string(w);
  return key + "/" + std::to_string(spec.params.get_int("seed", 1));
}

void fill_uniform(float* out, size_t n, uint64_t seed, float scale) {
  uint64_t state = seed;
  for (size_t i = 0; i < n; ++i) {
    auto bits = splitmix64(state) >> 40;  // 24 random bits
    out[i] = (float(bits) / float(1 << 24) * 2.0f - 1.0f) * scale;
  }
}

double checksum(const float* data, size_t n) {
  // Eight independent partial sums: one dependent add chain would cost ~7% of a 512^3 gemm.
  double part[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t k = 0; k < 8; ++k) part[k] += double(data[i + k]);
  double s = 0;
  for (; i < n; ++i) s += double(data[i]);
  for (double p : part) s += p;
  return s;
}

void gemm_inputs(int64_t m, int64_t n, int64_t k, uint64_t seed, std::vector<float>& a,
                 std::vector<float>& b) {
  a.resize(size_t(m * k));
  b.resize(size_t(k * n));
  fill_uniform(a.data(), a.size(), seed, 1.0f);
  fill_uniform(b.data(), b.size(), seed * 31 + 7, 1.0f);
}

mlp_model make_mlp_model(const std::vector<int64_t>& widths, uint64_t seed) {
  mlp_model m;
  m.widths = widths;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    std::vector<float> w(size_t(widths[i] * widths[i + 1])), b(size_t(widths[i + 1]));
    fill_uniform(w.data(), w.size(), seed * 1000003 + i, 1.0f / std::sqrt(float(widths[i])));
    fill_uniform(b.data(), b.size(), seed * 1000033 + i, 0.1f);
    m.weights.push_back(std::move(w));
    m.biases.push_back(std::move(b));
  }
  return m;
}

std::vector<float> mlp_forward(const mlp_model& model, const std::vector<float>& x, int64_t batch) {
  std::vector<float> in = x, out;
  auto layers = model.weights.size();
  for (size_t l = 0; l < layers; ++l) {
    auto rows = model.widths[l], cols = model.widths[l + 1];
    out.resize(size_t(batch * cols));
    for (int64_t r = 0; r < batch; ++r)  // bias first, then accumulate the product (beta = 1)
      std::copy(model.biases[l].begin(), model.biases[l].end(), out.begin() + r * cols);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(batch), int(cols), int(rows), 1.0f,
                in.data(), int(rows), model.weights[l].data(), int(cols), 1.0f, out.data(),
                int(cols));
    if (l + 1 < layers) {
      for (auto& v : out) v = std::max(v, 0.0f);
    } else {
      for (int64_t r = 0; r < batch; ++r) {
        auto* row = out.data() + r * cols;
        float mx = *std::max_element(row, row + cols), sum = 0;
        for (int64_t j = 0; j < cols; ++j) sum += (row[j] = std::exp(row[j] - mx));
        for (int64_t j = 0; j < cols; ++j) row[j] /= sum;
      }
    }
    in.swap(out);
  }
  return in;
}

void register_builtins(task_registry& registry) {
  // One worker thread per core: OpenBLAS must not start its own threads on top.
  openblas_set_num_threads(1);
  registry.add({"noop", nullptr, [](const task_context&) { return task_output{}; }, nullptr});
  // Its parameters back as its output values and its payload as its output bytes: moving data
  // through the runtime (bench payload) and between the tasks of a graph (docs/graphs.md).
  registry.add({"echo", nullptr,
                [](const task_context& ctx) {
                  task_output out;
                  out.values = ctx.spec.params;
                  out.bytes = ctx.spec.payload;
                  return out;
                },
                nullptr});
  registry.add({"sleep", sleep_validate, sleep_cpu, nullptr});
  // fail runs on CUDA workers too, fake ones included (they exist in every build).
  registry.add({"fail", fail_validate, fail_cpu, fail_cpu});
#ifdef TROUPE_WITH_CUDA
  registry.add({"gemm", gemm_validate, gemm_cpu, cuda::gemm});
#else
  registry.add({"gemm", gemm_validate, gemm_cpu, nullptr});
#endif
#ifdef TROUPE_WITH_CUDA
  registry.add({"mlp", mlp_validate, mlp_cpu,
                [](const task_context& ctx) { return cuda::mlp_batch({&ctx.spec}, ctx).front(); },
                mlp_batch_key, cuda::mlp_batch});
#else
  registry.add({"mlp", mlp_validate, mlp_cpu, nullptr, mlp_batch_key, nullptr});
#endif
}

}  // namespace troupe::kernels
