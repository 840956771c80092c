#pragma once
// framer: builds the zmq frames of one message, [routing id,] header, body, with this peer's name,
// epoch and increasing message ids. Thread-safe (the id is atomic), so that actors and callback
// threads can all hand frames to one socket_thread.
#include <atomic>
#include <string>

#include "troupe/transport/codec.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace troupe::wire {

class framer {
 public:
  explicit framer(std::string from, uint64_t epoch = 0) : from_(std::move(from)), epoch_(epoch) {}

  void set_epoch(uint64_t e) { epoch_.store(e, std::memory_order_relaxed); }
  uint64_t epoch() const { return epoch_.load(std::memory_order_relaxed); }
  const std::string& from() const { return from_; }

  /// Frames of a message; `peer` is the ROUTER routing id (nullptr on a DEALER).
  template <class Body>
  transport::multipart make(const std::string* peer, msg_type type, const Body& body,
                            uint64_t corr = 0) {
    return frames(peer, reserve_id(), type, encode_message(body), corr);
  }

  /// Frames of a message whose body is already encoded (sent as it was kept elsewhere).
  transport::multipart make_encoded(const std::string* peer, msg_type type, zmq::message_t body,
                                    uint64_t corr = 0) {
    return frames(peer, reserve_id(), type, std::move(body), corr);
  }

  /// The id the next message will carry (to match a reply before sending).
  uint64_t reserve_id() { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  /// A message with a given id (reserved by reserve_id()), to the one peer of a DEALER.
  template <class Body>
  transport::multipart make_with_id(uint64_t id, msg_type type, const Body& body) {
    return frames(nullptr, id, type, encode_message(body), 0);
  }

  /// The same to a peer of a ROUTER (its routing id).
  template <class Body>
  transport::multipart make_with_id(const std::string& peer, uint64_t id, msg_type type,
                                    const Body& body) {
    return frames(&peer, id, type, encode_message(body), 0);
  }

 private:
  transport::multipart frames(const std::string* peer, uint64_t id, msg_type type,
                              zmq::message_t body, uint64_t corr) {
    header h;
    h.type = type;
    h.id = id;
    h.corr = corr;
    h.from = from_;
    h.epoch = epoch();
    transport::multipart m;
    m.reserve(3);
    if (peer) m.emplace_back(peer->data(), peer->size());
    m.emplace_back(encode_message(h));
    m.push_back(std::move(body));
    return m;
  }

  std::string from_;
  std::atomic<uint64_t> epoch_;
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace troupe::wire
