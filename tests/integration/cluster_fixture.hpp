#pragma once
// The cluster the multi-process tests start: `troupe up` of a head and two nodes on ipc://
// sockets in a folder of their own, and a client that waited for both nodes to join.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "../support/processes.hpp"
#include "troupe/client.hpp"
#include "troupe/transport/curve.hpp"

namespace troupe::testing_support {

using namespace std::chrono_literals;

/// A task of the built-in kind `sleep` that takes `ms` milliseconds.
inline task_spec sleep_task(int ms) {
  task_spec s;
  s.kind = "sleep";
  s.params = {{"ms", int64_t{ms}}};
  return s;
}

/// Pairs a_i -> b_i of echo tasks: a_i outputs `blob` bytes of 'a' + i as value `blob`, b_i
/// takes it as its parameter x; b_i carries `child_labels` (a reservation, say).
inline graph_spec chain_pairs(int chains, size_t blob,
                              std::map<std::string, std::string> child_labels = {}) {
  graph_spec g;
  for (int i = 0; i < chains; ++i) {
    graph_task a, b;
    a.name = "a" + std::to_string(i);
    a.spec.kind = "echo";
    a.spec.params.set("blob", std::string(blob, char('a' + i)));
    b.name = "b" + std::to_string(i);
    b.spec.kind = "echo";
    b.spec.labels = child_labels;
    b.inputs = {{"x", a.name + ".blob"}};
    g.tasks.push_back(std::move(a));
    g.tasks.push_back(std::move(b));
  }
  return g;
}

inline std::string temp_dir() {
  auto d = ::testing::TempDir() + "troupe_cluster_" + std::to_string(getpid());
  mkdir(d.c_str(), 0700);
  return d;
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    endpoint_ = head_endpoint();
    config_ = dir_ + "/cluster.toml";
    // A fresh cluster per test: no journal of an earlier test's head (cluster.journal, the
    // default next to the file).
    for (auto suffix : {"", "-wal", "-shm"})
      std::remove((dir_ + "/cluster.journal" + suffix).c_str());
    std::ofstream{config_} << "[cluster]\nhead = \"" << endpoint_ << "\"\n"
                           << "heartbeat_ms = 100\nsuspect_after_ms = 2000\n"
                           << "dead_after_ms = 5000\nrestart_delay_ms = 100\n"
                           << "events = \"ipc://" << dir_ << "/events.ipc\"\n"
                           << "event_ring = 1000\nevent_high_water = 1000\n"
                           << cluster_keys() << nodes() << extra_config()
                           << "[retry]\nmax = 5\n[log]\nlevel = \"" << log_level() << "\"\n";
    log_ = dir_ + "/up.log";
    up_ = fork();
    ASSERT_GE(up_, 0);
    if (up_ == 0) {
      freopen(log_.c_str(), "w", stderr);
      dup2(fileno(stderr), fileno(stdout));  // the processes' logs, and their output
      execl(TROUPE_BINARY, "troupe", "up", "--config", config_.c_str(), nullptr);
      _exit(127);
    }
    client_options co = client_options_for_tests();
    co.timeout = 20s;
    client_ = std::make_unique<client>(endpoint_, co);
    // Three processes start on a machine that may be busy: wait for the joins, bounded.
    wire::status last;
    bool answered = false;
    ASSERT_TRUE(wait_for_status(
        [&](const wire::status& s) {
          answered = true;
          if (s.nodes.empty()) return false;
          for (auto& n : s.nodes)
            if (n.state != "joined") return false;
          return true;
        },
        &last, 60s))
        << (answered ? "the head answered; nodes: " + describe_nodes(last)
                     : std::string{"the head never answered a status request"})
        << "\n"
        << read_file(log_);
  }

  static std::string describe_nodes(const wire::status& s) {
    std::string out;
    for (auto& n : s.nodes)
      out += n.name + " " + n.state + " (epoch " + std::to_string(n.epoch) + ", joins " +
             std::to_string(n.joins) + ") ";
    return out;
  }

  /// What the head says of its queue and workers, and the cluster's log: for failure messages.
  std::string diagnosis() {
    std::ostringstream o;
    try {
      auto s = client_->status();
      o << "head: queued " << s.stats.queued << ", in flight " << s.stats.in_flight
        << ", submitted " << s.stats.submitted << ", completed " << s.stats.completed << "\n";
      for (auto& n : s.nodes)
        o << "  node " << n.name << " " << n.state << " joins " << n.joins << "\n";
      for (auto& w : s.stats.workers)
        o << "  worker " << w.name << " " << w.state << " tasks " << w.tasks << " restarts "
          << w.restarts << "\n";
    } catch (const std::exception& e) {
      o << "no status: " << e.what() << "\n";
    }
    return o.str() + read_file(log_);
  }

  /// cluster.head: an ipc:// socket in the test's folder (dir_ is set when this is asked).
  virtual std::string head_endpoint() const { return "ipc://" + dir_ + "/head.ipc"; }
  // info: joins, losses and restarts are in the cluster's log when a test fails.
  virtual std::string log_level() const { return "info"; }
  /// The [nodes.*] tables of the cluster file.
  virtual std::string nodes() const { return "[nodes.a]\ncpu = 2\n[nodes.b]\ncpu = 2\n"; }
  /// More keys of the [cluster] section, one per line.
  virtual std::string cluster_keys() const { return ""; }
  /// More of the cluster file, after the nodes (a [security] section).
  virtual std::string extra_config() const { return ""; }
  /// The options of client_, which waits for the nodes and asks for status.
  virtual client_options client_options_for_tests() const { return {}; }

  void TearDown() override {
    client_.reset();
    if (up_ > 0) {
      kill(up_, SIGTERM);
      int status = 0;
      waitpid(up_, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log_);
    }
  }

  /// Asks the head for its status until pred holds (each ask is a round trip), for at most
  /// `limit`.
  template <class Pred>
  bool wait_for_status(Pred pred, wire::status* last = nullptr,
                       std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto deadline = clock::now() + limit;
    while (clock::now() < deadline) {
      try {
        auto s = client_->status();
        if (last) *last = s;
        if (pred(s)) return true;
      } catch (const client_error&) {  // the head is not up yet: the status timed out
      }
    }
    return false;
  }

  std::vector<task_spec> gemm_tasks(size_t n, int64_t first_seed) {
    std::vector<task_spec> specs(n);
    for (size_t i = 0; i < n; ++i) {
      specs[i].kind = "gemm";
      specs[i].params = {{"size", int64_t{24}}, {"seed", first_seed + int64_t(i)}};
    }
    return specs;
  }

  std::string dir_, endpoint_, config_, log_;
  pid_t up_ = -1;
  std::unique_ptr<client> client_;
};

/// A cluster with keys (docs/security.md): CURVE on every socket, peers let in by key, and each
/// key allowed only what its role may do. Key pairs are written the way `troupe keygen` writes
/// them, into dir_/keys: head, nodes a and b, and admin, alice, bob (clients), watcher
/// (subscriber) and stranger (listed nowhere).
class SecuredCluster : public Cluster {
 protected:
  void SetUp() override {
    keys_ = temp_dir() + "/keys";
    mkdir(keys_.c_str(), 0700);
    for (auto name : {"head", "a", "b", "admin", "alice", "bob", "watcher", "tally", "stranger"}) {
      auto path = keys_ + "/" + name;
      std::remove(path.c_str());
      std::remove((path + ".pub").c_str());
      transport::write_key_pair(path, transport::generate_key_pair());
    }
    Cluster::SetUp();
  }

  std::string nodes() const override {
    return "[nodes.a]\ncpu = 2\nkey = \"keys/a\"\n[nodes.b]\ncpu = 2\nkey = \"keys/b\"\n";
  }
  std::string extra_config() const override {
    std::string allow;
    for (auto [role, name] : {std::pair{"admin", "admin"},
                              {"client", "alice"},
                              {"client", "bob"},
                              {"subscriber", "watcher"}})
      allow += std::string{"[[security.allow]]\nrole = \""} + role + "\"\nname = \"" + name +
               "\"\nkey = \"keys/" + name + ".pub\"\n";
    // A subscriber that may follow completions only.
    allow +=
        "[[security.allow]]\nrole = \"subscriber\"\nname = \"tally\"\n"
        "key = \"keys/tally.pub\"\ntopics = [\"task.completed\"]\n";
    return "[security]\nhead_key = \"keys/head\"\n" + allow;
  }
  client_options client_options_for_tests() const override { return as("admin"); }

  transport::curve_client keys_of(const std::string& name) const {
    return {transport::read_key_pair(keys_ + "/" + name),
            transport::read_public_key(keys_ + "/head.pub")};
  }
  client_options as(const std::string& name) const {
    client_options co;
    co.name = name;
    co.timeout = 20s;
    co.curve = keys_of(name);
    return co;
  }

  /// The cluster file, with node a's key pair file replaced: a node process started with it.
  std::string config_with_node_a_key(const std::string& key) {
    auto text = read_file(config_);
    auto at = text.find("key = \"keys/a\"");
    EXPECT_NE(at, std::string::npos);
    text.replace(at, std::string{"key = \"keys/a\""}.size(), "key = \"keys/" + key + "\"");
    auto path = dir_ + "/node-a-with-" + key + ".toml";
    std::ofstream{path} << text;
    return path;
  }

  std::string keys_;
};

}  // namespace troupe::testing_support
