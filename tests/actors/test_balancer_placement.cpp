// The balancer alone, on CAF's deterministic scheduler, between a stand-in queue and stand-in
// workers: it asks only for what workers have room for, places within their resources, and on a
// lost worker gives every task it held back to the queue, charging only the one that ran.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "stand_ins.hpp"
#include "test_system.hpp"
#include "troupe/actors/balancer.hpp"
#include "troupe/kernels/builtins.hpp"

using namespace troupe;

namespace {

struct Balancer : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  std::vector<uint32_t> demands;                  // what the balancer asked the queue for
  std::vector<attempt_record> back;               // what it gave back to the queue
  std::vector<std::vector<assign_msg>> assigned;  // per worker
  std::vector<worker_actor> workers;
  queue_actor queue;
  balancer_actor balancer;

  void start(size_t n_workers, uint32_t prefetch = 1024) {
    sched = &troupe::testing::start_test_system(cfg, sys);
    runtime_config rc;
    rc.cpu_workers = uint32_t(n_workers);
    rc.worker_prefetch = prefetch;
    setup->cfg = resolve(rc);
    kernels::register_builtins(*setup->registry);
    for (size_t i = 0; i < n_workers; ++i) {
      worker_desc w;
      w.name = "cpu-" + std::to_string(i);
      w.capacity.memory_bytes = 100;
      setup->workers.push_back(w);
    }
    assigned.resize(n_workers);
    queue = sys->spawn([this](queue_actor::pointer) -> queue_actor::behavior_type {
      return {[](submit_msg&) {},
              [](const cancel_msg&) {},
              [](const cancel_all_msg&) {},
              [](retry_msg&) {},
              [](const deadline_tick_msg&) {},
              [this](const demand_msg& d, const balancer_actor&) { demands.push_back(d.tasks); },
              [this](completions_msg& c) {
                for (auto& r : c.records) back.push_back(std::move(r));
              },
              [](const escalate_msg&) {}};
    });
    auto bus = troupe::testing::spawn_silent_bus(*sys);
    balancer = sys->spawn(balancer_impl, setup, std::make_shared<event_gate>(),
                          std::make_shared<worker_gauges>(n_workers), queue, bus);
    for (size_t i = 0; i < n_workers; ++i)
      workers.push_back(sys->spawn([this, i](worker_actor::pointer) -> worker_actor::behavior_type {
        return {[this, i](assign_msg& m) { assigned[i].push_back(std::move(m)); },
                [](const heartbeat_tick_msg&) {}, [](const batch_flush_msg&) {},
                [](const gpu_done_msg&) {}, [](const runner_msg&) {}};
      }));
    sched->run();
  }

  void TearDown() override {
    if (!sys) return;
    caf::anon_send_exit(balancer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(queue, caf::exit_reason::user_shutdown);
    for (auto& w : workers) caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
    sched->run();
  }

  void up(int32_t w, uint32_t generation = 1) {
    caf::anon_send(balancer,
                   worker_up_msg{w, generation, workers[size_t(w)], std::nullopt, nullptr});
    sched->run();
  }

  task_ptr task(task_id id, uint64_t memory_bytes = 0) {
    auto t = std::make_shared<task_state>();
    t->id = id;
    t->kind = setup->registry->find("noop");
    t->spec.kind = "noop";
    t->spec.needs.memory_bytes = memory_bytes;
    return t;
  }

  void dispatch(std::vector<task_ptr> ts) {
    dispatch_msg m;
    for (auto& t : ts) m.tasks.push_back({t, 1});
    caf::anon_send(balancer, std::move(m));
    sched->run();
  }

  size_t tasks_on(size_t w) const {
    size_t n = 0;
    for (auto& m : assigned[w]) n += m.tasks.size();
    return n;
  }

  uint64_t demanded() const {
    uint64_t n = 0;
    for (auto d : demands) n += d;
    return n;
  }

  void finish(int32_t w, const task_ptr& t, uint32_t generation = 1) {
    attempt_record r;
    r.task = t;
    r.attempt = 1;
    r.worker = w;
    r.started = clock::now();
    r.finished = r.started + std::chrono::microseconds(50);
    caf::anon_send(balancer, results_msg{w, generation, {r}});
    sched->run();
  }
};

}  // namespace

TEST_F(Balancer, AsksTheQueueForNothingUntilAWorkerIsUpThenForNoMoreThanItsCredit) {
  start(1, /*prefetch=*/4);
  EXPECT_TRUE(demands.empty());
  up(0);
  ASSERT_FALSE(demands.empty());
  EXPECT_LE(demanded(), 4u);
  EXPECT_GE(demanded(), 1u);
}

TEST_F(Balancer, PlacesNoMoreOnAWorkerThanItsMemoryHoldsAndPlacesTheRestAsResultsFreeIt) {
  start(2);
  up(0);
  up(1);
  // Each worker has 100 bytes; every task needs 60: one task per worker at a time.
  auto a = task(1, 60), b = task(2, 60), c = task(3, 60);
  dispatch({a, b, c});
  EXPECT_EQ(tasks_on(0) + tasks_on(1), 2u);
  EXPECT_EQ(tasks_on(0), 1u);
  EXPECT_EQ(tasks_on(1), 1u);
  // The first result frees a worker's memory: the waiting task goes there.
  auto first_on_0 = assigned[0][0].tasks[0].task;
  finish(0, first_on_0);
  EXPECT_EQ(tasks_on(0), 2u);
  EXPECT_EQ(assigned[0].back().tasks[0].task, c);
  ASSERT_EQ(back.size(), 1u);  // the result went on to the queue
  EXPECT_EQ(back[0].task, first_on_0);
}

TEST_F(Balancer, ALostWorkerGivesEveryTaskBackChargingOnlyTheOneThatCrashed) {
  start(1);
  up(0);
  auto a = task(1, 40), b = task(2, 40);
  dispatch({a, b});
  ASSERT_EQ(tasks_on(0), 2u);
  worker_lost_msg lost;
  lost.worker = 0;
  lost.generation = 1;
  lost.crashed_task = 2;
  lost.reason = "segfault";
  lost.at = clock::now();
  caf::anon_send(balancer, lost);
  sched->run();
  ASSERT_EQ(back.size(), 2u);
  for (auto& r : back) {
    if (r.task == b) {
      EXPECT_EQ(r.code, errc::kernel_crashed);
      EXPECT_TRUE(r.counts_as_attempt);
      EXPECT_EQ(r.message, "segfault");
    } else {
      EXPECT_EQ(r.code, errc::worker_lost);
      EXPECT_FALSE(r.counts_as_attempt);  // never started: requeued uncharged
    }
  }
  // Its reservations are gone: once it is back, it takes a task that needs all its memory.
  up(0, 2);
  auto big = task(3, 100);
  dispatch({big});
  EXPECT_EQ(assigned[0].back().tasks[0].task, big);
}

TEST_F(Balancer, ResultsOfAReplacedGenerationDoNotFreeTheNewGenerationsMemory) {
  start(1);
  up(0, 1);
  auto old_task = task(1, 60);
  dispatch({old_task});
  worker_lost_msg lost;
  lost.worker = 0;
  lost.generation = 1;
  lost.at = clock::now();
  caf::anon_send(balancer, lost);
  sched->run();
  up(0, 2);
  auto a = task(2, 60), b = task(3, 60);
  dispatch({a, b});
  ASSERT_EQ(tasks_on(0), 2u);  // old_task, then a; b waits for a's memory
  // The old generation's late result for old_task reaches the queue but frees nothing.
  finish(0, old_task, /*generation=*/1);
  EXPECT_EQ(tasks_on(0), 2u);
  finish(0, a, /*generation=*/2);
  EXPECT_EQ(tasks_on(0), 3u);
  EXPECT_EQ(assigned[0].back().tasks[0].task, b);
}

TEST_F(Balancer, ATaskOnlyARetiredWorkerCouldRunGoesBackAsUnsatisfiable) {
  start(1);
  up(0);
  worker_lost_msg lost;
  lost.worker = 0;
  lost.generation = 1;
  lost.retired = true;
  lost.reason = "GPU context poisoned";
  lost.at = clock::now();
  caf::anon_send(balancer, lost);
  sched->run();
  auto t = task(1);
  dispatch({t});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].task, t);
  EXPECT_EQ(back[0].code, errc::unsatisfiable_resources);
  EXPECT_EQ(tasks_on(0), 0u);
}

/// Two workers of nodes: the first node runs the plugin kind "count", the second does not.
struct BalancerWithNodeKinds : Balancer {
  const kind_entry* count = nullptr;

  void SetUp() override {
    start(2);
    count = setup->registry->add_remote("count", device_bit(device_class::cpu));
    for (auto& w : setup->workers) w.node = "n";  // remote workers
    up_with(0, {count->index, setup->registry->find("noop")->index});
    up_with(1, {setup->registry->find("noop")->index});
  }

  void up_with(int32_t w, std::vector<uint32_t> kinds, uint32_t generation = 1) {
    auto set = std::make_shared<std::vector<bool>>(setup->registry->size(), false);
    for (auto k : kinds) (*set)[k] = true;
    caf::anon_send(balancer,
                   worker_up_msg{w, generation, workers[size_t(w)], std::nullopt, std::move(set)});
    sched->run();
  }

  task_ptr count_task(task_id id) {
    auto t = task(id);
    t->kind = count;
    t->spec.kind = "count";
    return t;
  }
};

TEST_F(BalancerWithNodeKinds, PlacesAKindOnlyOnWorkersWhoseNodeRunsIt) {
  std::vector<task_ptr> ts;
  for (task_id id = 1; id <= 6; ++id) ts.push_back(count_task(id));
  dispatch(ts);
  EXPECT_EQ(tasks_on(0), 6u);
  EXPECT_EQ(tasks_on(1), 0u) << "the second node has no 'count'";
  dispatch({task(7), task(8)});  // noop: both nodes run it, the idle one gets it
  EXPECT_GE(tasks_on(1), 1u);
}

TEST_F(BalancerWithNodeKinds, AKindNoNodeRunsAnyMoreGoesBackAsUnknownKind) {
  // The first node comes back (same generation, new hello) without the plugin.
  up_with(0, {setup->registry->find("noop")->index});
  auto t = count_task(1);
  dispatch({t});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].task, t);
  EXPECT_EQ(back[0].code, errc::unknown_kind);
  EXPECT_NE(back[0].message.find("'count'"), std::string::npos) << back[0].message;
  EXPECT_EQ(tasks_on(0) + tasks_on(1), 0u);
}

// docs/graphs.md, "Where data moves": least_loaded counts moving a graph task's inputs, so among
// idle workers the task goes to the node that produced (and keeps) its input.
TEST_F(Balancer, AGraphTaskGoesToTheNodeThatHoldsItsInput) {
  start(3);
  for (auto [w, node] : {std::pair{0, "a"}, {1, "b"}, {2, "b"}}) setup->workers[w].node = node;
  for (int32_t w = 0; w < 3; ++w) up(w);
  auto child = task(1);
  child->spec.inputs = {{"payload", 0, "bytes"}};
  child->input_homes = {{0, 9, 2, 50'000'000}};  // made by worker 2, on node b
  dispatch({child});
  EXPECT_EQ(tasks_on(1), 1u) << "node b holds its input; worker 1 is b's first";
  auto plain = task(2);
  dispatch({plain});
  EXPECT_EQ(tasks_on(0), 1u) << "without inputs, the least loaded";
}

TEST_F(Balancer, WhenNodesKeepNoOutputsEveryNodeWorkerMovesTheInput) {
  start(2);
  setup->cfg.cluster.kept_output_bytes = 0;
  for (auto [w, node] : {std::pair{0, "a"}, {1, "b"}}) setup->workers[w].node = node;
  for (int32_t w = 0; w < 2; ++w) up(w);
  auto child = task(1);
  child->input_homes = {{0, 9, 1, 50'000'000}};
  dispatch({child});
  EXPECT_EQ(tasks_on(0), 1u) << "no node holds it: a tie, to the lower index";
}
