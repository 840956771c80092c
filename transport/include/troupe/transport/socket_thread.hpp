#pragma once
// socket_thread: one zmq socket and the one thread that uses it. Other threads (actors, callers)
// hand it messages through a bounded queue and an eventfd that wakes its poll; what arrives is
// passed to a handler on the same thread. zmq sockets are not thread-safe: nothing else touches
// the socket, and the handler must not block (it decodes and forwards).
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "troupe/transport/curve.hpp"

namespace troupe::transport {

using multipart = std::vector<zmq::message_t>;
/// Hands the frames of one message to a socket thread's outbound queue; false when the queue is
/// full. Actors get one of these, not the socket thread: tests pass one that keeps the frames.
using frame_sender = std::function<bool(multipart&&)>;

/// A socket could not be set up (an endpoint that cannot be bound, a malformed address).
class transport_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct socket_options {
  zmq::socket_type type = zmq::socket_type::dealer;
  std::string endpoint;
  bool bind = false;               ///< bind (head ROUTER) or connect (node/client DEALER)
  std::string routing_id;          ///< DEALER identity; empty: zmq picks one
  size_t max_outbound = 1 << 16;   ///< messages waiting for the socket; send() fails beyond
  int high_water_mark = 1 << 20;   ///< zmq's own queue per peer
  int64_t max_message_bytes = -1;  ///< zmq drops (and disconnects) anything larger; -1: none
  int reconnect_ms = 100;
  /// ROUTER: a peer that connects with a routing id already in use takes it over (a client
  /// that reconnects keeps its identity); otherwise the newcomer is refused.
  bool router_handover = false;
  /// >= 0: before_send also runs this often when nothing happens (timers of the owner).
  std::chrono::milliseconds tick{-1};
  /// ROUTER: called on the socket's thread with the routing id of a peer a message could not
  /// go to because its connection is gone (the message is dropped and counted as unroutable).
  std::function<void(const std::string& peer)> on_unroutable;
  /// CURVE (docs/security.md): a server socket (bind) authenticates peers through the
  /// context's zap_handler; a client socket (connect) proves its key to a server it knows.
  curve_server server_keys;
  curve_client client_keys;
  /// The longest a connection may take to complete its handshake (CURVE included) before zmq
  /// drops it: a peer that connects and says nothing holds a socket no longer than this.
  int handshake_ms = 5000;
  int listen_backlog = 100;  ///< bind: connections the kernel queues before they are accepted
  /// > 0: ZMTP heartbeats on every connection this often; one silent for three of them is
  /// closed (a peer whose machine vanished does not hold its routing id forever).
  int zmtp_heartbeat_ms = 0;
  /// Called on the socket's thread when a handshake with a peer fails: refused by its ZAP
  /// handler, a key mismatch, a mechanism mismatch (one side without CURVE). Client sockets
  /// use it to fail fast instead of retrying a door that stays shut.
  std::function<void(const std::string& why)> on_handshake_failed;
  /// XPUB: the topic prefixes a subscription becomes, given the peer's User-Id (from the ZAP
  /// handler; "" without keys) and the prefix it asked for. Set, zmq's own matching of
  /// subscriptions is off (XPUB_MANUAL): that peer gets only these. Runs on the socket's thread.
  std::function<std::vector<std::string>(const std::string& user, const std::string& asked)>
      grant_subscription;
  int linger_ms = 0;            ///< > 0: stop() flushes what is queued, waiting this long
  std::string name = "socket";  ///< for logs and the thread name
};

class socket_thread {
 public:
  /// Runs on the socket's thread for every message received (all its frames).
  using handler = std::function<void(multipart&)>;

  /// Runs on the socket's thread before each round of sending: a chance to turn work gathered
  /// from other threads into messages (coalescing many small results into one frame).
  using sender = std::function<void()>;

  /// Creates the socket on its thread, binds or connects it, and starts polling. Throws
  /// transport_error naming the endpoint if that fails.
  socket_thread(zmq::context_t& ctx, socket_options opts, handler on_message,
                sender before_send = {});
  ~socket_thread();
  socket_thread(const socket_thread&) = delete;
  socket_thread& operator=(const socket_thread&) = delete;

  /// Thread-safe. False (and counted) when max_outbound messages are already waiting.
  bool send(multipart&& msg);
  /// Thread-safe: wakes the socket's thread so that before_send runs soon.
  void wake();
  /// Convenience: frames from byte strings.
  bool send(std::initializer_list<std::string_view> frames);
  /// Stops polling and closes the socket; idempotent. Messages still queued are dropped.
  void stop();

  /// The endpoint actually bound (resolves "tcp://127.0.0.1:*" to the chosen port).
  const std::string& endpoint() const { return bound_; }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t unroutable() const { return unroutable_.load(std::memory_order_relaxed); }

 private:
  void run(zmq::context_t& ctx, std::promise<std::string>* ready);
  void drain_outbound(zmq::socket_t& sock, std::deque<multipart>& backlog);
  void grant(zmq::socket_t& sock, multipart& msg);
  void take_gathered(std::deque<multipart>& backlog);
  void set_curve(zmq::socket_t& sock);
  std::unique_ptr<zmq::socket_t> watch_handshakes(zmq::context_t& ctx, zmq::socket_t& sock);
  void read_handshake_events(zmq::socket_t& monitor);

  socket_options opts_;
  handler on_message_;
  sender before_send_;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::deque<multipart> outbound_;
  bool signalled_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> dropped_{0}, unroutable_{0};
  std::atomic<size_t> backlog_size_{0};
  /// Handshakes the peer closed since the last one that succeeded (socket thread only).
  int broken_handshakes_ = 0;
  static constexpr int broken_handshakes_before_refusal = 3;
  std::string bound_;
  std::thread thread_;
};

}  // namespace troupe::transport
