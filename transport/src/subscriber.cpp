#include "troupe/subscriber.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "troupe/client.hpp"
#include "troupe/model/log.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/framer.hpp"

namespace troupe {

namespace {
constexpr size_t max_finished_kept = size_t(1) << 20;
constexpr auto idle_probe = std::chrono::milliseconds(1000);
}  // namespace

struct subscriber::impl {
  enum class phase { awaiting_snapshot, awaiting_replay, live };

  subscriber_options opts;
  std::function<void(const event&)> on_event;
  wire::limits lim;
  wire::framer framer{"subscriber"};
  zmq::context_t ctx{1};
  std::string head_endpoint, events_endpoint;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::thread thread;

  mutable std::mutex mutex;  // state and counters: read by callers, written by the thread
  mutable std::condition_variable applied;
  state_snapshot state;
  subscriber_counters counters;

  // The thread's own.
  phase at = phase::awaiting_snapshot;
  uint64_t next = 0;               // the seq expected next
  uint64_t incarnation = 0;        // of the head followed (0: not known yet)
  std::map<uint64_t, event> held;  // arrived ahead of `next`
  clock::time_point asked_at{};
  bool probing = false;  // the pending replay request asks "anything newer?" after a quiet spell
  bool limited = false;  // the key follows some topics only: holes in seq are not gaps

  impl(const std::string& head, std::function<void(const event&)> cb, subscriber_options o)
      : opts(std::move(o)), on_event(std::move(cb)), head_endpoint(head) {
    client_options co;
    co.name = "troupe-subscriber";
    co.timeout = opts.timeout;
    co.curve = opts.curve;
    client c{head, co};
    events_endpoint = c.status().events_endpoint;
    if (events_endpoint.empty())
      throw client_error("the head at " + head + " publishes no events (cluster.events = \"\")");
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread = std::thread([this] { run(); });
  }

  ~impl() {
    stopping = true;
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
    thread.join();
    ::close(wake_fd);
  }

  void deliver(const event& e) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      apply(state, e);
      if (state.finished.size() > max_finished_kept) state.finished.erase(state.finished.begin());
      counters.last_seq = e.seq;
      if (e.topic.compare(0, opts.prefix.size(), opts.prefix) == 0) ++counters.delivered;
    }
    if (e.topic.compare(0, opts.prefix.size(), opts.prefix) == 0 && on_event) {
      try {
        on_event(e);
      } catch (const std::exception& ex) {
        troupe::logger().warn("subscriber: the callback threw on event {}: {}", e.seq, ex.what());
      }
    }
    applied.notify_all();
    next = e.seq + 1;
  }

  template <class Body>
  void ask(zmq::socket_t& dealer, wire::msg_type type, const Body& body) {
    auto m = framer.make(nullptr, type, body);
    for (size_t i = 0; i < m.size(); ++i)
      dealer.send(m[i], i + 1 < m.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    asked_at = clock::now();
  }

  void ask_replay(zmq::socket_t& dealer, bool probe = false) {
    probing = probe;
    at = phase::awaiting_replay;
    ask(dealer, wire::msg_type::replay_request, wire::replay_request{next});
  }

  void ask_snapshot(zmq::socket_t& dealer) {
    at = phase::awaiting_snapshot;
    ask(dealer, wire::msg_type::snapshot_request, wire::snapshot_request{});
  }

  /// Delivers what is held and now in order; asks for what is still missing.
  void gap(uint64_t first_missing, uint64_t last_missing) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      ++counters.gaps;
    }
    if (opts.on_gap) opts.on_gap(first_missing, last_missing);
  }

  void drain(zmq::socket_t& dealer) {
    while (!held.empty() && (held.begin()->first <= next || limited)) {
      auto e = std::move(held.begin()->second);
      held.erase(held.begin());
      if (e.seq == next || (limited && e.seq > next)) deliver(e);
    }
    if (!held.empty()) {
      gap(next, held.begin()->first - 1);
      ask_replay(dealer);
    } else {
      at = phase::live;
    }
  }

  /// Events or answers of another head incarnation: its sequence starts again. Forget the old
  /// one's and start from a snapshot of the new head. False: not a new one.
  bool new_incarnation(zmq::socket_t& dealer, uint64_t inc) {
    // Incarnations only grow: a late message of the old head is not a new one.
    if (inc == 0 || inc <= incarnation) return false;
    auto previous = incarnation;
    incarnation = inc;
    {
      std::lock_guard<std::mutex> guard{mutex};
      counters.incarnation = inc;
      if (previous) {
        ++counters.incarnations;
        counters.last_seq = 0;  // the new head numbers from 1
      }
    }
    if (!previous) return false;  // the first one seen
    troupe::logger().info("subscriber: the head is a new incarnation ({}, was {}): resyncing", inc,
                          previous);
    if (opts.on_new_incarnation) opts.on_new_incarnation(previous, inc);
    held.clear();
    next = 0;
    ask_snapshot(dealer);
    return true;
  }

  void on_published(zmq::socket_t& dealer, const event& e) {
    if (e.incarnation && e.incarnation < incarnation) return;  // the old head's, late
    if (new_incarnation(dealer, e.incarnation)) {
      held.emplace(e.seq, e);  // the snapshot decides whether it is still needed
      return;
    }
    if (at == phase::live && (e.seq == next || (limited && e.seq > next))) {
      deliver(e);
      return;
    }
    if (at != phase::awaiting_snapshot && e.seq < next) return;  // already have it
    if (held.size() >= opts.max_buffered) {  // too far behind to hold on: start over
      held.clear();
      ask_snapshot(dealer);
    }
    held.emplace(e.seq, e);
    if (at == phase::live) drain(dealer);  // e.seq > next: a gap
  }

  void on_reply(zmq::socket_t& dealer, transport::multipart& m) {
    auto h = wire::decode_header(m[0].data(), m[0].size(), lim);
    if (h.epoch != 0 && h.epoch < incarnation) return;  // the old head's answer, late
    if (h.epoch != 0 && h.epoch != incarnation) {
      bool restarted = incarnation != 0;
      new_incarnation(dealer, h.epoch);  // after a restart: forgets, asks for a snapshot
      // A replay from the new head answers a question about the old one's sequence: drop it.
      // A snapshot is the new head's state: take it.
      if (restarted && h.type != wire::msg_type::snapshot) return;
    }
    if (h.type == wire::msg_type::snapshot && at == phase::awaiting_snapshot) {
      auto s = wire::decode<wire::snapshot>(m[1].data(), m[1].size(), lim);
      {
        std::lock_guard<std::mutex> guard{mutex};
        state = s.state;
        counters.last_seq = s.state.seq;
        ++counters.snapshots;
      }
      applied.notify_all();
      next = s.state.seq + 1;
      // A key limited to some topics: its sequence has holes that are not gaps.
      limited = !s.topics.empty();
      {
        std::lock_guard<std::mutex> guard{mutex};
        counters.topics = s.topics;
      }
      if (opts.on_snapshot) opts.on_snapshot(s.state);
      if (limited) return ask_replay(dealer);  // what came before its subscription took hold
      drain(dealer);
    } else if (h.type == wire::msg_type::replay && at == phase::awaiting_replay) {
      auto r = wire::decode<wire::replay>(m[1].data(), m[1].size(), lim);
      if (limited) return take_limited_replay(dealer, r);
      // A probe that finds events the stream never brought: the tail of the stream was lost.
      if (probing && (!r.complete || (!r.events.empty() && held.empty()))) gap(next, r.last_seq);
      probing = false;
      if (!r.complete) return ask_snapshot(dealer);  // the ring has lost some of them
      for (auto& e : r.events) {
        if (e.seq != next) continue;
        deliver(e);
        std::lock_guard<std::mutex> guard{mutex};
        ++counters.replayed;
      }
      // More than one reply's worth missing, or events published after the reply: ask on.
      if (next <= r.last_seq && (held.empty() || held.begin()->first > next))
        return ask_replay(dealer);
      at = phase::live;
      drain(dealer);
    } else if (h.type == wire::msg_type::error) {
      auto e = wire::decode<wire::error>(m[1].data(), m[1].size(), lim);
      troupe::logger().warn("subscriber: the head refused a request: {}: {}",
                            wire::to_string(e.code), e.message);
    }
  }

  /// A key limited to some topics: the head's replay holds only those, looked at through
  /// r.through. Whatever of them did not come by the stream was lost: a tail the stream never
  /// brought (a quiet spell is when it asks), or what was published before its subscription
  /// took effect (it asks right after each snapshot). An event lost between two it got cannot
  /// be told from a hole in its sequence.
  void take_limited_replay(zmq::socket_t& dealer, const wire::replay& r) {
    bool probe = probing;
    probing = false;
    if (!r.complete) return ask_snapshot(dealer);  // the ring has lost some of them
    auto from = next;
    bool lost = false;
    for (auto& e : r.events) {
      if (e.seq < next) continue;
      lost = lost || !held.count(e.seq);  // (what the stream brought meanwhile is held)
      deliver(e);
      std::lock_guard<std::mutex> guard{mutex};
      ++counters.replayed;
    }
    if (probe && lost) gap(from, r.through);
    if (r.through >= next) next = r.through + 1;
    if (r.through < r.last_seq) return ask_replay(dealer);  // more to look at
    at = phase::live;
    drain(dealer);
  }

  void run() {
    zmq::socket_t sub{ctx, zmq::socket_type::sub}, dealer{ctx, zmq::socket_type::dealer};
    // Bounded like every socket: no frame over the largest an event or reply can be (a peer
    // that sends one is disconnected), and no handshake that hangs.
    for (auto* s : {&sub, &dealer}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::maxmsgsize, int64_t(lim.max_frame_bytes) * 2);
      s->set(zmq::sockopt::handshake_ivl, opts.handshake_ms);
      transport::use_keys(*s, opts.curve);
    }
    sub.set(zmq::sockopt::rcvhwm, opts.receive_high_water);
    // The whole stream: gaps can only be seen in it. The prefix filters here, not at the head.
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(events_endpoint);
    dealer.set(zmq::sockopt::rcvhwm, 1000);  // answers to its own few questions
    dealer.connect(head_endpoint);
    ask_snapshot(dealer);  // joining late is normal: start from current state
    while (!stopping) {
      zmq::pollitem_t items[] = {{sub.handle(), 0, ZMQ_POLLIN, 0},
                                 {dealer.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      auto wait = at == phase::live ? idle_probe : opts.timeout;
      int n = zmq::poll(items, 3, wait);
      if (stopping) break;
      if (n == 0) {
        // Quiet: a lost tail of the stream would go unnoticed; ask the head what is newer.
        // Waiting for an answer too long: ask again.
        if (at == phase::awaiting_snapshot)
          ask_snapshot(dealer);
        else
          ask_replay(dealer, at == phase::live);
        continue;
      }
      // An answer that never comes (the head died with the question) while events keep coming.
      if (at != phase::live && clock::now() - asked_at >= opts.timeout) {
        if (at == phase::awaiting_snapshot)
          ask_snapshot(dealer);
        else
          ask_replay(dealer);
      }
      for (int burst = 0; burst < 1024 && (items[0].revents & ZMQ_POLLIN); ++burst) {
        transport::multipart m;
        if (!zmq::recv_multipart(sub, std::back_inserter(m), zmq::recv_flags::dontwait)) break;
        if (m.size() != 2) continue;
        try {
          on_published(dealer, wire::decode<event>(m[1].data(), m[1].size(), lim));
        } catch (const wire::decode_error& e) {
          troupe::logger().warn("subscriber: undecodable event: {}", e.what());
        }
      }
      if (items[1].revents & ZMQ_POLLIN) {
        transport::multipart m;
        while (zmq::recv_multipart(dealer, std::back_inserter(m), zmq::recv_flags::dontwait)) {
          if (m.size() == 2) {
            try {
              on_reply(dealer, m);
            } catch (const wire::decode_error& e) {
              troupe::logger().warn("subscriber: undecodable reply: {}", e.what());
            }
          }
          m.clear();
        }
      }
    }
  }
};

subscriber::subscriber(const std::string& head, std::function<void(const event&)> on_event,
                       subscriber_options opts)
    : impl_(std::make_unique<impl>(head, std::move(on_event), std::move(opts))) {}

subscriber::~subscriber() = default;

subscriber_counters subscriber::counters() const {
  std::lock_guard<std::mutex> guard{impl_->mutex};
  return impl_->counters;
}

state_snapshot subscriber::state() const {
  std::lock_guard<std::mutex> guard{impl_->mutex};
  return impl_->state;
}

bool subscriber::wait_for_seq(uint64_t seq, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock{impl_->mutex};
  return impl_->applied.wait_for(lock, timeout, [&] { return impl_->counters.last_seq >= seq; });
}

}  // namespace troupe
