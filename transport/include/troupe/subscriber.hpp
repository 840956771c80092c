#pragma once
// troupe::subscriber: follows a head's events. It receives the whole stream on a SUB socket,
// checks that sequence numbers follow each other, and when one is missing (it was too slow and
// the head's PUB socket dropped events for it, or it joined late) asks the head for the events
// since the last one it has, from the head's ring, or for a snapshot of current state when the
// ring no longer has them; then it continues from there. Events reach the callback in sequence
// order, each once; it also keeps the state the events describe (unfinished tasks, workers,
// nodes, recently finished tasks).
//
//   troupe::subscriber sub{"tcp://127.0.0.1:5555", [](const troupe::event& e) { ... }};
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "troupe/model/event_log.hpp"
#include "troupe/model/events.hpp"
#include "troupe/transport/curve.hpp"

namespace troupe {

struct subscriber_options {
  std::string prefix;                        ///< only events whose topic starts with this
  std::chrono::milliseconds timeout{10000};  ///< for the head's answers
  int receive_high_water = 100000;           ///< events queued here before the head drops some
  size_t max_buffered = 1 << 20;             ///< events held while catching up; beyond: snapshot
  /// Called after the subscriber took a snapshot (at start, or when the ring had lost the
  /// events it needed): the state as of snapshot.seq; events continue from seq + 1.
  std::function<void(const state_snapshot&)> on_snapshot;
  /// Called when events [first, last] are found missing, before they are recovered.
  std::function<void(uint64_t first, uint64_t last)> on_gap;
  /// Called when events come from a new incarnation of the head (it restarted; its sequence
  /// starts again), before the snapshot the subscriber then takes.
  std::function<void(uint64_t previous, uint64_t now)> on_new_incarnation;
  /// A head with keys: a subscriber (or admin) key pair and the head's public key.
  transport::curve_client curve;
  int handshake_ms = 5000;  ///< a connection completes its handshake in this (zmq drops it)
};

struct subscriber_counters {
  uint64_t delivered = 0;     ///< events passed to the callback (after the prefix filter)
  uint64_t gaps = 0;          ///< times a sequence number was missing
  uint64_t replayed = 0;      ///< events recovered from the head's ring
  uint64_t snapshots = 0;     ///< snapshots taken (the first one at start included)
  uint64_t last_seq = 0;      ///< the newest event applied
  uint64_t incarnation = 0;   ///< of the head whose events are followed now
  uint64_t incarnations = 0;  ///< new incarnations seen after the first (head restarts)
  /// The topic prefixes this subscriber's key may follow (security.allow topics); empty: all.
  /// Limited, it gets only those (replays and snapshots cut to them too): it recovers what was
  /// published before its subscription took hold and a lost tail of the stream, but cannot
  /// tell an event lost between two it got from one it may not see (docs/security.md).
  std::vector<std::string> topics;
};

class subscriber {
 public:
  /// head: the head's ROUTER endpoint (the PUB endpoint is asked from it). The callback runs on
  /// the subscriber's own thread; while it runs, events queue (and beyond the high-water mark
  /// are lost, then recovered). Throws client_error if the head does not answer.
  subscriber(const std::string& head, std::function<void(const event&)> on_event,
             subscriber_options opts = {});
  ~subscriber();
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  subscriber_counters counters() const;
  /// The state the events describe, as of counters().last_seq.
  state_snapshot state() const;
  /// Blocks until an event with seq >= `seq` has been applied, or the timeout passes.
  bool wait_for_seq(uint64_t seq, std::chrono::milliseconds timeout) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
