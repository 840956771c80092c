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

using node_agent_actor = caf::typed_actor<
    caf::reacts_to<dispatch_msg>, caf::reacts_to<results_msg>, caf::reacts_to<worker_up_msg>,
    caf::reacts_to<worker_lost_msg>, caf::reacts_to<escalate_msg>, caf::reacts_to<head_assign_msg>,
    caf::reacts_to<head_welcome_msg>, caf::reacts_to<head_heartbeat_msg>,
    caf::reacts_to<head_error_msg>, caf::reacts_to<node_tick_msg>, caf::reacts_to<head_cancel_msg>>;

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
  kept_outputs kept;
};

node_agent_actor::behavior_type node_agent_impl(
    node_agent_actor::stateful_pointer<node_agent_state> self, setup_ptr setup,
    std::shared_ptr<const worker_gauges> gauges, std::string node, transport::frame_sender send,
    wire::framer* framer, std::function<void(const std::string&)> fatal);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_assign_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_welcome_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_heartbeat_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_error_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::node_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::head_cancel_msg)
