// The GPU worker's lanes, memory rules and batching, on fake GPUs (runtime_config::fake_gpus):
// CUDA workers whose kinds' `cuda` implementations run on the lanes without a device.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

runtime_config one_fake_gpu(uint32_t streams = 4) {
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.cuda = cuda_selection::none;
  cfg.fake_gpus = 1;
  cfg.cuda_streams = streams;
  cfg.log_level = "warn";
  return cfg;
}

task_spec on_gpu(std::string kind, uint64_t gpu_bytes = 0, param_map params = {}) {
  task_spec s;
  s.kind = std::move(kind);
  s.params = std::move(params);
  s.needs.gpu_count = 1;
  s.needs.gpu_memory_bytes = gpu_bytes;
  return s;
}

/// Counts implementations running at once; each waits (bounded) for `want` to be running.
struct concurrency_probe {
  std::mutex mutex;
  std::condition_variable cv;
  int running = 0, most = 0;
  void enter_and_wait(int want, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock{mutex};
    most = std::max(most, ++running);
    cv.notify_all();
    cv.wait_for(lock, timeout, [&] { return most >= want; });
    --running;
  }
};

worker_stats gpu_worker(runtime& rt) {
  for (auto& w : rt.stats().workers)
    if (w.gpu_memory) return w;
  ADD_FAILURE() << "no GPU worker in stats";
  return {};
}

}  // namespace

TEST(CudaWorker, TasksOnOneGpuRunAtOnceOnItsLanes) {
  concurrency_probe probe;  // before the runtime: its lanes call into it
  runtime rt{one_fake_gpu(4)};
  rt.registry().add({"probe", nullptr, nullptr, [&](const task_context& ctx) {
                       EXPECT_EQ(ctx.device, device_class::cuda);
                       probe.enter_and_wait(4, 10s);
                       return task_output{};
                     }});
  std::vector<task_spec> specs(4, on_gpu("probe"));
  auto hs = rt.submit_batch(specs);
  for (auto& h : hs) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->ok()) << r->error.message;
  }
  EXPECT_EQ(probe.most, 4) << "the four tasks did not run at once on the GPU's four lanes";
}

TEST(CudaWorker, AllocationBeyondTheReservationFailsTheTaskNotTheWorker) {
  runtime rt{one_fake_gpu()};
  rt.registry().add({"alloc", nullptr, nullptr, [](const task_context& ctx) {
                       auto bytes = size_t(ctx.spec.params.get_int("bytes", 0));
                       std::memset(ctx.gpu->allocate(bytes, "buffer"), 1, bytes);
                       task_output out;
                       out.values.set("limit", int64_t(ctx.gpu->limit()));
                       return out;
                     }});
  auto greedy = on_gpu("alloc", 1000, {{"bytes", int64_t{2000}}});
  greedy.max_retries = 0;
  auto r = rt.submit(greedy).wait_for(60s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::out_of_memory) << r->error.message;
  EXPECT_NE(r->error.message.find("buffer"), std::string::npos) << r->error.message;
  auto fits = rt.submit(on_gpu("alloc", 1000, {{"bytes", int64_t{1000}}})).wait_for(60s);
  ASSERT_TRUE(fits);
  ASSERT_TRUE(fits->ok()) << fits->error.message;
  EXPECT_EQ(std::get<int64_t>(*fits->output.values.find("limit")), 1000);
  auto w = gpu_worker(rt);
  EXPECT_EQ(w.restarts, 0u) << "an allocation past the reservation must not crash the worker";
  ASSERT_TRUE(w.gpu_memory);
  EXPECT_EQ(w.gpu_memory->in_use, 0u) << "task memory not given back";
  EXPECT_EQ(w.gpu_memory->reserved, 0u) << "reservations not released";
}

TEST(CudaWorker, GpuMemoryIsNeverOverCommitted) {
  concurrency_probe probe;
  auto cfg = one_fake_gpu(4);
  cfg.fake_gpu_memory_bytes = 1000;
  runtime rt{cfg};
  rt.registry().add({"hold", nullptr, nullptr, [&](const task_context& ctx) {
                       EXPECT_EQ(ctx.gpu->limit(), 400u);
                       // Three at once would be 1200 of 1000 bytes: wait (bounded) for a third.
                       probe.enter_and_wait(3, 100ms);
                       return task_output{};
                     }});
  std::vector<task_spec> specs(8, on_gpu("hold", 400));
  auto hs = rt.submit_batch(specs);
  for (auto& h : hs) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->ok()) << r->error.message;
  }
  EXPECT_EQ(probe.most, 2) << "two tasks of 400 bytes fit in 1000 at once, three do not";
  auto w = gpu_worker(rt);
  ASSERT_TRUE(w.gpu_memory);
  EXPECT_EQ(w.gpu_memory->capacity, 1000u);
  EXPECT_EQ(w.gpu_memory->reserved, 0u);
  EXPECT_EQ(w.gpu_memory->in_use, 0u);
}

TEST(CudaWorker, BatchedLaunchesSplitResultsBackPerTask) {
  std::mutex mutex;
  std::vector<size_t> launch_sizes;  // before the runtime: its lanes write to it
  auto cfg = one_fake_gpu(2);
  cfg.batch_max_tasks = 16;
  cfg.batch_max_delay = 20ms;
  runtime rt{cfg};
  kind_definition echo;
  echo.name = "batched_echo";
  echo.cuda = [](const task_context& ctx) {
    task_output out;
    out.values.set("x", ctx.spec.params.get_int("x", -1));
    return out;
  };
  echo.batch_key = [](const task_spec& s) { return s.params.get_string("model", ""); };
  echo.cuda_batch = [&](const std::vector<const task_spec*>& specs, const task_context& ctx) {
    uint64_t reserved = 0;
    std::vector<task_output> outs;
    for (auto* s : specs) {
      reserved += s->needs.gpu_memory_bytes;
      task_output out;
      out.values.set("x", s->params.get_int("x", -1));
      outs.push_back(std::move(out));
    }
    EXPECT_EQ(ctx.gpu->limit(), reserved) << "a launch may use what its tasks reserved together";
    std::lock_guard<std::mutex> guard{mutex};
    launch_sizes.push_back(specs.size());
    return outs;
  };
  rt.registry().add(echo);
  std::vector<task_spec> specs;
  for (int64_t i = 0; i < 200; ++i)
    specs.push_back(
        on_gpu("batched_echo", 10, {{"x", i}, {"model", std::string{i % 2 ? "a" : "b"}}}));
  auto hs = rt.submit_batch(specs);
  for (size_t i = 0; i < hs.size(); ++i) {
    auto r = hs[i].wait_for(60s);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->ok()) << r->error.message;
    EXPECT_EQ(std::get<int64_t>(*r->output.values.find("x")), int64_t(i)) << "task " << i;
  }
  rt.shutdown();
  size_t merged = 0, total = 0;
  for (auto n : launch_sizes) {
    EXPECT_LE(n, 16u);
    merged += n > 1;
    total += n;
  }
  EXPECT_GT(merged, 0u) << "no launch merged several tasks";
  EXPECT_LE(total, 200u);
}

TEST(CudaWorker, ACrashOnALaneRestartsTheWorkerAndTheTaskRunsAgain) {
  std::atomic<int> restarts{0};  // before the runtime, whose event thread calls back
  runtime rt{one_fake_gpu()};
  rt.subscribe("worker.restarting", [&](const event&) { ++restarts; });
  rt.registry().add({"boom", nullptr, nullptr, [](const task_context& ctx) {
                       if (ctx.attempt == 1) throw std::runtime_error("kernel bug");
                       task_output out;
                       out.values.set("attempt", int64_t(ctx.attempt));
                       return out;
                     }});
  auto r = rt.submit(on_gpu("boom")).wait_for(60s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->ok()) << r->error.message;
  EXPECT_EQ(std::get<int64_t>(*r->output.values.find("attempt")), 2);
  auto after = rt.submit(on_gpu("boom")).wait_for(60s);  // the restarted worker takes work
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->ok()) << after->error.message;
  rt.shutdown();
  EXPECT_EQ(restarts.load(), 2);
}

// A GPU busy with tasks that do not batch still runs batchable ones once they have waited
// batching.max_delay_us: neither kind starves the other.
TEST(CudaWorker, BatchableTasksAreNotStarvedByOthers) {
  auto cfg = one_fake_gpu(1);
  cfg.batch_max_delay = std::chrono::microseconds(1000);
  runtime rt{cfg};
  rt.registry().add({"work", nullptr, nullptr, [](const task_context&) {
                       // 2 ms of GPU work, as far as the worker can tell.
                       auto until = clock::now() + std::chrono::milliseconds(2);
                       while (clock::now() < until) {
                       }
                       return task_output{};
                     }});
  kind_definition echo;
  echo.name = "batched_echo";
  echo.cuda = [](const task_context&) { return task_output{}; };
  echo.batch_key = [](const task_spec&) { return std::string{"one"}; };
  echo.cuda_batch = [](const std::vector<const task_spec*>& specs, const task_context&) {
    return std::vector<task_output>(specs.size());
  };
  rt.registry().add(echo);
  std::vector<task_spec> specs(200, on_gpu("work"));
  for (int i = 0; i < 10; ++i) specs.push_back(on_gpu("batched_echo"));
  auto hs = rt.submit_batch(specs);
  time_point last_work{}, last_echo{};
  for (size_t i = 0; i < hs.size(); ++i) {
    auto r = hs[i].wait_for(60s);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->ok()) << r->error.message;
    auto& last = i < 200 ? last_work : last_echo;
    last = std::max(last, r->timings.finished);
  }
  EXPECT_LT(last_echo, last_work) << "the batchable tasks waited for every other task";
}
