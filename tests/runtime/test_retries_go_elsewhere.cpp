// A task whose attempt crashed its worker (or was lost with it, or timed out there) is retried on
// another worker when one can run it, and a task that fails for good says what happened to each
// attempt.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// Two workers, and room for every crash the tests cause.
runtime_config two_workers() {
  runtime_config cfg;
  cfg.cpu_workers = 2;
  cfg.log_level = "off";
  cfg.restart_intensity = 100;
  return cfg;
}

}  // namespace

TEST(Retries, AnAttemptThatCrashedItsWorkerIsRetriedOnAnother) {
  runtime rt{two_workers()};
  std::mutex mutex;
  std::map<int64_t, std::vector<int32_t>> workers_of;  // task n -> worker of each attempt
  rt.registry().add({"crash_first", nullptr, [&](const task_context& ctx) -> task_output {
                       {
                         std::lock_guard<std::mutex> guard{mutex};
                         workers_of[ctx.spec.params.get_int("n", -1)].push_back(ctx.worker);
                       }
                       if (ctx.attempt == 1) throw std::runtime_error("crash on attempt 1");
                       return {};
                     }});
  std::vector<task_spec> specs(20);
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].kind = "crash_first";
    specs[i].params = {{"n", int64_t(i)}};
    specs[i].max_retries = 1;
    specs[i].retry_backoff = 1ms;
  }
  for (auto& h : rt.submit_batch(specs)) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, outcome::completed) << r->error.message;
    EXPECT_EQ(r->attempts, 2u);
  }
  std::lock_guard<std::mutex> guard{mutex};
  ASSERT_EQ(workers_of.size(), specs.size());
  for (auto& [n, workers] : workers_of) {
    ASSERT_EQ(workers.size(), 2u) << "task " << n;
    EXPECT_NE(workers[0], workers[1]) << "task " << n << " was retried where it crashed";
  }
}

TEST(Retries, ATaskThatFailsForGoodSaysWhatHappenedToEachAttempt) {
  runtime rt{two_workers()};
  rt.registry().add({"always_crash", nullptr, [](const task_context& ctx) -> task_output {
                       throw std::runtime_error("boom " + std::to_string(ctx.attempt));
                     }});
  task_spec s;
  s.kind = "always_crash";
  s.max_retries = 2;
  s.retry_backoff = 1ms;
  auto r = rt.submit(s).wait_for(30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::kernel_crashed);
  auto& m = r->error.message;
  for (auto* part : {"#1 on cpu-", "#2 on cpu-", "#3 on cpu-", "boom 1", "boom 3"})
    EXPECT_NE(m.find(part), std::string::npos) << "'" << part << "' missing from: " << m;
}
