// Admission, retries, ordering and cancellation, driven on the deterministic scheduler.
#include "deterministic_runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe::testing::deterministic_runtime;

using QueuePolicies = deterministic_runtime;

TEST_F(QueuePolicies, RejectsAtTheBoundWithAClearErrorAndKeepsWhatItAccepted) {
  runtime_config cfg;
  cfg.queue_bound = 3;
  start(cfg);
  std::vector<task_handle> hs;
  for (int i = 0; i < 5; ++i) hs.push_back(rt_->submit(spec("noop")));
  for (int i : {3, 4}) {
    ASSERT_TRUE(hs[size_t(i)].ready());
    EXPECT_EQ(hs[size_t(i)].get().status, outcome::rejected);
    EXPECT_EQ(hs[size_t(i)].get().error.code, errc::queue_full);
    EXPECT_NE(hs[size_t(i)].get().error.message.find("queue.bound"), std::string::npos);
  }
  ASSERT_TRUE(all_ready({hs[0], hs[1], hs[2]}));
  for (int i : {0, 1, 2}) EXPECT_TRUE(hs[size_t(i)].get().ok());
  auto again = rt_->submit(spec("noop"));  // room again once they finished
  ASSERT_TRUE(all_ready({again}));
  EXPECT_TRUE(again.get().ok());
}

TEST_F(QueuePolicies, RetriesWithExponentialBackoff) {
  runtime_config cfg;
  cfg.retry_backoff = 50ms;
  start(cfg);
  auto h = rt_->submit(spec("fail", {{"first_attempts", int64_t{2}}}));
  sched_->run();
  EXPECT_FALSE(h.ready());
  EXPECT_EQ(count_events("task.retrying"), 1u);
  sched_->advance_time(49ms);  // first backoff: 50 ms
  sched_->run();
  EXPECT_FALSE(h.ready());
  EXPECT_EQ(count_events("task.retrying"), 1u);
  sched_->advance_time(1ms);
  sched_->run();
  EXPECT_EQ(count_events("task.retrying"), 2u);  // second attempt failed too
  sched_->advance_time(99ms);                    // second backoff: 100 ms
  sched_->run();
  EXPECT_FALSE(h.ready());
  sched_->advance_time(1ms);
  sched_->run();
  ASSERT_TRUE(h.ready());
  EXPECT_EQ(h.get().status, outcome::completed);
  EXPECT_EQ(h.get().attempts, 3u);
}

TEST_F(QueuePolicies, PermanentFailureIsNotRetried) {
  start({});
  auto h = rt_->submit(spec("fail", {{"error", std::string{"task_failed_permanently"}}}));
  ASSERT_TRUE(all_ready({h}));
  EXPECT_EQ(h.get().status, outcome::failed);
  EXPECT_EQ(h.get().attempts, 1u);
  EXPECT_EQ(h.get().error.code, errc::task_failed_permanently);
}

TEST_F(QueuePolicies, HigherPriorityRunsFirst) {
  start({});
  std::vector<task_id> order;
  auto record = [&](const task_result& r) { order.push_back(r.id); };
  auto low = spec("noop"), high = spec("noop");
  high.priority = 5;
  auto hs = rt_->submit_batch({low, low, high, high}, record);
  ASSERT_TRUE(all_ready(hs));
  EXPECT_EQ(order, (std::vector<task_id>{hs[2].id(), hs[3].id(), hs[0].id(), hs[1].id()}));
}

TEST_F(QueuePolicies, FifoKeepsArrivalOrder) {
  runtime_config cfg;
  cfg.order = queue_order::fifo;
  start(cfg);
  std::vector<task_id> order;
  auto low = spec("noop"), high = spec("noop");
  high.priority = 5;
  auto hs =
      rt_->submit_batch({low, high, low}, [&](const task_result& r) { order.push_back(r.id); });
  ASSERT_TRUE(all_ready(hs));
  EXPECT_EQ(order, (std::vector<task_id>{hs[0].id(), hs[1].id(), hs[2].id()}));
}

TEST_F(QueuePolicies, DeadlineOrderRunsTheEarliestDeadlineFirst) {
  runtime_config cfg;
  cfg.order = queue_order::deadline;
  start(cfg);
  std::vector<task_id> order;
  auto due = [](std::chrono::milliseconds in) {
    auto s = spec("noop");
    s.deadline = clock::now() + in;
    return s;
  };
  auto hs = rt_->submit_batch({spec("noop"), due(30s), due(10s), due(20s)},
                              [&](const task_result& r) { order.push_back(r.id); });
  ASSERT_TRUE(all_ready(hs));
  EXPECT_EQ(order, (std::vector<task_id>{hs[2].id(), hs[3].id(), hs[1].id(), hs[0].id()}));
}

TEST_F(QueuePolicies, ShortestOrderRunsTheKindsThatRanShortestFirst) {
  runtime_config cfg;
  cfg.order = queue_order::shortest;
  start(cfg);
  // What each kind takes is learned from what ran: a sleep of 20 ms, a noop.
  ASSERT_TRUE(all_ready(rt_->submit_batch({spec("sleep", {{"ms", 20.0}}), spec("noop")})));
  std::vector<std::string> order;
  auto hs = rt_->submit_batch(
      {spec("sleep", {{"ms", 20.0}}), spec("noop"), spec("sleep", {{"ms", 20.0}}), spec("noop")},
      [&](const task_result& r) { order.push_back(r.kind); });
  ASSERT_TRUE(all_ready(hs));
  EXPECT_EQ(order, (std::vector<std::string>{"noop", "noop", "sleep", "sleep"}));
}

TEST_F(QueuePolicies, FairOrderAlternatesClientsByTheirShares) {
  runtime_config cfg;
  cfg.order = queue_order::fair;
  cfg.shares = {{"alice", 2.0}};
  start(cfg);
  auto of = [](const char* client) {
    auto s = spec("noop");
    s.labels["client"] = client;
    return s;
  };
  std::vector<task_id> order;
  std::vector<task_spec> specs(6, of("bob"));  // bob's six first, then alice's six
  for (int i = 0; i < 6; ++i) specs.push_back(of("alice"));
  auto hs =
      rt_->submit_batch(std::move(specs), [&](const task_result& r) { order.push_back(r.id); });
  ASSERT_TRUE(all_ready(hs));
  std::string clients;
  for (auto id : order) clients += id >= hs[6].id() ? 'a' : 'b';
  // Alice (weight 2) gets two for each of bob's while both wait; bob's rest come last.
  EXPECT_EQ(clients, "baabaabaabbb");
}

TEST_F(QueuePolicies, CancelledQueuedTaskNeverRuns) {
  start({});
  bool ran = false;
  rt_->registry().add({"spy", nullptr,
                       [&](const task_context&) {
                         ran = true;
                         return task_output{};
                       },
                       nullptr});
  auto h = rt_->submit(spec("spy"));
  rt_->cancel(h.id());
  ASSERT_TRUE(all_ready({h}));
  EXPECT_EQ(h.get().status, outcome::cancelled);
  EXPECT_FALSE(ran);
}

TEST_F(QueuePolicies, IdempotencyKeyReturnsTheFirstTask) {
  start({});
  auto a = spec("noop");
  a.idempotency_key = "order-17";
  auto h1 = rt_->submit(a);
  auto h2 = rt_->submit(a);
  EXPECT_EQ(h1.id(), h2.id());
  ASSERT_TRUE(all_ready({h1}));
  EXPECT_TRUE(h2.get().ok());
  EXPECT_EQ(count_events("task.completed"), 1u);
}

TEST_F(QueuePolicies, BadSubmissionsAreRejectedAtOnceAndOthersAreUnaffected) {
  start({});
  auto slots = spec("noop");
  slots.needs.cpu_slots = 2;
  auto memory = spec("noop");
  memory.needs.memory_bytes = uint64_t(1) << 40;
  auto late = spec("noop");
  late.deadline = clock::now() - 1ms;
  auto hs = rt_->submit_batch({spec("nope"), spec("gemm", {{"size", std::string{"x"}}}), slots,
                               memory, late, spec("noop")});
  struct expect {
    errc code;
    const char* mentions;
  } want[] = {{errc::unknown_kind, "'nope'"},
              {errc::invalid_params, "'size'"},
              {errc::unsatisfiable_resources, "2 cpu slot"},
              {errc::unsatisfiable_resources, "bytes"},
              {errc::deadline_expired, "deadline"}};
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(hs[i].ready()) << i;
    EXPECT_EQ(hs[i].get().status, outcome::rejected) << i;
    EXPECT_EQ(hs[i].get().error.code, want[i].code) << i;
    EXPECT_NE(hs[i].get().error.message.find(want[i].mentions), std::string::npos)
        << hs[i].get().error.message;
  }
  ASSERT_TRUE(all_ready({hs[5]}));
  EXPECT_TRUE(hs[5].get().ok());
}

// The queue reads one clock, the actor clock, for arrival, aging, backoff and deadlines: moving
// the test coordinator's clock past a queued task's deadline expires it (with the wall clock
// read for deadlines, it ran instead).
TEST_F(QueuePolicies, AQueuedTaskExpiresWhenTheActorClockPassesItsDeadline) {
  start({});
  sched_->clock().current_time = clock::now();  // both clocks agree at submit
  auto s = spec("noop");
  s.deadline = clock::now() + 1h;
  auto h = rt_->submit(s);
  sched_->clock().current_time += 2h;  // before the queue sees the task
  ASSERT_TRUE(all_ready({h}));
  EXPECT_EQ(h.get().status, outcome::expired);
  EXPECT_EQ(h.get().error.code, errc::deadline_expired);
}
