// A three-process cluster on this machine, started with `troupe up` as an operator would, used by
// the C++ client and the Python example, with a node killed -9 in the middle of a run.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "../support/processes.hpp"
#include "cluster_fixture.hpp"
#include "troupe/client.hpp"
#include "troupe/kernels/builtins.hpp"
#include "troupe/model/config.hpp"
#include "troupe/model/registry.hpp"
#include "troupe/node.hpp"
#include "troupe/subscriber.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace {

using namespace troupe;
using namespace std::chrono_literals;
using namespace troupe::testing_support;

/// The checksum the gemm kernel computes for these parameters, computed here.
double expected_gemm_checksum(int64_t size, int64_t seed) {
  static task_registry registry;
  static bool registered = (kernels::register_builtins(registry), true);
  (void)registered;
  task_spec spec;
  spec.kind = "gemm";
  spec.params = {{"size", size}, {"seed", seed}};
  task_context ctx{spec, 1, 0, device_class::cpu};
  auto out = registry.find("gemm")->def.cpu(ctx);
  return out.values.get_double("checksum", NAN);
}

TEST_F(Cluster, CppAndPythonClientsGetCorrectResults) {
  auto handles = client_->submit_batch(gemm_tasks(1000, 0));
  ASSERT_EQ(handles.size(), 1000u);
  std::set<task_id> ids;
  for (size_t i = 0; i < handles.size(); ++i) {
    auto r = handles[i].wait_for(60s);
    ASSERT_TRUE(r) << "task " << handles[i].id() << " has no result";
    ASSERT_EQ(r->status, outcome::completed) << r->error.message;
    EXPECT_EQ(r->id, handles[i].id());
    EXPECT_NEAR(r->output.values.get_double("checksum", NAN),
                expected_gemm_checksum(24, int64_t(i)), 1e-6);
    ids.insert(r->id);
  }
  EXPECT_EQ(ids.size(), 1000u);

  // The Python example, written from docs/protocol.md, against the same head.
  auto cmd = std::string{"/usr/bin/python3 "} + TROUPE_SOURCE_DIR +
             "/apps/examples/python_client.py --to " + endpoint_ + " --count 200 --size 24";
  auto [rc, out] = command{cmd}.finish();
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines{out};
  std::string line;
  size_t checked = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["outcome"], "completed");
    EXPECT_NEAR(j["values"]["checksum"].get<double>(),
                expected_gemm_checksum(24, j["seed"].get<int64_t>()), 1e-6);
    ++checked;
  }
  EXPECT_EQ(checked, 200u);

  wire::status s;
  ASSERT_TRUE(
      wait_for_status([](const wire::status& st) { return st.stats.completed == 1200; }, &s));
  EXPECT_EQ(s.stats.submitted, 1200u);
  EXPECT_EQ(s.stats.failed, 0u);
  // The head has no workers of its own: every task ran on a node's worker.
  std::map<std::string, uint64_t> per_node;
  for (size_t i = 0; i < s.stats.workers.size(); ++i)
    per_node[s.worker_nodes.at(i)] += s.stats.workers[i].tasks;
  EXPECT_EQ(per_node[""], 0u);
  EXPECT_EQ(per_node["a"] + per_node["b"], 1200u)
      << "a: " << per_node["a"] << ", b: " << per_node["b"];
}

TEST_F(Cluster, KillingANodeMidRunLosesNoTaskAndTheNodeComesBack) {
  std::map<task_id, int> results_per_id;
  std::mutex mu;
  std::vector<task_spec> specs(3000);
  for (auto& s : specs) {
    s.kind = "sleep";
    s.params = {{"ms", int64_t{1}}};
  }
  std::atomic<size_t> finished{0};
  auto handles = client_->submit_batch(std::move(specs), [&](const task_result& r) {
    std::lock_guard<std::mutex> g{mu};
    ++results_per_id[r.id];
    finished.fetch_add(1);
  });
  // Kill node a once it has started on the run.
  wire::status s;
  ASSERT_TRUE(wait_for_status([](const wire::status& st) { return st.stats.completed >= 200; }));
  auto victim = find_child(up_, {"node", "a"});
  ASSERT_GT(victim, 0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  for (auto& h : handles) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r) << "task " << h.id() << " never ended\n" << read_file(log_);
    EXPECT_EQ(r->status, outcome::completed) << r->error.message;
  }
  {
    std::lock_guard<std::mutex> g{mu};
    EXPECT_EQ(results_per_id.size(), 3000u);
    for (auto& [id, n] : results_per_id) EXPECT_EQ(n, 1) << "task " << id;
  }
  // troupe up restarts the node; it joins again under a new epoch. (The head counts a task out of
  // the system once its result callback has run, which may be just after the client has the
  // result: wait for that too.)
  ASSERT_TRUE(wait_for_status(
      [](const wire::status& st) {
        return st.nodes[0].joins == 2 && st.nodes[0].state == "joined" &&
               st.stats.in_flight + st.stats.queued == 0;
      },
      &s))
      << read_file(log_) << "\nin flight " << s.stats.in_flight << ", queued " << s.stats.queued;
  EXPECT_EQ(s.stats.completed, 3000u);
  EXPECT_EQ(s.stats.submitted, 3000u);
  EXPECT_EQ(s.stats.in_flight + s.stats.queued, 0u);
  uint64_t before = 0;
  for (auto& w : s.stats.workers)
    if (w.name.rfind("a/", 0) == 0) before += w.tasks;

  // ... and gets work again.
  // (Tasks of 5 ms: more than the other node's two workers would finish soon, so placement
  // spreads them.)
  std::vector<task_spec> slow(200);
  for (auto& t : slow) {
    t.kind = "sleep";
    t.params = {{"ms", int64_t{5}}};
  }
  auto more = client_->submit_batch(std::move(slow));
  for (auto& h : more) ASSERT_TRUE(h.wait_for(60s) && h.get().ok());
  ASSERT_TRUE(
      wait_for_status([](const wire::status& st) { return st.stats.completed == 3200; }, &s));
  uint64_t after = 0;
  for (auto& w : s.stats.workers)
    if (w.name.rfind("a/", 0) == 0) after += w.tasks;
  std::string workers;
  for (auto& w : s.stats.workers)
    workers += w.name + " " + w.state + " tasks " + std::to_string(w.tasks) + "\n";
  EXPECT_GT(after, before) << "the restarted node got no work\n" << workers << read_file(log_);
}

TEST_F(Cluster, TheHeadKilledMidRunLosesNothingAndSubmitPrintsEveryResult) {
  auto errors = dir_ + "/submit.err";  // its log lines, apart from the results it prints
  command submit{"(" + std::string{TROUPE_BINARY} + " submit --to " + endpoint_ +
                 " --kind sleep --params '{\"ms\": 2}' --count 3000 --wait --timeout-ms 120000 2>" +
                 errors + ")"};
  wire::status seen;
  ASSERT_TRUE(
      wait_for_status([](const wire::status& s) { return s.stats.completed >= 300; }, &seen, 60s))
      << "completed " << seen.stats.completed << "\n"
      << diagnosis();
  // A subscriber follows the run across the restart.
  std::atomic<int> restarts{0};
  subscriber_options so;
  so.on_new_incarnation = [&](uint64_t, uint64_t) { ++restarts; };
  subscriber events{endpoint_, [](const event&) {}, so};
  ASSERT_TRUE(events.wait_for_seq(1, 20s));  // it follows this head
  // And `troupe watch` (SIGINT ends it), with only node events to print: it follows this head
  // once it printed the state it starts from (each look is paced by a status round trip).
  auto watched_file = dir_ + "/watch.out";
  std::remove(watched_file.c_str());
  command watch{"(timeout -s INT 20 " + std::string{TROUPE_BINARY} + " watch --to " + endpoint_ +
                " --topic node. > " + watched_file + ")"};
  ASSERT_TRUE(wait_for_status([&](const wire::status&) {
    return read_file(watched_file).find("-- state at event") != std::string::npos;
  })) << read_file(watched_file);
  auto head = find_child(up_, {"head"});
  ASSERT_GT(head, 0) << read_file(log_);
  ASSERT_EQ(kill(head, SIGKILL), 0);

  auto [rc, out] = submit.finish();
  std::set<uint64_t> ids;
  size_t completed = 0, lines = 0;
  std::string not_completed;
  std::istringstream in{out};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;  // the client's log lines
    auto j = nlohmann::json::parse(line);
    ++lines;
    ids.insert(j.at("id").get<uint64_t>());
    completed += j.at("outcome") == "completed";
    if (j.at("outcome") != "completed") not_completed += line + "\n";
  }
  EXPECT_EQ(rc, 0) << out.substr(0, 4000) << "\n" << read_file(errors) << read_file(log_);
  EXPECT_EQ(lines, 3000u);
  EXPECT_EQ(ids.size(), 3000u);
  EXPECT_EQ(completed, 3000u) << not_completed;
  // A new incarnation of the head, which resumed from its journal and continued its ids.
  auto log = read_file(log_);
  EXPECT_NE(log.find("troupe up: head"), std::string::npos);
  EXPECT_NE(log.find("unfinished task(s) resumed"), std::string::npos) << log;
  auto after = client_->submit_batch(gemm_tasks(1, 7));
  EXPECT_GT(after[0].id(), *ids.rbegin());
  ASSERT_TRUE(after[0].wait_for(20s));
  // The subscriber said once that the head is new, and follows the new head's sequence.
  auto seq = client_->status().last_event_seq;
  EXPECT_TRUE(events.wait_for_seq(seq, 20s))
      << "subscriber at " << events.counters().last_seq << " (incarnation "
      << events.counters().incarnation << ", " << events.counters().snapshots << " snapshots, "
      << events.counters().gaps << " gaps, " << events.counters().delivered
      << " delivered), head at " << seq;
  EXPECT_EQ(restarts.load(), 1);
  EXPECT_EQ(events.counters().incarnations, 1u);
  // It said so once the new head's events came (the test's own later submit brings some).
  EXPECT_TRUE(wait_for_status([&](const wire::status&) {
    return read_file(watched_file).find("-- the head restarted (incarnation") != std::string::npos;
  })) << read_file(watched_file);
  [[maybe_unused]] int stopped =
      std::system(("pkill -INT -f 'watch --to " + endpoint_ + "'").c_str());
  watch.finish();
}

// `troupe submit --gang`: the --count copies are one gang, placed on distinct workers (of any
// node) at once; a gang larger than the cluster's 4 workers is refused whole, naming why.
TEST_F(Cluster, SubmitGangPlacesTheCopiesAtOnceOrRefusesThemWhole) {
  auto lines_of = [](const std::string& out) {
    std::vector<nlohmann::json> lines;
    std::istringstream in{out};
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
    return lines;
  };
  auto submit = std::string{TROUPE_BINARY} + " submit --to " + endpoint_ +
                " --kind sleep --params '{\"ms\": 20}' --gang --wait --timeout-ms 60000";
  auto [rc, out] = command{submit + " --count 4"}.finish();
  ASSERT_EQ(rc, 0) << out << read_file(log_);
  auto ran = lines_of(out);
  ASSERT_EQ(ran.size(), 4u) << out;
  std::set<int> workers;
  for (auto& j : ran) {
    EXPECT_EQ(j.at("outcome"), "completed") << j;
    workers.insert(j.at("worker").get<int>());
  }
  EXPECT_EQ(workers.size(), 4u) << "each member on a worker of its own: " << out;

  auto [refused_rc, refused_out] = command{submit + " --count 5"}.finish();
  EXPECT_NE(refused_rc, 0);
  auto refused = lines_of(refused_out);
  ASSERT_EQ(refused.size(), 5u) << refused_out;
  for (auto& j : refused) {
    EXPECT_EQ(j.at("outcome"), "rejected") << j;
    EXPECT_NE(j.dump().find("gang of 5 tasks"), std::string::npos) << j;
  }
}

TEST_F(Cluster, SubmitGraphRunsTheExampleGraphWithDataMovingBetweenTasks) {
  auto example = std::string{TROUPE_SOURCE_DIR} + "/apps/examples/pipeline-graph.json";
  auto trace_path =
      ::testing::TempDir() + "troupe_graph_trace_" + std::to_string(getpid()) + ".json";
  auto [rc, out] = command{std::string{TROUPE_BINARY} + " submit --to " + endpoint_ + " --graph " +
                           example + " --wait --timeout-ms 60000 --trace " + trace_path}
                       .finish();
  ASSERT_EQ(rc, 0) << out << read_file(log_);
  std::map<std::string, nlohmann::json> by_name;
  std::vector<std::string> order;
  std::istringstream in{out};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line);
    order.push_back(j.at("name"));
    by_name[j.at("name")] = j;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"prepare", "multiply", "infer", "report"})) << out;
  for (auto& [name, j] : by_name) EXPECT_EQ(j.at("outcome"), "completed") << name << ": " << j;
  // multiply took its size and seed from prepare's output: the checksum of a 96x96 gemm, seed 7.
  auto& multiply = by_name["multiply"]["values"];
  EXPECT_NEAR(multiply.at("checksum").get<double>(), expected_gemm_checksum(96, 7), 1e-6);
  // report took three values of three tasks, whichever workers of which nodes ran them.
  auto& report = by_name["report"]["values"];
  EXPECT_EQ(report.at("gemm_checksum"), multiply.at("checksum"));
  EXPECT_EQ(report.at("mlp_checksum"), by_name["infer"]["values"].at("checksum"));
  EXPECT_EQ(report.at("batch"), "batch-0001");
  EXPECT_EQ(report.at("stage"), "done");

  // --trace: a complete event per task on the row of the node's worker that ran it, in the
  // graph's order (up to the transit time of the result messages that carried the times).
  std::ifstream trace_file{trace_path};
  auto trace = nlohmann::json::parse(trace_file);
  std::map<std::string, nlohmann::json> spans;
  std::map<int64_t, std::string> rows;
  for (auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "X") spans[e.at("name")] = e;
    if (e.at("ph") == "M" && e.at("name") == "thread_name")
      rows[e.at("tid").get<int64_t>()] = e.at("args").at("name");
  }
  ASSERT_EQ(spans.size(), 4u) << trace.dump();
  for (auto& [name, e] : spans) {
    EXPECT_GE(e.at("dur").get<double>(), 0) << name;
    auto row = rows[e.at("tid").get<int64_t>()];
    EXPECT_NE(row.find('/'), std::string::npos) << name << " ran on '" << row << "', not a node's";
  }
  auto end_of = [&](const char* n) {
    return spans[n].at("ts").get<double>() + spans[n].at("dur").get<double>();
  };
  constexpr double transit_us = 50'000;
  EXPECT_GE(spans["multiply"].at("ts").get<double>() + transit_us, end_of("prepare"));
  EXPECT_GE(spans["report"].at("ts").get<double>() + transit_us, end_of("multiply"));

  // The Python example sends the same file as one submit and gets the same values.
  auto py = command{std::string{"/usr/bin/python3 "} + TROUPE_SOURCE_DIR +
                    "/apps/examples/python_client.py --to " + endpoint_ + " --graph " + example}
                .finish();
  ASSERT_EQ(py.first, 0) << py.second;
  std::map<std::string, nlohmann::json> from_python;
  std::istringstream py_lines{py.second};
  for (std::string line; std::getline(py_lines, line);) {
    auto j = nlohmann::json::parse(line);
    from_python[j.at("name")] = j;
  }
  ASSERT_EQ(from_python.size(), 4u) << py.second;
  EXPECT_EQ(from_python["report"]["values"], by_name["report"]["values"]) << py.second;
}

// Data between graph tasks (docs/graphs.md, "Where data moves"): a child goes to the node that
// ran its parent, which kept the parent's output; the head leaves the input out of the assign,
// and the node binds it whole.
// A slow link between processes (1 MB/s): moving a 2 MiB input costs placement 2 s, far more
// than any worker's backlog, so a child goes where its input is whenever that worker has room.
class ClusterWithSlowLinks : public Cluster {
  std::string extra_config() const override { return "[balancer]\nlink_bytes_per_s = 1000000\n"; }
};

TEST_F(ClusterWithSlowLinks, AChildRunsWhereItsParentsOutputIsKeptAndTheHeadDoesNotSendItAgain) {
  constexpr int chains = 4;
  constexpr size_t blob = size_t(2) << 20;
  auto h = client_->submit_graph(chain_pairs(chains, blob));
  ASSERT_TRUE(h.wait_until(clock::now() + 60s)) << diagnosis();
  auto st = client_->status();
  for (int i = 0; i < chains; ++i) {
    auto &a = h.get("a" + std::to_string(i)), &b = h.get("b" + std::to_string(i));
    ASSERT_TRUE(a.ok() && b.ok()) << b.error.message;
    EXPECT_EQ(b.output.values.get_string("x", ""), std::string(blob, char('a' + i)));
    EXPECT_EQ(st.worker_nodes.at(size_t(b.timings.worker)),
              st.worker_nodes.at(size_t(a.timings.worker)))
        << "b" << i << " ran away from its input";
  }
  uint64_t kept = 0, kept_bytes = 0;
  for (auto& n : st.nodes) kept += n.kept_inputs, kept_bytes += n.kept_input_bytes;
  EXPECT_EQ(kept, uint64_t(chains)) << "each child's input was left out of its assign once";
  EXPECT_GE(kept_bytes, chains * blob);
}

// Node to node: node b's workers are reserved for the children, so every parent runs on a and
// every child on b. A child gets its input from a's data socket, not through the head.
class ClusterWithAReservedNode : public Cluster {
 protected:
  std::string extra_config() const override {
    return "[reservations.far]\nworkers = [\"b/cpu-0\", \"b/cpu-1\"]\n";
  }
  /// chain_pairs whose children run on node b.
  static graph_spec chains_across(int chains, size_t blob) {
    return chain_pairs(chains, blob, {{"reservation", "far"}});
  }
  /// Every child has its parent's blob, the parents ran on a and the children on b.
  void expect_chains_ran_across(graph_handle& h, const wire::status& st, int chains, size_t blob) {
    for (int i = 0; i < chains; ++i) {
      auto &a = h.get("a" + std::to_string(i)), &b = h.get("b" + std::to_string(i));
      ASSERT_TRUE(a.ok() && b.ok()) << a.error.message << " / " << b.error.message;
      EXPECT_EQ(b.output.values.get_string("x", ""), std::string(blob, char('a' + i)));
      EXPECT_EQ(st.worker_nodes.at(size_t(a.timings.worker)), "a");
      EXPECT_EQ(st.worker_nodes.at(size_t(b.timings.worker)), "b");
    }
  }
  static const wire::node_status& node_named(const wire::status& st, const std::string& name) {
    for (auto& n : st.nodes)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  }
};

TEST_F(ClusterWithAReservedNode, AChildOnAnotherNodeFetchesItsInputFromTheParentsNode) {
  constexpr int chains = 4;
  constexpr size_t blob = size_t(1) << 20;
  auto h = client_->submit_graph(chains_across(chains, blob));
  ASSERT_TRUE(h.wait_until(clock::now() + 60s)) << diagnosis();
  auto st = client_->status();
  expect_chains_ran_across(h, st, chains, blob);
  auto& b = node_named(st, "b");
  EXPECT_EQ(b.fetched_inputs, uint64_t(chains)) << "each child fetched its input from node a\n"
                                                << read_file(log_);
  EXPECT_GE(b.fetched_input_bytes, chains * blob);
}

// An output node a did not keep (larger than its whole store) is not there to fetch: node b hands
// the child back unstarted, and the head sends the input whole. Nothing is lost or charged.
class ClusterWithAReservedNodeThatKeepsLittle : public ClusterWithAReservedNode {
  std::string cluster_keys() const override { return "kept_output_bytes = 65536\n"; }
};

TEST_F(ClusterWithAReservedNodeThatKeepsLittle, AChildWhoseInputCannotBeFetchedGetsItFromTheHead) {
  constexpr int chains = 2;
  constexpr size_t blob = size_t(256) << 10;
  auto h = client_->submit_graph(chains_across(chains, blob));
  ASSERT_TRUE(h.wait_until(clock::now() + 60s)) << diagnosis();
  auto st = client_->status();
  expect_chains_ran_across(h, st, chains, blob);
  for (int i = 0; i < chains; ++i)
    EXPECT_EQ(h.get("b" + std::to_string(i)).attempts, 1u) << "a hand-back is not an attempt";
  EXPECT_EQ(node_named(st, "b").fetched_inputs, 0u);
  EXPECT_NE(read_file(log_).find("no longer keeps the output of task"), std::string::npos)
      << "node b asked node a first";
}

TEST_F(Cluster, AGraphIsRefusedWholeByTheHeadNamingTheProblem) {
  // A client that skips the client's own checks: the head checks the links too.
  zmq::context_t ctx;
  zmq::socket_t raw{ctx, zmq::socket_type::dealer};
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(endpoint_);
  wire::submit msg;
  msg.tasks.resize(3);
  for (auto& t : msg.tasks) t.kind = "noop";
  msg.tasks[0].after = {2};
  msg.tasks[1].after = {0};
  msg.tasks[2].after = {1};
  wire::header h;
  h.type = wire::msg_type::submit;
  h.id = 5;
  auto header = wire::encode(h);
  auto body = wire::encode(msg);
  raw.send(zmq::buffer(header), zmq::send_flags::sndmore);
  raw.send(zmq::buffer(body), zmq::send_flags::none);
  size_t rejected = 0;
  std::string message;
  while (rejected < 3) {
    zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(20000)), 1) << "no reply";
    std::vector<zmq::message_t> reply;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(reply)));
    ASSERT_EQ(reply.size(), 2u);
    auto rh = wire::decode_header(reply[0].data(), reply[0].size(), wire::limits{});
    if (rh.type != wire::msg_type::result) continue;
    auto r = wire::decode<wire::result>(reply[1].data(), reply[1].size(), wire::limits{});
    for (auto& t : r.tasks) {
      EXPECT_EQ(t.status, outcome::rejected);
      message = t.error.message;
      ++rejected;
    }
  }
  EXPECT_NE(message.find("the graph has a cycle: #0 -> #1 -> #2 -> #0"), std::string::npos)
      << message;
  // The head carries on.
  auto after = client_->submit_batch(gemm_tasks(1, 3));
  ASSERT_TRUE(after[0].wait_for(20s));
  EXPECT_TRUE(after[0].get().ok());
}

TEST_F(Cluster, AGraphOutlivesAKilledHeadAndItsChildrenStillGetTheirInputs) {
  // a ends before the kill; slow runs across it; last takes a's value after the restart, from
  // the journal's record of a.
  graph_spec g;
  auto add = [&](std::string name, std::string kind, param_map params,
                 std::vector<std::string> after, std::map<std::string, std::string> inputs) {
    graph_task t;
    t.name = std::move(name);
    t.spec.kind = std::move(kind);
    t.spec.params = std::move(params);
    t.after = std::move(after);
    t.inputs = std::move(inputs);
    g.tasks.push_back(std::move(t));
  };
  add("a", "echo", {{"v", int64_t{7}}}, {}, {});
  add("slow", "sleep", {{"ms", int64_t{3000}}}, {"a"}, {});
  add("last", "echo", {}, {"slow"}, {{"x", "a.v"}});
  auto h = client_->submit_graph(std::move(g));
  ASSERT_FALSE(h.refused()) << h.refused().message;
  ASSERT_TRUE(h.find("a")->wait_until(clock::now() + 20s));
  ASSERT_TRUE(wait_for_status([](const wire::status& s) { return s.stats.in_flight >= 1; }))
      << diagnosis();
  auto head = find_child(up_, {"head"});
  ASSERT_GT(head, 0) << read_file(log_);
  ASSERT_EQ(kill(head, SIGKILL), 0);
  ASSERT_TRUE(h.wait_until(clock::now() + 60s)) << diagnosis();
  EXPECT_EQ(h.get("slow").status, outcome::completed) << h.get("slow").error.message;
  auto& last = h.get("last");
  ASSERT_EQ(last.status, outcome::completed) << last.error.message << "\n" << diagnosis();
  EXPECT_EQ(last.output.values.get_int("x"), 7);
  EXPECT_NE(read_file(log_).find("a graph of an earlier incarnation queued again (2 task(s))"),
            std::string::npos)
      << read_file(log_);
}

TEST_F(Cluster, AGangPartlyEndedWhenTheHeadIsKilledEndsFailedAndIsNotRunAgainInPart) {
  auto hs = client_->submit_gang({sleep_task(1), sleep_task(3000)});
  ASSERT_TRUE(hs[0].wait_for(20s)) << diagnosis();
  ASSERT_TRUE(hs[0].get().ok()) << hs[0].get().error.message;
  auto head = find_child(up_, {"head"});
  ASSERT_GT(head, 0) << read_file(log_);
  ASSERT_EQ(kill(head, SIGKILL), 0);
  auto r = hs[1].wait_for(60s);
  ASSERT_TRUE(r) << "the rest of the gang stayed in flight\n" << diagnosis();
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::worker_lost);
  EXPECT_NE(r->error.message.find("the head restarted while its gang ran"), std::string::npos)
      << r->error.message;
}

TEST_F(Cluster, HostileFramesGetErrorRepliesAndTheHeadCarriesOn) {
  zmq::context_t ctx;
  zmq::socket_t raw{ctx, zmq::socket_type::dealer};
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(endpoint_);
  auto header = [](const std::string& type, uint32_t v) {
    wire::header h;
    h.v = v;
    wire::parse_msg_type(type, h.type);
    h.id = 7;
    return wire::encode(h);
  };
  auto expect_error = [&](std::vector<std::string> frames, const std::string& code) {
    for (size_t i = 0; i < frames.size(); ++i)
      raw.send(zmq::buffer(frames[i]),
               i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(10000)), 1)
        << "no reply; expected " << code << "\n"
        << read_file(log_);
    std::vector<zmq::message_t> reply;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(reply)));
    ASSERT_EQ(reply.size(), 2u);
    auto h = wire::decode_header(reply[0].data(), reply[0].size(), wire::limits{});
    ASSERT_EQ(h.type, wire::msg_type::error);
    auto e = wire::decode<wire::error>(reply[1].data(), reply[1].size(), wire::limits{});
    EXPECT_EQ(wire::to_string(e.code), code) << e.message << "\n" << read_file(log_);
  };
  expect_error({std::string{"\xc1", 1}, ""}, "malformed");      // not MessagePack
  expect_error({header("submit", 99), "\x80"}, "bad_version");  // a future version
  expect_error({std::string{"\x82\xa1v\x01\xa4type\xa4nuke"}, "\x80"}, "unknown_type");
  expect_error({header("submit", 1), std::string{"\xdd\xff\xff\xff\xff", 5}}, "too_large");
  expect_error({header("submit", 1), std::string("\x81\xa5tasks\x91\x81\xa4kind\x05")},
               "malformed");                                  // kind is not a string
  expect_error({header("assign", 1), "\x80"}, "unexpected");  // not a client's message
  expect_error({header("submit", 1)}, "malformed");           // one frame missing
  // Over the frame limit (limits.max_payload_bytes + 1 MiB), under twice it: an error reply.
  expect_error({std::string(66u << 20, 'x'), "\x80"}, "too_large");
  // Each was counted, and the head carries on: a proper submit works.
  EXPECT_EQ(client_->status().frames_refused, 8u) << read_file(log_);
  auto h = client_->submit(gemm_tasks(1, 1).front());
  auto r = h.wait_for(30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::completed);
  // An unknown kind is refused with a reason, the others accepted.
  task_spec bad;
  bad.kind = "launch_missiles";
  auto rejected = client_->submit(bad).wait_for(10s);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status, outcome::rejected);
  EXPECT_EQ(rejected->error.code, errc::unknown_kind);
  EXPECT_NE(rejected->error.message.find("launch_missiles"), std::string::npos);
}

// After hundreds of low-priority tasks (which fill what the nodes' workers hold), 10
// high-priority ones: each worker finishes what it runs, then runs them before what it holds.
// Seen per worker, from the results in the order that worker ended them (each runs one task at a
// time): before its first high task, at most the low one it was running and one that started
// while the urgent task travelled; between its first and last high task, at most one.
TEST_F(Cluster, AGangRunsOnDistinctWorkersOfBothNodesAtOnceOrIsRefusedWhole) {
  // Four workers (two per node, the head has none): a gang of four uses all of them at once.
  auto hs = client_->submit_gang(std::vector<task_spec>(4, sleep_task(300)));
  std::set<int32_t> workers;
  time_point last_start{}, first_end = time_point::max();
  for (auto& h : hs) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r) << diagnosis();
    ASSERT_TRUE(r->ok()) << r->error.message;
    workers.insert(r->timings.worker);
    last_start = std::max(last_start, r->timings.started);
    first_end = std::min(first_end, r->timings.ran_until);
  }
  EXPECT_EQ(workers.size(), 4u) << "each member on a worker of its own";
  EXPECT_LT(last_start, first_end) << "the members did not all run at the same time";
  // Five cannot fit on four workers: every task rejected, naming why, and nothing else lost.
  auto five = client_->submit_gang(std::vector<task_spec>(5, sleep_task(1)));
  for (auto& h : five) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, outcome::rejected);
    EXPECT_NE(r->error.message.find("a gang of 5 tasks"), std::string::npos) << r->error.message;
  }
  auto after = client_->submit(sleep_task(1)).wait_for(30s);
  ASSERT_TRUE(after && after->ok());
  // The Python example sends a gang the same way: four run, five are refused whole.
  auto python_gang = [&](int count) {
    return command{std::string{"/usr/bin/python3 "} + TROUPE_SOURCE_DIR +
                   "/apps/examples/python_client.py --to " + endpoint_ + " --count " +
                   std::to_string(count) + " --kind sleep --params '{\"ms\": 20}' --gang"}
        .finish();
  };
  auto [four_rc, four] = python_gang(4);
  EXPECT_EQ(four_rc, 0) << four;
  EXPECT_EQ(std::count(four.begin(), four.end(), '\n'), 4) << four;
  auto [five_rc, five_out] = python_gang(5);
  EXPECT_NE(five_rc, 0) << five_out;
  EXPECT_NE(five_out.find("a gang of 5 tasks"), std::string::npos) << five_out;
  EXPECT_EQ(five_out.find("completed"), std::string::npos) << five_out;
}

TEST_F(Cluster, HighPriorityTasksOvertakeWhatTheNodesHold) {
  std::mutex mu;
  // Per worker, what started after the high ones' submit: 'l' or 'h'. By start, not by when
  // the result came back: a low task that ended just before the submit can report after it.
  std::map<int32_t, std::string> runs;
  bool counting = false;
  time_point highs_submitted = time_point::max();
  auto lows =
      client_->submit_batch(std::vector<task_spec>(400, sleep_task(20)), [&](const task_result& r) {
        std::lock_guard<std::mutex> g{mu};
        if (counting && r.timings.started >= highs_submitted) runs[r.timings.worker] += 'l';
      });
  // The nodes are busy with them, and the head has learned what a low task takes.
  ASSERT_TRUE(lows[20].wait_for(30s)) << diagnosis();
  std::vector<task_spec> high(10, sleep_task(20));
  for (auto& h : high) h.priority = 10;
  {
    std::lock_guard<std::mutex> g{mu};
    counting = true;
    highs_submitted = clock::now();
  }
  auto highs = client_->submit_batch(std::move(high), [&](const task_result& r) {
    std::lock_guard<std::mutex> g{mu};
    runs[r.timings.worker] += 'h';
  });
  for (auto& h : highs) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r && r->ok()) << diagnosis();
  }
  {
    std::lock_guard<std::mutex> g{mu};
    for (auto& [worker, seq] : runs) {
      auto first = seq.find('h'), last = seq.rfind('h');
      if (first == std::string::npos) continue;  // it ran no high task
      auto between = std::count(seq.begin() + long(first), seq.begin() + long(last), 'l');
      EXPECT_LE(first, 2u) << "worker " << worker << " ran " << seq;
      EXPECT_LE(between, 1) << "worker " << worker << " ran " << seq;
      std::printf("worker %d after the submit: %s\n", worker, seq.c_str());
    }
  }
  for (auto& l : lows)
    if (!l.ready()) client_->cancel(l.id());
  for (auto& l : lows) ASSERT_TRUE(l.wait_for(30s)) << diagnosis();
}

// Every node worker runs a long preemptible task when a higher-priority one arrives: one of them
// makes way (the head asks its node with a cancel carrying `preempt`), the urgent task runs at
// once, and the stopped one is queued again, not lost.
TEST_F(Cluster, APreemptibleTaskOnANodeMakesWayForAHigherPriorityOne) {
  std::vector<task_spec> longs(4, sleep_task(60000));
  for (auto& s : longs) s.preemptible = true;
  auto lows = client_->submit_batch(std::move(longs));
  // Running, as the nodes' heartbeats say: a long task a node holds but has not started yet
  // would let the urgent one go first without making way.
  ASSERT_TRUE(wait_for_status([](const wire::status& st) {
    uint32_t running = 0;
    for (auto& n : st.nodes) running += n.preemptible_running;
    return running == 4;
  })) << diagnosis();
  auto urgent = sleep_task(50);
  urgent.priority = 10;
  auto h = client_->submit(urgent);
  auto r = h.wait_for(30s);  // without preemption it would wait for a 60 s task
  ASSERT_TRUE(r) << "the urgent task waited behind the long ones\n" << diagnosis();
  EXPECT_TRUE(r->ok()) << to_string(r->status) << ": " << r->error.message;
  wire::status after;
  ASSERT_TRUE(
      wait_for_status([](const wire::status& st) { return st.stats.preempted >= 1; }, &after))
      << diagnosis();
  EXPECT_EQ(after.stats.failed, 0u);
  for (auto& l : lows) EXPECT_FALSE(l.ready()) << "a preempted task is queued again, not ended";
  for (auto& l : lows) client_->cancel(l.id());
  for (auto& l : lows) {
    auto end = l.wait_for(30s);
    ASSERT_TRUE(end) << diagnosis();
    EXPECT_EQ(end->status, outcome::cancelled);
  }
}

TEST_F(Cluster, CancelEndsTheTaskAndStopsItOnTheNode) {
  task_spec long_sleep;
  long_sleep.kind = "sleep";
  long_sleep.params = {{"ms", int64_t{60000}}};
  auto h = client_->submit(long_sleep);
  // Once a node holds it (its worker shows busy) ...
  ASSERT_TRUE(wait_for_status([](const wire::status& st) {
    for (auto& w : st.stats.workers)
      if (w.state == "busy") return true;
    return false;
  }));
  client_->cancel(h.id());
  auto r = h.wait_for(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::cancelled);
  EXPECT_EQ(r->error.code, errc::cancelled);
  // ... the node stops it early and reports: its worker has run one task, long before 60 s.
  ASSERT_TRUE(wait_for_status([](const wire::status& st) {
    uint64_t tasks = 0;
    for (auto& w : st.stats.workers) tasks += w.tasks;
    return tasks == 1;
  })) << "the node kept running the cancelled task";
}

TEST_F(Cluster, ALaggingSubscriberRecoversTheSameFinalStateAsASteadyOne) {
  // steady: a fast callback that checks order. lagging: blocked in its callback while the
  // run goes on, so the head's PUB socket drops events for it (high-water mark 1,000, ring
  // 1,000: it must catch up from a snapshot, then the ring or the live stream).
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, stalled = false;
  std::vector<uint64_t> steady_seqs;
  subscriber steady{endpoint_, [&](const event& e) { steady_seqs.push_back(e.seq); }};
  subscriber_options lo;
  lo.receive_high_water = 10;
  std::atomic<uint64_t> lagging_gaps_seen{0};
  lo.on_gap = [&](uint64_t, uint64_t) { lagging_gaps_seen.fetch_add(1); };
  subscriber lagging{endpoint_,
                     [&](const event&) {
                       std::unique_lock<std::mutex> lock{mu};
                       stalled = true;
                       cv.notify_all();
                       cv.wait(lock, [&] { return release; });
                     },
                     lo};
  // Both start from a snapshot of the current state (the nodes have joined: seq >= 1) ...
  ASSERT_TRUE(steady.wait_for_seq(1, 10s));
  ASSERT_TRUE(lagging.wait_for_seq(1, 10s));
  // ... then one task: its events stall the lagging subscriber in its callback.
  task_spec noop;
  noop.kind = "noop";
  auto first = client_->submit(noop);
  ASSERT_TRUE(first.wait_for(30s));
  {
    std::unique_lock<std::mutex> lock{mu};
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return stalled; }));
  }
  std::vector<task_spec> specs(3000, noop);
  auto handles = client_->submit_batch(std::move(specs));
  for (auto& h : handles)
    ASSERT_TRUE(h.wait_for(60s) && h.get().ok());  // a stalled subscriber
                                                   // does not hold the head
  // Every task's terminal event has been published once the status shows them all done.
  wire::status s;
  ASSERT_TRUE(
      wait_for_status([](const wire::status& st) { return st.stats.completed == 3001; }, &s));
  ASSERT_TRUE(steady.wait_for_seq(1, 10s));
  {
    std::lock_guard<std::mutex> g{mu};
    release = true;
  }
  cv.notify_all();
  // Both reach the newest event the steady one has seen after the run.
  auto target = [&] {
    uint64_t last = 0;
    for (int i = 0; i < 3; ++i) last = std::max(last, steady.counters().last_seq);
    return last;
  };
  auto state_done = [](const subscriber& sub) {
    auto st = sub.state();
    return st.finished.size() >= 3001 && st.tasks.empty();
  };
  auto deadline = clock::now() + 30s;
  while (clock::now() < deadline && !(state_done(steady) && state_done(lagging)))
    lagging.wait_for_seq(target(), 1s);
  auto a = steady.state(), b = lagging.state();
  EXPECT_TRUE(a.tasks.empty());
  EXPECT_TRUE(b.tasks.empty());
  std::set<task_id> ids;
  for (auto& h : handles) ids.insert(h.id());
  for (auto id : ids) {
    EXPECT_EQ(a.finished[id], "completed") << "steady, task " << id;
    EXPECT_EQ(b.finished[id], "completed") << "lagging, task " << id;
  }
  auto lc = lagging.counters();
  EXPECT_GE(lc.gaps, 1u) << "the lagging subscriber lost nothing: the test did not lag it";
  EXPECT_EQ(lagging_gaps_seen.load(), lc.gaps);
  EXPECT_GE(lc.snapshots, 2u) << "the ring of 1,000 could not have covered the gap";
  // The steady one received the events in order, each once.
  for (size_t i = 1; i < steady_seqs.size(); ++i) ASSERT_LT(steady_seqs[i - 1], steady_seqs[i]);
}

TEST_F(Cluster, PythonSubscriberFollowsARun) {
  auto cmd = std::string{"/usr/bin/python3 "} + TROUPE_SOURCE_DIR +
             "/apps/examples/python_subscriber.py --to " + endpoint_ +
             " --until-finished 300 --timeout 60";
  command python{cmd};
  std::vector<task_spec> specs(300);
  for (auto& s : specs) {
    s.kind = "sleep";
    s.params = {{"ms", int64_t{1}}};
  }
  auto handles = client_->submit_batch(std::move(specs));
  for (auto& h : handles) ASSERT_TRUE(h.wait_for(60s));
  auto [rc, out] = python.finish();
  ASSERT_EQ(rc, 0) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  auto summary = nlohmann::json::parse(out.substr(out.rfind('\n') + 1));  // the last line
  EXPECT_EQ(summary["finished"], 300) << out;
  EXPECT_EQ(summary["outcomes"]["completed"], 300) << out;
  EXPECT_EQ(summary["in_flight"], 0) << out;
}

TEST_F(Cluster, EveryTaskRunOnANodeHasItsStartedEventBeforeItsEnd) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<task_id, std::pair<uint64_t, std::string>> started;  // seq, node
  std::map<task_id, uint64_t> ended;
  subscriber sub{endpoint_, [&](const event& e) {
                   std::lock_guard<std::mutex> g{mu};
                   if (e.topic == "task.started") started[e.task] = {e.seq, e.node};
                   if (e.topic == "task.completed") ended[e.task] = e.seq;
                   cv.notify_all();
                 }};
  ASSERT_TRUE(sub.wait_for_seq(1, 10s));
  task_spec noop;
  noop.kind = "noop";
  auto handles = client_->submit_batch(std::vector<task_spec>(200, noop));
  for (auto& h : handles) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r) << "task " << h.id() << " never ended\n" << diagnosis();
    ASSERT_TRUE(r->ok()) << r->error.message;
  }
  std::unique_lock<std::mutex> lock{mu};
  ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return ended.size() >= 200; })) << diagnosis();
  size_t on_nodes = 0;
  for (auto& h : handles) {
    auto s = started.find(h.id());
    ASSERT_NE(s, started.end()) << "task " << h.id() << " has no task.started";
    EXPECT_LT(s->second.first, ended[h.id()]) << "task " << h.id();
    on_nodes += !s->second.second.empty();
  }
  EXPECT_EQ(on_nodes, 200u) << "the head has no workers of its own: all ran on nodes";
}

// A node's GPU worker seen from the head: placement of GPU-only work, results, a failed attempt
// retried. The node's GPU is a fake one (CUDA workers without a device), so that this runs
// everywhere; `fail` has a CUDA implementation that needs no device for this error.
/// Workers that must heartbeat every 100 ms and are declared lost after 500 ms of silence.
class ClusterWithShortHeartbeats : public Cluster {
 protected:
  std::string nodes() const override {
    return "[nodes.a]\ncpu = 1\n[monitor]\nheartbeat_ms = 100\nheartbeat_timeout_ms = 500\n";
  }
};

// A node's worker inside a long task is alive: the task completes once, on its first attempt.
TEST_F(ClusterWithShortHeartbeats, AThreeSecondTaskCompletesOnceAgainstAHalfSecondTimeout) {
  task_spec long_sleep;
  long_sleep.kind = "sleep";
  long_sleep.params = {{"ms", int64_t{3000}}};
  auto r = client_->submit(long_sleep).wait_for(60s);
  ASSERT_TRUE(r) << diagnosis();
  EXPECT_TRUE(r->ok()) << r->error.message;
  EXPECT_EQ(r->attempts, 1u) << diagnosis();
}

// timeout_ms travels with the task: the node stops the attempt and reports timed_out.
TEST_F(ClusterWithShortHeartbeats, ATaskPastItsTimeoutOnANodeFailsTimedOut) {
  task_spec long_sleep;
  long_sleep.kind = "sleep";
  long_sleep.params = {{"ms", int64_t{60000}}};
  long_sleep.timeout = 200ms;
  long_sleep.max_retries = 1;
  long_sleep.retry_backoff = 1ms;
  auto r = client_->submit(long_sleep).wait_for(30s);
  ASSERT_TRUE(r) << diagnosis();
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::timed_out) << r->error.message;
  EXPECT_EQ(r->attempts, 2u);
}

class ClusterWithAGpuNode : public Cluster {
 protected:
  std::string log_level() const override { return "debug"; }
  std::string nodes() const override { return "[nodes.g]\ncpu = 1\nfake_gpus = 1\n"; }
};

TEST_F(ClusterWithAGpuNode, GpuOnlyTasksRunOnTheNodesGpuWorker) {
  task_spec spec;
  spec.kind = "fail";
  spec.params = {{"error", std::string{"task_failed"}}, {"first_attempts", int64_t{1}}};
  spec.needs.gpu_count = 1;
  auto handles = client_->submit_batch(std::vector<task_spec>(50, spec));
  for (auto& h : handles) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r) << "task " << h.id() << " never ended\n" << diagnosis();
    EXPECT_EQ(r->status, outcome::completed) << r->error.message;
    EXPECT_EQ(r->attempts, 2u);
  }
  wire::status s;
  ASSERT_TRUE(wait_for_status([](const wire::status&) { return true; }, &s));
  uint64_t on_gpu = 0;
  for (auto& w : s.stats.workers)
    if (w.name == "g/fake-gpu-0") on_gpu += w.tasks;
  EXPECT_EQ(on_gpu, 100u) << "two attempts of each of 50 tasks on the node's GPU worker";
  for (auto& w : s.stats.workers) {
    if (w.name != "g/fake-gpu-0") continue;
    ASSERT_TRUE(w.gpu_memory) << "status shows the node's GPU memory";
    EXPECT_EQ(w.gpu_memory->capacity, uint64_t(1) << 30) << "as the node reported it";
    EXPECT_EQ(w.gpu_memory->reserved, 0u);
    EXPECT_EQ(w.gpu_memory->in_use, 0u);
  }
}

TEST_F(Cluster, ASecondProcessWithALiveNodesNameIsRefusedAndTheNodeKeepsItsPlace) {
  auto [rc, out] = command{"timeout 60 " + std::string{TROUPE_BINARY} + " node --config " +
                           config_ + " --name a"}
                       .finish();
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("name_taken"), std::string::npos) << out;
  EXPECT_NE(out.find("node 'a' is alive on another connection"), std::string::npos) << out;
  // The node it tried to replace was never evicted: one join, and it still runs work.
  wire::status s;
  ASSERT_TRUE(wait_for_status([](const wire::status&) { return true; }, &s));
  for (auto& n : s.nodes) {
    EXPECT_EQ(n.state, "joined") << n.name;
    EXPECT_EQ(n.joins, 1u) << n.name << "\n" << read_file(log_);
  }
  for (auto& h : client_->submit_batch(gemm_tasks(20, 1))) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r) << diagnosis();
    EXPECT_TRUE(r->ok()) << r->error.message;
  }
}

TEST(ClusterConfig, TroupeUpGivesUpOnAProcessThatKeepsFailingAndSaysWhy) {
  auto dir = temp_dir();
  auto path = dir + "/unbindable.toml";
  // The head cannot bind its endpoint: it exits at once, every time.
  std::ofstream{path} << "[cluster]\nhead = \"ipc:///nonexistent-dir/troupe/head.ipc\"\n"
                      << "events = \"\"\nrestart_delay_ms = 10\njournal = \"off\"\n"
                      << "[supervision]\nintensity = 2\nperiod_ms = 60000\nbackoff_max_ms = 40\n"
                      << "[nodes.a]\ncpu = 1\n";
  auto [rc, out] =
      command{"timeout 60 " + std::string{TROUPE_BINARY} + " up --config " + path}.finish();
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("troupe up: head"), std::string::npos) << out;
  EXPECT_NE(out.find("restarting in 10 ms"), std::string::npos) << out;
  EXPECT_NE(out.find("restarting in 20 ms"), std::string::npos) << out;  // backing off
  EXPECT_NE(out.find("its 2 restart(s) within 60000 ms used up (supervision.intensity, "
                     "supervision.period_ms): giving up"),
            std::string::npos)
      << out;
}

TEST(ClusterConfig, ABadClusterFileNamesFileLineAndKey) {
  auto dir = temp_dir();
  auto path = dir + "/bad.toml";
  std::ofstream{path} << "[cluster]\nhead = \"tcp://127.0.0.1:5999\"\n[nodes.a]\ncpu = \"two\"\n";
  auto [rc, out] = command{std::string{TROUPE_BINARY} + " up --config " + path}.finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(path + ":4: key 'nodes.a.cpu'"), std::string::npos) << out;
}

TEST(ClusterConfig, AnEndpointThatCannotBeBoundMakesTheHeadExitNonZero) {
  auto dir = temp_dir();
  zmq::context_t ctx;
  zmq::socket_t taken{ctx, zmq::socket_type::router};
  taken.set(zmq::sockopt::linger, 0);
  taken.bind("tcp://127.0.0.1:*");
  auto endpoint = taken.get(zmq::sockopt::last_endpoint);
  auto path = dir + "/taken.toml";
  std::ofstream{path} << "[cluster]\nhead = \"" << endpoint << "\"\n[nodes.a]\ncpu = 1\n";
  auto [rc, out] = command{std::string{TROUPE_BINARY} + " head --config " + path}.finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("cannot bind " + endpoint), std::string::npos) << out;
}

}  // namespace

// The user's own kinds on a cluster: node a loads the example plugin (apps/examples/plugin),
// node b does not. The head learns the kind from a's hello, places it only on a, and refuses at
// submit a kind that no node has.
class ClusterWithAPlugin : public Cluster {
 protected:
  std::string nodes() const override {
    return std::string{"[nodes.a]\ncpu = 1\nplugins = [\""} + EXAMPLE_PLUGIN +
           "\"]\n[nodes.b]\ncpu = 1\n";
  }
};

TEST_F(ClusterWithAPlugin, APluginsKindRunsOnlyOnTheNodeThatLoadedIt) {
  std::vector<task_spec> specs(40);
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].kind = "word_count";
    specs[i].params = {{"min_length", int64_t{3}}};
    auto text = "the runtime places " + std::string(i, 'x') + " every task";
    specs[i].payload.assign(text.begin(), text.end());
  }
  // b's CPU worker would be free: gemm on both nodes alongside, so that placement has a choice.
  auto others = client_->submit_batch(gemm_tasks(40, 0));
  auto handles = client_->submit_batch(specs);
  wire::status s;
  ASSERT_TRUE(wait_for_status([](const wire::status&) { return true; }, &s));
  for (size_t i = 0; i < handles.size(); ++i) {
    auto r = handles[i].wait_for(60s);
    ASSERT_TRUE(r) << "task " << handles[i].id() << " never ended\n" << diagnosis();
    ASSERT_EQ(r->status, outcome::completed) << r->error.message;
    // "the runtime places X every task": X is empty for the first (two spaces, one word fewer)
    EXPECT_EQ(r->output.values.get_int("words", -1), i == 0 ? 5 : 6);
    EXPECT_EQ(r->output.values.get_int("longer_than_min", -1), i > 3 ? 5 : 4);
    ASSERT_GE(r->timings.worker, 0);
    EXPECT_EQ(s.worker_nodes.at(size_t(r->timings.worker)), "a") << "word_count ran off node a";
  }
  for (auto& h : others) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r) << diagnosis();
    EXPECT_EQ(r->status, outcome::completed) << r->error.message;
  }
}

TEST_F(ClusterWithAPlugin, AKindNoNodeHasIsRefusedAtSubmitNamingIt) {
  task_spec spec;
  spec.kind = "word_cont";
  auto r = client_->submit(spec).wait_for(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::rejected);
  EXPECT_EQ(r->error.code, errc::unknown_kind);
  EXPECT_NE(r->error.message.find("'word_cont'"), std::string::npos) << r->error.message;
  EXPECT_NE(r->error.message.find("word_count"), std::string::npos)
      << "the known kinds include the plugin's: " << r->error.message;
}

TEST(ClusterPlugins, ANodeWhosePluginCannotBeLoadedExitsNamingItAndTheKey) {
  auto dir = temp_dir();
  auto config = dir + "/bad_plugin.toml";
  std::ofstream{config} << "[cluster]\nhead = \"ipc://" << dir << "/nobody.ipc\"\n"
                        << "[nodes.a]\ncpu = 1\nplugins = [\"no_such_plugin.so\"]\n";
  auto [rc, out] =
      command{std::string{TROUPE_BINARY} + " node --config " + config + " --name a"}.finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("nodes.a.plugins"), std::string::npos) << out;
  EXPECT_NE(out.find(dir + "/no_such_plugin.so"), std::string::npos)
      << "a relative path is taken from the cluster file's folder: " << out;
}

// A plugin built against another troupe (here: one before plugin ABI stamps) would read task
// specs laid out differently: the node refuses it at load, naming it and saying to rebuild it.
TEST(ClusterPlugins, APluginBuiltAgainstAnotherTroupeIsRefusedAtLoad) {
  auto dir = temp_dir();
  auto config = dir + "/old_plugin.toml";
  std::ofstream{config} << "[cluster]\nhead = \"ipc://" << dir << "/nobody.ipc\"\n"
                        << "[nodes.a]\ncpu = 1\nplugins = [\"" << OLD_ABI_PLUGIN << "\"]\n";
  auto [rc, out] =
      command{std::string{TROUPE_BINARY} + " node --config " + config + " --name a"}.finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("nodes.a.plugins"), std::string::npos) << out;
  EXPECT_NE(out.find(OLD_ABI_PLUGIN), std::string::npos) << out;
  EXPECT_NE(out.find("rebuild it"), std::string::npos) << out;
}

// A service program becomes a node through the library: troupe::node with registry().add, as on
// an embedded runtime. Kinds added after the node joined reach the head with its next hello.
TEST(ServiceNode, KindsAddedThroughTheNodesRegistryRunOnTheCluster) {
  // A path of its own for each run (--gtest_repeat): never a socket file of an earlier head.
  static int run = 0;
  auto dir = temp_dir();
  auto tag = std::to_string(++run);
  auto endpoint = "ipc://" + dir + "/service_head_" + tag + ".ipc";
  auto config = dir + "/service_" + tag + ".toml";
  std::ofstream{config} << "[cluster]\nhead = \"" << endpoint << "\"\nheartbeat_ms = 100\n"
                        << "events = \"\"\n[nodes.svc]\ncpu = 1\n";
  auto log = dir + "/service_head_" + tag + ".log";
  pid_t head = fork();
  ASSERT_GE(head, 0);
  if (head == 0) {
    freopen(log.c_str(), "w", stderr);
    execl(TROUPE_BINARY, "troupe", "head", "--config", config.c_str(), nullptr);
    _exit(127);
  }
  struct stop_head {
    pid_t pid;
    ~stop_head() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } stopper{head};
  auto cfg = load_config(config);
  troupe::node service{cfg, "svc"};
  service.registry().add({"shout", nullptr, [](const task_context& ctx) {
                            auto text = ctx.spec.params.get_string("text", "");
                            for (auto& ch : text) ch = char(std::toupper(ch));
                            task_output out;
                            out.values.set("text", text);
                            return out;
                          }});
  client_options co;
  co.timeout = 20s;
  client c{endpoint, co};
  task_spec spec;
  spec.kind = "shout";
  spec.params = {{"text", std::string{"hello"}}};
  // Refused (unknown_kind) until the head has the node's hello with the kind: ask again until
  // it is accepted, for at most 30 s.
  std::optional<task_result> r;
  auto deadline = clock::now() + 30s;
  while (clock::now() < deadline) {
    try {
      r = c.submit(spec).wait_for(20s);
    } catch (const client_error&) {  // the head is not up yet
      continue;
    }
    if (r && r->status == outcome::rejected && r->error.code == errc::unknown_kind) continue;
    break;
  }
  ASSERT_TRUE(r) << read_file(log);
  EXPECT_EQ(r->status, outcome::completed) << r->error.message << "\n" << read_file(log);
  EXPECT_EQ(r->output.values.get_string("text", ""), "HELLO");
  service.shutdown();
}

// The failures of large data on a cluster, as regressions: an output of 20 MiB, and of 40 MiB,
// used to be refused at the head (the task stayed in flight forever; at 40 MiB the node entered
// a rejoin loop). Under limits.max_payload_bytes (64 MiB by default) both come back whole.
TEST_F(Cluster, OutputsOfTwentyAndFortyMiBComeBackWhole) {
  for (size_t mib : {20, 40}) {
    task_spec echo;
    echo.kind = "echo";
    std::vector<uint8_t> payload(mib << 20);
    for (size_t i = 0; i < payload.size(); i += 4096) payload[i] = uint8_t(i >> 12);
    echo.payload = std::move(payload);
    auto r = client_->submit(echo).wait_for(60s);
    ASSERT_TRUE(r) << mib << " MiB never came back\n" << diagnosis();
    ASSERT_EQ(r->status, outcome::completed) << r->error.message;
    EXPECT_EQ(r->attempts, 1u);
    EXPECT_TRUE(r->output.bytes == echo.payload) << mib << " MiB came back changed";
  }
  auto s = client_->status();
  EXPECT_EQ(s.frames_refused, 0u);
  for (auto& n : s.nodes) EXPECT_EQ(n.joins, 1u) << n.name << " joined again";
}

class ClusterWithSmallPayloads : public Cluster {
 protected:
  std::string nodes() const override {
    return "[nodes.a]\ncpu = 1\n[limits]\nmax_payload_bytes = 1048576\n";
  }
};

TEST_F(ClusterWithSmallPayloads, AnOutputOverTheLimitOnANodeEndsItsTaskOutputTooLarge) {
  task_spec big;  // a 1024 x 1024 float32 matrix: 4 MiB of output
  big.kind = "gemm";
  big.params = {{"m", int64_t{1024}},
                {"n", int64_t{1024}},
                {"k", int64_t{1}},
                {"output", std::string{"matrix"}}};
  auto r = client_->submit(big).wait_for(60s);
  ASSERT_TRUE(r) << diagnosis();
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::output_too_large) << r->error.message;
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_NE(r->error.message.find("limits.max_payload_bytes (1048576)"), std::string::npos)
      << r->error.message;
  // Under the limit, a result frame of nearly the whole limit goes through.
  task_spec echo;
  echo.kind = "echo";
  echo.payload.assign(1000000, 3);
  auto ok = client_->submit(echo).wait_for(60s);
  ASSERT_TRUE(ok) << diagnosis();
  EXPECT_EQ(ok->status, outcome::completed) << ok->error.message;
  EXPECT_EQ(ok->output.bytes.size(), 1000000u);
}

TEST_F(ClusterWithSmallPayloads, AClientRefusesAnInputOverTheLimitBeforeSendingAnything) {
  client_options co;
  co.max_payload_bytes = 1048576;
  client small{endpoint_, co};
  task_spec echo;
  echo.kind = "echo";
  echo.payload.assign(2 << 20, 3);
  try {
    small.submit_batch({task_spec{}, echo});
    FAIL() << "accepted";
  } catch (const client_error& e) {
    EXPECT_NE(std::string{e.what()}.find("task 1 of the batch"), std::string::npos) << e.what();
  }
  EXPECT_EQ(client_->status().stats.submitted, 0u) << "nothing was sent";
}

// Process isolation: node a loads kinds that crash their process (isolation = "process" is the
// default for a node with plugins). Each crash ends its task's attempt, not the node: the node
// process stays the same, and the other tasks on it complete.
class ClusterWithIsolatedWorkers : public Cluster {
 protected:
  std::string nodes() const override {
    return std::string{"[nodes.a]\ncpu = 2\nplugins = [\""} + CRASHING_PLUGIN +
           "\"]\n[supervision]\nintensity = 50\n";
  }
  pid_t node_pid() { return find_child(up_, {"node", "--name", "a"}); }
  task_spec once(const std::string& kind) {
    task_spec s;
    s.kind = kind;
    s.max_retries = 0;
    return s;
  }
};

TEST_F(ClusterWithIsolatedWorkers, ACrashEndsItsTaskAndTheNodeAndItsOtherTasksCarryOn) {
  auto node = node_pid();
  ASSERT_GT(node, 0) << read_file(log_);
  task_spec segfault = once("segfault");
  segfault.max_retries = 2;
  segfault.retry_backoff = 1ms;
  std::vector<task_spec> specs(40, once("pid"));
  specs.push_back(segfault);
  specs.push_back(once("abort"));
  specs.push_back(once("exit"));
  auto handles = client_->submit_batch(specs);
  std::vector<task_result> results;
  for (auto& h : handles) {
    auto r = h.wait_for(60s);
    ASSERT_TRUE(r) << "task " << h.id() << " never ended\n" << diagnosis();
    results.push_back(*r);
  }
  for (size_t i = 0; i < 40; ++i) {
    EXPECT_EQ(results[i].status, outcome::completed) << results[i].error.message;
    EXPECT_NE(results[i].output.values.get_int("pid", node), node)
        << "ran in the node's own process";
  }
  auto expect_crash = [&](const task_result& r, const std::string& why, uint32_t attempts) {
    EXPECT_EQ(r.status, outcome::failed) << r.kind;
    EXPECT_EQ(r.error.code, errc::kernel_crashed) << r.kind << ": " << r.error.message;
    EXPECT_NE(r.error.message.find(why), std::string::npos) << r.kind << ": " << r.error.message;
    EXPECT_EQ(r.attempts, attempts) << r.kind;
  };
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's own SIGSEGV handler, installed in each fresh worker process, reports the
  // fault and ends it its own way (exit status 1, or abort() with abort_on_error).
  expect_crash(results[40], "the worker process ", 3);
#else
  expect_crash(results[40], "signal 11", 3);
#endif
  expect_crash(results[41], "signal 6", 1);
  expect_crash(results[42], "exited with status 3", 1);
  EXPECT_EQ(node_pid(), node) << "the node process was replaced";
  auto s = client_->status();
  ASSERT_EQ(s.nodes.size(), 1u);
  EXPECT_EQ(s.nodes[0].joins, 1u) << "the node joined again";
  // Still in service: more work completes.
  auto after = client_->submit(once("pid")).wait_for(30s);
  ASSERT_TRUE(after) << diagnosis();
  EXPECT_EQ(after->status, outcome::completed) << after->error.message;
}

TEST_F(ClusterWithIsolatedWorkers, AKindThatCrashesOnceCompletesOnItsRetry) {
  task_spec s = once("crash_first");
  s.max_retries = 1;
  s.retry_backoff = 1ms;
  auto r = client_->submit(s).wait_for(60s);
  ASSERT_TRUE(r) << diagnosis();
  EXPECT_EQ(r->status, outcome::completed) << r->error.message;
  EXPECT_EQ(r->attempts, 2u);
}

TEST_F(ClusterWithIsolatedWorkers, ATaskPastItsTimeoutIsKilledWithItsProcessNotLeftRunning) {
  task_spec spin = once("spin");
  spin.timeout = 300ms;
  auto r = client_->submit(spin).wait_for(60s);
  ASSERT_TRUE(r) << diagnosis();
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::timed_out) << r->error.message;
  // Its process is gone: no child of the node still spins.
  auto node = node_pid();
  ASSERT_GT(node, 0);
  std::vector<task_spec> more(10, once("pid"));
  for (auto& h : client_->submit_batch(more)) {
    auto m = h.wait_for(30s);
    ASSERT_TRUE(m) << diagnosis();
    EXPECT_EQ(m->status, outcome::completed) << m->error.message;
  }
  auto count = children_of(node);
  EXPECT_GT(find_child(node, {"worker-process", "--worker"}), 0)
      << "troupe node runs its workers' tasks in fresh `troupe worker-process` processes";
  EXPECT_GE(count, 1u) << "the node's CPU workers run in processes of their own";
  EXPECT_LE(count, 2u) << "at most one worker process per CPU worker: the spinning one is gone";
}
