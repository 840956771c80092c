#include "troupe/transport/socket_thread.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <future>

#include "troupe/model/log.hpp"

namespace troupe::transport {

namespace {
// At most this many received messages are handled per poll round, so that a flood of input
// cannot starve the outbound queue.
constexpr int receive_batch = 256;
}  // namespace

socket_thread::socket_thread(zmq::context_t& ctx, socket_options opts, handler on_message,
                             sender before_send)
    : opts_(std::move(opts)),
      on_message_(std::move(on_message)),
      before_send_(std::move(before_send)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw transport_error(opts_.name + ": eventfd failed");
  std::promise<std::string> ready;
  auto started = ready.get_future();
  thread_ = std::thread([this, &ctx, &ready] { run(ctx, &ready); });
  try {
    bound_ = started.get();
  } catch (...) {
    thread_.join();
    ::close(wake_fd_);
    throw;
  }
}

socket_thread::~socket_thread() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void socket_thread::stop() {
  if (stopping_.exchange(true)) {
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    return;
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool socket_thread::send(multipart&& msg) {
  std::lock_guard<std::mutex> guard{mutex_};
  // The bound covers both queues: the one here and the socket thread's backlog.
  if (outbound_.size() + backlog_size_.load(std::memory_order_relaxed) >= opts_.max_outbound) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  outbound_.push_back(std::move(msg));
  // One wake-up per burst: the poll loop takes the whole queue at once.
  if (!signalled_) {
    signalled_ = true;
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  return true;
}

void socket_thread::wake() {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!signalled_) {
    signalled_ = true;
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
}

bool socket_thread::send(std::initializer_list<std::string_view> frames) {
  multipart msg;
  msg.reserve(frames.size());
  for (auto f : frames) msg.emplace_back(f.data(), f.size());
  return send(std::move(msg));
}

void socket_thread::take_gathered(std::deque<multipart>& backlog) {
  before_send_();  // queues messages through send()
  std::lock_guard<std::mutex> guard{mutex_};
  while (!outbound_.empty()) backlog.push_back(std::move(outbound_.front())), outbound_.pop_front();
}

void socket_thread::drain_outbound(zmq::socket_t& sock, std::deque<multipart>& backlog) {
  bool router = opts_.type == zmq::socket_type::router;
  while (!backlog.empty()) {
    auto& msg = backlog.front();
    bool sent = false;
    try {
      for (size_t i = 0; i < msg.size(); ++i) {
        auto flags = zmq::send_flags::dontwait;
        if (i + 1 < msg.size()) flags = flags | zmq::send_flags::sndmore;
        auto r = sock.send(msg[i], flags);
        if (!r) break;  // EAGAIN: only possible on the first frame (multipart is atomic)
        sent = i + 1 == msg.size();
      }
    } catch (const zmq::error_t& e) {
      // ROUTER_MANDATORY: the peer is gone. Its messages cannot be delivered; count, go on.
      if (e.num() != EHOSTUNREACH)
        troupe::logger().warn("{}: send failed: {}", opts_.name, e.what());
      else if (opts_.on_unroutable && !msg.empty())
        opts_.on_unroutable(std::string(static_cast<const char*>(msg[0].data()), msg[0].size()));
      unroutable_.fetch_add(1, std::memory_order_relaxed);
      backlog.pop_front();
      continue;
    }
    if (!sent) {
      if (router) {  // one slow peer must not hold up the others: drop at its high-water mark
        dropped_.fetch_add(1, std::memory_order_relaxed);
        backlog.pop_front();
        continue;
      }
      return;  // DEALER: its one peer is slow; wait for POLLOUT
    }
    backlog.pop_front();
  }
}

void socket_thread::set_curve(zmq::socket_t& sock) {
  if (opts_.server_keys.enabled()) {
    sock.set(zmq::sockopt::curve_server, true);
    sock.set(zmq::sockopt::curve_secretkey, opts_.server_keys.secret_key);
    sock.set(zmq::sockopt::zap_domain, opts_.server_keys.zap_domain);
    // ZMQ_ZAP_ENFORCE_DOMAIN (a draft option in libzmq 4.3, accepted by Debian's build): with
    // no ZAP handler answering, refuse rather than admit. Our handler also refuses any domain
    // it does not know, so the check holds where the option is not available.
    constexpr int zap_enforce_domain = 93;
    int on = 1;
    zmq_setsockopt(sock.handle(), zap_enforce_domain, &on, sizeof on);
  } else {
    use_keys(sock, opts_.client_keys);
  }
}

std::unique_ptr<zmq::socket_t> socket_thread::watch_handshakes(zmq::context_t& ctx,
                                                               zmq::socket_t& sock) {
  static std::atomic<uint64_t> next{0};
  auto endpoint = "inproc://troupe-handshakes-" + std::to_string(next.fetch_add(1));
  if (zmq_socket_monitor(sock.handle(), endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
    throw zmq::error_t();
  auto pair = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::pair);
  pair->connect(endpoint);
  return pair;
}

void socket_thread::read_handshake_events(zmq::socket_t& monitor) {
  for (;;) {
    multipart ev;
    try {
      if (!zmq::recv_multipart(monitor, std::back_inserter(ev), zmq::recv_flags::dontwait)) return;
    } catch (const zmq::error_t&) {
      return;
    }
    if (ev.size() < 2 || ev[0].size() < 6) continue;
    uint16_t event;
    uint32_t value;
    std::memcpy(&event, ev[0].data(), sizeof event);
    std::memcpy(&value, static_cast<const char*>(ev[0].data()) + 2, sizeof value);
    std::string peer(static_cast<const char*>(ev[1].data()), ev[1].size());
    std::string why;
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      broken_handshakes_ = 0;
      continue;
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      why = peer + " refused this connection's key (ZAP status " + std::to_string(value) + ")";
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
               value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
      why = peer + " uses another security mechanism (one side has CURVE keys, the other not)";
    } else if (++broken_handshakes_ < broken_handshakes_before_refusal) {
      // The peer closed the connection mid-handshake: a process that died right then, or one
      // that will not talk to us. Only a run of them says the latter.
      continue;
    } else {
      why =
          peer + " broke off the handshake " + std::to_string(broken_handshakes_) +
          " times in a row (" +
          (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error " + std::to_string(value)
                                                        : std::string{zmq_strerror(int(value))}) +
          (opts_.client_keys.enabled() ? "): does it know this key, and is this its public key?"
                                       : "): it may want CURVE keys this side has not");
    }
    opts_.on_handshake_failed(why);
  }
}

void socket_thread::grant(zmq::socket_t& sock, multipart& msg) {
  // A subscription message: one frame, 1 (subscribe) or 0 (unsubscribe), then the prefix. In
  // manual mode what is set here applies to the peer that sent it.
  if (!opts_.grant_subscription || msg.size() != 1 || msg[0].size() == 0) return;
  auto* bytes = static_cast<const char*>(msg[0].data());
  if (bytes[0] != 0 && bytes[0] != 1) return;
  std::string asked{bytes + 1, msg[0].size() - 1};
  for (auto& prefix : opts_.grant_subscription(user_id_of(msg[0]), asked)) {
    if (bytes[0] == 1)
      sock.set(zmq::sockopt::subscribe, prefix);
    else
      sock.set(zmq::sockopt::unsubscribe, prefix);
  }
}

void socket_thread::run(zmq::context_t& ctx, std::promise<std::string>* ready) {
  std::string short_name = opts_.name.substr(0, 15);
  pthread_setname_np(pthread_self(), short_name.c_str());
  std::unique_ptr<zmq::socket_t> sock, monitor;
  try {
    sock = std::make_unique<zmq::socket_t>(ctx, opts_.type);
    sock->set(zmq::sockopt::linger, opts_.linger_ms);
    sock->set(zmq::sockopt::sndhwm, opts_.high_water_mark);
    sock->set(zmq::sockopt::rcvhwm, opts_.high_water_mark);
    sock->set(zmq::sockopt::maxmsgsize, opts_.max_message_bytes);
    sock->set(zmq::sockopt::reconnect_ivl, opts_.reconnect_ms);
    if (opts_.type == zmq::socket_type::router) sock->set(zmq::sockopt::router_mandatory, 1);
    if (opts_.router_handover) sock->set(zmq::sockopt::router_handover, 1);
    if (opts_.type == zmq::socket_type::xpub && opts_.grant_subscription)
      sock->set(zmq::sockopt::xpub_manual, 1);
    if (!opts_.routing_id.empty()) sock->set(zmq::sockopt::routing_id, opts_.routing_id);
    sock->set(zmq::sockopt::handshake_ivl, opts_.handshake_ms);
    sock->set(zmq::sockopt::backlog, opts_.listen_backlog);
    if (opts_.zmtp_heartbeat_ms > 0) {
      sock->set(zmq::sockopt::heartbeat_ivl, opts_.zmtp_heartbeat_ms);
      sock->set(zmq::sockopt::heartbeat_timeout, 3 * opts_.zmtp_heartbeat_ms);
    }
    set_curve(*sock);
    if (opts_.on_handshake_failed) monitor = watch_handshakes(ctx, *sock);
    if (opts_.bind)
      sock->bind(opts_.endpoint);
    else
      sock->connect(opts_.endpoint);
    ready->set_value(opts_.bind ? sock->get(zmq::sockopt::last_endpoint) : opts_.endpoint);
  } catch (const zmq::error_t& e) {
    ready->set_exception(std::make_exception_ptr(
        transport_error(opts_.name + ": cannot " + (opts_.bind ? "bind " : "connect to ") +
                        opts_.endpoint + ": " + e.what())));
    return;
  }
  std::deque<multipart> backlog;
  // A PUB socket only sends: asking it to receive fails with ENOTSUP.
  const bool receives = opts_.type != zmq::socket_type::pub;
  while (!stopping_.load(std::memory_order_acquire)) {
    short events = receives ? ZMQ_POLLIN : 0;
    if (!backlog.empty()) events |= ZMQ_POLLOUT;
    zmq::pollitem_t items[] = {{sock->handle(), 0, events, 0},
                               {nullptr, wake_fd_, ZMQ_POLLIN, 0},
                               {monitor ? monitor->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, monitor ? 3 : 2, opts_.tick);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      troupe::logger().error("{}: poll failed: {}", opts_.name, e.what());
      break;
    }
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof count);
      std::lock_guard<std::mutex> guard{mutex_};
      signalled_ = false;
      if (backlog.empty())
        backlog.swap(outbound_);
      else
        while (!outbound_.empty())
          backlog.push_back(std::move(outbound_.front())), outbound_.pop_front();
    }
    if (stopping_.load(std::memory_order_acquire)) break;
    if (monitor && (items[2].revents & ZMQ_POLLIN)) read_handshake_events(*monitor);
    if (before_send_) take_gathered(backlog);
    drain_outbound(*sock, backlog);
    backlog_size_.store(backlog.size(), std::memory_order_relaxed);
    for (int n = 0; receives && n < receive_batch; ++n) {
      multipart msg;
      try {
        auto r = zmq::recv_multipart(*sock, std::back_inserter(msg), zmq::recv_flags::dontwait);
        if (!r) break;
      } catch (const zmq::error_t& e) {
        if (e.num() == EAGAIN || e.num() == EINTR) break;
        troupe::logger().error("{}: receive failed: {}", opts_.name, e.what());
        break;
      }
      try {
        if (opts_.type == zmq::socket_type::xpub)
          grant(*sock, msg);
        else
          on_message_(msg);
      } catch (const std::exception& e) {
        // The handler answers bad input itself; this is a bug, not a peer's fault. Keep going.
        troupe::logger().error("{}: message handler threw: {}", opts_.name, e.what());
      }
    }
    if (before_send_) take_gathered(backlog);
    drain_outbound(*sock, backlog);  // replies the handler just queued
    {
      std::lock_guard<std::mutex> guard{mutex_};
      // Pick up what arrived meanwhile without waiting for the next wake-up.
      while (!outbound_.empty())
        backlog.push_back(std::move(outbound_.front())), outbound_.pop_front();
    }
    if (!backlog.empty()) drain_outbound(*sock, backlog);
    backlog_size_.store(backlog.size(), std::memory_order_relaxed);
  }
  if (opts_.linger_ms > 0) {  // a last word (a node's bye) goes out before the socket closes
    std::lock_guard<std::mutex> guard{mutex_};
    while (!outbound_.empty())
      backlog.push_back(std::move(outbound_.front())), outbound_.pop_front();
  }
  if (opts_.linger_ms > 0) drain_outbound(*sock, backlog);
  if (monitor) {
    zmq_socket_monitor(sock->handle(), nullptr, 0);
    monitor->close();
  }
  sock->close();
}

}  // namespace troupe::transport
