// Per-client bounds of a head (docs/limits-and-timeouts.md, "Per peer"): tasks in flight,
// submit rate and idempotency keys. A head with workers of its own (head_cpu), no nodes: one
// process is enough.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "cluster_fixture.hpp"

namespace {

using namespace troupe;
using namespace std::chrono_literals;
using namespace troupe::testing_support;

/// `troupe head` of a cluster file with these [cluster] lines, stopped at the end.
class lone_head {
 public:
  explicit lone_head(const std::string& cluster_lines) {
    auto dir = temp_dir();
    endpoint_ = "ipc://" + dir + "/bounds.ipc";
    auto config = dir + "/bounds.toml";
    log_ = dir + "/bounds.log";
    std::ofstream{config} << "[cluster]\nhead = \"" << endpoint_
                          << "\"\nhead_cpu = 2\nevents = \"\"\njournal = \"off\"\n"
                          << cluster_lines;
    pid_ = fork();
    if (pid_ == 0) {
      freopen(log_.c_str(), "w", stderr);
      execl(TROUPE_BINARY, "troupe", "head", "--config", config.c_str(), nullptr);
      _exit(127);
    }
  }
  ~lone_head() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  const std::string& endpoint() const { return endpoint_; }
  std::string log() const { return read_file(log_); }

 private:
  std::string endpoint_, log_;
  pid_t pid_ = -1;
};

TEST(ClientBounds, ASubmitOverTheClientsInFlightBoundIsCutAndTheRestRejectedNamingIt) {
  lone_head head{"client_max_in_flight = 5\n"};
  client_options co;
  co.timeout = 20s;
  client c{head.endpoint(), co};
  auto first = c.submit_batch(std::vector<task_spec>(8, sleep_task(300)));
  ASSERT_EQ(first.size(), 8u);
  size_t completed = 0, rejected = 0;
  for (auto& h : first) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r) << head.log();
    if (r->status == outcome::completed) ++completed;
    if (r->status == outcome::rejected) {
      ++rejected;
      EXPECT_EQ(r->error.code, errc::queue_full);
      EXPECT_NE(r->error.message.find("cluster.client_max_in_flight"), std::string::npos)
          << r->error.message;
    }
  }
  EXPECT_EQ(completed, 5u);
  EXPECT_EQ(rejected, 3u);
  // Its tasks over, the client has room again; another client had room all along.
  auto again = c.submit(sleep_task(1)).wait_for(30s);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, outcome::completed) << again->error.message;
}

TEST(ClientBounds, AClientOverItsSubmitRateHasTheRestOfItsSubmitRejected) {
  lone_head head{"client_submit_rate = 10\n"};
  client_options co;
  co.timeout = 20s;
  client c{head.endpoint(), co};
  // One second's worth in the bucket: 10 of the 25 go in, at once.
  auto handles = c.submit_batch(std::vector<task_spec>(25, sleep_task(0)));
  size_t completed = 0, rejected = 0;
  for (auto& h : handles) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r) << head.log();
    completed += r->status == outcome::completed;
    if (r->status == outcome::rejected) {
      ++rejected;
      EXPECT_NE(r->error.message.find("cluster.client_submit_rate"), std::string::npos)
          << r->error.message;
    }
  }
  EXPECT_GE(completed, 10u);  // (a little more refilled while the frame travelled)
  EXPECT_LE(completed, 11u);
  EXPECT_EQ(completed + rejected, 25u);
}

/// Submits one task per key, waits for them all, and returns their ids.
std::vector<task_id> keyed_run(client& c, const std::string& prefix, int n) {
  std::vector<task_spec> specs;
  for (int i = 0; i < n; ++i) {
    specs.push_back(sleep_task(0));
    specs.back().idempotency_key = prefix + std::to_string(i);
  }
  std::vector<task_id> ids;
  for (auto& h : c.submit_batch(std::move(specs))) {
    auto r = h.wait_for(30s);
    ids.push_back(r && r->status == outcome::completed ? h.id() : 0);
  }
  return ids;
}

TEST(ClientBounds, AClientFloodingIdempotencyKeysPushesOutOnlyItsOwn) {
  lone_head head{"client_max_keys = 3\n"};
  client_options co;
  co.timeout = 20s;
  client alice{head.endpoint(), co}, mallory{head.endpoint(), co};
  auto first = keyed_run(alice, "alice-", 2);
  ASSERT_NE(first[0], 0u) << head.log();
  ASSERT_NE(first[1], 0u) << head.log();
  auto flood = keyed_run(mallory, "m-", 50);
  ASSERT_EQ(std::count(flood.begin(), flood.end(), task_id{0}), 0) << head.log();
  // Alice's keys still name her tasks: sent again, they are not run again.
  EXPECT_EQ(keyed_run(alice, "alice-", 2), first);
  // Mallory's own oldest were forgotten (a new task); her newest 3 are kept.
  auto again = keyed_run(mallory, "m-", 1);
  EXPECT_NE(again[0], flood[0]);
  std::vector<task_spec> newest(1, sleep_task(0));
  newest[0].idempotency_key = "m-49";
  EXPECT_EQ(mallory.submit_batch(std::move(newest))[0].id(), flood[49]);
}

}  // namespace
