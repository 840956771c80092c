// The node agent alone, on CAF's deterministic scheduler and its clock, with a stand-in worker
// and a frame sender that keeps what would go to the head: it says hello until welcomed, hands
// back uncharged what the head assigns before the welcome, runs what it assigns after on the
// named worker and reports the result, and joins again with a new epoch when the head is silent.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "stand_ins.hpp"
#include "test_system.hpp"
#include "troupe/actors/cluster/node_agent.hpp"
#include "troupe/kernels/builtins.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/framer.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct NodeAgent : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  wire::framer framer{"n1"};
  std::vector<std::pair<wire::header, std::string>> sent;
  std::vector<assign_msg> on_worker;
  std::vector<std::string> fatal;
  node_agent_actor agent;
  worker_actor worker;

  void SetUp() override {
    sched = &troupe::testing::start_test_system(cfg, sys);
    runtime_config rc;
    rc.cluster.heartbeat_interval = 100ms;
    rc.cluster.dead_after = 500ms;
    setup->cfg = rc;
    kernels::register_builtins(*setup->registry);
    worker_desc w;
    w.name = "cpu-0";
    setup->workers = {w};
    worker = sys->spawn([this](worker_actor::pointer) -> worker_actor::behavior_type {
      return {[this](assign_msg& m) { on_worker.push_back(std::move(m)); },
              [](const heartbeat_tick_msg&) {}, [](const batch_flush_msg&) {},
              [](const gpu_done_msg&) {}, [](const runner_msg&) {}};
    });
    auto keep = [this](transport::multipart&& m) {
      sent.emplace_back(wire::decode_header(m.at(0).data(), m.at(0).size(), wire::limits{}),
                        m.at(1).to_string());
      return true;
    };
    agent = sys->spawn(
        node_agent_impl, setup_ptr{setup}, std::make_shared<worker_gauges>(1), std::string{"n1"},
        keep, &framer, [this](const std::string& why) { fatal.push_back(why); }, links());
    caf::anon_send(caf::actor_cast<balancer_actor>(agent),
                   worker_up_msg{0, 1, worker, {}, nullptr});
    caf::anon_send(agent, node_tick_msg{});  // the node's first tick: hello
    sched->run();
  }

  /// The node's data sockets: none, unless a test says otherwise.
  virtual node_data_links links() { return {}; }

  void TearDown() override {
    caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
    sched->run();
  }

  template <class Body>
  std::vector<Body> sent_of(wire::msg_type type) const {
    std::vector<Body> out;
    for (auto& [h, body] : sent)
      if (h.type == type) out.push_back(wire::decode<Body>(body.data(), body.size(), {}));
    return out;
  }

  uint64_t last_hello_epoch() const {
    uint64_t e = 0;
    for (auto& [h, body] : sent)
      if (h.type == wire::msg_type::hello) e = h.epoch;
    return e;
  }

  void welcome(uint64_t epoch) {
    caf::anon_send(agent, head_welcome_msg{wire::welcome{"n1", epoch, 100, 0}});
    sched->run();
  }

  void assign(task_id id, int32_t worker_index = 0, std::string kind = "noop") {
    wire::assign a;
    wire::assigned_task t;
    t.id = id;
    t.attempt = 1;
    t.worker = worker_index;
    t.spec.kind = std::move(kind);
    a.tasks.push_back(std::move(t));
    caf::anon_send(agent, head_assign_msg{std::move(a), ++frame_id, {}});
    sched->run();
  }
  uint64_t frame_id = 100;

  /// An echo task for worker 0, attempt 1.
  static wire::assigned_task echo(task_id id) {
    wire::assigned_task t;
    t.id = id;
    t.attempt = 1;
    t.worker = 0;
    t.spec.kind = "echo";
    return t;
  }
  /// One assign frame with these tasks.
  void send_assign(std::vector<wire::assigned_task> tasks) {
    wire::assign a;
    a.tasks = std::move(tasks);
    caf::anon_send(agent, head_assign_msg{std::move(a), ++frame_id, {}});
    sched->run();
  }
  /// The worker ends the attempt it got `n`-th with this output.
  void finish(size_t n, task_output out) {
    attempt_record rec;
    rec.task = on_worker.at(n).tasks.at(0).task;
    rec.attempt = 1;
    rec.worker = 0;
    rec.output = std::move(out);
    caf::anon_send(caf::actor_cast<balancer_actor>(agent), results_msg{0, 1, {std::move(rec)}});
    sched->run();
  }

  /// Moves the test clock in heartbeat steps, firing the node's ticks due.
  void let_time_pass(std::chrono::milliseconds d) {
    troupe::testing::let_time_pass(*sched, d, 100ms);
  }
};

}  // namespace

TEST_F(NodeAgent, SaysHelloWithItsWorkersAndKindsUntilWelcomed) {
  auto hellos = sent_of<wire::hello>(wire::msg_type::hello);
  ASSERT_EQ(hellos.size(), 1u);
  EXPECT_EQ(hellos[0].node, "n1");
  ASSERT_EQ(hellos[0].workers.size(), 1u);
  EXPECT_EQ(hellos[0].workers[0].name, "cpu-0");
  EXPECT_NE(std::find(hellos[0].kinds.begin(), hellos[0].kinds.end(), "noop"),
            hellos[0].kinds.end());
  let_time_pass(200ms);
  EXPECT_GE(sent_of<wire::hello>(wire::msg_type::hello).size(), 2u);  // no answer: again
  welcome(last_hello_epoch());
  auto before = sent_of<wire::hello>(wire::msg_type::hello).size();
  let_time_pass(300ms);
  EXPECT_EQ(sent_of<wire::hello>(wire::msg_type::hello).size(), before);  // joined: heartbeats
  EXPECT_FALSE(sent_of<wire::heartbeat>(wire::msg_type::heartbeat).empty());
}

TEST_F(NodeAgent, TasksAssignedBeforeTheWelcomeGoBackUnchargedInsteadOfWaiting) {
  assign(5);
  EXPECT_TRUE(on_worker.empty());
  auto back = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(back.size(), 1u);
  ASSERT_EQ(back[0].records.size(), 1u);
  EXPECT_EQ(back[0].records[0].id, 5u);
  EXPECT_EQ(back[0].records[0].code, errc::worker_lost);
  EXPECT_FALSE(back[0].records[0].counts_as_attempt);
}

TEST_F(NodeAgent, RunsAnAssignedTaskOnTheNamedWorkerAndReportsItsResult) {
  welcome(last_hello_epoch());
  assign(7);
  ASSERT_EQ(on_worker.size(), 1u);
  auto task = on_worker[0].tasks.at(0).task;
  EXPECT_EQ(task->id, 7u);
  attempt_record rec;
  rec.task = task;
  rec.attempt = 1;
  rec.worker = 0;
  rec.started = clock::now();
  rec.finished = rec.started + 3ms;
  rec.output.values.set("answer", int64_t{42});
  caf::anon_send(caf::actor_cast<balancer_actor>(agent), results_msg{0, 1, {rec}});
  sched->run();
  auto reported = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(reported.size(), 1u);
  ASSERT_EQ(reported[0].records.size(), 1u);
  auto& r = reported[0].records[0];
  EXPECT_EQ(r.id, 7u);
  EXPECT_EQ(r.code, errc::none);
  EXPECT_EQ(r.run_ns, std::chrono::nanoseconds(3ms).count());
  EXPECT_EQ(std::get<int64_t>(*r.output.values.find("answer")), 42);
}

TEST_F(NodeAgent, AnUnknownKindIsReportedToTheHeadByName) {
  welcome(last_hello_epoch());
  assign(8, 0, "no-such-kind");
  EXPECT_TRUE(on_worker.empty());
  auto reported = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].records.at(0).code, errc::unknown_kind);
  EXPECT_NE(reported[0].records[0].message.find("'no-such-kind'"), std::string::npos);
}

TEST_F(NodeAgent, ASilentHeadMakesItJoinAgainWithANewerEpoch) {
  auto first = last_hello_epoch();
  welcome(first);
  let_time_pass(700ms);  // nothing from the head past dead_after
  auto second = last_hello_epoch();
  EXPECT_GT(second, first);
  EXPECT_TRUE(fatal.empty());
}

TEST_F(NodeAgent, AHeadThatDoesNotKnowTheNodeStopsItWithTheHeadsReason) {
  caf::anon_send(agent, head_error_msg{wire::error{wire::wire_errc::unknown_node, "no node 'n1'"}});
  sched->run();
  ASSERT_EQ(fatal.size(), 1u);
  EXPECT_EQ(fatal[0], "no node 'n1'");
}

TEST_F(NodeAgent, ATaskItCannotReadFailsAloneAsInvalidParamsAndTheRestOfTheAssignRuns) {
  welcome(last_hello_epoch());
  wire::assign a;
  a.tasks.push_back({8, 1, 0, {}});
  a.tasks[0].spec.kind = "noop";
  caf::anon_send(
      agent, head_assign_msg{
                 std::move(a), 200, {{9, 2, 0, "assign.tasks[1].spec.priority: expected int"}}});
  sched->run();
  ASSERT_EQ(on_worker.size(), 1u);
  EXPECT_EQ(on_worker[0].tasks.at(0).task->id, 8u);
  auto back = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(back.size(), 1u);
  ASSERT_EQ(back[0].records.size(), 1u);
  auto& r = back[0].records[0];
  EXPECT_EQ(r.id, 9u);
  EXPECT_EQ(r.attempt, 2u);
  EXPECT_EQ(r.code, errc::invalid_params);
  EXPECT_TRUE(r.counts_as_attempt);
  EXPECT_NE(r.message.find("spec.priority"), std::string::npos) << r.message;
}

TEST_F(NodeAgent, HeartbeatsSayTheLastAssignTakenInAndTheTasksItHolds) {
  welcome(last_hello_epoch());
  assign(7);
  assign(8);
  let_time_pass(100ms);
  auto beats = sent_of<wire::heartbeat>(wire::msg_type::heartbeat);
  ASSERT_FALSE(beats.empty());
  auto& hb = beats.back();
  ASSERT_TRUE(hb.last_assign.has_value());
  EXPECT_EQ(*hb.last_assign, frame_id);
  auto holding = hb.holding;
  std::sort(holding.begin(), holding.end());
  EXPECT_EQ(holding, (std::vector<task_id>{7, 8}));
  // Once reported, a task is no longer held.
  auto task = on_worker.at(0).tasks.at(0).task;
  attempt_record rec;
  rec.task = task;
  rec.attempt = 1;
  rec.worker = 0;
  caf::anon_send(caf::actor_cast<balancer_actor>(agent), results_msg{0, 1, {std::move(rec)}});
  sched->run();
  let_time_pass(100ms);
  EXPECT_EQ(sent_of<wire::heartbeat>(wire::msg_type::heartbeat).back().holding,
            (std::vector<task_id>{8}));
}

TEST_F(NodeAgent, AHeadHeartbeatNamingALaterAssignCountsAsTakenIn) {
  welcome(last_hello_epoch());
  assign(7);
  // The head's heartbeat says its last assign was 500 (this node never saw it: lost).
  caf::anon_send(agent, head_heartbeat_msg{uint64_t{500}});
  sched->run();
  let_time_pass(100ms);
  auto hb = sent_of<wire::heartbeat>(wire::msg_type::heartbeat).back();
  EXPECT_EQ(hb.last_assign, uint64_t{500});
  EXPECT_EQ(hb.holding, (std::vector<task_id>{7}));
}

TEST_F(NodeAgent, JoiningAgainForgetsTheLastAssignOfTheEarlierHead) {
  welcome(last_hello_epoch());
  assign(7);
  let_time_pass(600ms);  // the head is silent past dead_after: join again
  welcome(last_hello_epoch());
  let_time_pass(100ms);
  auto hb = sent_of<wire::heartbeat>(wire::msg_type::heartbeat).back();
  EXPECT_EQ(hb.last_assign, uint64_t{0}) << "a restarted head numbers its frames from 1 again";
  EXPECT_TRUE(hb.holding.empty());
}

TEST_F(NodeAgent, ATaskItsKindsValidateRefusesFailsAsInvalidParamsWithoutRunning) {
  setup->registry->add({"picky",
                        [](task_spec& s) -> double {
                          if (s.params.get_int("n", 0) < 1)
                            throw task_failure{errc::invalid_params, "n must be at least 1"};
                          return 0;
                        },
                        [](const task_context&) { return task_output{}; }});
  welcome(last_hello_epoch());
  assign(11, 0, "picky");
  EXPECT_TRUE(on_worker.empty());
  auto back = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(back.size(), 1u);
  ASSERT_EQ(back[0].records.size(), 1u);
  EXPECT_EQ(back[0].records[0].code, errc::invalid_params);
  EXPECT_NE(back[0].records[0].message.find("n must be at least 1"), std::string::npos);
}

// Data between graph tasks (docs/graphs.md, "Where data moves"): the node keeps the output of a
// task assigned with keep_output, and binds a later task's kept_inputs from it; a task whose
// kept output the node does not have goes back unstarted, naming it.
TEST_F(NodeAgent, AKeptOutputFeedsALaterTaskAndAMissingOneSendsTheTaskBackUnstarted) {
  welcome(last_hello_epoch());
  task_output blob;
  blob.values.set("blob", std::string(3000, 'z'));
  auto parent = echo(7);
  parent.keep_output = true;
  send_assign({parent});
  finish(0, blob);
  send_assign({echo(6)});  // not asked to keep
  finish(1, blob);

  auto child = echo(8);
  child.spec.inputs = {{"x", 0, "blob"}};
  child.kept_inputs = {{0, 7}};
  send_assign({child});
  ASSERT_EQ(on_worker.size(), 3u);
  EXPECT_EQ(on_worker[2].tasks.at(0).task->spec.params.get_string("x", ""), std::string(3000, 'z'));

  auto orphan = echo(9);
  orphan.spec.inputs = {{"x", 0, "blob"}};
  orphan.kept_inputs = {{0, 6}};
  send_assign({orphan});
  EXPECT_EQ(on_worker.size(), 3u) << "it did not run";
  auto back = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_FALSE(back.empty());
  auto& r = back.back().records.at(0);
  EXPECT_EQ(r.id, 9u);
  EXPECT_EQ(r.code, errc::worker_lost);
  EXPECT_FALSE(r.counts_as_attempt) << "not started: not charged";
  EXPECT_NE(r.message.find("no longer keeps the output of task 6"), std::string::npos) << r.message;
}

// Preemption on a node (docs/preemption.md): its heartbeat names the preemptible attempts that
// run; a cancel with `preempt` asks a running one to make way and leaves one not started alone.
TEST_F(NodeAgent, APreemptCancelAsksOnlyARunningPreemptibleAttemptToMakeWay) {
  welcome(last_hello_epoch());
  wire::assign a;
  for (task_id id : {7, 8}) {
    wire::assigned_task t;
    t.id = id;
    t.attempt = 1;
    t.worker = 0;
    t.spec.kind = "sleep";
    t.spec.params.set("ms", int64_t{60000});
    t.spec.preemptible = true;
    a.tasks.push_back(std::move(t));
  }
  caf::anon_send(agent, head_assign_msg{std::move(a), ++frame_id, {}});
  sched->run();
  ASSERT_EQ(on_worker.size(), 1u);
  auto running = on_worker[0].tasks.at(0).task, waiting = on_worker[0].tasks.at(1).task;
  running->running_attempt.store(1);  // as the worker marks the attempt it runs
  let_time_pass(100ms);
  auto beats = sent_of<wire::heartbeat>(wire::msg_type::heartbeat);
  ASSERT_FALSE(beats.empty());
  EXPECT_EQ(beats.back().preemptible_running, (std::vector<task_id>{7}));
  caf::anon_send(agent, head_cancel_msg{wire::cancel{{7, 8}, true}});
  sched->run();
  EXPECT_TRUE(running->preempt_requested.load());
  EXPECT_FALSE(running->cancel_requested.load()) << "made way, not cancelled";
  EXPECT_FALSE(waiting->preempt_requested.load()) << "not started: it may run";
  EXPECT_FALSE(waiting->cancel_requested.load());
}

namespace {

/// A node agent with data sockets: what it sends to peers and back on its data socket is kept.
struct NodeAgentWithPeers : NodeAgent {
  struct to_peer_call {
    std::string node, endpoint;
    wire::output_request body;
  };
  std::vector<to_peer_call> asked;
  std::vector<wire::data_peer> peers;
  std::shared_ptr<kept_outputs> kept = std::make_shared<kept_outputs>(uint64_t(1) << 20);

  node_data_links links() override {
    node_data_links l;
    l.kept = kept;
    l.endpoint = "tcp://127.0.0.1:7001";
    l.to_peer = [this](const std::string& node, const std::string& ep, transport::multipart&& m) {
      asked.push_back(
          {node, ep, wire::decode<wire::output_request>(m.at(1).data(), m.at(1).size(), {})});
      return true;
    };
    l.know_peers = [this](const std::vector<wire::data_peer>& p) { peers = p; };
    return l;
  }

  /// A task whose input x takes field blob of task 41, which node a keeps in epoch 7.
  static wire::assigned_task child_of_41_on_a(task_id id) {
    auto t = echo(id);
    t.spec.inputs = {{"x", 0, "blob"}};
    t.kept_inputs = {{0, 41, "a", "tcp://127.0.0.1:7002", 7}};
    return t;
  }
  void reply_from_a(wire::output_reply r) {
    caf::anon_send(agent, peer_reply_msg{"a", 7, std::move(r)});
    sched->run();
  }
  static task_output blob_output() {
    task_output out;
    out.values.set("blob", std::string(3000, 'z'));
    return out;
  }
};

}  // namespace

// Node to node (docs/graphs.md, "Where data moves"): an input another node keeps is asked of
// that node once, however many tasks wait for it; the tasks wait (held, so the head sees them
// held), then run with it bound.
TEST_F(NodeAgentWithPeers, AnInputKeptOnAnotherNodeIsFetchedFromItAndThenTheTaskRuns) {
  EXPECT_EQ(sent_of<wire::hello>(wire::msg_type::hello).at(0).data_endpoint,
            "tcp://127.0.0.1:7001");
  caf::anon_send(agent, head_welcome_msg{wire::welcome{
                            "n1", last_hello_epoch(), 100, 0, {{"a", std::string(40, 'A')}}}});
  sched->run();
  ASSERT_EQ(peers.size(), 1u) << "the welcome's peers reach the data socket";
  send_assign({child_of_41_on_a(8), child_of_41_on_a(9)});
  ASSERT_EQ(asked.size(), 1u) << "one request for both";
  EXPECT_EQ(asked[0].node, "a");
  EXPECT_EQ(asked[0].endpoint, "tcp://127.0.0.1:7002");
  EXPECT_EQ(asked[0].body.tasks, (std::vector<task_id>{41}));
  EXPECT_EQ(asked[0].body.epoch, 7u);
  EXPECT_TRUE(on_worker.empty()) << "nothing runs before its input is here";
  let_time_pass(100ms);
  auto beats = sent_of<wire::heartbeat>(wire::msg_type::heartbeat);
  ASSERT_FALSE(beats.empty());
  EXPECT_EQ(beats.back().holding.size(), 2u) << "the head must not take them for lost";

  reply_from_a({41, true, {}, blob_output()});
  ASSERT_EQ(on_worker.size(), 2u);
  for (auto& m : on_worker)
    EXPECT_EQ(m.tasks.at(0).task->spec.params.get_string("x", ""), std::string(3000, 'z'));
  EXPECT_TRUE(sent_of<wire::results>(wire::msg_type::results).empty()) << "nothing handed back";
}

TEST_F(NodeAgentWithPeers, AnInputTheOtherNodeNoLongerKeepsSendsTheTaskBackUnstarted) {
  welcome(last_hello_epoch());
  send_assign({child_of_41_on_a(8)});
  reply_from_a({41, false, "not kept", {}});
  EXPECT_TRUE(on_worker.empty());
  auto back = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(back.size(), 1u);
  auto& r = back[0].records.at(0);
  EXPECT_EQ(r.id, 8u);
  EXPECT_EQ(r.code, errc::worker_lost);
  EXPECT_FALSE(r.counts_as_attempt) << "not started: not charged, and the head sends it whole";
  EXPECT_NE(r.message.find("node 'a' no longer keeps the output of task 41"), std::string::npos)
      << r.message;
}

TEST_F(NodeAgentWithPeers, AnInputThatDoesNotComeWithinTheFetchTimeoutSendsTheTaskBack) {
  setup->cfg.cluster.fetch_timeout = 250ms;  // within the head's dead_after (500 ms) here
  welcome(last_hello_epoch());
  send_assign({child_of_41_on_a(8)});
  let_time_pass(200ms);
  EXPECT_TRUE(sent_of<wire::results>(wire::msg_type::results).empty()) << "not yet";
  let_time_pass(200ms);
  auto back = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].records.at(0).code, errc::worker_lost);
  EXPECT_FALSE(back[0].records.at(0).counts_as_attempt);
  EXPECT_NE(back[0].records.at(0).message.find("fetch_timeout_ms"), std::string::npos);
  reply_from_a({41, true, {}, blob_output()});  // too late: nothing runs
  EXPECT_TRUE(on_worker.empty());
}

// The serving side (on the data socket's thread): an output this node keeps goes to the node
// that asks for it, under this node's epoch only.
TEST_F(NodeAgentWithPeers, ItServesAnOutputItKeepsToAnotherNodeUnderItsOwnEpochOnly) {
  welcome(last_hello_epoch());
  auto parent = echo(41);
  parent.keep_output = true;
  send_assign({parent});
  finish(0, blob_output());
  auto epoch = last_hello_epoch();
  auto replies = answer_output_request(*kept, epoch, {{41, 40, 41}, epoch}, 1 << 20);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].task, 41u);
  EXPECT_TRUE(replies[0].found);
  ASSERT_TRUE(replies[0].kept) << "shared with the store, not copied";
  EXPECT_EQ(replies[0].kept->values.get_string("blob", ""), std::string(3000, 'z'));
  EXPECT_EQ(replies[1].task, 40u);
  EXPECT_FALSE(replies[1].found) << "never kept";
  replies = answer_output_request(*kept, epoch, {{41}, epoch - 1}, 1 << 20);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_FALSE(replies[0].found) << "another epoch's task 41 is not this one";
  EXPECT_NE(replies[0].message.find("epoch"), std::string::npos);
  replies = answer_output_request(*kept, epoch, {{41}, epoch}, 100);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_FALSE(replies[0].found) << "over the bytes one request may take";
  EXPECT_TRUE(answer_output_request(*kept, epoch,
                                    {std::vector<task_id>(max_outputs_per_request + 1, 41), epoch},
                                    1 << 20)
                  .empty())
      << "a request naming too many tasks is not answered";
}

// An answer counts only from the node asked, under the epoch the head named; a task that ends
// without its input (a miss on another of its inputs) leaves no trace that would make a later
// task wait for an answer nobody asked for; a cancelled task ends at once.
TEST_F(NodeAgentWithPeers, AnswersCountFromTheNodeAskedAndEndedTasksLeaveNoWaitBehind) {
  welcome(last_hello_epoch());
  send_assign({child_of_41_on_a(8)});
  caf::anon_send(agent, peer_reply_msg{"a", 6, {41, true, {}, blob_output()}});  // older epoch
  sched->run();
  caf::anon_send(agent, peer_reply_msg{"c", 7, {41, true, {}, blob_output()}});  // another node
  sched->run();
  EXPECT_TRUE(on_worker.empty());
  EXPECT_TRUE(sent_of<wire::results>(wire::msg_type::results).empty());

  // Task 9 waits for 41 (from a) and 50 (from c); c no longer has 50: 9 goes back.
  auto two = child_of_41_on_a(9);
  two.spec.inputs.push_back({"y", 1, "blob"});
  two.kept_inputs.push_back({1, 50, "c", "tcp://127.0.0.1:7003", 3});
  send_assign({two});
  caf::anon_send(agent, peer_reply_msg{"c", 3, {50, false, "not kept", {}}});
  sched->run();
  ASSERT_EQ(sent_of<wire::results>(wire::msg_type::results).size(), 1u);
  // Task 8 is cancelled while it waits: it ends now, reported cancelled.
  caf::anon_send(agent, head_cancel_msg{{{8}, false}});
  sched->run();
  auto results = sent_of<wire::results>(wire::msg_type::results);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].records.at(0).id, 8u);
  EXPECT_EQ(results[1].records.at(0).code, errc::cancelled);
  // Nothing waits for 41 any more: a new task asks for it again.
  auto before = asked.size();
  send_assign({child_of_41_on_a(10)});
  ASSERT_EQ(asked.size(), before + 1) << "asked again, not left waiting for an old request";
  reply_from_a({41, true, {}, blob_output()});
  ASSERT_EQ(on_worker.size(), 1u);
  EXPECT_EQ(on_worker[0].tasks.at(0).task->id, 10u);
}
