#pragma once
// One node as the head sees it: absent -> joined <-> suspect -> dead, and the epoch that fences
// off its older incarnations. Plain logic: membership (actors/cluster) holds one per node and
// acts on what it answers; times come from the caller.
#include <chrono>
#include <cstdint>

#include "troupe/model/task.hpp"

namespace troupe {

class node_liveness {
 public:
  enum class state : uint8_t { absent, joined, suspect, dead };

  /// What a hello in `epoch` means.
  enum class hello_verdict : uint8_t {
    join,           ///< a fresh join: bring its workers up
    welcome_again,  ///< the joined epoch says hello again (our welcome was late)
    replace,        ///< a newer epoch while joined: the old incarnation is dead, then join
    stale,          ///< older than the joined epoch, or an epoch already declared dead: refuse
  };
  /// What a node message (heartbeat, results, worker state) in `epoch` means.
  enum class message_verdict : uint8_t {
    accept,       ///< from the joined epoch
    recovered,    ///< from the joined epoch of a suspect node: it is joined again
    stale_epoch,  ///< joined, but under another epoch: fenced
    not_joined,   ///< absent or dead: say hello first
  };
  /// What silence did to the node at a tick.
  enum class transition : uint8_t { none, became_suspect, became_dead };

  /// Decides, and for join/welcome_again/replace records the join (epoch, heard now).
  hello_verdict on_hello(uint64_t epoch, time_point now);
  /// Decides, and refreshes last heard for accepted messages.
  message_verdict on_message(uint64_t epoch, time_point now);
  /// Silence past suspect_after makes a joined node suspect; past dead_after, dead.
  transition tick(time_point now, std::chrono::milliseconds suspect_after,
                  std::chrono::milliseconds dead_after);
  /// It was declared dead by the head (its epoch stays fenced off).
  void mark_dead() { state_ = state::dead; }
  /// It said bye: a later hello joins afresh, whatever its epoch.
  void mark_left() { state_ = state::absent; }

  state current() const { return state_; }
  bool live() const { return state_ == state::joined || state_ == state::suspect; }
  uint64_t epoch() const { return epoch_; }
  uint32_t joins() const { return joins_; }
  time_point last_heard() const { return last_heard_; }

 private:
  state state_ = state::absent;
  uint64_t epoch_ = 0;
  uint32_t joins_ = 0;
  time_point last_heard_{};
};

const char* to_string(node_liveness::state s) noexcept;

}  // namespace troupe
