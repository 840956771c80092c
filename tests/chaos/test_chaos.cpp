// The chaos suite: a cluster of processes (troupe up: a head and two nodes, on loopback) under a
// steady load while its head and nodes are killed -9 and frozen, then a checker in the style of
// Jepsen compares what the client was promised with what came back and with what the head
// finally holds:
//   lost        accepted tasks whose handle never ended, or ended without the head's record
//   duplicated  tasks whose record in the head differs from the one the client got
//   unexpected  tasks the head holds that the client was never given (a submit made twice)
// and measures per fault the detection time T_d (fault -> the cluster notices) and the recovery
// time T_r (fault -> a task completes again where the fault was).
//
// The short form (a few faults of each kind) runs in CI. TROUPE_CHAOS_MINUTES=N (or
// `./dev chaos --minutes N`) repeats the cycle of faults for N minutes and prints the table.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../support/processes.hpp"
#include "troupe/client.hpp"
#include "troupe/subscriber.hpp"

namespace {

using namespace troupe;
using namespace troupe::testing_support;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

double ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// What the subscriber saw, as (time it arrived, topic, node, incarnation).
struct seen_event {
  steady::time_point at;
  std::string topic, node;
  uint64_t incarnation = 0;
};

class event_log {
 public:
  void add(const event& e) {
    // Task events are many: of them only where they ran and when (recovery times).
    if (e.topic.rfind("task.", 0) == 0 && e.topic != "task.started") return;
    std::lock_guard<std::mutex> g{mu_};
    events_.push_back({steady::now(), e.topic, e.node, e.incarnation});
    cv_.notify_all();
  }
  /// A snapshot (at a head restart, or when the subscriber fell behind the ring) replaces the
  /// events it skipped: each node's state in it is kept as "snapshot.<state>", so that a rejoin
  /// whose node.joined event fell in the skipped part is still seen.
  void snapshot(const state_snapshot& s) {
    std::lock_guard<std::mutex> g{mu_};
    for (auto& [name, state] : s.nodes)
      events_.push_back({steady::now(), "snapshot." + state, name, 0});
    cv_.notify_all();
  }
  void new_incarnation(uint64_t now) {
    std::lock_guard<std::mutex> g{mu_};
    events_.push_back({steady::now(), "new_incarnation", "", now});
    cv_.notify_all();
  }
  /// The first event after `since` that `pred` accepts, waiting for it up to `limit`.
  template <class Pred>
  std::optional<seen_event> first_after(steady::time_point since, Pred pred,
                                        std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock{mu_};
    std::optional<seen_event> found;
    cv_.wait_for(lock, limit, [&] {
      for (auto& e : events_)
        if (e.at >= since && pred(e)) {
          found = e;
          return true;
        }
      return false;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<seen_event> events_;
};

/// Submits small batches at a steady pace until stopped, keeping every handle it was given.
class steady_load {
 public:
  explicit steady_load(const std::string& endpoint) {
    client_options co;
    co.name = "chaos-load";
    co.timeout = 60s;  // a submit waits through a restart of the head (it is sent again)
    client_ = std::make_unique<client>(endpoint, co);
    thread_ = std::thread([this] { run(); });
  }
  ~steady_load() { stop(); }
  void stop() {
    {
      std::lock_guard<std::mutex> g{mu_};
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::vector<task_handle> handles() {
    std::lock_guard<std::mutex> g{mu_};
    return handles_;
  }
  uint64_t submit_errors() const { return submit_errors_; }
  uint64_t duplicates() const { return client_->duplicates(); }

 private:
  void run() {
    std::unique_lock<std::mutex> lock{mu_};
    int64_t n = 0;
    while (!stopping_) {
      std::vector<task_spec> specs(20);
      for (auto& s : specs) {
        s.kind = "sleep";
        s.params = {{"ms", double(1 + (n++ % 3))}};
        s.max_retries = 50;  // node kills must not use a task's retries up
      }
      lock.unlock();
      try {
        auto hs = client_->submit_batch(std::move(specs));
        lock.lock();
        handles_.insert(handles_.end(), hs.begin(), hs.end());
      } catch (const client_error&) {
        lock.lock();
        ++submit_errors_;  // the tasks may have been accepted: the checker finds them
      }
      // The pace of the load (20 tasks per 25 ms), not a wait for an event.
      cv_.wait_for(lock, 25ms, [&] { return stopping_; });
    }
  }

  std::unique_ptr<client> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<task_handle> handles_;
  std::atomic<uint64_t> submit_errors_{0};
  std::thread thread_;
};

/// A network between a node and the head that can be cut: forwards TCP connections on a
/// loopback port to the head's Unix socket. cut_for(d) closes every forwarded connection (what
/// was in flight is lost) and refuses new ones for d: a partition, then it heals.
class cutting_proxy {
 public:
  explicit cutting_proxy(std::string unix_path) : target_(std::move(unix_path)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    thread_ = std::thread([this] { run(); });
  }
  ~cutting_proxy() {
    stop_ = true;
    (void)!write(wake_[1], "x", 1);
    thread_.join();
    for (auto& [a, b] : pairs_) close(a), close(b);
    close(listen_fd_);
    close(wake_[0]);
    close(wake_[1]);
  }
  int port() const { return port_; }
  void cut_for(std::chrono::milliseconds d) {
    cut_until_ = (steady::now() + d).time_since_epoch().count();
    (void)!write(wake_[1], "x", 1);
  }

 private:
  bool cut() const { return steady::now().time_since_epoch().count() < cut_until_.load(); }
  void run() {
    std::vector<char> buf(1 << 16);
    while (!stop_) {
      if (cut()) {  // the cable is out: nothing gets through, both ends see a closed connection
        for (auto& [a, b] : pairs_) close(a), close(b);
        pairs_.clear();
      }
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      for (auto& [a, b] : pairs_) fds.push_back({a, POLLIN, 0}), fds.push_back({b, POLLIN, 0});
      poll(fds.data(), fds.size(), 50);  // also to notice the end of a cut
      if (fds[1].revents & POLLIN) (void)!read(wake_[0], buf.data(), buf.size());
      if (fds[0].revents & POLLIN) {
        int in = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (in >= 0 && cut()) {
          close(in);
        } else if (in >= 0) {
          int out = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_un u{};
          u.sun_family = AF_UNIX;
          std::snprintf(u.sun_path, sizeof u.sun_path, "%s", target_.c_str());
          if (connect(out, reinterpret_cast<sockaddr*>(&u), sizeof u) == 0) {
            pairs_.emplace_back(in, out);
          } else {
            close(in), close(out);
          }
        }
      }
      std::vector<size_t> dead;
      size_t polled = (fds.size() - 2) / 2;  // not the pair just accepted: it was not polled
      for (size_t i = 0; i < polled; ++i) {
        for (int side = 0; side < 2; ++side) {
          auto& pfd = fds[2 + 2 * i + size_t(side)];
          if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) continue;
          int from = side ? pairs_[i].second : pairs_[i].first;
          int to = side ? pairs_[i].first : pairs_[i].second;
          auto n = read(from, buf.data(), buf.size());
          bool ok = n > 0;
          for (ssize_t at = 0; ok && at < n;) {
            // A socket whose other end closed: an error, not SIGPIPE for the whole test.
            auto w = send(to, buf.data() + at, size_t(n - at), MSG_NOSIGNAL);
            ok = w > 0;
            at += w;
          }
          if (!ok) {
            dead.push_back(i);
            break;
          }
        }
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        close(pairs_[*it].first), close(pairs_[*it].second);
        pairs_.erase(pairs_.begin() + long(*it));
      }
    }
  }

  std::string target_;
  int listen_fd_ = -1, port_ = 0, wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> cut_until_{0};
  std::vector<std::pair<int, int>> pairs_;
  std::thread thread_;
};

/// Per fault: T_d (fault -> noticed), T_h (noticed -> handled: the cluster is whole again, the
/// node back in placement or every node joined to the new head), T_r (-> work runs again).
struct fault_times {
  std::vector<double> detect_ms, handle_ms, recover_ms;
};

std::string percentiles(std::vector<double> v) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.0f / %.0f / %.0f", v[v.size() / 2],
                v[std::min(v.size() - 1, v.size() * 9 / 10)], v.back());
  return buf;
}

size_t count_entries(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); ++it)
    ++n;
  return n;
}

class Chaos : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "troupe_chaos_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    endpoint_ = "ipc://" + dir_ + "/head.ipc";
    config_ = dir_ + "/cluster.toml";
    proxy_ = std::make_unique<cutting_proxy>(dir_ + "/head.ipc");  // node b reaches the head here
    // Fast detection: a node silent for 3 heartbeats is suspect. troupe up restarts as often as
    // the suite kills.
    std::ofstream{config_} << "[cluster]\nhead = \"" << endpoint_ << "\"\n"
                           << "heartbeat_ms = 100\nsuspect_after_ms = 300\ndead_after_ms = 1500\n"
                           << "restart_delay_ms = 50\nevents = \"ipc://" << dir_
                           << "/events.ipc\"\n"
                           << "journal_keep_results = 10000000\n"
                           << "[supervision]\nintensity = 100000\nperiod_ms = 1000\n"
                           << "backoff_max_ms = 50\n"
                           << "[nodes.a]\ncpu = 2\n[nodes.b]\ncpu = 2\nhead = \"tcp://127.0.0.1:"
                           << proxy_->port() << "\"\n[log]\nlevel = \"info\"\n";
    log_ = dir_ + "/up.log";
    up_ = fork();
    ASSERT_GE(up_, 0);
    if (up_ == 0) {
      // A process group of its own: the frozen node's group must not be orphaned (which makes
      // the kernel send it SIGHUP) when whatever started this test goes away.
      setpgid(0, 0);
      // Out of the test's group, it would outlive a test that dies: stop it then.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      freopen(log_.c_str(), "w", stderr);
      dup2(fileno(stderr), fileno(stdout));
      execl(TROUPE_BINARY, "troupe", "up", "--config", config_.c_str(), nullptr);
      _exit(127);
    }
    client_options co;
    co.timeout = 5s;
    checker_ = std::make_unique<client>(endpoint_, co);
    ASSERT_TRUE(wait_joined()) << read_file(log_);
  }

  void TearDown() override {
    checker_.reset();
    proxy_.reset();
    if (up_ > 0) {
      kill(up_, SIGTERM);
      int status = 0;
      waitpid(up_, &status, 0);
    }
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  bool wait_joined(std::chrono::seconds limit = 60s) {
    auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
      try {
        auto s = checker_->status();
        bool all = !s.nodes.empty();
        for (auto& n : s.nodes) all = all && n.state == "joined";
        if (all) return true;
      } catch (const client_error&) {  // the head is (re)starting
      }
    }
    return false;
  }

  pid_t pid_of(const std::string& role) {
    return role == "head" ? find_child(up_, {"head"}) : find_child(up_, {"node", role});
  }

  static bool about(const seen_event& e, const std::string& node) { return e.node == node; }
  /// The node joined again: its event, or a snapshot taken after `gone` that shows it joined.
  static bool joined_again(const seen_event& e, const std::string& node, steady::time_point gone) {
    return about(e, node) &&
           (e.topic == "node.joined" || (e.topic == "snapshot.joined" && e.at > gone));
  }

  /// kill -9 of a node; T_d: the head notices (the node's workers go down, or it rejoins);
  /// T_r: a task runs there again, after it rejoined.
  void kill_node(const std::string& node) {
    auto pid = pid_of(node);
    ASSERT_GT(pid, 0) << read_file(log_);
    auto t = steady::now();
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    auto detected = events_.first_after(
        t,
        [&](const seen_event& e) {
          return about(e, node) &&
                 (e.topic == "node.left" || e.topic == "node.joined" || e.topic == "node.suspect");
        },
        30s);
    ASSERT_TRUE(detected) << "node " << node << " killed: nothing seen\n" << read_file(log_);
    auto rejoined = events_.first_after(
        t, [&](const seen_event& e) { return joined_again(e, node, detected->at); }, 30s);
    ASSERT_TRUE(rejoined) << "node " << node << " never rejoined\n" << read_file(log_);
    auto recovered = events_.first_after(
        rejoined->at,
        [&](const seen_event& e) { return about(e, node) && e.topic == "task.started"; }, 30s);
    ASSERT_TRUE(recovered) << "node " << node << " never ran a task again\n" << read_file(log_);
    node_kills_.detect_ms.push_back(ms_between(t, detected->at));
    node_kills_.handle_ms.push_back(std::max(0.0, ms_between(detected->at, rejoined->at)));
    node_kills_.recover_ms.push_back(ms_between(t, recovered->at));
  }

  /// SIGSTOP for 5 s, then SIGCONT. T_d: the head suspects it (within three heartbeats);
  /// T_r: after SIGCONT, a task runs there again (anything it finished meanwhile under its old
  /// epoch is refused: the head re-placed those tasks when it declared the node dead).
  void freeze_node(const std::string& node) {
    auto pid = pid_of(node);
    ASSERT_GT(pid, 0) << read_file(log_);
    auto t = steady::now();
    ASSERT_EQ(kill(pid, SIGSTOP), 0);
    auto detected = events_.first_after(
        t, [&](const seen_event& e) { return about(e, node) && e.topic == "node.suspect"; }, 30s);
    // Handled: declared dead, its tasks placed elsewhere (dead_after_ms).
    auto dead = events_.first_after(
        t, [&](const seen_event& e) { return about(e, node) && e.topic == "node.left"; }, 5s);
    // Thaw it whatever happened: a frozen node would hang the rest of the suite.
    auto thaw_at = t + 5s;
    while (steady::now() < thaw_at)
      events_.first_after(
          thaw_at, [](const seen_event&) { return false; }, std::chrono::seconds(1));
    // The time is taken first: a test thread descheduled right after SIGCONT (a busy machine)
    // would otherwise stamp the thaw after the rejoin it caused.
    auto thawed = steady::now();
    kill(pid, SIGCONT);
    ASSERT_TRUE(detected) << "node " << node << " frozen: never suspected\n" << read_file(log_);
    auto rejoined = events_.first_after(
        thawed, [&](const seen_event& e) { return joined_again(e, node, thawed); }, 30s);
    ASSERT_TRUE(rejoined) << "node " << node << " never rejoined after SIGCONT\n"
                          << read_file(log_);
    auto recovered = events_.first_after(
        rejoined->at,
        [&](const seen_event& e) { return about(e, node) && e.topic == "task.started"; }, 30s);
    ASSERT_TRUE(recovered) << "node " << node << " never ran a task after SIGCONT\n"
                           << read_file(log_);
    freezes_.detect_ms.push_back(ms_between(t, detected->at));
    if (dead) freezes_.handle_ms.push_back(ms_between(detected->at, dead->at));
    freezes_.recover_ms.push_back(ms_between(thawed, recovered->at));
  }

  /// kill -9 of the head; T_d: a subscriber sees the new incarnation (troupe up restarted it);
  /// T_r: a task completes again.
  void kill_head() {
    auto pid = pid_of("head");
    ASSERT_GT(pid, 0) << read_file(log_);
    auto t = steady::now();
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    auto detected = events_.first_after(
        t, [](const seen_event& e) { return e.topic == "new_incarnation"; }, 60s);
    ASSERT_TRUE(detected) << "head killed: no new incarnation seen\n" << read_file(log_);
    // Handled: both nodes joined the new head (asked of it: a subscriber that resynced from
    // a snapshot does not see the joins that came before it).
    std::optional<steady::time_point> whole;
    for (auto until = steady::now() + 30s; !whole && steady::now() < until;) {
      try {
        auto s = checker_->status();
        bool all = !s.nodes.empty();
        for (auto& n : s.nodes) all = all && n.state == "joined";
        if (all) whole = steady::now();
      } catch (const client_error&) {
      }
    }
    auto recovered = events_.first_after(
        detected->at,
        [&](const seen_event& e) {
          return e.topic == "task.started" && e.incarnation == detected->incarnation;
        },
        60s);
    ASSERT_TRUE(recovered) << "no task ran after the head's restart\n" << read_file(log_);
    head_kills_.detect_ms.push_back(ms_between(t, detected->at));
    if (whole) head_kills_.handle_ms.push_back(std::max(0.0, ms_between(detected->at, *whole)));
    head_kills_.recover_ms.push_back(ms_between(t, recovered->at));
  }

  /// The network between node b and the head cut for 3 s (past cluster.dead_after_ms), then
  /// healed. T_d: the head suspects it; T_r: after the heal, a task runs there again.
  void partition_node_b() {
    auto t = steady::now();
    proxy_->cut_for(3s);
    auto detected = events_.first_after(
        t, [&](const seen_event& e) { return about(e, "b") && e.topic == "node.suspect"; }, 30s);
    ASSERT_TRUE(detected) << "node b cut off: never suspected\n" << read_file(log_);
    auto dead = events_.first_after(
        t, [&](const seen_event& e) { return about(e, "b") && e.topic == "node.left"; }, 5s);
    auto healed = t + 3s;
    auto rejoined = events_.first_after(
        healed, [&](const seen_event& e) { return joined_again(e, "b", healed); }, 30s);
    ASSERT_TRUE(rejoined) << "node b never rejoined after the partition\n" << read_file(log_);
    auto recovered = events_.first_after(
        rejoined->at,
        [&](const seen_event& e) { return about(e, "b") && e.topic == "task.started"; }, 30s);
    ASSERT_TRUE(recovered) << "node b never ran a task after the partition\n" << read_file(log_);
    partitions_.detect_ms.push_back(ms_between(t, detected->at));
    if (dead) partitions_.handle_ms.push_back(ms_between(detected->at, dead->at));
    partitions_.recover_ms.push_back(ms_between(healed, recovered->at));
  }

  /// One round of every fault, with a second of steady load between faults.
  void cycle() {
    auto pause = [&] {
      events_.first_after(
          steady::now() + 1s, [](const seen_event&) { return false; }, 1s);
    };
    for (auto node : {"a", "b"}) {
      kill_node(node);
      if (HasFatalFailure()) return;
      pause();
    }
    kill_head();
    if (HasFatalFailure()) return;
    pause();
    freeze_node("a");
    if (HasFatalFailure()) return;
    pause();
    partition_node_b();
    if (HasFatalFailure()) return;
    pause();
    kill_node("b");
    if (HasFatalFailure()) return;
    pause();
  }

  std::string dir_, endpoint_, config_, log_;
  pid_t up_ = -1;
  std::unique_ptr<cutting_proxy> proxy_;
  std::unique_ptr<client> checker_;
  event_log events_;
  fault_times head_kills_, node_kills_, freezes_, partitions_;
};

TEST_F(Chaos, KilledAndFrozenProcessesLoseNoTaskAndDuplicateNone) {
  double minutes = 0;
  if (auto* m = std::getenv("TROUPE_CHAOS_MINUTES")) minutes = std::atof(m);

  // Resources of a fresh cluster, for the check at the end.
  auto head_pid = pid_of("head");
  ASSERT_GT(head_pid, 0);
  auto fds_before = count_entries("/proc/" + std::to_string(head_pid) + "/fd");
  auto threads_before = count_entries("/proc/" + std::to_string(head_pid) + "/task");

  subscriber_options so;
  so.on_new_incarnation = [&](uint64_t, uint64_t now) { events_.new_incarnation(now); };
  so.on_snapshot = [&](const state_snapshot& s) { events_.snapshot(s); };
  subscriber sub{endpoint_, [&](const event& e) { events_.add(e); }, so};
  auto started = steady::now();
  steady_load load{endpoint_};
  int cycles = 0;
  do {
    cycle();
    ASSERT_FALSE(HasFatalFailure());
    ++cycles;
  } while (minutes > 0 && steady::now() - started < std::chrono::duration<double>(minutes * 60));
  kill_head();  // once more, with the load still on, right before it stops
  ASSERT_FALSE(HasFatalFailure());
  load.stop();

  // Every accepted task ends: its handle, within a bound.
  auto handles = load.handles();
  std::set<task_id> accepted;
  std::map<task_id, task_result> got;
  size_t completed = 0, failed = 0, lost = 0;
  auto deadline = steady::now() + 120s;
  for (auto& h : handles) {
    accepted.insert(h.id());
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    auto r = h.wait_for(std::max(left, 0ms));
    if (!r) {
      ++lost;
      continue;
    }
    got[h.id()] = *r;
    (r->ok() ? completed : failed) += 1;
  }
  // The head's own records, asked for every id it may have handed out.
  task_id max_id = accepted.empty() ? 0 : *accepted.rbegin();
  size_t duplicated = 0, unexpected = 0, unrecorded = 0;
  std::vector<task_id> all;
  for (task_id id = 1; id <= max_id + 1000; ++id) all.push_back(id);
  for (size_t at = 0; at < all.size(); at += 50000) {
    std::vector<task_id> part(all.begin() + long(at),
                              all.begin() + long(std::min(all.size(), at + 50000)));
    auto reply = checker_->fetch(part);
    for (auto& r : reply.finished) {
      if (!accepted.count(r.id)) {
        ++unexpected;
        continue;
      }
      auto i = got.find(r.id);
      if (i != got.end() && (i->second.status != r.status || i->second.error.code != r.error.code))
        ++duplicated;
    }
    for (auto id : reply.pending)
      if (!accepted.count(id)) ++unexpected;
    for (auto id : reply.unknown)
      if (accepted.count(id)) ++unrecorded;
  }
  lost += unrecorded;

  // Every resource back to its baseline within 10 s of idle.
  bool idle = false;
  auto idle_by = steady::now() + 10s;
  while (!idle && steady::now() < idle_by) {
    auto s = checker_->status();
    idle = s.stats.queued == 0 && s.stats.in_flight == 0;
  }
  head_pid = pid_of("head");
  auto fds_after = count_entries("/proc/" + std::to_string(head_pid) + "/fd");
  auto threads_after = count_entries("/proc/" + std::to_string(head_pid) + "/task");

  std::printf(
      "\nchaos: %.1f min, %d cycle(s): %zu head kills, %zu node kills, %zu node freezes (5 s), "
      "%zu partitions (3 s)\n",
      ms_between(started, steady::now()) / 60000, cycles, head_kills_.detect_ms.size(),
      node_kills_.detect_ms.size(), freezes_.detect_ms.size(), partitions_.detect_ms.size());
  std::printf(
      "| accepted | completed | failed | lost | duplicated | unexpected | re-sent twice |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %zu | %zu | %zu | %zu | %zu | %zu | %llu |\n", accepted.size(), completed, failed,
              lost, duplicated, unexpected, (unsigned long long)load.duplicates());
  std::printf(
      "\n| fault | count | T_d ms (p50 / p90 / max) | T_h ms (p50 / p90 / max) | T_r ms (p50 / "
      "p90 / max) |\n");
  std::printf("|---|---:|---|---|---|\n");
  for (auto& [name, f] : {std::pair<const char*, fault_times&>{"head kill -9", head_kills_},
                          {"node kill -9", node_kills_},
                          {"node SIGSTOP 5 s", freezes_},
                          {"partition 3 s", partitions_}})
    std::printf("| %s | %zu | %s | %s | %s |\n", name, f.detect_ms.size(),
                percentiles(f.detect_ms).c_str(), percentiles(f.handle_ms).c_str(),
                percentiles(f.recover_ms).c_str());
  std::printf(
      "\nhead after the run: %zu fds (fresh: %zu), %zu threads (fresh: %zu); idle: %s; "
      "submits that threw: %llu\n",
      fds_after, fds_before, threads_after, threads_before, idle ? "yes" : "no",
      (unsigned long long)load.submit_errors());

  EXPECT_GT(accepted.size(), 0u);
  EXPECT_EQ(lost, 0u) << read_file(log_);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(unexpected, 0u);
  EXPECT_EQ(failed, 0u) << "with 50 retries each, no task should fail";
  EXPECT_TRUE(idle);
  EXPECT_LE(fds_after, fds_before + 4);
  EXPECT_LE(threads_after, threads_before + 2);
  // suspect_after_ms is 3 heartbeats; a tick of the head's timer more at most.
  for (auto ms : freezes_.detect_ms)
    EXPECT_LE(ms, 300 + 2 * 100) << "suspected within 3 heartbeats";
  for (auto ms : partitions_.detect_ms)
    EXPECT_LE(ms, 300 + 2 * 100) << "suspected within 3 heartbeats";
}

}  // namespace
