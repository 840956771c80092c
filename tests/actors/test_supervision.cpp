// Supervision and reclamation, driven step by step on the deterministic scheduler.
#include "deterministic_runtime.hpp"

using namespace troupe;
using troupe::testing::deterministic_runtime;

using Supervision = deterministic_runtime;

TEST_F(Supervision, CrashRestartsTheWorkerAndRequeuesItsInFlightTasks) {
  start({});
  // One worker: the three tasks land on it in one batch; the first one crashes it.
  auto hs = rt_->submit_batch(
      {spec("fail", {{"error", std::string{"crash"}}, {"first_attempts", int64_t{1}}}),
       spec("noop"), spec("noop")});
  ASSERT_TRUE(all_ready(hs));
  auto& crashed = hs[0].get();
  EXPECT_EQ(crashed.status, outcome::completed);
  EXPECT_EQ(crashed.attempts, 2u);  // the crash was attempt 1
  for (int i : {1, 2}) {
    EXPECT_EQ(hs[size_t(i)].get().status, outcome::completed);
    EXPECT_EQ(hs[size_t(i)].get().attempts, 1u) << "a task that never started is not charged";
  }
  EXPECT_EQ(count_events("worker.down", 0), 1u);
  EXPECT_EQ(count_events("worker.restarting", 0), 1u);
  EXPECT_EQ(count_events("worker.up", 0), 2u);  // first start and the restart
  EXPECT_EQ(count_events("task.retrying"), 1u);
}

TEST_F(Supervision, DeadWorkersReservationsAreReleased) {
  runtime_config cfg;
  cfg.worker_memory_bytes = 1000;
  start(cfg);
  // Each task reserves the worker's whole memory. If the crash left its reservation behind,
  // neither the retry nor the next task could ever be placed.
  auto crash = spec("fail", {{"error", std::string{"crash"}}, {"first_attempts", int64_t{1}}});
  crash.needs.memory_bytes = 1000;
  auto next = spec("noop");
  next.needs.memory_bytes = 1000;
  auto hs = rt_->submit_batch({crash, next});
  ASSERT_TRUE(all_ready(hs));
  EXPECT_EQ(hs[0].get().status, outcome::completed);
  EXPECT_EQ(hs[1].get().status, outcome::completed);
}

TEST_F(Supervision, EscalatesPastTheRestartIntensity) {
  runtime_config cfg;
  cfg.restart_intensity = 2;
  cfg.max_retries = 10;
  start(cfg);
  auto h = rt_->submit(spec("fail", {{"error", std::string{"crash"}}}));
  ASSERT_TRUE(all_ready({h}));
  EXPECT_EQ(h.get().status, outcome::failed);
  EXPECT_EQ(h.get().error.code, errc::supervisor_gave_up);
  EXPECT_EQ(count_events("worker.restarting"), 2u);  // two restarts allowed, the third escalates
  EXPECT_EQ(count_events("worker.down"), 3u);
  auto late = rt_->submit(spec("noop"));
  ASSERT_TRUE(late.ready());
  EXPECT_EQ(late.get().status, outcome::rejected);
  EXPECT_EQ(late.get().error.code, errc::supervisor_gave_up);
}

TEST_F(Supervision, ThrowingTaskFailsForGoodAfterItsRetriesAndTheRuntimeKeepsWorking) {
  runtime_config cfg;
  cfg.restart_intensity = 10;
  start(cfg);
  auto bad = spec("fail", {{"error", std::string{"crash"}}});
  bad.max_retries = 1;
  auto hs = rt_->submit_batch({bad, spec("noop")});
  ASSERT_TRUE(all_ready(hs));
  EXPECT_EQ(hs[0].get().status, outcome::failed);
  EXPECT_EQ(hs[0].get().error.code, errc::kernel_crashed);
  EXPECT_EQ(hs[0].get().attempts, 2u);
  EXPECT_NE(hs[0].get().error.message.find("threw"), std::string::npos)
      << hs[0].get().error.message;
  EXPECT_EQ(hs[1].get().status, outcome::completed);
  auto after = rt_->submit(spec("noop"));
  ASSERT_TRUE(all_ready({after}));
  EXPECT_TRUE(after.get().ok());
}
