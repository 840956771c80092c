#pragma once
// node_agent: the node process's link to its head. To the node's supervisor and workers it is
// the balancer (they send it results and ups and downs); to the head it is the node: it says
// hello with the node's workers and an epoch, heartbeats, runs what the head assigns on the
// worker the head chose, and reports results and worker deaths. A head that falls silent, or
// that says the node's epoch is stale, makes it join again with a new epoch: whatever it was
// running under the old one has been placed elsewhere already.
//
// Frames arrive decoded from the node's socket thread; frames go out through its queue.
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/typed_actor.hpp>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/actors/messages.hpp"
#include "troupe/model/kept_outputs.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/socket_thread.hpp"
#include "troupe/transport/wire.hpp"

namespace troupe {
namespace wire {
class framer;
}

// node socket thread -> node_agent
struct head_assign_msg {
  wire::assign body;
  uint64_t frame_id = 0;  ///< its header id: heartbeats say the last one taken in
  std::vector<wire::unreadable_task> unreadable;  ///< tasks that could not be read: they fail
};
struct head_welcome_msg {
  wire::welcome body;
};
struct head_heartbeat_msg {
  std::optional<uint64_t> last_assign;  ///< the head's last assign to this node, when sent
};
struct head_cancel_msg {
  wire::cancel body;
};
struct head_error_msg {
  wire::error body;
};
struct node_tick_msg {};
// a data link to another node -> node_agent: one output asked for, or why not
struct peer_reply_msg {
  std::string from;    ///< the node asked (its link's node)
  uint64_t epoch = 0;  ///< the epoch it answered under (header epoch)
  wire::output_reply body;
};

/// The node's data sockets (docs/graphs.md, "Where data moves"); tests pass stand-ins. Empty
/// functions: the node neither serves nor fetches (inputs kept elsewhere come through the head).
struct node_data_links {
  /// The outputs the node keeps, shared with its data socket's thread, which serves them
  /// (answer_output_request). Null: the agent keeps its own.
  std::shared_ptr<kept_outputs> kept;
  std::string endpoint;  ///< where this node serves its kept outputs ("" none); its hello says
  /// Frames to node `node`'s data socket at `endpoint` (one connection per peer); false when
  /// they cannot go (no key known for it, a full queue, an endpoint that cannot be connected).
  std::function<bool(const std::string& node, const std::string& endpoint, transport::multipart&&)>
      to_peer;
  /// The cluster's nodes and their keys (the head's welcome): who may fetch from this node, and
  /// how it proves the peers it fetches from.
  std::function<void(const std::vector<wire::data_peer>&)> know_peers;
};

using node_agent_actor =
    caf::typed_actor<caf::reacts_to<dispatch_msg>, caf::reacts_to<results_msg>,
                     caf::reacts_to<worker_up_msg>, caf::reacts_to<worker_lost_msg>,
                     caf::reacts_to<escalate_msg>, caf::reacts_to<head_assign_msg>,
                     caf::reacts_to<head_welcome_msg>, caf::reacts_to<head_heartbeat_msg>,
                     caf::reacts_to<head_error_msg>, caf::reacts_to<node_tick_msg>,
                     caf::reacts_to<head_cancel_msg>, caf::reacts_to<peer_reply_msg>>;

struct node_agent_state {
  static inline const char* name = "node_agent";
  struct slot {
    worker_actor handle;
    uint32_t generation = 0;
    bool up = false;
    bool head_told_down = false;   ///< the head counts it as down: tell it when it is up again
    std::vector<assignment> held;  ///< assigned while the worker restarts
    std::unordered_map<task_id, task_ptr> running;  ///< assigned, not reported
  };
  setup_ptr setup;
  std::shared_ptr<const worker_gauges> gauges;  ///< GPU figures for the heartbeat
  transport::frame_sender send;
  wire::framer* framer = nullptr;
  std::string node;
  std::function<void(const std::string&)> fatal;  ///< the process must exit (with this reason)
  std::vector<slot> workers;
  bool joined = false;
  uint64_t epoch = 0;
  uint64_t last_assign = 0;    ///< header id of the last assign taken in (heartbeats carry it)
  size_t kinds_announced = 0;  ///< registry size at the last hello: more kinds, hello again
  time_point head_heard{};
  /// Outputs of tasks whose graph children take inputs from them (cluster.kept_output_bytes):
  /// a child placed here binds those inputs from them; the head leaves them out of its assign.
  std::shared_ptr<kept_outputs> kept;
  node_data_links links;
  /// A task whose inputs come from outputs other nodes keep: held (in its worker's `running`)
  /// until every one has arrived, then bound and run; handed back when one cannot be had.
  struct awaiting_inputs {
    task_ptr task;
    size_t worker = 0;
    uint32_t attempt = 0;
    double order = 0;
    std::vector<wire::kept_input> missing;  ///< not arrived yet
    time_point deadline;                    ///< cluster.fetch_timeout after the assign
  };
  std::unordered_map<task_id, awaiting_inputs> fetching;
  /// Kept outputs asked of other nodes (by the task that produced them): the tasks that wait.
  std::unordered_map<task_id, std::vector<task_id>> asked;
};

/// The most tasks one output_request names: a node asks in requests of at most this many, and
/// answers none of a larger one (the asker's tasks go back to the head at its fetch timeout).
inline constexpr size_t max_outputs_per_request = 1024;

/// Another node's request for outputs `kept` holds, answered (one reply per distinct task) on
/// the data socket's thread: only under the node's current epoch (`epoch`), and up to
/// `max_bytes` of outputs in all (the rest `found: false`, naming the bound; the asker gets
/// them from the head). An output is shared with the store, not copied.
std::vector<wire::output_reply> answer_output_request(kept_outputs& kept, uint64_t epoch,
                                                      const wire::output_request& request,
                                                      uint64_t max_bytes);

node_agent_actor::behavior_type node_agent_impl(
    node_agent_actor::stateful_pointer<node_agent_state> self, setup_ptr setup,
    std::shared_ptr<const worker_gauges> gauges, std::string node, transport::frame_sender send,
    wire::framer* framer, std::function<void(const std::string&)> fatal, node_data_links links);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_assign_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_welcome_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_heartbeat_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_error_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::node_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_cancel_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::peer_reply_msg)
