// Membership alone, on CAF's deterministic scheduler and its clock, with stand-ins for the
// balancer and monitor and a frame sender that keeps what would go to the nodes: a node in the
// cluster file joins and is welcomed, one that is not is refused by name, frames of an old epoch
// are fenced off, a silent node becomes suspect then dead and its workers are reported lost.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "stand_ins.hpp"
#include "test_system.hpp"
#include "troupe/actors/cluster/membership.hpp"
#include "troupe/kernels/builtins.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/framer.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct sent_frame {
  std::string peer;
  wire::header header;
  std::string body;
};

struct Membership : ::testing::Test {
  int nodes = 1;  ///< n1, n2, ...: two CPU workers each
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  wire::framer framer{"head"};
  std::vector<sent_frame> sent;
  std::vector<worker_up_msg> ups;
  std::vector<worker_lost_msg> losses;
  std::vector<results_msg> results;
  membership_actor membership;
  balancer_actor balancer;
  monitor_actor monitor;
  event_bus_actor bus;

  void SetUp() override {
    sched = &troupe::testing::start_test_system(cfg, sys);
    runtime_config rc;
    rc.cluster.heartbeat_interval = 100ms;
    rc.cluster.suspect_after = 300ms;
    rc.cluster.dead_after = 600ms;
    for (int n = 1; n <= nodes; ++n) {
      node_config nc;
      nc.name = "n" + std::to_string(n);
      nc.cpu_workers = 2;
      rc.cluster.nodes.push_back(nc);
      for (int32_t i = 0; i < 2; ++i) {
        worker_desc w;
        w.name = nc.name + "/cpu-" + std::to_string(i);
        w.node = nc.name;
        w.node_worker = i;
        setup->workers.push_back(w);
      }
    }
    setup->cfg = rc;
    kernels::register_builtins(*setup->registry);
    balancer = sys->spawn([this](balancer_actor::pointer) -> balancer_actor::behavior_type {
      return {[](dispatch_msg&) {}, [this](results_msg& m) { results.push_back(std::move(m)); },
              [this](worker_up_msg& m) { ups.push_back(std::move(m)); },
              [this](const worker_lost_msg& m) { losses.push_back(m); },
              [](reservation_tick_msg) {}};
    });
    monitor = troupe::testing::spawn_stand_in_monitor(*sys);
    bus = troupe::testing::spawn_silent_bus(*sys);
    auto keep = [this](transport::multipart&& m) {
      sent_frame f;
      f.peer = m.at(0).to_string();
      f.header = wire::decode_header(m.at(1).data(), m.at(1).size(), wire::limits{});
      f.body = m.at(2).to_string();
      sent.push_back(std::move(f));
      return true;
    };
    membership = sys->spawn(membership_impl, setup_ptr{setup}, std::make_shared<event_gate>(),
                            std::make_shared<worker_gauges>(setup->workers.size()),
                            std::make_shared<admission_gate>(setup->cfg), balancer, monitor, bus,
                            keep, &framer);
    sched->run();
  }

  void TearDown() override {
    for (auto a : {caf::actor_cast<caf::actor>(membership), caf::actor_cast<caf::actor>(balancer),
                   caf::actor_cast<caf::actor>(monitor), caf::actor_cast<caf::actor>(bus)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
  }

  static node_hello_msg hello_of(const std::string& node, uint64_t epoch, size_t workers = 2) {
    node_hello_msg m;
    m.peer = "peer-" + node;
    m.epoch = epoch;
    m.corr = 7;
    m.body.node = node;
    for (size_t i = 0; i < workers; ++i)
      m.body.workers.push_back({"cpu-" + std::to_string(i), device_class::cpu, -1, {}});
    return m;
  }

  void hello(const std::string& node, uint64_t epoch, size_t workers = 2) {
    send(hello_of(node, epoch, workers));
  }

  void send(const node_hello_msg& m) {
    caf::anon_send(membership, m);
    sched->run();
  }

  template <class Body>
  Body body_of(const sent_frame& f) {
    return wire::decode<Body>(f.body.data(), f.body.size(), wire::limits{});
  }

  const sent_frame* last_of(wire::msg_type type) const {
    for (auto i = sent.rbegin(); i != sent.rend(); ++i)
      if (i->header.type == type) return &*i;
    return nullptr;
  }

  /// Node n1's heartbeat (epoch 11): what it took in and holds, and what runs preemptible.
  void heartbeat_from_n1(std::optional<uint64_t> last_assign, std::vector<task_id> holding,
                         std::vector<task_id> preemptible_running = {}) {
    node_heartbeat_msg hb;
    hb.peer = "peer-n1";
    hb.node = "n1";
    hb.epoch = 11;
    hb.body.last_assign = last_assign;
    hb.body.holding = std::move(holding);
    hb.body.preemptible_running = std::move(preemptible_running);
    caf::anon_send(membership, hb);
    sched->run();
  }

  /// Node n1 (epoch 11) reports one attempt of task `id` on its worker 1.
  void report_from_n1(task_id id, errc code = errc::none, bool counts_as_attempt = true,
                      int64_t run_ns = 0) {
    report_from("n1", 11, 1, id, code, counts_as_attempt, run_ns);
  }

  /// `node` (in `epoch`) reports one attempt of task `id` on its worker `worker`.
  void report_from(const std::string& node, uint64_t epoch, int32_t worker, task_id id,
                   errc code = errc::none, bool counts_as_attempt = true, int64_t run_ns = 0) {
    node_results_msg r;
    r.peer = "peer-" + node;
    r.node = node;
    r.epoch = epoch;
    wire::attempt_result rec;
    rec.id = id;
    rec.attempt = 1;
    rec.worker = worker;
    rec.code = code;
    rec.counts_as_attempt = counts_as_attempt;
    rec.run_ns = run_ns;
    r.body.records.push_back(rec);
    caf::anon_send(membership, r);
    sched->run();
  }

  /// Moves the test clock in heartbeat steps, firing the membership ticks due.
  void let_time_pass(std::chrono::milliseconds d) {
    troupe::testing::let_time_pass(*sched, d, 100ms);
  }
};

}  // namespace

TEST_F(Membership, ANodeOfTheClusterFileIsWelcomedAndItsWorkersComeUp) {
  hello("n1", 11);
  auto* w = last_of(wire::msg_type::welcome);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->peer, "peer-n1");
  EXPECT_EQ(w->header.corr, 7u);  // answers the hello
  auto welcome = body_of<wire::welcome>(*w);
  EXPECT_EQ(welcome.node, "n1");
  EXPECT_EQ(welcome.epoch, 11u);
  EXPECT_EQ(welcome.heartbeat_ms, 100u);
  ASSERT_EQ(ups.size(), 2u);
  EXPECT_EQ(ups[0].worker, 0);
  EXPECT_EQ(ups[1].worker, 1);
}

TEST_F(Membership, AHelloFromANodeTheClusterFileDoesNotNameIsRefusedNamingTheKnownOnes) {
  hello("stranger", 1);
  auto* e = last_of(wire::msg_type::error);
  ASSERT_NE(e, nullptr);
  auto err = body_of<wire::error>(*e);
  EXPECT_EQ(err.code, wire::wire_errc::unknown_node);
  EXPECT_NE(err.message.find("'stranger'"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find("n1"), std::string::npos) << err.message;
  EXPECT_TRUE(ups.empty());
}

TEST_F(Membership, ANodeBringingOtherWorkersThanTheClusterFileSaysIsRefused) {
  hello("n1", 1, /*workers=*/3);
  auto* e = last_of(wire::msg_type::error);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(body_of<wire::error>(*e).code, wire::wire_errc::layout_mismatch);
  EXPECT_TRUE(ups.empty());
}

TEST_F(Membership, FramesOfAnOlderEpochAreRefusedAndTheirResultsNeverReachTheBalancer) {
  hello("n1", 11);
  hello("n1", 12);            // the node restarted: a new incarnation replaces the old one
  ASSERT_EQ(ups.size(), 4u);  // both workers up under 11, then again under 12
  auto t = std::make_shared<task_state>();
  t->id = 42;
  t->kind = setup->registry->find("noop");
  t->spec.kind = "noop";
  ASSERT_EQ(ups[2].worker, 0);
  caf::anon_send(membership, remote_assign_msg{0, ups[2].generation, {{t, 1}}});
  sched->run();
  ASSERT_NE(last_of(wire::msg_type::assign), nullptr);
  node_results_msg r;
  r.peer = "peer-n1";
  r.node = "n1";
  r.epoch = 11;  // the old incarnation reports the task
  wire::attempt_result done;
  done.id = 42;
  done.attempt = 1;
  done.worker = 0;
  r.body.records.push_back(done);
  caf::anon_send(membership, r);
  sched->run();
  ASSERT_EQ(sent.back().header.type, wire::msg_type::error);
  EXPECT_EQ(body_of<wire::error>(sent.back()).code, wire::wire_errc::stale_epoch);
  EXPECT_TRUE(results.empty());
  r.epoch = 12;  // the same report from the joined incarnation is taken
  caf::anon_send(membership, r);
  sched->run();
  EXPECT_EQ(results.size(), 1u);
  // A hello of the old epoch is refused as well: it cannot take its workers back.
  hello("n1", 11);
  ASSERT_EQ(sent.back().header.type, wire::msg_type::error);
  EXPECT_EQ(body_of<wire::error>(sent.back()).code, wire::wire_errc::stale_epoch);
  EXPECT_EQ(ups.size(), 4u);
}

TEST_F(Membership, ASilentNodeBecomesSuspectThenDeadAndItsWorkersAreReportedLost) {
  hello("n1", 11);
  ASSERT_EQ(ups.size(), 2u);
  let_time_pass(400ms);  // past suspect_after: suspect, still placed on
  EXPECT_TRUE(losses.empty());
  let_time_pass(400ms);  // past dead_after: dead
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_EQ(losses[0].worker, 0);
  EXPECT_EQ(losses[1].worker, 1);
  // Its epoch is fenced off: the old incarnation may not come back, a new one may.
  hello("n1", 11);
  ASSERT_EQ(sent.back().header.type, wire::msg_type::error);
  EXPECT_EQ(body_of<wire::error>(sent.back()).code, wire::wire_errc::stale_epoch);
  hello("n1", 13);
  ASSERT_EQ(sent.back().header.type, wire::msg_type::welcome);
  EXPECT_EQ(body_of<wire::welcome>(sent.back()).epoch, 13u);
}

TEST_F(Membership, AHeardNodeStaysJoinedHoweverLongItRuns) {
  hello("n1", 11);
  for (int i = 0; i < 20; ++i) {
    let_time_pass(200ms);
    heartbeat_from_n1(std::nullopt, {});
  }
  EXPECT_TRUE(losses.empty());
}

TEST_F(Membership, TasksAssignedToARemoteWorkerGoToItsNodeAndTheirResultsComeBack) {
  hello("n1", 11);
  auto t = std::make_shared<task_state>();
  t->id = 42;
  t->kind = setup->registry->find("noop");
  t->spec.kind = "noop";
  caf::anon_send(membership, remote_assign_msg{1, ups[1].generation, {{t, 1}}});
  sched->run();
  auto* a = last_of(wire::msg_type::assign);
  ASSERT_NE(a, nullptr);
  auto assign = body_of<wire::assign>(*a);
  ASSERT_EQ(assign.tasks.size(), 1u);
  EXPECT_EQ(assign.tasks[0].id, 42u);
  EXPECT_EQ(assign.tasks[0].worker, 1);  // the node's own index of the worker
  report_from_n1(42, errc::none, true, 1000);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].worker, 1);
  ASSERT_EQ(results[0].records.size(), 1u);
  EXPECT_EQ(results[0].records[0].task, t);
  // The same result again (a duplicate frame) is not passed on twice.
  report_from_n1(42, errc::none, true, 1000);
  EXPECT_EQ(results.size(), 1u);
}

struct MembershipFindsLostTasks : Membership {
  std::shared_ptr<task_state> t = std::make_shared<task_state>();
  uint64_t frame = 0;

  void SetUp() override {
    Membership::SetUp();
    hello("n1", 11);
    t->id = 42;
    t->kind = setup->registry->find("noop");
    t->spec.kind = "noop";
    caf::anon_send(membership, remote_assign_msg{1, ups[1].generation, {{t, 1}}});
    sched->run();
    frame = last_of(wire::msg_type::assign)->header.id;
  }

  void heartbeat(uint64_t last_assign, std::vector<task_id> holding) {
    heartbeat_from_n1(last_assign, std::move(holding));
  }
};

TEST_F(MembershipFindsLostTasks,
       ATaskTheNodeTookInButNeitherHoldsNorReportedIsChargedAndGivenBack) {
  heartbeat(frame, {});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].worker, 1);
  ASSERT_EQ(results[0].records.size(), 1u);
  auto& r = results[0].records[0];
  EXPECT_EQ(r.task, t);
  EXPECT_EQ(r.attempt, 1u);
  EXPECT_EQ(r.code, errc::worker_lost);
  EXPECT_TRUE(r.counts_as_attempt) << "a task that is always lost must run out of retries";
  EXPECT_NE(r.message.find("n1"), std::string::npos) << r.message;
  // A late result of it is not passed on a second time.
  node_results_msg late;
  late.peer = "peer-n1";
  late.node = "n1";
  late.epoch = 11;
  late.body.records.push_back({42, 1, 1, errc::none, "", {}, 10, true});
  caf::anon_send(membership, late);
  sched->run();
  EXPECT_EQ(results.size(), 1u);
}

TEST_F(MembershipFindsLostTasks, ATaskTheNodeHoldsIsNotLostHoweverLongItRuns) {
  for (int i = 0; i < 30; ++i) {
    let_time_pass(100ms);
    heartbeat(frame + 5, {42});
  }
  EXPECT_TRUE(results.empty());
}

TEST_F(MembershipFindsLostTasks, AnAssignStillOnItsWayIsNotLostHoweverLongItTakes) {
  // The node has not taken in the assign yet (a large payload on a slow link): nothing after
  // it has arrived either, so its heartbeats name an older one.
  for (int i = 0; i < 30; ++i) {
    let_time_pass(100ms);
    heartbeat(frame - 1, {});
  }
  EXPECT_TRUE(results.empty());
}

TEST_F(MembershipFindsLostTasks, ItsHeartbeatsToTheNodeNameTheLastAssignSentBeforeThem) {
  let_time_pass(100ms);
  auto* hb = last_of(wire::msg_type::heartbeat);
  ASSERT_NE(hb, nullptr);
  EXPECT_GT(hb->header.id, frame) << "sent after the assign";
  EXPECT_EQ(body_of<wire::heartbeat>(*hb).last_assign, frame);
}

TEST_F(MembershipFindsLostTasks, ANodeThatDoesNotSayWhatItHoldsLosesNothing) {
  let_time_pass(1000ms);
  heartbeat_from_n1(std::nullopt, {});  // an older node: no last_assign
  EXPECT_TRUE(results.empty());
}

TEST_F(Membership, ANodesKindsReachTheHeadsRegistryAndItsWorkersSets) {
  auto m = hello_of("n1", 11);
  m.body.kinds = {"noop", "count", "gpu_only"};
  m.body.kind_devices = {{"noop", {device_class::cpu}},
                         {"count", {device_class::cpu}},
                         {"gpu_only", {device_class::cuda}}};
  send(m);
  auto* count = setup->registry->find("count");
  ASSERT_NE(count, nullptr) << "a kind only nodes have gets an entry in the head's registry";
  EXPECT_TRUE(count->runs_remotely_on(device_class::cpu));
  EXPECT_FALSE(count->runs_on(device_class::cpu)) << "no implementation in the head";
  auto* gpu_only = setup->registry->find("gpu_only");
  ASSERT_NE(gpu_only, nullptr);
  ASSERT_EQ(ups.size(), 2u);
  for (auto& up : ups) {
    ASSERT_TRUE(up.kinds);
    EXPECT_TRUE(up.kinds->at(count->index));
    EXPECT_FALSE(up.kinds->at(gpu_only->index)) << "a CPU worker does not run a CUDA-only kind";
  }
  // The node adds a kind while joined: hello again, same epoch; its workers' sets follow.
  m.body.kinds.push_back("later");
  send(m);
  auto* later = setup->registry->find("later");
  ASSERT_NE(later, nullptr);
  ASSERT_EQ(ups.size(), 4u) << "each worker's set is sent again";
  EXPECT_EQ(ups[2].generation, ups[0].generation) << "not a restart";
  EXPECT_TRUE(ups[3].kinds->at(later->index));
}

TEST_F(Membership, ANodeWithAnotherPayloadLimitIsRefusedNamingBoth) {
  auto m = hello_of("n1", 11);
  m.body.max_payload_bytes = 1 << 20;
  send(m);
  ASSERT_EQ(sent.back().header.type, wire::msg_type::error);
  auto e = body_of<wire::error>(sent.back());
  EXPECT_EQ(e.code, wire::wire_errc::layout_mismatch);
  EXPECT_NE(e.message.find("limits.max_payload_bytes = 1048576"), std::string::npos) << e.message;
  EXPECT_TRUE(ups.empty());
}

// Preemption on a node's workers (docs/preemption.md): the head learns from the heartbeats which
// preemptible attempts run there, and asks the node with a cancel carrying `preempt`.
struct MembershipPreempts : Membership {
  std::shared_ptr<task_state> low = task(42, 0, true);
  uint64_t frame = 0;

  void SetUp() override {
    Membership::SetUp();
    hello("n1", 11);
    assign(low, 5.0);
  }

  std::shared_ptr<task_state> task(task_id id, int32_t priority, bool preemptible) {
    auto t = std::make_shared<task_state>();
    t->id = id;
    t->kind = setup->registry->find("sleep");
    t->spec.kind = "sleep";
    t->spec.priority = priority;
    t->spec.preemptible = preemptible;
    return t;
  }

  void assign(const std::shared_ptr<task_state>& t, double order) {
    assignment a{t, 1, order};
    caf::anon_send(membership, remote_assign_msg{1, ups[1].generation, {a}});
    sched->run();
    frame = last_of(wire::msg_type::assign)->header.id;
  }

  void heartbeat(std::vector<task_id> holding, std::vector<task_id> running) {
    heartbeat_from_n1(frame, std::move(holding), std::move(running));
  }

  /// The ids of every cancel frame with `preempt` sent so far.
  std::vector<task_id> asked_to_make_way() {
    std::vector<task_id> ids;
    for (auto& f : sent) {
      if (f.header.type != wire::msg_type::cancel) continue;
      auto c = body_of<wire::cancel>(f);
      if (c.preempt) ids.insert(ids.end(), c.ids.begin(), c.ids.end());
    }
    return ids;
  }
};

TEST_F(MembershipPreempts, AnAttemptTheHeartbeatShowsRunningIsMarkedRunningForTheBalancer) {
  auto running_on_n1 = [&] {
    caf::anon_send(membership, status_query_msg{"client", 1, 0, {}, 0});
    sched->run();
    return body_of<wire::status>(*last_of(wire::msg_type::status)).nodes.at(0).preemptible_running;
  };
  EXPECT_EQ(low->running_attempt.load(), 0u);
  heartbeat({42}, {42});
  EXPECT_EQ(low->running_attempt.load(), 1u);
  EXPECT_EQ(running_on_n1(), 1u) << "status shows it";
  heartbeat({42}, {});  // no longer running (the node is about to report it)
  EXPECT_EQ(low->running_attempt.load(), 0u);
  EXPECT_EQ(running_on_n1(), 0u);
  EXPECT_TRUE(asked_to_make_way().empty());
}

TEST_F(MembershipPreempts, AnAttemptTheBalancerPickedIsAskedAtOnceAndOnlyOnce) {
  heartbeat({42}, {42});
  low->preempt_requested.store(true);  // as the balancer does, placing a more urgent task
  auto urgent = task(43, 10, false);
  assign(urgent, -10.0);
  EXPECT_EQ(asked_to_make_way(), (std::vector<task_id>{42}));
  heartbeat({42, 43}, {42});
  EXPECT_EQ(asked_to_make_way(), (std::vector<task_id>{42})) << "asked once";
  // It made way: the attempt is over for the head, and no longer shows running or asked.
  report_from_n1(42, errc::preempted);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].records.at(0).code, errc::preempted);
  EXPECT_EQ(low->running_attempt.load(), 0u);
  EXPECT_FALSE(low->preempt_requested.load());
}

TEST_F(MembershipPreempts, AnUrgentTaskPlacedBeforeTheHeadSawTheAttemptRunningAsksAtTheHeartbeat) {
  auto urgent = task(43, 10, false);
  assign(urgent, -10.0);  // the head did not know 42 runs: nobody asked
  EXPECT_TRUE(asked_to_make_way().empty());
  heartbeat({42, 43}, {42});
  EXPECT_EQ(asked_to_make_way(), (std::vector<task_id>{42}));
  EXPECT_TRUE(low->preempt_requested.load());
}

TEST_F(MembershipPreempts, NothingIsAskedForATaskOfTheSamePriorityOrOfANonPreemptibleOne) {
  auto same = task(43, 0, false);
  assign(same, 1.0);  // runs next there, but does not outrank it
  heartbeat({42, 43}, {42});
  EXPECT_TRUE(asked_to_make_way().empty());
  auto urgent = task(45, 10, false);
  assign(urgent, -10.0);
  heartbeat({42, 43, 45}, {42, 43});  // 43 is not preemptible: only 42 may be asked
  EXPECT_EQ(asked_to_make_way(), (std::vector<task_id>{42}));
}

// Data between graph tasks (docs/graphs.md, "Where data moves"): an input whose value comes from
// an output the node keeps is left out of the assign; once the node hands the task back
// unstarted (it no longer keeps it), the head sends the task whole.
TEST_F(Membership, AnAssignLeavesOutInputsItsNodeKeepsUntilTheNodeHandsTheTaskBack) {
  hello("n1", 11);
  auto child = std::make_shared<task_state>();
  child->id = 42;
  child->kind = setup->registry->find("echo");
  child->spec.kind = "echo";
  child->spec.inputs = {{"x", 0, "blob"}, {"payload", 1, "bytes"}};
  child->spec.params.set("x", std::string(1000, 'b'));  // bound by the queue as 41 ended
  child->spec.payload.assign(500, 'p');                 // from 40, which ran on the head
  child->input_homes = {{0, 41, 0, 1010, 11}, {1, 40, -1, 500, 0}};  // 41 ran on n1 (epoch 11)
  auto assign_and_read = [&] {
    caf::anon_send(membership, remote_assign_msg{1, ups[1].generation, {{child, 1}}});
    sched->run();
    return body_of<wire::assign>(*last_of(wire::msg_type::assign)).tasks.at(0);
  };
  auto report = [&](bool started) {
    report_from_n1(42, started ? errc::none : errc::worker_lost, started);
  };
  auto kept_on_n1 = [&] {
    caf::anon_send(membership, status_query_msg{"client", 1, 0, {}, 0});
    sched->run();
    auto status = body_of<wire::status>(*last_of(wire::msg_type::status));
    return std::make_pair(status.nodes.at(0).kept_inputs, status.nodes.at(0).kept_input_bytes);
  };
  auto sent_task = assign_and_read();
  EXPECT_FALSE(sent_task.spec.params.contains("x")) << "n1 keeps 41's output";
  EXPECT_EQ(sent_task.spec.payload.size(), 500u) << "40's output is not on n1";
  ASSERT_EQ(sent_task.kept_inputs.size(), 1u);
  EXPECT_EQ(sent_task.kept_inputs[0].input, 0u);
  EXPECT_EQ(sent_task.kept_inputs[0].task, 41u);
  report(true);  // it ran: n1 bound the input itself
  EXPECT_EQ(kept_on_n1(), std::make_pair(uint64_t{1}, uint64_t{1010}));
  EXPECT_FALSE(assign_and_read().kept_inputs.empty());  // a retry, say
  report(false);                                        // n1 no longer had it
  EXPECT_TRUE(child->inputs_inline);
  sent_task = assign_and_read();
  EXPECT_EQ(sent_task.spec.params.get_string("x", ""), std::string(1000, 'b'));
  EXPECT_TRUE(sent_task.kept_inputs.empty());
  report(true);
  EXPECT_EQ(kept_on_n1(), std::make_pair(uint64_t{1}, uint64_t{1010}))
      << "only inputs the node bound count";

  // n1 restarted since 41 ran there: its new process keeps nothing of it, so the head sends
  // the input rather than have n1 look for it and hand the task back.
  child->inputs_inline = false;
  hello("n1", 12);
  sent_task = assign_and_read();
  EXPECT_EQ(sent_task.spec.params.get_string("x", ""), std::string(1000, 'b'));
  EXPECT_TRUE(sent_task.kept_inputs.empty());
}

TEST_F(Membership, ATaskWhoseOutputAChildTakesIsAssignedToBeKept) {
  hello("n1", 11);
  auto parent = std::make_shared<task_state>(), other = std::make_shared<task_state>();
  for (auto* t : {&parent, &other}) {
    (*t)->kind = setup->registry->find("echo");
    (*t)->spec.kind = "echo";
  }
  parent->id = 1, other->id = 2;
  parent->feeds_inputs = true;  // set at submit: a child takes an input from it
  caf::anon_send(membership, remote_assign_msg{0, ups[0].generation, {{parent, 1}, {other, 1}}});
  sched->run();
  auto tasks = body_of<wire::assign>(*last_of(wire::msg_type::assign)).tasks;
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_TRUE(tasks[0].keep_output);
  EXPECT_FALSE(tasks[1].keep_output) << "nothing takes from it";
}

namespace {
struct MembershipOfTwoNodes : Membership {
  MembershipOfTwoNodes() { nodes = 2; }
};
}  // namespace

// Node to node (docs/graphs.md, "Where data moves"): a child placed on n2 whose input n1 keeps
// is told to fetch it from n1's data socket (under n1's epoch), and the head sends none of it;
// a node without a data socket gets it whole from the head.
TEST_F(MembershipOfTwoNodes, AnInputKeptOnAnotherNodeIsNamedForTheReceiverToFetchFromThere) {
  setup->node_keys = {{"n1", std::string(40, '1')}, {"n2", std::string(40, '2')}};
  hello("n1", 11);  // no data endpoint
  hello("n2", 12);
  auto welcome = body_of<wire::welcome>(*last_of(wire::msg_type::welcome));
  ASSERT_EQ(welcome.data_peers.size(), 2u) << "every node's key, for its data socket";
  EXPECT_EQ(welcome.data_peers[0].node, "n1");
  EXPECT_EQ(welcome.data_peers[0].key, std::string(40, '1'));

  auto child = std::make_shared<task_state>();
  child->id = 42;
  child->kind = setup->registry->find("echo");
  child->spec.kind = "echo";
  child->spec.inputs = {{"x", 0, "blob"}};
  child->spec.params.set("x", std::string(1000, 'b'));  // bound by the queue as 41 ended on n1
  child->input_homes = {{0, 41, 0, 1010, 13}};          // 41 ran on n1 under epoch 13
  auto assign_to_n2 = [&] {
    uint32_t generation = 0;
    for (auto& up : ups)
      if (up.worker == 2) generation = up.generation;
    caf::anon_send(membership, remote_assign_msg{2, generation, {{child, 1}}});
    sched->run();
    return body_of<wire::assign>(*last_of(wire::msg_type::assign)).tasks.at(0);
  };
  auto sent_task = assign_to_n2();
  EXPECT_EQ(last_of(wire::msg_type::assign)->peer, "peer-n2");
  EXPECT_EQ(sent_task.spec.params.get_string("x", ""), std::string(1000, 'b'))
      << "n1 serves nothing: the head sends it";
  EXPECT_TRUE(sent_task.kept_inputs.empty());

  auto with_data = hello_of("n1", 13);
  with_data.body.data_endpoint = "tcp://127.0.0.1:7001";
  send(with_data);
  sent_task = assign_to_n2();
  EXPECT_FALSE(sent_task.spec.params.contains("x")) << "n2 fetches it from n1";
  ASSERT_EQ(sent_task.kept_inputs.size(), 1u);
  auto& k = sent_task.kept_inputs[0];
  EXPECT_EQ(k.task, 41u);
  EXPECT_EQ(k.node, "n1");
  EXPECT_EQ(k.endpoint, "tcp://127.0.0.1:7001");
  EXPECT_EQ(k.epoch, 13u);

  report_from("n2", 12, 0, 42);
  caf::anon_send(membership, status_query_msg{"client", 1, 0, {}, 0});
  sched->run();
  auto status = body_of<wire::status>(*last_of(wire::msg_type::status));
  auto& n2 = status.nodes.at(1);
  EXPECT_EQ(n2.fetched_inputs, 1u);
  EXPECT_EQ(n2.fetched_input_bytes, 1010u);
  EXPECT_EQ(n2.kept_inputs, 1u) << "fetched inputs are inputs the head did not send too";

  // n1 restarted (epoch 14) since 41 ran there: it keeps nothing of that run, so n2 is not
  // sent to ask it.
  auto restarted = hello_of("n1", 14);
  restarted.body.data_endpoint = "tcp://127.0.0.1:7001";
  send(restarted);
  sent_task = assign_to_n2();
  EXPECT_TRUE(sent_task.kept_inputs.empty());
  EXPECT_EQ(sent_task.spec.params.get_string("x", ""), std::string(1000, 'b'));

  // n2 reaches the head on another machine: n1's loopback endpoint is not n1 for it.
  child->input_homes[0].epoch = 14;
  ASSERT_FALSE(assign_to_n2().kept_inputs.empty());
  setup->cfg.cluster.nodes.at(1).head_endpoint = "tcp://10.0.0.5:5555";
  sent_task = assign_to_n2();
  EXPECT_TRUE(sent_task.kept_inputs.empty());
  EXPECT_EQ(sent_task.spec.params.get_string("x", ""), std::string(1000, 'b'));
}
