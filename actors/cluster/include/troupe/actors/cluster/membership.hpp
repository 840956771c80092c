#pragma once
// membership: the head's view of its node processes. A node says hello with its workers and an
// epoch; membership welcomes it and brings its workers into placement (a proxy actor per remote
// worker stands where a local worker would, so the balancer places on both alike). Heartbeats go
// both ways; a silent node becomes suspect, then dead: its workers are reported lost, so the
// balancer requeues their tasks and releases their reservations. A node that comes back joins
// with a new epoch; anything carrying an old epoch is refused (fencing).
//
// Frames arrive decoded from the head's socket thread (anon_send); replies go out through the
// same thread's queue. No socket here, no blocking.
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "troupe/actors/admission_gate.hpp"
#include "troupe/actors/messages.hpp"
#include "troupe/model/node_liveness.hpp"
#include "troupe/transport/socket_thread.hpp"
#include "troupe/transport/wire.hpp"

namespace troupe {
namespace wire {
class framer;
}

// head socket thread -> membership
struct node_hello_msg {
  std::string peer;  ///< ROUTER routing id of the node's connection
  uint64_t epoch = 0;
  uint64_t corr = 0;
  wire::hello body;
};
struct node_results_msg {
  std::string peer, node;
  uint64_t epoch = 0;
  wire::results body;
};
struct node_worker_msg {
  std::string peer, node;
  uint64_t epoch = 0;
  wire::worker_state body;
};
struct node_heartbeat_msg {
  std::string peer, node;
  uint64_t epoch = 0;
  bool leaving = false;  ///< a bye: the node stops on purpose
  wire::heartbeat body;  ///< GPU memory, and what the node holds
};
struct status_query_msg {
  std::string peer;
  uint64_t corr = 0;
  uint64_t frames_refused = 0;  ///< the head socket thread's count when asked
  std::string events_endpoint;
  uint64_t last_event_seq = 0;
};
// remote worker proxy -> membership
struct remote_assign_msg {
  int32_t worker = -1;
  uint32_t generation = 0;
  std::vector<assignment> tasks;
};
struct membership_tick_msg {};
/// The head's socket found this peer's connection closed (a send to it was unroutable).
struct peer_gone_msg {
  std::string peer;
};
/// A client cancelled these tasks: tell the nodes that run them, so they stop early.
struct cancel_remote_msg {
  std::vector<task_id> ids;
};

using membership_actor =
    caf::typed_actor<caf::reacts_to<node_hello_msg>, caf::reacts_to<node_results_msg>,
                     caf::reacts_to<node_worker_msg>, caf::reacts_to<node_heartbeat_msg>,
                     caf::reacts_to<status_query_msg>, caf::reacts_to<remote_assign_msg>,
                     caf::reacts_to<membership_tick_msg>, caf::reacts_to<cancel_remote_msg>,
                     caf::reacts_to<peer_gone_msg>>;

struct membership_state {
  static inline const char* name = "membership";
  struct node_view {
    const node_config* cfg = nullptr;
    std::string peer;
    node_liveness liveness;        ///< joined/suspect/dead, its epoch (fencing), last heard
    std::vector<int32_t> workers;  ///< global worker indices, in the node's order
    std::vector<gpu_device> gpus;  ///< as its last hello reported them
    std::string gpu_note;
    /// Assigned to the node and not yet reported, by task id: fenced by epoch on the way back.
    struct placed {
      assignment a;
      int32_t worker = -1;             ///< global index
      uint64_t frame = 0;              ///< header id of the assign that carried it
      bool asked_to_make_way = false;  ///< a cancel with `preempt` went out for it
      /// Inputs the assign left out because the node keeps their outputs, and their bytes:
      /// counted in kept_inputs once the node reports the attempt as started.
      uint32_t left_out = 0;
      uint64_t left_out_bytes = 0;
      /// Of those, the ones the node fetches from another node (counted in fetched_inputs).
      uint32_t fetched = 0;
      uint64_t fetched_bytes = 0;
    };
    std::unordered_map<task_id, placed> in_flight;
    /// Of in_flight, the preemptible attempts the node's last heartbeat said run now: their
    /// task_state shows them running, so the balancer may pick them to make way (preemption).
    std::unordered_set<task_id> preemptible_running;
    /// Graph inputs the node bound from outputs it kept (left out of assigns), and their bytes.
    uint64_t kept_inputs = 0;
    uint64_t kept_input_bytes = 0;
    uint64_t fetched_inputs = 0;  ///< of those, fetched from another node's data socket
    uint64_t fetched_input_bytes = 0;
    /// Where other nodes fetch the outputs it keeps (its hello); "": through the head only.
    std::string data_endpoint;
    uint64_t last_assign = 0;  ///< header id of the last assign sent (its heartbeats say it)
    bool peer_gone = false;    ///< its connection was found closed: a newer epoch takes over
    /// A hello with a newer epoch from another connection while this one looks alive: the node
    /// restarted, or a second process has its name. Held until the old connection is found
    /// closed or silent (take over), or heard from (refuse the newcomer: name_taken).
    struct contender {
      node_hello_msg hello;
      time_point since;
    };
    std::optional<contender> contended;
  };
  struct remote_slot {
    int32_t node = -1;  ///< index into nodes
    uint32_t generation = 0;
    uint32_t restarts = 0;
    bool up = false;
    std::optional<worker_capacity> capacity;  ///< as the node's hello reports it
    kind_set kinds;                           ///< what its node runs on its device class
    size_t assigned = 0;                      ///< tasks sent to it, not yet reported
    worker_actor proxy;
  };
  setup_ptr setup;
  std::shared_ptr<const event_gate> gate;
  std::shared_ptr<worker_gauges> gauges;            ///< a node's GPU figures, from its heartbeats
  std::shared_ptr<const admission_gate> admission;  ///< submitted, rejected, depth (status)
  balancer_actor balancer;
  monitor_actor monitor;
  event_bus_actor bus;
  transport::frame_sender send;
  wire::framer* framer = nullptr;
  std::vector<node_view> nodes;
  std::vector<remote_slot> slots;  ///< by global worker index (local workers unused)
  uint64_t stale_frames = 0;       ///< refused for an old epoch
};

/// framer outlives the actor (the head stops it before closing the socket).
membership_actor::behavior_type membership_impl(
    membership_actor::stateful_pointer<membership_state> self, setup_ptr setup,
    std::shared_ptr<const event_gate> gate, std::shared_ptr<worker_gauges> gauges,
    std::shared_ptr<const admission_gate> admission, balancer_actor balancer, monitor_actor monitor,
    event_bus_actor bus, transport::frame_sender send, wire::framer* framer);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::node_hello_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::node_results_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::node_worker_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::node_heartbeat_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::status_query_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::remote_assign_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::membership_tick_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::cancel_remote_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::peer_gone_msg)
