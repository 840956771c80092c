#pragma once
// Runtime configuration. Every key, its default and its meaning are documented in
// config/local.toml; this struct holds the same defaults.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/model/triggers.hpp"

namespace troupe {

enum class queue_order : uint8_t { fifo, priority, deadline, shortest, fair };
const char* to_string(queue_order o) noexcept;
enum class overflow_policy : uint8_t { reject, block };
enum class placement_policy : uint8_t { round_robin, least_loaded };
enum class restart_strategy : uint8_t { one_for_one };
enum class cuda_selection : uint8_t { all, none, list };

/// One node of a cluster file: a [nodes.NAME] table.
/// [reservations.NAME]: workers held for the tasks that name the reservation (their label
/// `reservation`), optionally only a few clients' (label `client`), optionally in a window.
struct reservation_config {
  std::string name;
  std::vector<std::string> workers;  ///< worker names as `troupe status` shows them
  std::vector<std::string> clients;  ///< empty: any client may name it
  /// Held from `from` (none: from the start) until `until` (none: for good). Tasks naming it
  /// may run on its workers until `until`, before `from` too.
  std::optional<std::chrono::system_clock::time_point> from, until;
  int line = 0;
};

struct node_config {
  std::string name;
  uint32_t cpu_workers = 1;
  cuda_selection cuda = cuda_selection::none;
  std::vector<int32_t> cuda_devices;
  uint64_t worker_memory_bytes = 0;  ///< 0: this machine's memory / its workers
  uint32_t fake_gpus = 0;            ///< tests only: runtime_config::fake_gpus of the node
  /// Shared libraries whose troupe_register_kinds the node calls at start (docs/plugins.md); a
  /// relative path is taken from the cluster file's folder.
  std::vector<std::string> plugins;
  /// isolation = "process": each CPU worker runs implementations in a child process of its own
  /// (a crash ends the child, not the node); "thread": on the worker's thread. Default: process
  /// when the node loads plugins, else thread.
  std::optional<bool> process_isolation;
  /// Where this node reaches the head, when not at cluster.head: through a proxy, a NAT or
  /// another interface of the head's machine. Empty: cluster.head.
  std::string head_endpoint;
  /// The node's key pair file (`troupe keygen`; docs/security.md): the node reads it, the head
  /// lets KEY.pub in as this node. Required when security.head_key is set.
  std::string key;
  /// Where the node serves the graph outputs it keeps to other nodes (docs/graphs.md). Empty:
  /// tcp://127.0.0.1:* when the head is on this machine (cluster.head on loopback or ipc://),
  /// else none; "off": none (its outputs reach other nodes through the head).
  std::string data_endpoint;
  bool isolated() const { return process_isolation.value_or(!plugins.empty()); }
  int line = 0;  ///< where the file declares it (for errors)
};

/// Who a key belongs to, and so what its connections may do (docs/security.md).
enum class peer_role : uint8_t { node, client, subscriber, admin };
const char* to_string(peer_role r) noexcept;

/// One [[security.allow]] entry: a public key let in under a role.
struct allowed_key {
  peer_role role = peer_role::client;
  std::string name;  ///< who it is, for logs and ownership (unique per role)
  std::string key;   ///< a public key file (relative to the config's folder) or the Z85 key
  /// Subscriber keys: the topic prefixes it may follow (events, replays and snapshots are cut
  /// to them); empty: every topic.
  std::vector<std::string> topics;
  int line = 0;
};

/// [security]: CURVE on every socket of the cluster, peers admitted by key.
struct security_config {
  /// The head's key pair file: the head reads it, every other process reads head_key + ".pub".
  /// Empty: no CURVE, and the head binds loopback or ipc:// only unless insecure is set.
  std::string head_key;
  bool insecure = false;                      ///< allow binding a routable address without keys
  std::chrono::milliseconds handshake{5000};  ///< a connection completes its handshake in this
  std::vector<allowed_key> allow;
  bool enabled() const { return !head_key.empty(); }
};

/// The [cluster] section and the [nodes.*] tables: processes, endpoints, membership timing.
struct cluster_config {
  std::string head_endpoint = "tcp://127.0.0.1:5555";  ///< head ROUTER: nodes and clients
  uint32_t head_cpu_workers = 0;                       ///< workers inside the head process itself
  std::chrono::milliseconds heartbeat_interval{200};   ///< head <-> node, both ways
  std::chrono::milliseconds suspect_after{1000};       ///< silent this long: suspect
  std::chrono::milliseconds dead_after{3000};          ///< silent this long: dead, tasks re-placed
  uint32_t max_tasks_per_submit = 10000;  ///< larger submits get an error reply, nothing decoded
  /// Per client (its key, or its connection without keys): tasks accepted and not finished,
  /// and tasks submitted per second; beyond, the rest of a submit is rejected queue_full.
  /// 0: no bound.
  uint64_t client_max_in_flight = 1000000;
  uint64_t client_submit_rate = 0;
  /// Per client: idempotency keys remembered, and bytes of results kept under them; beyond,
  /// that client's oldest keys are forgotten (not others'). 0: only the shared bound (65,536
  /// keys, 256 MiB, 1 hour for everyone together).
  uint64_t client_max_keys = 16384;
  uint64_t client_max_key_bytes = uint64_t(64) << 20;
  uint32_t max_outbound = 65536;                 ///< messages waiting per socket
  std::chrono::milliseconds restart_delay{200};  ///< troupe up: before restarting a dead child
  std::string events_endpoint = "tcp://127.0.0.1:5556";  ///< head PUB socket; "" for none
  uint32_t event_ring = 65536;         ///< events kept for subscribers that catch up
  uint32_t event_high_water = 100000;  ///< events queued per subscriber before it loses some
  /// The head's SQLite journal (docs/durability.md): accepted tasks and terminal records, so
  /// that a restarted head loses nothing. "" for none. A cluster file read by load_config has
  /// one by default, next to it (NAME.journal for NAME.toml); `journal = "off"` for none.
  std::string journal;
  bool journal_set = false;                 ///< the file said (a path, or "off")
  uint64_t journal_keep_results = 100000;   ///< finished tasks kept for fetches (newest)
  std::chrono::seconds journal_keep{3600};  ///< and for at most this long
  bool journal_full_sync = false;           ///< journal_sync = "full": fsync each commit
  /// Per node: bytes of graph outputs a node keeps for its children's inputs (least recently
  /// used go first). 0: nodes keep none, and the head sends every input (docs/graphs.md).
  uint64_t kept_output_bytes = uint64_t(256) << 20;
  /// A node fetching a kept input from another node's data socket gives up after this long and
  /// hands the task back; the head then sends its inputs whole.
  std::chrono::milliseconds fetch_timeout{5000};
  security_config security;
  std::vector<node_config> nodes;
  const node_config* find(const std::string& name) const {
    for (auto& n : nodes)
      if (n.name == name) return &n;
    return nullptr;
  }
};

struct runtime_config {
  // [workers]
  uint32_t cpu_workers = 0;  ///< 0: one per hardware thread
  uint64_t worker_memory_bytes =
      0;  ///< memory a CPU worker may reserve; 0: physical memory / workers
  uint32_t worker_prefetch = 1024;  ///< most tasks assigned to one worker at a time (its credit)
  std::chrono::microseconds worker_backlog{2000};  ///< estimated work to keep queued per worker
  cuda_selection cuda = cuda_selection::all;  ///< GPUs that get a worker: "all", "none", a list
  std::vector<int32_t> cuda_devices;          ///< with cuda = list
  uint64_t gpu_memory_headroom_bytes = uint64_t(512) << 20;  ///< kept free on every GPU
  /// Per GPU, for model weights and generated inputs shared by tasks (LRU past it); not
  /// reservable by tasks.
  uint64_t gpu_cache_bytes = uint64_t(1) << 30;
  uint32_t cuda_streams = 4;  ///< streams (lanes) per GPU worker: tasks running at once on it
  /// Tests only: CUDA workers without a GPU behind them (see worker_desc::fake).
  uint32_t fake_gpus = 0;
  uint64_t fake_gpu_memory_bytes = uint64_t(1) << 30;
  /// How long an attempt past its timeout or deadline may take to honour its cancellation token
  /// before it is abandoned with its worker thread (and the worker replaced).
  std::chrono::milliseconds timeout_grace{1000};
  bool detached_workers = true;  ///< false only in deterministic tests: workers on the scheduler
  // [batching]: dynamic batching on CUDA workers, for kinds that declare a batch key (mlp)
  bool batching_enabled = true;
  uint32_t batch_max_tasks = 128;                   ///< most tasks merged into one launch
  std::chrono::microseconds batch_max_delay{1000};  ///< longest a task waits for company
  // [limits]
  /// The most bytes of one task's input (payload + parameters, input_bytes) and of one output
  /// (bytes + values, output_bytes). Larger inputs are refused at submit; a larger output ends
  /// its task with errc::output_too_large. The wire's limits derive from it (frame_limit_bytes).
  uint64_t max_payload_bytes = uint64_t(64) << 20;
  // [queue]
  uint64_t queue_bound = 1000000;  ///< tasks admitted and not yet finished
  /// queue.pressure "high" once this share of the bound is admitted; "normal" below half of it.
  double pressure_ratio = 0.8;
  overflow_policy overflow = overflow_policy::reject;
  std::chrono::milliseconds block_timeout{1000};  ///< with overflow = "block": then reject
  queue_order order = queue_order::priority;
  std::chrono::milliseconds aging_interval{100};  ///< waiting this long is worth one priority level
  /// queue.order = "fair": each client's weight (its `client` label); absent clients weigh 1.
  std::map<std::string, double> shares;
  uint32_t dead_letter_capacity = 1000;
  /// How often one task marked preemptible may be stopped for a more urgent one; then it runs
  /// to its end. 0: no task is ever preempted.
  uint32_t max_preemptions = 3;
  // [retry]
  uint32_t max_retries = 3;
  /// The most retries any task gets, whatever its spec says (a spec from the wire may say 2^32-1).
  static constexpr uint32_t max_retries_cap = 1000;
  std::chrono::milliseconds retry_backoff{5};
  std::chrono::milliseconds retry_backoff_max{1000};
  // [balancer]
  placement_policy placement = placement_policy::least_loaded;
  /// What least_loaded assumes a task's inputs move at between processes: a worker that must
  /// receive B bytes of inputs its process does not hold finishes B / this later.
  uint64_t link_bytes_per_s = 1'000'000'000;
  // [supervision]
  restart_strategy strategy = restart_strategy::one_for_one;
  uint32_t restart_intensity = 5;  ///< at most this many restarts of one worker ...
  std::chrono::milliseconds restart_period{10000};  ///< ... within this window, else escalate
  std::chrono::milliseconds restart_backoff{0};     ///< delay before the 1st restart; doubles after
  std::chrono::milliseconds restart_backoff_max{1000};
  // [monitor]
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{10000};
  std::chrono::milliseconds metrics_interval{1000};  ///< metrics.snapshot events; 0: none
  uint32_t subscriber_high_water = 100000;           ///< events queued per in-process subscriber
  // [log]
  std::string log_level = "info";
  // [scheduler]
  uint32_t scheduler_threads = 0;  ///< CAF scheduler threads; 0: cores / 4, in [1, 4]
  /// Polls for work by an idle scheduler thread before it sleeps (CAF's aggressive polling).
  uint32_t scheduler_spin_polls = 3000;
  /// No CPU workers at all, whatever cpu_workers says (a head without workers of its own, a
  /// GPU-only node). Set by node_view/head_view, not by a key.
  bool no_cpu_workers = false;
  // [cluster], [nodes.NAME]: only read by troupe head / node / up
  cluster_config cluster;
  // [[triggers]]: run by an embedded runtime and by a head (not by nodes)
  std::vector<trigger_rule> triggers;
  /// [reservations.NAME] (docs/reservations.md).
  std::vector<reservation_config> reservations;
};

/// The largest frame a troupe process accepts from a peer: one task or one output of
/// limits.max_payload_bytes, with room for its header and other fields.
constexpr uint64_t frame_headroom_bytes = uint64_t(1) << 20;
/// The largest limits.max_payload_bytes a config accepts.
constexpr uint64_t max_config_payload_bytes = uint64_t(1) << 30;
constexpr uint64_t frame_limit_bytes(uint64_t max_payload_bytes) {
  return max_payload_bytes + frame_headroom_bytes;
}

/// A configuration error names the file (or "--set"), the line and the key.
class config_error : public std::runtime_error {
 public:
  config_error(std::string source, int line, std::string key, const std::string& what);
  const std::string& source() const { return source_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string source_;
  int line_;
  std::string key_;
};

/// Parses TOML text; unknown sections and keys are errors too (a typo must not pass silently).
runtime_config parse_config(std::string_view toml_text, const std::string& source_name,
                            runtime_config base = {});
/// Reads and parses a file; a missing or unreadable file is a config_error.
runtime_config load_config(const std::string& path, runtime_config base = {});
/// Applies one "section.key=value" override (value in TOML syntax; bare words are strings).
void apply_override(runtime_config& cfg, const std::string& assignment);
/// An endpoint only this machine can reach: loopback TCP, ipc:// or inproc://.
bool local_only(const std::string& endpoint);
/// Where node `name` serves the outputs it keeps to other nodes (nodes.NAME.data_endpoint, or
/// its default), "" for nowhere. Throws config_error for a routable one without keys (unless
/// security.insecure).
std::string data_endpoint_of(const runtime_config& cluster, const std::string& name);
/// The configuration of node `name` of a cluster file: its [nodes.NAME] workers, everything else
/// shared. Throws config_error if the file names no such node.
runtime_config node_view(const runtime_config& cfg, const std::string& name,
                         const std::string& source);
/// The configuration of the head process: cluster.head_cpu workers of its own, no GPUs.
runtime_config head_view(const runtime_config& cfg);
/// Fills automatic values (worker count, memory per worker, scheduler threads).
runtime_config resolve(runtime_config cfg);

}  // namespace troupe
