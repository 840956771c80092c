#pragma once
// troupe::client: submits tasks to a head over ZeroMQ and gets their results back. No actor
// system: one DEALER socket on its own thread; results complete task handles (or call a
// callback on that thread).
//
//   troupe::client c{"tcp://127.0.0.1:5555"};
//   auto h = c.submit({.kind = "gemm", .params = {{"size", int64_t{128}}}});
//   auto r = h.wait_for(std::chrono::seconds(10));
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "troupe/model/completion.hpp"
#include "troupe/model/graph.hpp"
#include "troupe/model/task.hpp"
#include "troupe/transport/curve.hpp"
#include "troupe/transport/wire.hpp"

namespace troupe {

/// The head did not answer in time, answered with an error, or the endpoint is unusable.
class client_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct client_options {
  std::string name = "client";               ///< header.from: shows up in the head's logs
  std::chrono::milliseconds timeout{10000};  ///< for replies (ids, status)
  /// The head's limits.max_payload_bytes: submit_batch sends at most this many bytes of task
  /// inputs per submit, and refuses a task larger than that. (Results of any size a head may
  /// send, up to the largest limit a config allows, are accepted.)
  uint64_t max_payload_bytes = runtime_config{}.max_payload_bytes;
  size_t max_unclaimed_results = 1 << 20;  ///< results that arrive before their ids
  /// submit_batch sends larger batches as several submits of at most this many tasks (a head
  /// refuses more than its cluster.max_tasks_per_submit, 10,000 by default).
  size_t max_tasks_per_submit = 10000;
  /// This client's identity at the head (its ZeroMQ routing id, 1-255 bytes): results go to
  /// it, also after a reconnect or a restart of the head. Empty: a random one. Two clients
  /// connected at once must not share one (the newer takes the results over).
  std::string identity;
  /// With tasks outstanding and nothing heard from the head for this long, the client asks the
  /// head where they are (a fetch: results it missed are sent again) and sends again each
  /// submit still unanswered (with the same token: the head creates no task twice).
  std::chrono::milliseconds resync_interval{1000};
  /// Nothing heard from the head for this long while tasks are outstanding: their handles end
  /// failed with errc::head_unreachable. A head that answers fetches is never given up on.
  std::chrono::milliseconds head_timeout{60000};
  /// A head with keys (security.head_key): this client's key pair (transport::read_key_pair)
  /// and the head's public key (transport::read_public_key of HEAD_KEY.pub). A head that
  /// refuses the key ends every handle with errc::not_authorized and fails calls at once.
  transport::curve_client curve;
};

/// What a head says of some tasks (client::fetch).
struct fetch_reply {
  std::vector<task_result> finished;  ///< their terminal records (run times: see `result`)
  std::vector<task_id> pending;       ///< accepted, not finished
  std::vector<task_id> unknown;       ///< not known to the head (errc::result_lost)
};

class client {
 public:
  using result_callback = std::function<void(const task_result&)>;

  /// Connects (lazily, as zmq does: a head that starts later is fine).
  explicit client(const std::string& endpoint, client_options opts = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Sends the tasks in one message and waits for their ids (one round trip). Results complete
  /// the handles as they arrive; on_done, if given, runs for each on the client's thread.
  /// Throws client_error if the head does not answer within the timeout (the tasks may have
  /// been accepted all the same). Every handle ends: with its result, or failed with
  /// errc::head_unreachable or errc::result_lost (see client_options).
  std::vector<task_handle> submit_batch(std::vector<task_spec> specs, result_callback on_done = {});
  task_handle submit(task_spec spec, result_callback on_done = {});
  /// A task graph (docs/graphs.md), in one submit: checked here first (names, edges, cycles;
  /// throws client_error naming the problem, nothing sent), then by the head, which admits it
  /// whole or rejects every task. Results complete the handles as for submit_batch.
  graph_handle submit_graph(graph_spec graph, result_callback on_done = {});
  /// A gang (docs/reservations.md), in one submit: the head places its tasks on distinct workers
  /// (of any nodes) all at once or not at all, or rejects every task naming why. Throws
  /// client_error, nothing sent, when it cannot travel in one submit.
  std::vector<task_handle> submit_gang(std::vector<task_spec> specs, result_callback on_done = {});
  /// Cancels every unfinished task of the graph.
  void cancel(const graph_handle& graph);
  void cancel(task_id id);
  /// Nodes, workers, queue depth and the supervision tree, from the head.
  wire::status status();
  /// Asks the head about tasks by id, whoever submitted them: the records of those finished
  /// (while its journal keeps them), which still run (their results go to the client that
  /// submitted them; ask again later), which it does not know. At most 1,048,576 ids per call.
  /// Throws client_error if the head does not answer within the timeout.
  fetch_reply fetch(const std::vector<task_id>& ids);

  /// Frames the head refused (error replies received), for diagnostics.
  uint64_t errors() const;
  /// Results that came for a task whose handle had ended already (a fetch after a restart sends
  /// again what may also arrive live), or whose submit was given up: dropped.
  uint64_t duplicates() const;

 private:
  /// Throws client_error, naming the bound, when the tasks of a graph or gang (`what`) cannot
  /// travel in the one submit they must.
  void fits_one_submit(const std::vector<task_spec>& specs, const char* what) const;
  /// One submit message and its answer (the tasks' ids).
  std::vector<task_handle> submit_frame(std::vector<task_spec> specs,
                                        std::shared_ptr<const result_callback> callback,
                                        std::optional<failure_policy> on_failure = {},
                                        bool gang = false);
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
