#pragma once
// The messages exchanged between processes (head, nodes, clients), as plain structs. Their
// MessagePack form is in codec.hpp and documented field by field in docs/protocol.md.
//
// Every zmq message is two frames after the ROUTER's routing id: a header map and a body map.
// Times never cross a process boundary as clock readings: deadlines travel as milliseconds
// remaining, run times as durations.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/devices.hpp"
#include "troupe/model/event_log.hpp"
#include "troupe/model/events.hpp"
#include "troupe/model/graph.hpp"
#include "troupe/model/ledger.hpp"
#include "troupe/model/registry.hpp"
#include "troupe/model/stats.hpp"
#include "troupe/model/task.hpp"

namespace troupe::wire {

/// Version of the header and bodies; a frame of another version gets an error reply.
inline constexpr uint32_t protocol_version = 1;

enum class msg_type : uint8_t {
  hello,         ///< node -> head: joins with its workers and an epoch
  welcome,       ///< head -> node: accepted
  heartbeat,     ///< both ways, at the configured interval
  assign,        ///< head -> node: tasks for its workers
  results,       ///< node -> head: attempts done
  worker_state,  ///< node -> head: a worker of the node went down or came up
  submit,        ///< client -> head: tasks
  submitted,     ///< head -> client: the ids, in the order of the submit
  result,        ///< head -> client: terminal records of tasks
  cancel,        ///< client -> head
  status_request,
  status,            ///< head -> client: nodes, workers, queue, supervision
  error,             ///< anyone -> anyone: a frame could not be handled
  bye,               ///< node -> head: leaving on purpose (shutdown)
  replay_request,    ///< subscriber -> head: the events since a sequence number
  replay,            ///< head -> subscriber
  snapshot_request,  ///< subscriber -> head: current state
  snapshot,          ///< head -> subscriber
  fetch,             ///< client -> head: where are these tasks? (results re-sent, routed here)
  fetched,           ///< head -> client: which of them are still running, which it does not know
  output_request,    ///< node -> node (its data socket): the outputs it keeps for these tasks
  output_reply,      ///< node -> node: one of them, or why not
};
inline constexpr msg_type last_msg_type = msg_type::output_reply;
const char* to_string(msg_type t) noexcept;
/// False for an unknown name.
bool parse_msg_type(const std::string& name, msg_type& out) noexcept;

struct header {
  uint32_t v = protocol_version;
  msg_type type = msg_type::error;
  uint64_t id = 0;     ///< sender's message number (per connection, increasing)
  uint64_t corr = 0;   ///< for replies: the id of the message answered; 0 otherwise
  std::string from;    ///< node name, or a client's chosen name
  uint64_t epoch = 0;  ///< node: its incarnation; head: its own; clients: 0
};

struct worker_info {
  std::string name;
  device_class device = device_class::cpu;
  int32_t device_index = -1;
  worker_capacity capacity;
};

struct hello {
  std::string node;
  std::vector<worker_info> workers;
  std::vector<std::string> kinds;  ///< task kinds the node can run
  std::vector<gpu_device> gpus;    ///< what the node's discovery found (optional)
  std::string gpu_note;            ///< why it found none (optional)
  /// For each kind, the device classes the node has an implementation for. A node that leaves
  /// it out runs each of its kinds on every device class of its workers.
  std::map<std::string, std::vector<device_class>> kind_devices;
  /// Its limits.max_payload_bytes: the head refuses a node whose limit differs (their frames
  /// would not fit each other's). 0: not said.
  uint64_t max_payload_bytes = 0;
  /// Where other nodes fetch the outputs this node keeps (its data socket, bound); "": nowhere,
  /// its outputs reach other nodes through the head.
  std::string data_endpoint{};
};

/// A node of the cluster and its public key: who may fetch kept outputs from a node's data
/// socket, and how a node proves the peer it fetches from (with keys only).
struct data_peer {
  std::string node;
  std::string key;  ///< Z85 public key
};

struct welcome {
  std::string node;
  uint64_t epoch = 0;  ///< the node epoch welcomed (a node ignores a welcome for an older one)
  uint32_t heartbeat_ms = 0;
  uint32_t first_worker = 0;  ///< global index of the node's worker 0 (for logs and status)
  std::vector<data_peer> data_peers{};  ///< with keys: every node of the cluster file
};

/// A node's GPU worker's memory as the node measures it (head -> status, metrics).
struct gpu_memory_report {
  int32_t worker = -1;  ///< index among the node's workers
  uint64_t in_use = 0, cache = 0, device_used = 0, device_total = 0;
  std::string device_source;  ///< "nvml", "cuda", ""
};

/// Node -> head: alive; with its GPU workers' memory and what it holds (absent from a head's
/// heartbeat).
struct heartbeat {
  std::vector<gpu_memory_report> gpus;
  /// The header id of the last assign the node took in. With `holding`, it lets the head find
  /// a task it placed in that message or earlier that the node neither holds nor reported (a
  /// lost frame, a task the node could not read): the head places it again.
  std::optional<uint64_t> last_assign;
  std::vector<task_id> holding;  ///< tasks assigned to the node and not yet reported
  /// Of those, the preemptible ones whose attempt runs now: the head may ask them to make way
  /// for a more urgent task (a cancel with `preempt`).
  std::vector<task_id> preemptible_running;
};

/// An input of an assigned task that the node binds from an output it keeps (the head left the
/// value out of the spec).
struct kept_input {
  uint32_t input = 0;  ///< index into the spec's inputs
  task_id task = 0;    ///< the task whose kept output it takes
  /// Empty: this node keeps it. Otherwise the node that does, where its data socket is, and
  /// its epoch (an output kept under another epoch is not the one meant): fetch it from there.
  std::string node{};
  std::string endpoint{};
  uint64_t epoch = 0;
};

struct assigned_task {
  task_id id = 0;
  uint32_t attempt = 0;
  int32_t worker = -1;  ///< index among the node's workers
  task_spec spec;       ///< deadline as remaining time; retry fields are the head's business
  /// The head queue's order key (smaller runs sooner): the node's worker runs what it holds in
  /// this order, as the head's own workers do.
  double order = 0;
  /// Keep the output: a child's input takes from it (cluster.kept_output_bytes).
  bool keep_output = false;
  std::vector<kept_input> kept_inputs{};  // {}: brace-initialised tasks may leave it out
};

struct assign {
  std::vector<assigned_task> tasks;
};

struct attempt_result {
  task_id id = 0;
  uint32_t attempt = 0;
  int32_t worker = -1;  ///< index among the node's workers
  errc code = errc::none;
  std::string message;
  task_output output;
  int64_t run_ns = 0;
  bool counts_as_attempt = true;  ///< false: never started (the head requeues it uncharged)
};

struct results {
  std::vector<attempt_result> records;
};

struct worker_state {
  int32_t worker = -1;  ///< index among the node's workers
  bool up = false;
  task_id crashed_task = 0;
  std::string reason;
  bool retired = false;  ///< no restart will bring it back (poisoned GPU)
};

struct submit {
  std::vector<task_spec> tasks;
  /// The client's number for this submit, unique per client identity; 0: none. A submit
  /// re-sent with the same token (its answer was lost, or the head restarted) gets the ids of
  /// the first and creates no task.
  uint64_t token = 0;
  /// A graph (tasks with `after` or `inputs`): what a failure does to the rest of it (default
  /// cancel_dependents). The tasks of a graph travel in one submit.
  std::optional<failure_policy> on_failure = std::nullopt;
  /// A gang (docs/reservations.md): its tasks are placed on distinct workers all at once or not
  /// at all, and run once, whole. They travel in one submit.
  bool gang = false;
};

struct submitted {
  std::vector<task_id> ids;  ///< one per submitted task, in order; rejected ones get a result
};

struct result {
  std::vector<task_result> tasks;  ///< timings are not sent: latency_ms travels instead
  std::vector<double> latency_ms;  ///< submit -> terminal record, per task, measured by the head
};

struct cancel {
  std::vector<task_id> ids;
  /// head -> node only: stop these preemptible attempts to make way for a more urgent task;
  /// they end `preempted` and the head queues them again. A client's `preempt` is ignored.
  bool preempt = false;
};

struct fetch {
  std::vector<task_id> ids;
};

/// The answer to a fetch; the results of its finished tasks come as `result` messages first.
struct fetched {
  std::vector<task_id> pending;  ///< accepted, not finished: their results will come here
  std::vector<task_id> unknown;  ///< not known to this head (see errc::result_lost)
};

struct status_request {};

/// The outputs a node keeps for these tasks (node -> node, on the keeping node's data socket).
struct output_request {
  std::vector<task_id> tasks;
  uint64_t epoch = 0;  ///< the keeping node's epoch the asker was told: another one has none
};

/// One output asked for, or why the node does not have it (one message per task).
struct output_reply {
  task_id task = 0;
  bool found = false;
  std::string message;  ///< why not found
  task_output output;
  /// Sending only: set, it goes on the wire instead of `output`, read where it is (the node's
  /// kept output: serving it copies nothing before the encoder). Never set by the decoder.
  std::shared_ptr<const task_output> kept{};
};

struct node_status {
  std::string name;
  std::string state;  ///< absent, joined, suspect, dead
  uint64_t epoch = 0;
  uint32_t joins = 0;  ///< how many times it joined (restarts of the node process + 1)
  double heartbeat_age_ms = -1;
  std::vector<int32_t> workers;  ///< global indices
  std::vector<gpu_device> gpus;  ///< the node's GPUs, as its hello reported them
  std::string gpu_note;          ///< why it has none
  /// Graph inputs the node bound from outputs it kept, and their bytes: what the head did not
  /// send it (docs/graphs.md, "Where data moves"). Since the head started.
  uint64_t kept_inputs = 0;
  uint64_t kept_input_bytes = 0;
  /// Of those, the ones it fetched from another node's data socket (not from its own store).
  uint64_t fetched_inputs = 0;
  uint64_t fetched_input_bytes = 0;
  /// Preemptible attempts its last heartbeat said run now (those the head may ask to make way).
  uint32_t preemptible_running = 0;
};

struct status {
  runtime_stats stats;
  std::vector<node_status> nodes;
  std::vector<std::string> worker_nodes;  ///< per worker of stats.workers: its node ("" = head)
  std::string events_endpoint;            ///< the head's PUB socket, for subscribers
  uint64_t last_event_seq = 0;            ///< the newest event published
  uint64_t frames_refused = 0;  ///< answered with an error (malformed, too large, unknown, ...)
  uint64_t stale_frames = 0;    ///< from an old epoch of a node (fenced)
};

struct replay_request {
  uint64_t since = 0;  ///< first seq wanted
};

struct replay {
  bool complete = false;  ///< false: some events since `since` have left the ring; ask a snapshot
  uint64_t last_seq = 0;  ///< the newest event published so far
  std::vector<event> events;  ///< from `since` on, at most a bounded number per reply
  /// For a key limited to some topics (events cut to them): the events were looked at through
  /// this seq; below last_seq, ask on from the next. 0: not limited.
  uint64_t through = 0;
};

struct snapshot_request {};

/// Current state as of `state.seq`; continue with the events after it.
struct snapshot {
  state_snapshot state;
  /// The topic prefixes this subscriber's key may follow (security.allow topics): its events,
  /// replays and this state are cut to them, so its sequence has holes that are not gaps.
  /// Empty: every topic.
  std::vector<std::string> topics;
};

/// Error codes of the transport, sent as their names.
enum class wire_errc : uint8_t {
  malformed,        ///< not MessagePack, or not the expected shape
  too_large,        ///< the frame or a declared element is over a limit
  unknown_type,     ///< header.type names no message
  bad_version,      ///< header.v is not protocol_version
  unknown_node,     ///< hello from a node the cluster file does not name
  not_joined,       ///< a node message before hello/welcome
  stale_epoch,      ///< a message from an old incarnation of a node
  layout_mismatch,  ///< hello's workers differ from the cluster file
  overloaded,       ///< a bounded queue on the way is full
  unexpected,       ///< a valid message this peer does not take (a client sending assign)
  name_taken,       ///< hello for a node that is alive on another connection
  forbidden,        ///< the peer's key may not do this (docs/security.md)
};
const char* to_string(wire_errc e) noexcept;

struct error {
  wire_errc code = wire_errc::malformed;
  std::string message;
};

}  // namespace troupe::wire
