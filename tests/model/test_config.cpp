#include <gtest/gtest.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "troupe/model/config.hpp"
#include "troupe/model/config_keys.hpp"
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

// One table of keys: config/local.toml names every key, and the value it shows is the default.
TEST(Config, ShippedLocalTomlShowsEveryKeyWithItsDefault) {
  auto path = std::string{TROUPE_SOURCE_DIR "/config/local.toml"};
  auto file = toml::parse_file(path);
  auto shipped = config_keys(load_config(path));
  auto defaults = config_keys(runtime_config{});
  ASSERT_EQ(shipped.size(), defaults.size());
  ASSERT_GT(defaults.size(), 40u);
  for (size_t i = 0; i < defaults.size(); ++i) {
    auto& k = defaults[i];
    auto key = k.section + "." + k.name;
    EXPECT_TRUE(file.at_path(key)) << "config/local.toml does not name " << key;
    EXPECT_EQ(shipped[i].value, k.value) << key << " in config/local.toml is not the default";
  }
}

// Each key reads back what it writes: the table's reader and writer agree, for the defaults and
// for another value of each kind.
TEST(Config, EveryKeyReadsBackTheValueItWrites) {
  runtime_config other;
  other.queue_bound = 77;
  other.order = queue_order::fair;
  other.shares = {{"alice", 2.5}, {"client:bob", 1}};
  other.cuda = cuda_selection::list;
  other.cuda_devices = {0, 2};
  other.pressure_ratio = 0.25;
  other.batching_enabled = false;
  other.cluster.events_endpoint = "";
  for (auto& cfg : {runtime_config{}, other})
    for (auto& k : config_keys(cfg)) {
      auto text = "[" + k.section + "]\n" + k.name + " = " + k.value + "\n";
      auto parsed = parse_config(text, "t.toml");
      for (auto& back : config_keys(parsed)) {
        if (back.section == k.section && back.name == k.name) {
          EXPECT_EQ(back.value, k.value) << text;
        }
      }
    }
}

TEST(Config, ReadsValues) {
  auto cfg = parse_config("[queue]\nbound = 10\norder = \"fifo\"\n[workers]\ncpu = 3\n", "t.toml");
  EXPECT_EQ(cfg.queue_bound, 10u);
  EXPECT_EQ(cfg.order, queue_order::fifo);
  EXPECT_EQ(cfg.cpu_workers, 3u);
}

TEST(Config, QueueOrdersAndFairShares) {
  for (auto [name, order] : {std::pair{"deadline", queue_order::deadline},
                             {"shortest", queue_order::shortest},
                             {"fair", queue_order::fair}}) {
    auto cfg = parse_config(std::string{"[queue]\norder = \""} + name + "\"\n", "t.toml");
    EXPECT_EQ(cfg.order, order) << name;
    EXPECT_STREQ(to_string(cfg.order), name);
  }
  auto cfg = parse_config(
      "[queue]\norder = \"fair\"\n[queue.shares]\nalice = 2\n\"client:bob\" = 0.5\n", "t.toml");
  EXPECT_EQ(cfg.shares, (std::map<std::string, double>{{"alice", 2.0}, {"client:bob", 0.5}}));
  try {
    parse_config("[queue.shares]\nalice = 0\n", "t.toml");
    FAIL() << "a weight of 0 was taken";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "queue.shares");
    EXPECT_NE(std::string{e.what()}.find("alice"), std::string::npos) << e.what();
  }
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

TEST(ClusterConfig, TheFrameLimitFollowsTheLargestPayloadAndCannotBeSetApart) {
  auto cfg = parse_config("[limits]\nmax_payload_bytes = 1048576\n", "c.toml");
  EXPECT_EQ(cfg.max_payload_bytes, 1048576u);
  EXPECT_EQ(frame_limit_bytes(cfg.max_payload_bytes), 2097152u);
  auto e = error_of("[cluster]\nmax_frame_bytes = 16777216\n");
  EXPECT_EQ(e.key(), "cluster.max_frame_bytes");
  EXPECT_NE(std::string{e.what()}.find("limits.max_payload_bytes"), std::string::npos) << e.what();
  EXPECT_EQ(error_of("[limits]\nmax_payload_bytes = 10\n").key(), "limits.max_payload_bytes");
}

TEST(ClusterConfig, PluginsOfANodeAreTakenFromTheClusterFilesFolder) {
  auto dir = ::testing::TempDir() + "troupe_plugins_cfg";
  std::ofstream{dir + ".toml"} << "[nodes.a]\ncpu = 1\nplugins = [\"kinds/mine.so\", "
                                  "\"/opt/k/other.so\"]\n";
  auto cfg = load_config(dir + ".toml");
  auto* a = cfg.cluster.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->plugins.size(), 2u);
  EXPECT_EQ(a->plugins[0],
            std::filesystem::path(dir + ".toml").parent_path().string() + "/kinds/mine.so");
  EXPECT_EQ(a->plugins[1], "/opt/k/other.so");
  EXPECT_EQ(error_of("[nodes.a]\ncpu = 1\nplugins = \"mine.so\"\n").key(), "nodes.a.plugins");
  EXPECT_EQ(error_of("[nodes.a]\ncpu = 1\nplugins = [\"\"]\n").key(), "nodes.a.plugins");
}

TEST(ClusterConfig, IsolationIsProcessForANodeWithPluginsUnlessTheFileSaysOtherwise) {
  auto cfg = parse_config(
      "[nodes.a]\ncpu = 1\nplugins = [\"/k.so\"]\n[nodes.b]\ncpu = 1\n"
      "[nodes.c]\ncpu = 1\nplugins = [\"/k.so\"]\nisolation = \"thread\"\n"
      "[nodes.d]\ncpu = 1\nisolation = \"process\"\n",
      "c.toml");
  EXPECT_TRUE(cfg.cluster.find("a")->isolated());
  EXPECT_FALSE(cfg.cluster.find("b")->isolated());
  EXPECT_FALSE(cfg.cluster.find("c")->isolated());
  EXPECT_TRUE(cfg.cluster.find("d")->isolated());
  EXPECT_EQ(error_of("[nodes.a]\ncpu = 1\nisolation = \"vm\"\n").key(), "nodes.a.isolation");
}

// Where a node serves the graph outputs it keeps to other nodes (docs/graphs.md).
TEST(ClusterConfig, ANodeServesItsOutputsOnLoopbackWhenTheHeadIsLocalAndOnlyThere) {
  auto cfg = parse_config(
      "[cluster]\nhead = \"ipc:///tmp/h\"\n[nodes.a]\ncpu = 1\n[nodes.b]\ncpu = 1\n"
      "data_endpoint = \"off\"\n[nodes.c]\ncpu = 1\nhead = \"tcp://10.0.0.5:5555\"\n"
      "[nodes.d]\ncpu = 1\ndata_endpoint = \"tcp://127.0.0.1:7000\"\n",
      "c.toml");
  EXPECT_EQ(data_endpoint_of(cfg, "a"), "tcp://127.0.0.1:*") << "the head is on this machine";
  EXPECT_EQ(data_endpoint_of(cfg, "b"), "");
  EXPECT_EQ(data_endpoint_of(cfg, "c"), "") << "it reaches the head elsewhere: say where it is";
  EXPECT_EQ(data_endpoint_of(cfg, "d"), "tcp://127.0.0.1:7000");
  cfg.cluster.kept_output_bytes = 0;
  EXPECT_EQ(data_endpoint_of(cfg, "a"), "") << "nothing kept, nothing served";

  EXPECT_EQ(error_of("[nodes.a]\ncpu = 1\ndata_endpoint = \"tcp://*:7000\"\n").key(),
            "nodes.a.data_endpoint")
      << "other nodes cannot connect to a wildcard";
  auto routable =
      parse_config("[nodes.a]\ncpu = 1\ndata_endpoint = \"tcp://10.0.0.2:7000\"\n", "c.toml");
  try {
    data_endpoint_of(routable, "a");
    ADD_FAILURE() << "a routable data endpoint without keys";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "nodes.a.data_endpoint");
  }
  routable.cluster.security.insecure = true;
  EXPECT_EQ(data_endpoint_of(routable, "a"), "tcp://10.0.0.2:7000");
}

TEST(SecurityConfig, KeysAndTheAllowlistAreReadWithPathsFromTheFilesFolder) {
  auto dir =
      std::filesystem::temp_directory_path() / ("troupe-security-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto file = (dir / "cluster.toml").string();
  std::ofstream{file}
      << ("[security]\nhead_key = \"keys/head\"\nhandshake_ms = 2000\n"
          "[[security.allow]]\nrole = \"client\"\nname = \"alice\"\nkey = \"keys/alice.pub\"\n"
          "[[security.allow]]\nrole = \"subscriber\"\nname = \"dash\"\n"
          "key = \"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\"\n"
          "topics = [\"node.\", \"worker.\"]\n"
          "[nodes.a]\ncpu = 1\nkey = \"keys/a\"\n");
  auto cfg = load_config(file);
  std::filesystem::remove_all(dir);
  auto folder = dir.string() + "/";
  auto& sec = cfg.cluster.security;
  EXPECT_TRUE(sec.enabled());
  EXPECT_EQ(sec.head_key, folder + "keys/head");
  EXPECT_EQ(sec.handshake, std::chrono::milliseconds{2000});
  ASSERT_EQ(sec.allow.size(), 2u);
  EXPECT_EQ(sec.allow[0].role, peer_role::client);
  EXPECT_EQ(sec.allow[0].key, folder + "keys/alice.pub");
  EXPECT_EQ(sec.allow[1].key, "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");  // a key as it is
  EXPECT_EQ(sec.allow[1].topics, (std::vector<std::string>{"node.", "worker."}));
  EXPECT_TRUE(sec.allow[0].topics.empty());  // every topic
  EXPECT_EQ(cfg.cluster.nodes[0].key, folder + "keys/a");
}

TEST(SecurityConfig, MistakesNameTheKeyAndLine) {
  auto e = error_of("[security]\nhead_key = \"h\"\n[nodes.a]\ncpu = 1\n");
  EXPECT_EQ(e.key(), "nodes.a.key");  // with keys, every node needs one
  e = error_of("[security]\n[[security.allow]]\nrole = \"root\"\nname = \"x\"\nkey = \"k\"\n");
  EXPECT_EQ(e.key(), "security.allow.role");
  EXPECT_EQ(e.line(), 3);
  e = error_of("[[security.allow]]\nrole = \"client\"\nname = \"x\"\n");
  EXPECT_EQ(e.key(), "security.allow");  // no key
  e = error_of(
      "[[security.allow]]\nrole = \"client\"\nname = \"x\"\nkey = \"k\"\n"
      "[[security.allow]]\nrole = \"client\"\nname = \"x\"\nkey = \"j\"\n");
  EXPECT_EQ(e.key(), "security.allow.name");
  e = error_of("[[security.allow]]\nrole = \"node\"\nname = \"ghost\"\nkey = \"k\"\n");
  EXPECT_EQ(e.key(), "security.allow.name");             // a node key for a node the file lacks
  e = error_of("[limits]\nmax_payload_bytes = 2e48\n");  // a float where an integer goes
  EXPECT_EQ(e.key(), "limits.max_payload_bytes");
  e = error_of("[security]\ninsecure = \"yes\"\n");
  EXPECT_EQ(e.key(), "security.insecure");
  e = error_of(
      "[[security.allow]]\nrole = \"client\"\nname = \"x\"\nkey = \"k\"\ntopics = [\"a\"]\n");
  EXPECT_EQ(e.key(), "security.allow.topics");  // only subscribers are limited to topics
  e = error_of(
      "[[security.allow]]\nrole = \"subscriber\"\nname = \"x\"\nkey = \"k\"\ntopics = [1]\n");
  EXPECT_EQ(e.key(), "security.allow.topics");
}
