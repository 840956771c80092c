// A poisoned GPU context in a cluster: the node whose GPU faulted exits, `troupe up` starts it
// again with a fresh context, and its GPU worker takes work again. The faulting task costs one
// attempt. (In one process the context cannot be recovered: see CudaWorker.Poisoned...)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "troupe/client.hpp"
#include "troupe/kernels/gpu_discovery.hpp"
#include "troupe/model/devices.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The troupe binary: $TROUPE_BIN (a GPU host runs a bundle), else the one built beside us.
std::string troupe_binary() {
  auto* env = std::getenv("TROUPE_BIN");
  return env && *env ? env : TROUPE_BINARY;
}

}  // namespace

TEST(CudaCluster, PoisonedContextRestartsTheNodeAndItsGpuWorkerComesBack) {
  auto inv = discover_gpus();
  if (inv.gpus.empty()) GTEST_SKIP() << "no GPU: " << inv.note;
  auto dir = ::testing::TempDir() + "troupe_gpu_cluster_" + std::to_string(getpid());
  mkdir(dir.c_str(), 0700);
  auto endpoint = "ipc://" + dir + "/head.ipc", config = dir + "/cluster.toml",
       log = dir + "/up.log";
  std::ofstream{config} << "[cluster]\nhead = \"" << endpoint << "\"\nhead_cpu = 0\n"
                        << "heartbeat_ms = 100\nsuspect_after_ms = 2000\ndead_after_ms = 5000\n"
                        << "restart_delay_ms = 100\nevents = \"\"\n"
                        << "[nodes.g]\ncpu = 1\ncuda = [0]\n[log]\nlevel = \"info\"\n";
  pid_t up = fork();
  ASSERT_GE(up, 0);
  if (up == 0) {
    freopen(log.c_str(), "a", stderr);
    freopen(log.c_str(), "a", stdout);  // spdlog writes here
    auto bin = troupe_binary();
    execl(bin.c_str(), "troupe", "up", "--config", config.c_str(), nullptr);
    _exit(127);
  }
  client_options co;
  co.timeout = 20s;
  client c{endpoint, co};
  auto wait_for = [&](auto pred, wire::status* last = nullptr) {
    auto deadline = clock::now() + 60s;
    while (clock::now() < deadline) {
      try {
        auto s = c.status();
        if (last) *last = s;
        if (pred(s)) return true;
      } catch (const client_error&) {  // the head is not up yet: the status timed out
      }
    }
    return false;
  };
  ASSERT_TRUE(wait_for([](const wire::status& s) {
    return s.nodes.size() == 1 && s.nodes[0].state == "joined";
  })) << read_file(log);

  task_spec gemm;
  gemm.kind = "gemm";
  gemm.params = {{"size", int64_t{512}}, {"seed", int64_t{3}}};
  gemm.needs.gpu_count = 1;
  // What the head sees, for a failure message.
  auto seen = [&] {
    std::ostringstream o;
    try {
      auto s = c.status();
      o << "queued " << s.stats.queued << ", in flight " << s.stats.in_flight << "\n";
      for (auto& w : s.stats.workers)
        o << "  " << w.name << " " << w.device << " " << w.state << " tasks " << w.tasks
          << " restarts " << w.restarts << "\n";
    } catch (const std::exception& e) {
      o << "no status: " << e.what() << "\n";
    }
    return o.str() + read_file(log);
  };
  auto before = c.submit(gemm).wait_for(60s);
  ASSERT_TRUE(before) << seen();
  ASSERT_TRUE(before->ok()) << before->error.message << "\n" << read_file(log);

  task_spec fault;  // faults on the GPU on its first attempt, succeeds on the second
  fault.kind = "fail";
  fault.params = {{"error", std::string{"gpu_fault"}}, {"first_attempts", int64_t{1}}};
  fault.needs.gpu_count = 1;
  auto r = c.submit(fault).wait_for(120s);
  ASSERT_TRUE(r) << seen();
  EXPECT_EQ(r->status, outcome::completed) << r->error.message << "\n" << seen();
  EXPECT_EQ(r->attempts, 2u);

  wire::status s;
  ASSERT_TRUE(wait_for(
      [](const wire::status& st) {
        return st.nodes[0].joins == 2 && st.nodes[0].state == "joined";
      },
      &s))
      << "the node was not restarted\n"
      << read_file(log);
  auto after = c.submit(gemm).wait_for(60s);
  ASSERT_TRUE(after) << seen();
  ASSERT_TRUE(after->ok()) << after->error.message << "\n" << read_file(log);
  EXPECT_EQ(after->output.values.get_double("checksum", 0),
            before->output.values.get_double("checksum", 1))
      << "the fresh context computes what the old one did";

  kill(up, SIGTERM);
  int status = 0;
  waitpid(up, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
}
