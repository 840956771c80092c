// GPU tests: skipped, with the reason, where no usable GPU is present.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "troupe/kernels/builtins.hpp"
#include "troupe/kernels/gpu_discovery.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

#define REQUIRE_GPU()                                             \
  do {                                                            \
    auto inv = discover_gpus();                                   \
    if (inv.gpus.empty()) GTEST_SKIP() << "no GPU: " << inv.note; \
  } while (0)

runtime_config one_cpu_all_gpus() {
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.cuda = cuda_selection::all;
  cfg.log_level = "warn";
  return cfg;
}

task_spec gemm(int64_t size, bool on_gpu, bool matrix = false) {
  task_spec s;
  s.kind = "gemm";
  s.params = {{"size", size}, {"seed", int64_t{5}}};
  if (matrix) s.params.set("output", std::string{"matrix"});
  if (on_gpu) s.needs.gpu_count = 1;
  return s;
}

/// The CPU implementation, called directly: the reference (the runtime might place a task
/// without GPU needs on the GPU too).
task_result cpu_reference(task_spec spec) {
  static task_registry registry;
  static bool filled = (kernels::register_builtins(registry), true);
  (void)filled;
  auto* k = registry.find(spec.kind);
  k->def.validate(spec);
  task_context ctx{spec, 1, 0, device_class::cpu, nullptr};
  task_result r;
  r.status = outcome::completed;
  r.output = k->def.cpu(ctx);
  return r;
}

}  // namespace

TEST(CudaDiscovery, ReportsDevicesOrSaysWhyNone) {
  auto inv = discover_gpus();
  if (inv.gpus.empty()) {
    EXPECT_FALSE(inv.note.empty());
  } else {
    EXPECT_TRUE(inv.note.empty());
    for (auto& g : inv.gpus) {
      EXPECT_FALSE(g.name.empty());
      EXPECT_GT(g.total_memory, 0u);
      EXPECT_LE(g.free_memory, g.total_memory);
      EXPECT_GE(g.cc_major, 5);
    }
  }
}

TEST(CudaGemm, AgreesWithTheCpuImplementation) {
  REQUIRE_GPU();
  runtime rt{one_cpu_all_gpus()};
  auto h = rt.submit(gemm(300, true, true));
  auto gpu = h.wait_for(60s);
  auto cpu = std::optional<task_result>{cpu_reference(gemm(300, false, true))};
  ASSERT_TRUE(gpu);
  ASSERT_TRUE(gpu->ok()) << gpu->error.message;
  ASSERT_TRUE(cpu->ok()) << cpu->error.message;
  EXPECT_EQ(std::get<std::string>(*gpu->output.values.find("device")), "cuda");
  ASSERT_EQ(gpu->output.bytes.size(), cpu->output.bytes.size());
  std::vector<float> g(gpu->output.bytes.size() / 4), c(g.size());
  std::memcpy(g.data(), gpu->output.bytes.data(), gpu->output.bytes.size());
  std::memcpy(c.data(), cpu->output.bytes.data(), cpu->output.bytes.size());
  for (size_t i = 0; i < g.size(); ++i)  // float32, k = 300: both accumulate in float
    ASSERT_NEAR(g[i], c[i], 1e-3f * (1 + std::abs(c[i]))) << "element " << i;
  auto gs = std::get<double>(*gpu->output.values.find("checksum"));
  auto cs = std::get<double>(*cpu->output.values.find("checksum"));
  EXPECT_NEAR(gs, cs, 1e-3 * (1 + std::abs(cs)));
}

// bf16 and fp16 inputs with float accumulation: the CPU path rounds its inputs the same way, so
// the two agree as closely as float32 results do.
TEST(CudaGemm, HalfPrecisionAgreesWithTheCpuImplementation) {
  REQUIRE_GPU();
  runtime rt{one_cpu_all_gpus()};
  for (std::string precision : {"bf16", "fp16"}) {
    auto spec = gemm(320, true, true);
    spec.params.set("precision", precision);
    auto gpu = rt.submit(spec).wait_for(60s);
    spec.needs.gpu_count = 0;
    auto cpu = cpu_reference(spec);
    ASSERT_TRUE(gpu);
    ASSERT_TRUE(gpu->ok()) << precision << ": " << gpu->error.message;
    ASSERT_EQ(gpu->output.bytes.size(), cpu.output.bytes.size());
    std::vector<float> g(gpu->output.bytes.size() / 4), c(g.size());
    std::memcpy(g.data(), gpu->output.bytes.data(), gpu->output.bytes.size());
    std::memcpy(c.data(), cpu.output.bytes.data(), cpu.output.bytes.size());
    for (size_t i = 0; i < g.size(); ++i)
      ASSERT_NEAR(g[i], c[i], 1e-3f * (1 + std::abs(c[i]))) << precision << " element " << i;
  }
}

// A task that allocates more than it reserved fails with out_of_memory; the worker carries on,
// and every byte comes back.
TEST(CudaMemory, TaskBeyondItsReservationFailsWithOutOfMemoryAndTheWorkerCarriesOn) {
  REQUIRE_GPU();
  runtime rt{one_cpu_all_gpus()};
  auto greedy = gemm(1024, true);
  greedy.needs.gpu_memory_bytes = 1 << 20;  // C alone needs 4 MiB
  greedy.max_retries = 0;
  auto r = rt.submit(greedy).wait_for(60s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::out_of_memory) << r->error.message;
  EXPECT_NE(r->error.message.find("gemm output"), std::string::npos) << r->error.message;
  auto fine = rt.submit(gemm(1024, true)).wait_for(60s);
  ASSERT_TRUE(fine);
  EXPECT_TRUE(fine->ok()) << fine->error.message;
  auto s = rt.stats();
  bool seen = false;
  for (auto& w : s.workers) {
    if (!w.gpu_memory) continue;
    seen = true;
    EXPECT_EQ(w.restarts, 0u);
    EXPECT_EQ(w.gpu_memory->in_use, 0u) << "task memory not given back";
    EXPECT_EQ(w.gpu_memory->reserved, 0u);
    if (w.tasks > 0) {
      EXPECT_EQ(w.gpu_memory->cache, 2u * 1024 * 1024 * 4) << "A and B of seed 5: cached once";
      EXPECT_FALSE(w.gpu_memory->device_source.empty());
      EXPECT_GT(w.gpu_memory->device_used, w.gpu_memory->cache);
      EXPECT_GT(w.gpu_memory->device_total, w.gpu_memory->capacity);
    }
  }
  EXPECT_TRUE(seen);
}

// One GPU runs several tasks at once, on its worker's streams.
TEST(CudaWorker, TasksOverlapOnOneGpu) {
  REQUIRE_GPU();
  auto cfg = one_cpu_all_gpus();
  cfg.cuda = cuda_selection::list;
  cfg.cuda_devices = {0};
  runtime rt{cfg};
  std::vector<task_spec> specs;
  for (int i = 0; i < 16; ++i) specs.push_back(gemm(2048, true));
  auto hs = rt.submit_batch(specs);
  std::vector<task_timings> runs;
  for (auto& h : hs) {
    auto r = h.wait_for(120s);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->ok()) << r->error.message;
    runs.push_back(r->timings);
  }
  size_t overlapping = 0;
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j)
      overlapping += runs[i].started < runs[j].finished && runs[j].started < runs[i].finished;
  EXPECT_GT(overlapping, 0u) << "no two tasks ran at once on the GPU";
}

TEST(CudaGemm, TaskLargerThanTheGpuIsRejectedAtSubmit) {
  REQUIRE_GPU();
  runtime rt{one_cpu_all_gpus()};
  auto s = gemm(64, true);
  s.needs.gpu_memory_bytes = uint64_t(1) << 50;
  auto h = rt.submit(s);
  ASSERT_TRUE(h.ready());
  EXPECT_EQ(h.get().error.code, errc::unsatisfiable_resources);
  EXPECT_NE(h.get().error.message.find("cuda-"), std::string::npos) << h.get().error.message;
}

TEST(CudaGemm, ManyTasksShareTheGpuAndAllComplete) {
  REQUIRE_GPU();
  runtime rt{one_cpu_all_gpus()};
  std::vector<task_spec> specs;
  for (int i = 0; i < 200; ++i) specs.push_back(gemm(128 + (i % 4) * 64, true));
  auto hs = rt.submit_batch(specs);
  for (auto& h : hs) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->ok()) << r->error.message;
  }
  auto s = rt.stats();
  uint64_t on_gpu = 0;
  for (auto& w : s.workers)
    if (w.device.rfind("cuda", 0) == 0) on_gpu += w.tasks;
  EXPECT_EQ(on_gpu, 200u);
}

namespace {
task_spec mlp(int64_t batch, int64_t seed, bool on_gpu) {
  task_spec s;
  s.kind = "mlp";
  s.params = {{"layers", std::vector<int64_t>{64, 128, 32, 10}}, {"batch", batch}, {"seed", seed}};
  if (on_gpu) s.needs.gpu_count = 1;
  return s;
}
void expect_same_inference(const task_result& gpu, const task_result& cpu) {
  ASSERT_TRUE(gpu.ok()) << gpu.error.message;
  ASSERT_TRUE(cpu.ok()) << cpu.error.message;
  EXPECT_EQ(std::get<std::vector<int64_t>>(*gpu.output.values.find("argmax")),
            std::get<std::vector<int64_t>>(*cpu.output.values.find("argmax")));
  auto gs = std::get<double>(*gpu.output.values.find("checksum"));
  auto cs = std::get<double>(*cpu.output.values.find("checksum"));
  EXPECT_NEAR(gs, cs, 1e-4 * cs);  // stated tolerance: 1e-4 relative
}
}  // namespace

TEST(CudaMlp, AgreesWithTheCpuImplementation) {
  REQUIRE_GPU();
  runtime rt{one_cpu_all_gpus()};
  auto g = rt.submit(mlp(16, 3, true)).wait_for(60s);
  ASSERT_TRUE(g);
  auto c = std::optional<task_result>{cpu_reference(mlp(16, 3, false))};
  EXPECT_EQ(std::get<std::string>(*g->output.values.find("device")), "cuda");
  expect_same_inference(*g, *c);
}

// Dynamic batching: many small tasks of one model merge into few launches; every task still gets
// exactly its own rows back (checked against the CPU, which never batches).
TEST(CudaMlp, BatchedResultsAreSplitBackPerTask) {
  REQUIRE_GPU();
  auto cfg = one_cpu_all_gpus();
  cfg.batch_max_delay = 20ms;
  std::vector<std::string> batch_sizes;  // before the runtime, whose event thread calls back
  runtime rt{cfg};
  std::vector<task_spec> gpu_specs;
  for (int i = 0; i < 64; ++i) {
    auto s = mlp(1 + i % 3, 9, true);
    std::vector<uint8_t> payload(size_t(64 * (1 + i % 3)) * 4);
    for (size_t b = 0; b < payload.size(); b += 4) {
      float v = float((i * 31 + int(b)) % 17) / 17.0f - 0.5f;
      std::memcpy(&payload[b], &v, 4);
    }
    s.payload = std::move(payload);
    gpu_specs.push_back(s);
  }
  rt.subscribe("task.started", [&](const event& e) { batch_sizes.push_back(e.detail); });
  auto g = rt.submit_batch(gpu_specs);
  for (size_t i = 0; i < g.size(); ++i) {
    auto gr = g[i].wait_for(60s);
    ASSERT_TRUE(gr);
    auto reference = gpu_specs[i];
    reference.needs.gpu_count = 0;
    expect_same_inference(*gr, cpu_reference(reference));
  }
  rt.shutdown();
  EXPECT_NE(
      std::find_if(batch_sizes.begin(), batch_sizes.end(),
                   [](const std::string& d) { return d.find("batch of") != std::string::npos; }),
      batch_sizes.end())
      << "no launch merged several tasks";
}

// A kernel that writes to an illegal address poisons its context. NVIDIA documents that such a
// context is unusable for the rest of the process (measured: cudaDeviceReset leaves the device
// "busy or unavailable"), so the worker is retired, not restarted: the faulting attempt fails
// over, GPU-only work fails with a clear error, and the CPU workers carry on. (In a cluster the
// node process exits and is restarted: CudaCluster.) The poisoned process is a child (a death
// test, re-executed), so the other tests keep a working GPU.
void poisoned_context_retires_the_gpu_worker() {
  std::atomic<int> restarts{0}, downs{0};  // before the runtime, whose event thread calls back
  runtime rt{one_cpu_all_gpus()};
  rt.subscribe("worker.", [&](const event& e) {
    restarts += e.topic == "worker.restarting";
    downs += e.topic == "worker.down";
  });
  task_spec fault;
  fault.kind = "fail";
  fault.params = {{"error", std::string{"gpu_fault"}}, {"first_attempts", int64_t{1}}};
  fault.needs.gpu_count = 1;
  auto r = rt.submit(fault).wait_for(60s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::unsatisfiable_resources) << r->error.message;
  auto gpu_only = rt.submit(gemm(256, true));
  ASSERT_TRUE(gpu_only.ready()) << "a GPU-only task should be rejected at submit now";
  EXPECT_EQ(gpu_only.get().error.code, errc::unsatisfiable_resources);
  EXPECT_NE(gpu_only.get().error.message.find("out of service"), std::string::npos)
      << gpu_only.get().error.message;
  auto cpu = rt.submit(mlp(4, 1, false)).wait_for(60s);
  ASSERT_TRUE(cpu.has_value());
  EXPECT_TRUE(cpu->ok()) << cpu->error.message;
  rt.shutdown();
  EXPECT_EQ(restarts.load(), 0);
  EXPECT_EQ(downs.load(), 1);
}

TEST(CudaWorkerDeathTest, PoisonedContextRetiresTheGpuWorkerAndTheRestCarriesOn) {
  REQUIRE_GPU();
  ::testing::GTEST_FLAG(death_test_style) =
      "threadsafe";  // the child starts afresh: no CUDA state shared
  EXPECT_EXIT(
      {
        poisoned_context_retires_the_gpu_worker();
        std::fflush(stdout);
        std::_Exit(::testing::Test::HasFailure() ? 1 : 0);
      },
      ::testing::ExitedWithCode(0), "")
      << "the poisoned-context scenario failed in the child (its output is above)";
}
