// Hostile peers against a head with keys, on TCP loopback, while a good client runs a steady
// load (docs/security.md, "Threat model"; issue 15): forged results, hijacking hellos and byes,
// cancels of another key's tasks, a thousand idle TCP connections, garbage handshakes and frames
// that declare 4 GiB. The good client's tasks all complete with their own results, its p99
// round trip stays within 2x of a quiet phase's, and the head's memory grows by less than 64 MB.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "cluster_fixture.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/curve.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace {

using namespace troupe;
using namespace std::chrono_literals;
using namespace std::string_literals;
using namespace troupe::testing_support;
using steady = std::chrono::steady_clock;

constexpr int handshake_ms = 1000;  // security.handshake_ms of this cluster
constexpr size_t idle_connections = 1000;

/// A field of /proc/PID/status in kB (VmRSS, VmHWM), -1 if absent.
long proc_status_kb(pid_t pid, const std::string& field) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/status");
  auto at = text.find(field + ":");
  if (at == std::string::npos) return -1;
  return std::atol(text.c_str() + at + field.size() + 1);
}

/// Open file descriptors of a process.
long fd_count(pid_t pid) {
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  long n = 0;
  while (auto* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

/// The p-th quantile (0..1) of the samples, nearest rank.
double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = size_t(std::ceil(p * double(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::string header(wire::msg_type type, uint64_t id, const std::string& from = "x",
                   uint64_t epoch = 0) {
  wire::header h;
  h.type = type;
  h.id = id;
  h.from = from;
  h.epoch = epoch;
  return wire::encode(h);
}

/// A DEALER with a key of the cluster that sends frames of its own making to the head.
class raw_peer {
 public:
  raw_peer(zmq::context_t& ctx, const std::string& endpoint, const transport::curve_client& keys)
      : s_{ctx, zmq::socket_type::dealer} {
    s_.set(zmq::sockopt::linger, 0);
    transport::use_keys(s_, keys);
    s_.connect(endpoint);
  }

  uint64_t next_id() { return ++id_; }

  void send(const std::string& header, const std::string& body) {
    s_.send(zmq::buffer(header), zmq::send_flags::sndmore);
    s_.send(zmq::buffer(body), zmq::send_flags::none);
  }

  /// The next message within `limit`, as (header, body); nullopt if none came.
  std::optional<std::pair<wire::header, zmq::message_t>> receive(std::chrono::milliseconds limit) {
    zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, limit) != 1) return std::nullopt;
    std::vector<zmq::message_t> m;
    if (!zmq::recv_multipart(s_, std::back_inserter(m)) || m.size() != 2) return std::nullopt;
    auto h = wire::decode_header(m[0].data(), m[0].size(), wire::limits{});
    return std::pair{h, std::move(m[1])};
  }

  /// Connected, CURVE handshake done and let in: a status request is answered.
  bool let_in(std::chrono::milliseconds limit = 20000ms) {
    auto id = next_id();
    send(header(wire::msg_type::status_request, id), wire::encode(wire::status_request{}));
    auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
      auto m =
          receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()));
      if (m && m->first.type == wire::msg_type::status && m->first.corr == id) return true;
    }
    return false;
  }

  /// Sends a message and waits for the error that answers it (corr = the header's id, or 0
  /// for a header the head could not read): "code: message", or "(no reply)".
  std::string refusal(const std::string& header, const std::string& body, uint64_t corr,
                      std::chrono::milliseconds limit = 15000ms) {
    send(header, body);
    auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
      auto m =
          receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()));
      if (!m || m->first.type != wire::msg_type::error || m->first.corr != corr) continue;
      auto e = wire::decode<wire::error>(m->second.data(), m->second.size(), wire::limits{});
      return std::string{wire::to_string(e.code)} + ": " + e.message;
    }
    return "(no reply)";
  }

 private:
  zmq::socket_t s_;
  uint64_t id_ = 0;
};

/// Plain TCP sockets to the head's port, below ZeroMQ: they hold connections open, say
/// nothing or say garbage, and see when the head takes them in (its ZMTP greeting arrives) and
/// when it hangs up.
class tcp_sockets {
 public:
  explicit tcp_sockets(uint16_t port) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(port);
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~tcp_sockets() {
    for (auto fd : fds_) ::close(fd);
  }
  size_t size() const { return fds_.size(); }

  /// Starts n more connections (non-blocking); false if a socket could not be made.
  bool open(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return false;
      fds_.push_back(fd);
      state_.push_back(connecting);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0 &&
          errno != EINPROGRESS)
        return false;
    }
    return true;
  }

  /// Writes bytes on connection i (small: they fit the socket's buffer).
  void say(size_t i, const std::string& bytes) {
    (void)!::write(fds_[i], bytes.data(), bytes.size());
  }

  /// Waits until the head has taken in every connection: it sent something (the greeting
  /// ZeroMQ sends as it accepts), or hung up already. How many it took in by the deadline.
  size_t wait_taken_in(steady::time_point deadline) {
    wait(deadline, connecting);
    return size_t(
        std::count_if(state_.begin(), state_.end(), [](int s) { return s != connecting; }));
  }

  /// Reads (and drops) what the head sends until it hangs up on every connection; how many it
  /// hung up on by the deadline.
  size_t wait_closed(steady::time_point deadline) {
    wait(deadline, taken_in);
    return size_t(std::count(state_.begin(), state_.end(), closed));
  }

 private:
  enum { connecting, taken_in, closed };

  /// Reads what arrives until no connection is in a state <= `until` or the deadline passes.
  void wait(steady::time_point deadline, int until) {
    char buf[4096];
    for (;;) {
      std::vector<pollfd> p;
      std::vector<size_t> which;
      for (size_t i = 0; i < fds_.size(); ++i)
        if (state_[i] != closed) p.push_back({fds_[i], POLLIN, 0}), which.push_back(i);
      bool pending = false;
      for (auto i : which) pending = pending || state_[i] <= until;
      if (!pending || steady::now() >= deadline) return;
      if (::poll(p.data(), p.size(), 100) <= 0) continue;
      for (size_t k = 0; k < p.size(); ++k) {
        if (!p[k].revents) continue;
        auto& st = state_[which[k]];
        for (;;) {
          auto got = ::read(p[k].fd, buf, sizeof buf);
          if (got > 0) {
            st = taken_in;
            continue;
          }
          if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
          st = closed;  // EOF or reset: the head hung up
          break;
        }
      }
    }
  }

  sockaddr_in addr_{};
  std::vector<int> fds_;
  std::vector<int> state_;
};

/// A MessagePack fixstr (up to 31 bytes).
std::string fixstr(const std::string& s) {
  return char(0xa0 | s.size()) + s;
}

/// A ZMTP 3.0 greeting (RFC 23): signature, version 3.0, a mechanism, as-server 0, filler.
std::string greeting(const std::string& mechanism) {
  std::string g(64, '\0');
  g[0] = '\xff';
  g[9] = '\x7f';
  g[10] = 3;
  g[11] = 0;
  std::memcpy(&g[12], mechanism.data(), std::min<size_t>(mechanism.size(), 20));
  return g;
}

/// A ZMTP command frame (short or long) with the given body.
std::string command_frame(const std::string& body) {
  std::string f;
  if (body.size() < 256) {
    f += '\x04';
    f += char(body.size());
  } else {
    f += '\x06';
    for (int shift = 56; shift >= 0; shift -= 8) f += char((uint64_t(body.size()) >> shift) & 0xff);
  }
  return f + body;
}

/// The good client's load: one small task at a time, paced, each round trip (submit to result)
/// timed, each result checked to be the task's own.
struct steady_load {
  static constexpr size_t samples = 2000;  // per phase: 20 round trips above its p99
  static constexpr auto period = 4ms;      // at most 250 tasks per second

  enum phase_t { quiet, attack, stop };
  std::atomic<int> phase{quiet};
  std::atomic<task_id> last_id{0};
  std::mutex mu;
  std::vector<double> quiet_ms, attack_ms;
  std::vector<steady::time_point> attack_started;  // of each of attack_ms
  size_t submitted = 0, completed = 0;
  std::vector<std::string> failures;

  void run(const std::string& endpoint, const client_options& co) {
    client alice{endpoint, co};
    auto next = steady::now();
    for (uint64_t i = 0; phase.load() != stop; ++i) {
      // Pacing, not waiting for anything: a steady rate whatever the round trips take.
      std::this_thread::sleep_until(next);
      next = std::max(next + period, steady::now());
      auto payload = "alice task " + std::to_string(i);
      task_spec spec;
      spec.kind = "echo";
      spec.payload.assign(payload.begin(), payload.end());
      int p0 = phase.load();
      auto t0 = steady::now();
      std::optional<task_result> r;
      task_id id = 0;
      std::string failure;
      try {
        auto h = alice.submit(spec);
        id = h.id();
        last_id.store(id);
        r = h.wait_for(30s);
      } catch (const client_error& e) {
        failure = std::string{"submit failed: "} + e.what();
      }
      double ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
      if (failure.empty()) {
        if (!r)
          failure = "no result in 30 s";
        else if (r->id != id)
          failure = "the result of task " + std::to_string(r->id);
        else if (r->status != outcome::completed)
          failure = std::string{to_string(r->status)} + ": " + r->error.message;
        else if (std::string(r->output.bytes.begin(), r->output.bytes.end()) != payload)
          failure = "output '" + std::string(r->output.bytes.begin(), r->output.bytes.end()) +
                    "', not its payload";
      }
      std::lock_guard<std::mutex> guard{mu};
      ++submitted;
      if (!failure.empty()) {
        failures.push_back("task " + std::to_string(id) + " (" + payload + "): " + failure);
        continue;
      }
      ++completed;
      if (phase.load() != p0) continue;  // straddles the start of the attack: in neither
      auto& v = p0 == quiet ? quiet_ms : attack_ms;
      if (p0 == stop || v.size() >= samples) continue;
      v.push_back(ms);
      if (p0 == attack) attack_started.push_back(t0);
    }
  }

  size_t taken(phase_t p) {
    std::lock_guard<std::mutex> guard{mu};
    return p == quiet ? quiet_ms.size() : attack_ms.size();
  }
};

/// The secured cluster with its head on TCP loopback (events stay on ipc://), a handshake
/// limit of 1 s, and room for a thousand and more connections.
class HostileTcpCluster : public SecuredCluster {
 protected:
  void SetUp() override {
    // A thousand idle connections take a descriptor each here and at the head (which inherits
    // this limit through troupe up).
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < 8192) {
      lim.rlim_cur = std::min<rlim_t>(8192, lim.rlim_max);
      setrlimit(RLIMIT_NOFILE, &lim);
    }
    getrlimit(RLIMIT_NOFILE, &lim);
    ASSERT_GE(lim.rlim_cur, 2 * idle_connections + 200)
        << "the descriptor limit (ulimit -n) is too low for " << idle_connections << " connections";
    {
      // A free port: bound by zmq and let go (no one else binds loopback ports here).
      zmq::context_t ctx;
      zmq::socket_t probe{ctx, zmq::socket_type::router};
      probe.set(zmq::sockopt::linger, 0);
      probe.bind("tcp://127.0.0.1:*");
      tcp_endpoint_ = probe.get(zmq::sockopt::last_endpoint);
    }
    port_ = uint16_t(std::stoi(tcp_endpoint_.substr(tcp_endpoint_.rfind(':') + 1)));
    SecuredCluster::SetUp();
    if (HasFatalFailure()) return;
    head_ = find_child(up_, {"head"});
    ASSERT_GT(head_, 0) << read_file(log_);
  }

  std::string head_endpoint() const override { return tcp_endpoint_; }
  std::string extra_config() const override {
    auto text = SecuredCluster::extra_config();
    auto at = text.find("head_key");
    at = text.find('\n', at) + 1;  // in [security], before the [[security.allow]] tables
    return text.insert(at, "handshake_ms = " + std::to_string(handshake_ms) + "\n");
  }

  std::string tcp_endpoint_;
  uint16_t port_ = 0;
  pid_t head_ = -1;
};

TEST_F(HostileTcpCluster, AGoodClientIsUnharmedByHostilePeers) {
  auto before = client_->status();
  std::map<std::string, wire::node_status> nodes_before;
  for (auto& n : before.nodes) nodes_before[n.name] = n;
  ASSERT_EQ(nodes_before.count("a") + nodes_before.count("b"), 2u);
  auto epoch_a = nodes_before["a"].epoch;

  zmq::context_t ctx;
  // The hostile connections: all let in (listed keys), all trying what their role may not.
  raw_peer bob{ctx, endpoint_, keys_of("bob")}, node_b{ctx, endpoint_, keys_of("b")},
      admin{ctx, endpoint_, keys_of("admin")};
  ASSERT_TRUE(bob.let_in() && node_b.let_in() && admin.let_in()) << diagnosis();
  client alice_victims{endpoint_, as("alice")};  // alice's longer tasks: the cancels' targets

  steady_load load;
  std::thread load_thread{[&] { load.run(endpoint_, as("alice")); }};
  struct join_on_exit {
    steady_load& load;
    std::thread& t;
    ~join_on_exit() {
      load.phase.store(steady_load::stop);
      if (t.joinable()) t.join();
    }
  } joiner{load, load_thread};

  auto victim = [] {
    task_spec s;
    s.kind = "sleep";
    s.params = {{"ms", int64_t{1500}}};  // open while bob cancels, however busy the machine
    return s;
  };
  // Each round, quiet or not, runs two of alice's sleeps beside the load: the same capacity is
  // taken in both phases.
  size_t victim_tasks = 0;
  auto victims = [&] {
    victim_tasks += 2;
    return alice_victims.submit_batch({victim(), victim()});
  };
  auto check_victims = [&](std::vector<task_handle>& hs) {
    for (auto& h : hs) {
      auto r = h.wait_for(30s);
      ASSERT_TRUE(r) << "alice's task " << h.id() << " has no result\n" << diagnosis();
      EXPECT_EQ(r->status, outcome::completed) << h.id() << ": " << r->error.message;
      EXPECT_TRUE(r->output.bytes.empty() && r->output.values.empty())
          << "alice's sleep " << h.id() << " ended with an output not its own";
    }
  };

  // Quiet phase: the load and the sleeps alone, until the load has its samples.
  long rss_quiet = proc_status_kb(head_, "VmRSS");
  auto quiet_deadline = steady::now() + 40s;
  while (load.taken(steady_load::quiet) < steady_load::samples && steady::now() < quiet_deadline) {
    auto hs = victims();
    check_victims(hs);
    if (HasFatalFailure()) return;
  }
  ASSERT_EQ(load.taken(steady_load::quiet), steady_load::samples) << diagnosis();

  long rss_before = proc_status_kb(head_, "VmRSS"), rss_peak = rss_before;
  long fds_before = fd_count(head_), fds_peak = fds_before;
  auto sample_head = [&] {
    rss_peak = std::max(rss_peak, proc_status_kb(head_, "VmRSS"));
    fds_peak = std::max(fds_peak, fd_count(head_));
  };
  ASSERT_GT(rss_before, 0);
  load.phase.store(steady_load::attack);

  std::mt19937_64 rng{42};
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = char(rng());
    return s;
  };
  auto expect_forbidden = [](const std::string& what, const std::string& reply) {
    EXPECT_EQ(reply.rfind("forbidden", 0), 0u) << what << ": " << reply;
  };
  auto expect_too_large_or_malformed = [](const std::string& what, const std::string& reply) {
    EXPECT_TRUE(reply.rfind("too_large", 0) == 0 || reply.rfind("malformed", 0) == 0)
        << what << ": " << reply;
  };

  // When each step of the attack began: the slowest round trips are told by step.
  std::vector<std::pair<steady::time_point, std::string>> steps;
  auto step = [&](const std::string& name) { steps.emplace_back(steady::now(), name); };
  size_t rounds = 0;
  std::vector<long> rss_by_round;  // the head's VmRSS after each round, kB: a leak would climb
  double idle_accept_ms = 0;       // the longest it took the head to take in the 1,000
  auto attack_deadline = steady::now() + 60s;
  while ((rounds == 0 || load.taken(steady_load::attack) < steady_load::samples) &&
         steady::now() < attack_deadline && !HasFailure()) {
    ++rounds;
    auto hs = victims();
    std::vector<task_id> targets{hs[0].id(), hs[1].id()};
    if (auto id = load.last_id.load()) targets.push_back(id);

    step("forbidden and oversized messages");
    // 3. Cancels of alice's tasks by bob: refused for those still open, all left alone.
    {
      auto id = bob.next_id();
      auto reply = bob.refusal(header(wire::msg_type::cancel, id, "bob"),
                               wire::encode(wire::cancel{targets}), id);
      expect_forbidden("bob cancels alice's tasks", reply);
      EXPECT_NE(reply.find("of another key left alone"), std::string::npos) << reply;
    }

    // 1. Forged results for alice's tasks, naming node a in its current epoch, with an output
    // that is not theirs, from a client key, node b's key and the admin key.
    wire::results forged;
    for (auto id : targets)
      for (int32_t worker : {0, 1}) {
        wire::attempt_result r;
        r.id = id;
        r.attempt = 1;
        r.worker = worker;
        r.code = errc::none;
        r.output.bytes = {'f', 'o', 'r', 'g', 'e', 'd'};
        forged.records.push_back(r);
      }
    for (auto* p : {&bob, &node_b, &admin}) {
      auto id = p->next_id();
      expect_forbidden(
          "results for node a",
          p->refusal(header(wire::msg_type::results, id, "a", epoch_a), wire::encode(forged), id));
    }

    // 2. Hijacking hellos: node a with the greatest epoch there is, from node b's key, a client
    // key and the admin key; and a bye, a heartbeat, a worker going down, naming node a.
    wire::hello hello;
    hello.node = "a";
    for (int i = 0; i < 2; ++i) {
      wire::worker_info w;
      w.name = "a-cpu" + std::to_string(i);
      w.capacity.cpu_slots = 1;
      hello.workers.push_back(w);
    }
    hello.kinds = {"echo", "noop", "sleep"};
    for (auto* p : {&node_b, &bob, &admin}) {
      auto id = p->next_id();
      expect_forbidden(
          "hello as node a, epoch 2^64-1",
          p->refusal(header(wire::msg_type::hello, id, "a", UINT64_MAX), wire::encode(hello), id));
    }
    {
      auto id = node_b.next_id();
      auto reply = node_b.refusal(header(wire::msg_type::bye, id, "a", epoch_a), "\x80", id);
      expect_forbidden("node b's key says bye for node a", reply);
      EXPECT_NE(reply.find("may not speak for node 'a'"), std::string::npos) << reply;
      id = node_b.next_id();
      expect_forbidden("node b's key sends a heartbeat for node a",
                       node_b.refusal(header(wire::msg_type::heartbeat, id, "a", epoch_a),
                                      wire::encode(wire::heartbeat{}), id));
      wire::worker_state down;
      down.worker = 0;
      down.up = false;
      down.crashed_task = targets[0];
      down.reason = "forged";
      id = node_b.next_id();
      expect_forbidden("node b's key says node a's worker 0 died",
                       node_b.refusal(header(wire::msg_type::worker_state, id, "a", epoch_a),
                                      wire::encode(down), id));
      id = bob.next_id();
      expect_forbidden("bob says bye for node a",
                       bob.refusal(header(wire::msg_type::bye, id, "a", epoch_a), "\x80", id));
    }

    // 6. Frames that declare 4 GiB (str32, bin32, array32, map32, ext32), in a body, deep in a
    // task, and in the header, from a client key and from node b's key as node b.
    const std::string str4g{"\xdb\xff\xff\xff\xff", 5}, bin4g{"\xc6\xff\xff\xff\xff", 5},
        arr4g{"\xdd\xff\xff\xff\xff", 5}, map4g{"\xdf\xff\xff\xff\xff", 5},
        ext4g{"\xc9\xff\xff\xff\xff\x01", 6};
    auto tasks = "\x81"s + fixstr("tasks"), task = "\x91\x82"s + fixstr("kind") + fixstr("echo");
    for (auto& body :
         {str4g, bin4g, arr4g, map4g, ext4g, tasks + arr4g,
          tasks + task + fixstr("payload") + bin4g, tasks + task + fixstr("params") + map4g}) {
      auto id = bob.next_id();
      expect_too_large_or_malformed(
          "a submit body declaring 4 GiB",
          bob.refusal(header(wire::msg_type::submit, id, "bob"), body, id));
    }
    auto submit_header = "\x86"s + fixstr("v") + "\x01" + fixstr("type") + fixstr("submit");
    for (auto& head : {str4g, map4g, submit_header + fixstr("from") + str4g}) {
      expect_too_large_or_malformed("a header declaring 4 GiB", bob.refusal(head, "\x80", 0));
    }
    {
      auto id = node_b.next_id();
      expect_too_large_or_malformed(
          "node b's results declaring 4 GiB of records",
          node_b.refusal(header(wire::msg_type::results, id, "b", nodes_before["b"].epoch),
                         std::string{"\x81\xa7records"} + arr4g, id));
    }
    sample_head();

    step("garbage handshakes");
    // 5. Garbage handshakes on plain TCP: random bytes, the NULL and PLAIN mechanisms, CURVE
    // with a garbage HELLO, CURVE with a command frame declaring 4 GiB. The head hangs up on
    // each; and a key it does not know (a client with the stranger's key) is refused.
    {
      tcp_sockets garbage{port_};
      ASSERT_TRUE(garbage.open(6));
      ASSERT_EQ(garbage.wait_taken_in(steady::now() + 20s), 6u);
      garbage.say(0, random_bytes(256));
      garbage.say(1, "\xff" + random_bytes(200));
      auto null_ready = "\x05READY\x0bSocket-Type"s + "\0\0\0\x06"s + "DEALER";
      garbage.say(2, greeting("NULL") + command_frame(null_ready));
      garbage.say(3, greeting("PLAIN") +
                         command_frame("\x05HELLO"s + "\x05" + "alice" + "\x06" + "secret"));
      garbage.say(4, greeting("CURVE") + command_frame("\x05HELLO\x01\x00"s + random_bytes(192)));
      garbage.say(5, greeting("CURVE") + "\x06\x00\x00\x00\x01\x00\x00\x00\x00"s + "\x05HELLO");
      auto closed =
          garbage.wait_closed(steady::now() + std::chrono::milliseconds(handshake_ms) + 20s);
      EXPECT_EQ(closed, 6u) << "the head kept a garbage handshake open\n" << diagnosis();
      client stranger{endpoint_, as("stranger")};
      std::string why = "(no error)";
      try {
        stranger.status();
      } catch (const client_error& e) {
        why = e.what();
      }
      EXPECT_NE(why.find("refused"), std::string::npos) << why;
    }
    sample_head();

    // 4. A thousand idle TCP connections: held open, saying nothing. The head serves on, and
    // hangs up on each after security.handshake_ms. They are opened in batches the head's
    // accept queue holds (zmq's listen backlog is 100): beyond it the kernel leaves a
    // connection half-open, established on this side only, until a SYN-ACK retransmission
    // (1, 3, 7, 15, 31 s) gets it in, which would measure TCP rather than the head.
    step("1,000 idle connections opened");
    {
      tcp_sockets idle{port_};
      constexpr size_t batch = 50;
      auto start = steady::now();
      size_t taken_in = 0;
      while (idle.size() < idle_connections) {
        ASSERT_TRUE(idle.open(std::min(batch, idle_connections - idle.size()))) << strerror(errno);
        taken_in = idle.wait_taken_in(steady::now() + 20s);
        if (taken_in < idle.size()) break;
        sample_head();
      }
      auto took = steady::now() - start;
      EXPECT_EQ(taken_in, idle_connections) << "the head did not accept them all in time";
      idle_accept_ms =
          std::max(idle_accept_ms, std::chrono::duration<double, std::milli>(took).count());
      auto s = client_->status();  // the admin's status, answered meanwhile
      EXPECT_GE(s.nodes.size(), 2u);
      sample_head();
      step("1,000 idle connections held and dropped");
      auto closed = idle.wait_closed(steady::now() + std::chrono::milliseconds(handshake_ms) + 20s);
      EXPECT_EQ(closed, idle_connections) << "idle connections the head kept past handshake_ms";
    }
    sample_head();
    step("waiting for alice's sleeps");
    rss_by_round.push_back(proc_status_kb(head_, "VmRSS"));
    check_victims(hs);
  }
  EXPECT_EQ(load.taken(steady_load::attack), steady_load::samples)
      << "the load got too few round trips in during the attack";
  load.phase.store(steady_load::stop);
  load_thread.join();

  // The head's descriptors go back down once the idle connections are dropped.
  long fds_after = fd_count(head_);
  for (auto deadline = steady::now() + 10s; fds_after > fds_before + 8 && steady::now() < deadline;
       fds_after = fd_count(head_))
    client_->status();  // a round trip, not a sleep: the head's io thread moves on meanwhile
  long rss_after = proc_status_kb(head_, "VmRSS");
  sample_head();

  double p99_quiet = quantile(load.quiet_ms, 0.99), p99_attack = quantile(load.attack_ms, 0.99);
  // The baseline has a floor. On a 2-core machine the attacker (this process: a thousand
  // sockets, their polls) shares the cores with the head, both nodes and whatever else runs
  // there, and p99 of 2,000 round trips is the 21st slowest: a handful of scheduler delays.
  // Measured with a build beside the test (load average 4-13), 40 runs: quiet p99 1.8-12 ms,
  // attack p99 4.8-17 ms, their ratio 0.7-3.7 (over 2 in 9 runs). Twice a 2 ms baseline would
  // measure the machine, not the head. With the floor, the check still fails when the attack
  // stalls the head: a round trip held up 50 ms or more in each of the attack's rounds (a
  // frame decoded or allocated at its declared size, a handshake done on the head's thread, the
  // good client queued behind hostile frames) is over 1% of the samples.
  constexpr double floor_ms = 25;
  double limit_ms = 2 * std::max(p99_quiet, floor_ms);
  std::ostringstream figures;
  figures << "rounds of attacks " << rounds << "; alice: " << load.submitted << " tasks, "
          << load.completed << " completed; round trip quiet p50 " << quantile(load.quiet_ms, 0.5)
          << " ms p99 " << p99_quiet << " ms max " << quantile(load.quiet_ms, 1)
          << " ms; attack p50 " << quantile(load.attack_ms, 0.5) << " ms p99 " << p99_attack
          << " ms max " << quantile(load.attack_ms, 1) << " ms (limit " << limit_ms
          << " ms); head RSS " << rss_before / 1024.0 << " -> " << rss_after / 1024.0
          << " MiB (peak sampled " << rss_peak / 1024.0 << " MiB, VmHWM "
          << proc_status_kb(head_, "VmHWM") / 1024.0 << " MiB); head fds " << fds_before
          << " -> peak " << fds_peak << " -> " << fds_after
          << "; 1,000 idle connections taken in within " << idle_accept_ms << " ms";
  {
    // The 20 slowest round trips of the attack phase (those above its p99), by the step of the
    // attack they began in.
    std::lock_guard<std::mutex> guard{load.mu};
    std::vector<size_t> order(load.attack_ms.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return load.attack_ms[x] > load.attack_ms[y]; });
    std::map<std::string, int> by_step;
    for (size_t k = 0; k < std::min<size_t>(20, order.size()); ++k) {
      auto t = load.attack_started[order[k]];
      std::string name = "before the first step";
      for (auto& [at, n] : steps)
        if (at <= t) name = n;
      ++by_step[name];
    }
    figures << "; head RSS in the quiet phase " << rss_quiet / 1024.0 << " -> "
            << rss_before / 1024.0 << " MiB for " << load.quiet_ms.size()
            << "+ of alice's tasks; after each round of the attack (MiB):";
    for (auto kb : rss_by_round) figures << " " << kb / 1024.0;
    figures << "; the 20 slowest attack round trips began during:";
    for (auto& [n, count] : by_step) figures << " " << n << " (" << count << ")";
  }
  std::cout << "[ figures  ] " << figures.str() << std::endl;
  RecordProperty("figures", figures.str());

  {
    std::lock_guard<std::mutex> guard{load.mu};
    std::string first;
    for (size_t i = 0; i < std::min<size_t>(load.failures.size(), 10); ++i)
      first += "\n  " + load.failures[i];
    EXPECT_TRUE(load.failures.empty())
        << load.failures.size() << " of alice's tasks did not complete as themselves:" << first
        << "\n"
        << diagnosis();
    EXPECT_EQ(load.completed, load.submitted);
  }
  EXPECT_LE(p99_attack, limit_ms) << figures.str();
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer freed memory stays in its quarantine (256 MB) and the good load alone
  // grows the head by hundreds of MB: RSS says nothing about the attack there.
  std::printf("[ skipped  ] head RSS growth under ASan: %s\n", figures.str().c_str());
#else
  EXPECT_LT(rss_after - rss_before, 64 * 1024) << figures.str();
#endif
  EXPECT_LE(fds_after, fds_before + 8) << figures.str();

  // The head answers, both nodes are still joined once, in the epochs they joined with.
  auto after = client_->status();
  for (auto& n : after.nodes) {
    EXPECT_EQ(n.state, "joined") << n.name;
    EXPECT_EQ(n.joins, 1u) << n.name;
    EXPECT_EQ(n.epoch, nodes_before[n.name].epoch) << n.name;
  }
  EXPECT_GE(after.frames_refused, before.frames_refused + rounds * 23) << figures.str();
  EXPECT_EQ(after.stale_frames, before.stale_frames);
  // None of the hostile frames created a task: the head counts alice's tasks only.
  EXPECT_EQ(after.stats.submitted, before.stats.submitted + load.submitted + victim_tasks);
}

}  // namespace
