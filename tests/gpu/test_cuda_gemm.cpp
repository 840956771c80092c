// GPU tests: skipped, with the reason, where no usable GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "troupe/devices.hpp"
#include "troupe/kernels.hpp"
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
  auto hs = rt.submit_batch({gemm(300, true, true), gemm(300, false, true)});
  auto gpu = hs[0].wait_for(60s), cpu = hs[1].wait_for(60s);
  ASSERT_TRUE(gpu && cpu);
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
