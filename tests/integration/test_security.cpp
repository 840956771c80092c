// A cluster with keys (docs/security.md): CURVE on every socket, peers let in by key, and each
// key allowed only what its role may do. Started with `troupe up` as an operator would, with
// key pairs written the way `troupe keygen` writes them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>

#include "cluster_fixture.hpp"
#include "troupe/subscriber.hpp"
#include "troupe/transport/curve.hpp"
#include "troupe/transport/framer.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace {

using namespace troupe;
using namespace std::chrono_literals;
using namespace troupe::testing_support;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const client_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(SecuredCluster, AnAllowedClientGetsItsResultsAndOthersGetNothingDone) {
  client alice{endpoint_, as("alice")};
  std::vector<task_spec> specs(20, sleep_task(1));
  auto handles = alice.submit_batch(specs);
  for (auto& h : handles) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r) << diagnosis();
    EXPECT_EQ(r->status, outcome::completed) << r->error.message;
  }

  // No key: the head's socket speaks CURVE only.
  client_options plain;
  plain.timeout = 20s;
  client anonymous{endpoint_, plain};
  auto why = error_of([&] { anonymous.submit(sleep_task(1)); });
  // (Over ipc:// zmq names the mechanism mismatch; over tcp:// the head just hangs up.)
  EXPECT_NE(why.find("the head refused this client"), std::string::npos) << why;
  EXPECT_NE(why.find("--key"), std::string::npos) << why;  // and says what it wants

  // A key the head does not know: refused in the handshake, and the refusal logged with it.
  client stranger{endpoint_, as("stranger")};
  why = error_of([&] { stranger.submit(sleep_task(1)); });
  EXPECT_NE(why.find("refused this connection's key"), std::string::npos) << why;
  why = error_of([&] { stranger.status(); });
  EXPECT_NE(why.find("refused"), std::string::npos) << why;
  auto log = read_file(log_);
  EXPECT_NE(log.find("refused a connection from"), std::string::npos) << log;
  EXPECT_NE(log.find(keys_of("stranger").keys.public_key), std::string::npos) << log;

  // Nothing of theirs got in: the head counts alice's 20 tasks only.
  auto s = client_->status();
  EXPECT_EQ(s.stats.submitted, 20u) << diagnosis();
}

TEST_F(SecuredCluster, AClientSeesAndCancelsOnlyItsOwnTasksAndAnAdminAny) {
  client alice{endpoint_, as("alice")}, bob{endpoint_, as("bob")};
  auto mine = alice.submit_batch({sleep_task(1500), sleep_task(1500)});
  auto a0 = mine[0].id(), a1 = mine[1].id();

  bob.cancel(a0);
  // The fetch follows the cancel on bob's connection: its answer comes after the cancel's.
  auto seen = bob.fetch({a0});
  EXPECT_EQ(seen.unknown, std::vector<task_id>{a0});  // not bob's to see
  EXPECT_TRUE(seen.pending.empty());
  EXPECT_GE(bob.errors(), 1u);  // the cancel was answered forbidden

  auto own = alice.fetch({a0, a1});
  EXPECT_EQ(own.pending.size() + own.finished.size(), 2u);  // alice sees both
  EXPECT_TRUE(own.unknown.empty());

  client_->cancel(a1);  // the admin may
  auto r0 = mine[0].wait_for(30s), r1 = mine[1].wait_for(30s);
  ASSERT_TRUE(r0 && r1) << diagnosis();
  EXPECT_EQ(r0->status, outcome::completed) << "bob cancelled alice's task: " << r0->error.message;
  EXPECT_EQ(r1->status, outcome::cancelled) << r1->error.message;

  // Finished, its record is still alice's only.
  EXPECT_EQ(bob.fetch({a0}).unknown, std::vector<task_id>{a0});
  auto later = alice.fetch({a0});
  ASSERT_EQ(later.finished.size(), 1u);
  EXPECT_EQ(later.finished[0].status, outcome::completed);
}

TEST_F(SecuredCluster, ANodeProcessWithAnotherNodesKeyOrAnUnknownKeyIsRefusedAndExits) {
  // Node b's key claiming node a: let in as node b, refused when it says hello as a.
  auto [rc, out] = command{std::string{TROUPE_BINARY} + " node --config " +
                           config_with_node_a_key("b") + " --name a"}
                       .finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("forbidden"), std::string::npos) << out;
  EXPECT_NE(out.find("may not speak for node 'a'"), std::string::npos) << out;
  // A key the head does not know: refused in the handshake.
  std::tie(rc, out) = command{std::string{TROUPE_BINARY} + " node --config " +
                              config_with_node_a_key("stranger") + " --name a"}
                          .finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("the head refused node a"), std::string::npos) << out;
  // The real node a never left.
  auto s = client_->status();
  for (auto& n : s.nodes) {
    EXPECT_EQ(n.state, "joined") << n.name;
    EXPECT_EQ(n.joins, 1u) << n.name;
  }
}

TEST_F(SecuredCluster, ASubscriberKeyFollowsTheEvents) {
  subscriber_options so;
  so.curve = keys_of("watcher");
  so.timeout = 20s;
  subscriber watcher{endpoint_, [](const event&) {}, so};
  client alice{endpoint_, as("alice")};
  auto r = alice.submit(sleep_task(1)).wait_for(30s);
  ASSERT_TRUE(r && r->ok()) << diagnosis();
  // The task's end is an event the watcher applies.
  auto deadline = clock::now() + 30s;
  bool seen = false;
  while (!seen && clock::now() < deadline) {
    auto last = watcher.counters().last_seq;
    watcher.wait_for_seq(last + 1, 1s);
    seen = watcher.state().finished.count(r->id) > 0;
  }
  EXPECT_TRUE(seen) << "the watcher never saw task " << r->id << " end\n" << diagnosis();
}

TEST_F(SecuredCluster, ASubscriberKeyLimitedToSomeTopicsGetsThoseAndNothingElse) {
  client alice{endpoint_, as("alice")};
  // Something in the state before it joins: a finished task (and joined nodes, workers).
  auto before = alice.submit(sleep_task(1)).wait_for(30s);
  ASSERT_TRUE(before && before->ok()) << diagnosis();
  std::mutex mu;
  std::condition_variable cv;
  std::vector<event> seen;
  subscriber_options so;
  so.curve = keys_of("tally");
  so.timeout = 20s;
  std::optional<state_snapshot> first_state;
  so.on_snapshot = [&](const state_snapshot& s) {
    std::lock_guard<std::mutex> g{mu};
    if (!first_state) first_state = s;
    cv.notify_all();
  };
  subscriber tally{endpoint_,
                   [&](const event& e) {
                     std::lock_guard<std::mutex> g{mu};
                     seen.push_back(e);
                     cv.notify_all();
                   },
                   so};
  // Its snapshot says what it may follow, and carries no part of the state it may not see.
  {
    std::unique_lock<std::mutex> lock{mu};
    ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return first_state.has_value(); })) << diagnosis();
    EXPECT_TRUE(first_state->nodes.empty());
    EXPECT_TRUE(first_state->workers.empty());
    EXPECT_TRUE(first_state->finished.empty());  // "task.completed" is not all of "task."
  }
  EXPECT_EQ(tally.counters().topics, (std::vector<std::string>{"task.completed"}));
  {
    // Its status says where the events are, not what the cluster is.
    client_options co;
    co.curve = keys_of("tally");
    co.timeout = 20s;
    auto s = client{endpoint_, co}.status();
    EXPECT_FALSE(s.events_endpoint.empty());
    EXPECT_TRUE(s.nodes.empty());
    EXPECT_TRUE(s.stats.workers.empty());
  }
  // A task runs: queued, placed, started, completed are published in that order on one
  // connection, so the completion arriving means the others were held back, not late. (Had it
  // been published before the subscription took hold, a replay brings it, cut to the key's
  // topics too.)
  auto r = alice.submit(sleep_task(1)).wait_for(30s);
  ASSERT_TRUE(r && r->ok()) << diagnosis();
  std::unique_lock<std::mutex> lock{mu};
  ASSERT_TRUE(cv.wait_for(lock, 30s,
                          [&] {
                            return std::any_of(seen.begin(), seen.end(),
                                               [&](const event& e) { return e.task == r->id; });
                          }))
      << "the limited subscriber never saw task " << r->id << " complete\n"
      << diagnosis();
  for (auto& e : seen) EXPECT_EQ(e.topic, "task.completed") << "seq " << e.seq;
}

TEST(SecurityConfig, AHeadOnARoutableAddressWithoutKeysRefusesToStartUnlessInsecure) {
  auto dir = temp_dir();
  zmq::context_t ctx;
  zmq::socket_t taken{ctx, zmq::socket_type::router};
  taken.set(zmq::sockopt::linger, 0);
  taken.bind("tcp://0.0.0.0:*");
  auto endpoint = taken.get(zmq::sockopt::last_endpoint);  // tcp://0.0.0.0:PORT
  auto path = dir + "/open.toml";
  std::ofstream{path} << "[cluster]\nhead = \"" << endpoint
                      << "\"\nevents = \"\"\njournal = \"off\"\n[nodes.a]\ncpu = 1\n";
  auto [rc, out] = command{std::string{TROUPE_BINARY} + " head --config " + path}.finish();
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("security.head_key"), std::string::npos) << out;
  EXPECT_NE(out.find("without keys"), std::string::npos) << out;
  // insecure = true lets it try: it gets as far as binding (taken here, so it fails there).
  std::tie(rc, out) = command{std::string{TROUPE_BINARY} + " head --config " + path +
                              " --set security.insecure=true"}
                          .finish();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("cannot bind " + endpoint), std::string::npos) << out;
}

}  // namespace

namespace {

/// Keys, and node b's workers reserved for graph children: every parent runs on a, every child
/// on b, which fetches its input from a's data socket (CURVE under a's key).
class SecuredClusterWithAReservedNode : public SecuredCluster {
 protected:
  std::string extra_config() const override {
    return "[reservations.far]\nworkers = [\"b/cpu-0\", \"b/cpu-1\"]\n" +
           SecuredCluster::extra_config();
  }
  /// Where node `node` serves its kept outputs, as its log says.
  std::string data_endpoint_of(const std::string& node) {
    auto log = read_file(log_);
    auto line = "node " + node + ": serves kept outputs to other nodes on ";
    auto at = log.find(line);
    if (at == std::string::npos) return {};
    at += line.size();
    return log.substr(at, log.find_first_of(" \n", at) - at);
  }
};

}  // namespace

TEST_F(SecuredClusterWithAReservedNode, NodesFetchInputsFromEachOtherAndNoOtherKeyGetsIn) {
  constexpr int chains = 3;
  constexpr size_t blob = size_t(512) << 10;
  auto h = client_->submit_graph(chain_pairs(chains, blob, {{"reservation", "far"}}));
  ASSERT_TRUE(h.wait_until(clock::now() + 60s)) << diagnosis();
  for (int i = 0; i < chains; ++i) {
    auto& b = h.get("b" + std::to_string(i));
    ASSERT_TRUE(b.ok()) << b.error.message;
    EXPECT_EQ(b.output.values.get_string("x", ""), std::string(blob, char('a' + i)));
  }
  auto st = client_->status();
  uint64_t fetched = 0;
  for (auto& n : st.nodes)
    if (n.name == "b") fetched = n.fetched_inputs;
  EXPECT_EQ(fetched, uint64_t(chains)) << "over CURVE, from node a\n" << read_file(log_);

  // A client's key (listed for the head, not as a node) is refused at a node's data socket.
  auto endpoint = data_endpoint_of("a");
  ASSERT_FALSE(endpoint.empty()) << read_file(log_);
  zmq::context_t ctx;
  std::mutex m;
  std::condition_variable cv;
  std::optional<std::string> refused;
  transport::socket_options so;
  so.endpoint = endpoint;
  so.client_keys = {transport::read_key_pair(keys_ + "/alice"),
                    transport::read_public_key(keys_ + "/a.pub")};
  so.on_handshake_failed = [&](const std::string& why) {
    std::lock_guard<std::mutex> guard{m};
    refused = why;
    cv.notify_all();
  };
  transport::socket_thread alice{
      ctx, so, [](transport::multipart&) { ADD_FAILURE() << "node a answered a client's key"; }};
  wire::framer framer{"alice"};
  alice.send(framer.make(nullptr, wire::msg_type::output_request, wire::output_request{{1}, 0}));
  std::unique_lock<std::mutex> lock{m};
  EXPECT_TRUE(cv.wait_for(lock, 20s, [&] { return refused.has_value(); }))
      << "node a let alice's key in";
}
