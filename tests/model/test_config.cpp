#include <gtest/gtest.h>

#include <fstream>

#include "troupe/model/config.hpp"
#include "troupe/model/devices.hpp"

using namespace troupe;

namespace {
config_error error_of(const std::string& text) {
  try {
    parse_config(text, "bad.toml");
  } catch (const config_error& e) {
    return e;
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return config_error("", 0, "", "");
}
}  // namespace

TEST(Config, ShippedLocalTomlHoldsTheDefaults) {
  auto cfg = load_config(TROUPE_SOURCE_DIR "/config/local.toml");
  runtime_config d;
  EXPECT_EQ(cfg.cpu_workers, d.cpu_workers);
  EXPECT_EQ(cfg.worker_prefetch, d.worker_prefetch);
  EXPECT_EQ(cfg.worker_backlog, d.worker_backlog);
  EXPECT_EQ(cfg.queue_bound, d.queue_bound);
  EXPECT_EQ(cfg.order, d.order);
  EXPECT_EQ(cfg.aging_interval, d.aging_interval);
  EXPECT_EQ(cfg.max_retries, d.max_retries);
  EXPECT_EQ(cfg.retry_backoff, d.retry_backoff);
  EXPECT_EQ(cfg.placement, d.placement);
  EXPECT_EQ(cfg.restart_intensity, d.restart_intensity);
  EXPECT_EQ(cfg.restart_period, d.restart_period);
  EXPECT_EQ(cfg.heartbeat_interval, d.heartbeat_interval);
  EXPECT_EQ(cfg.heartbeat_timeout, d.heartbeat_timeout);
  EXPECT_EQ(cfg.log_level, d.log_level);
  EXPECT_EQ(cfg.cuda, d.cuda);
  EXPECT_EQ(cfg.gpu_memory_headroom_bytes, d.gpu_memory_headroom_bytes);
  EXPECT_EQ(cfg.gpu_cache_bytes, d.gpu_cache_bytes);
  EXPECT_EQ(cfg.cuda_streams, d.cuda_streams);
  EXPECT_EQ(cfg.batching_enabled, d.batching_enabled);
  EXPECT_EQ(cfg.batch_max_tasks, d.batch_max_tasks);
  EXPECT_EQ(cfg.batch_max_delay, d.batch_max_delay);
}

TEST(Config, ReadsValues) {
  auto cfg = parse_config("[queue]\nbound = 10\norder = \"fifo\"\n[workers]\ncpu = 3\n", "t.toml");
  EXPECT_EQ(cfg.queue_bound, 10u);
  EXPECT_EQ(cfg.order, queue_order::fifo);
  EXPECT_EQ(cfg.cpu_workers, 3u);
}

TEST(Config, CudaSelectionIsAllNoneOrAListOfIndices) {
  EXPECT_EQ(parse_config("[workers]\ncuda = \"none\"\n", "t").cuda, cuda_selection::none);
  auto cfg = parse_config("[workers]\ncuda = [0, 2]\n", "t");
  EXPECT_EQ(cfg.cuda, cuda_selection::list);
  EXPECT_EQ(cfg.cuda_devices, (std::vector<int32_t>{0, 2}));
  auto e = error_of("[workers]\ncuda = \"some\"\n");
  EXPECT_EQ(e.key(), "workers.cuda");
}

TEST(Config, UnknownGpuIndexIsAnErrorNamingTheKey) {
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.cuda = cuda_selection::list;
  cfg.cuda_devices = {7};
  gpu_inventory none;
  none.note = "no CUDA device found";
  try {
    layout_workers(cfg, none);
    FAIL();
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "workers.cuda");
    EXPECT_NE(std::string{e.what()}.find("GPU 7"), std::string::npos) << e.what();
  }
}

TEST(WorkerLayout, CpuWorkersThenOneWorkerPerSelectedGpu) {
  runtime_config cfg;
  cfg.cpu_workers = 2;
  cfg.worker_memory_bytes = 1000;
  cfg.gpu_memory_headroom_bytes = 100;
  cfg.gpu_cache_bytes = 50;
  gpu_inventory inv;
  inv.gpus = {{0, "A", 9, 0, 1000, 900}, {1, "B", 9, 0, 2000, 1900}};
  auto w = layout_workers(cfg, inv);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].name, "cpu-0");
  EXPECT_EQ(w[2].name, "cuda-0");
  EXPECT_EQ(w[3].device, device_class::cuda);
  EXPECT_EQ(w[3].device_index, 1);
  EXPECT_EQ(w[3].capacity.gpu_memory_bytes, 1850u);  // total minus headroom minus cache
  cfg.cuda = cuda_selection::none;
  EXPECT_EQ(layout_workers(cfg, inv).size(), 2u);
}

TEST(Config, UnknownKeyNamesFileLineAndKey) {
  auto e = error_of("[queue]\nbound = 10\nbuond = 3\n");
  EXPECT_EQ(e.source(), "bad.toml");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.key(), "queue.buond");
  EXPECT_NE(std::string{e.what()}.find("bad.toml:3"), std::string::npos) << e.what();
}

TEST(Config, WrongTypeAndRangeNameTheKey) {
  auto e = error_of("[workers]\ncpu = \"many\"\n");
  EXPECT_EQ(e.key(), "workers.cpu");
  EXPECT_EQ(e.line(), 2);
  EXPECT_NE(std::string{e.what()}.find("integer"), std::string::npos);
  e = error_of("\n[queue]\nbound = 0\n");
  EXPECT_EQ(e.key(), "queue.bound");
  EXPECT_EQ(e.line(), 3);
  e = error_of("[balancer]\npolicy = \"random\"\n");
  EXPECT_NE(std::string{e.what()}.find("least_loaded"), std::string::npos) << e.what();
}

TEST(Config, UnknownSectionAndSyntaxErrorsAreReported) {
  auto e = error_of("[quue]\nbound = 1\n");
  EXPECT_EQ(e.key(), "quue");
  e = error_of("[queue]\nbound = = 1\n");
  EXPECT_EQ(e.line(), 2);
}

TEST(Config, CrossFieldRulesAreChecked) {
  auto e = error_of("[monitor]\nheartbeat_ms = 100\nheartbeat_timeout_ms = 50\n");
  EXPECT_EQ(e.key(), "monitor.heartbeat_timeout_ms");
}

TEST(Config, MissingFileIsAConfigError) {
  EXPECT_THROW(load_config("/nonexistent/troupe.toml"), config_error);
}

TEST(Config, CommandLineOverridesUseTheSameValidation) {
  runtime_config cfg;
  apply_override(cfg, "queue.order=fifo");
  apply_override(cfg, "workers.cpu=7");
  EXPECT_EQ(cfg.order, queue_order::fifo);
  EXPECT_EQ(cfg.cpu_workers, 7u);
  try {
    apply_override(cfg, "workers.cpu=-1");
    FAIL();
  } catch (const config_error& e) {
    EXPECT_EQ(e.source(), "--set");
    EXPECT_EQ(e.key(), "workers.cpu");
  }
  EXPECT_THROW(apply_override(cfg, "nodot=3"), config_error);
  EXPECT_THROW(apply_override(cfg, "queue.nokey=3"), config_error);
}

TEST(ClusterConfig, ReadsTheClusterSectionAndNodes) {
  auto cfg = parse_config(
      "[cluster]\nhead = \"ipc:///tmp/h\"\nheartbeat_ms = 50\nsuspect_after_ms = 200\n"
      "dead_after_ms = 900\n[nodes.a]\ncpu = 3\n[nodes.gpu-1]\ncpu = 0\ncuda = [0, 1]\n",
      "c.toml");
  EXPECT_EQ(cfg.cluster.head_endpoint, "ipc:///tmp/h");
  EXPECT_EQ(cfg.cluster.heartbeat_interval, std::chrono::milliseconds(50));
  ASSERT_EQ(cfg.cluster.nodes.size(), 2u);
  EXPECT_EQ(cfg.cluster.nodes[0].name, "a");
  EXPECT_EQ(cfg.cluster.nodes[0].cpu_workers, 3u);
  auto gpu = resolve(node_view(cfg, "gpu-1", "c.toml"));
  EXPECT_EQ(gpu.cpu_workers, 0u);  // cpu = 0 on a node means none, not one per core
  EXPECT_EQ(gpu.cuda_devices, (std::vector<int32_t>{0, 1}));
  auto head = resolve(head_view(cfg));
  EXPECT_EQ(head.cpu_workers, 0u);
  EXPECT_EQ(head.cuda, cuda_selection::none);
}

TEST(ClusterConfig, MistakesNameTheKey) {
  EXPECT_EQ(error_of("[cluster]\nhead = \"127.0.0.1:5555\"\n").key(), "cluster.head");
  EXPECT_EQ(error_of("[cluster]\nhead = \"udp://x:1\"\n").key(), "cluster.head");
  EXPECT_EQ(error_of("[nodes.a]\ncpu = 1\ngpus = 2\n").key(), "nodes.a.gpus");
  EXPECT_EQ(error_of("[nodes.a]\ncuda = \"all\"\n").key(), "nodes.a.cuda");
  EXPECT_EQ(error_of("[nodes.a]\ncpu = 0\n").key(), "nodes.a");
  EXPECT_EQ(error_of("[nodes.\"a b\"]\ncpu = 1\n").key(), "nodes.a b");
  auto e = error_of("[cluster]\nsuspect_after_ms = 500\ndead_after_ms = 400\n");
  EXPECT_EQ(e.key(), "cluster.dead_after_ms");
  EXPECT_EQ(error_of("[nodes.a]\ncpu = 1\n[nodes.b]\ncpu = -1\n").line(), 4);
  try {
    node_view(parse_config("[nodes.a]\ncpu = 1\n", "c.toml"), "z", "c.toml");
    FAIL() << "unknown node accepted";
  } catch (const config_error& err) {
    EXPECT_EQ(err.key(), "nodes.z");
    EXPECT_NE(std::string{err.what()}.find("declared: a"), std::string::npos) << err.what();
  }
}

TEST(ClusterConfig, ShippedClusterFileParses) {
  auto cfg = load_config(TROUPE_SOURCE_DIR "/config/cluster-3.toml");
  ASSERT_EQ(cfg.cluster.nodes.size(), 2u);
  EXPECT_EQ(cfg.cluster.head_endpoint, "tcp://127.0.0.1:5555");
}
