#include "troupe/model/node_liveness.hpp"

namespace troupe {

node_liveness::hello_verdict node_liveness::on_hello(uint64_t epoch, time_point now) {
  auto verdict = hello_verdict::join;
  if (live()) {
    if (epoch == epoch_)
      verdict = hello_verdict::welcome_again;
    else if (epoch < epoch_)
      return hello_verdict::stale;
    else
      verdict = hello_verdict::replace;
  } else if (state_ == state::dead && epoch <= epoch_) {
    return hello_verdict::stale;
  }
  if (verdict != hello_verdict::welcome_again) ++joins_;
  epoch_ = epoch;
  last_heard_ = now;
  state_ = state::joined;
  return verdict;
}

node_liveness::message_verdict node_liveness::on_message(uint64_t epoch, time_point now) {
  if (!live()) return message_verdict::not_joined;
  if (epoch != epoch_) return message_verdict::stale_epoch;
  last_heard_ = now;
  if (state_ == state::suspect) {
    state_ = state::joined;
    return message_verdict::recovered;
  }
  return message_verdict::accept;
}

node_liveness::transition node_liveness::tick(time_point now,
                                              std::chrono::milliseconds suspect_after,
                                              std::chrono::milliseconds dead_after) {
  if (!live()) return transition::none;
  auto silent = now - last_heard_;
  if (silent > dead_after) {
    state_ = state::dead;
    return transition::became_dead;
  }
  if (silent > suspect_after && state_ == state::joined) {
    state_ = state::suspect;
    return transition::became_suspect;
  }
  return transition::none;
}

const char* to_string(node_liveness::state s) noexcept {
  switch (s) {
    case node_liveness::state::absent:
      return "absent";
    case node_liveness::state::joined:
      return "joined";
    case node_liveness::state::suspect:
      return "suspect";
    case node_liveness::state::dead:
      return "dead";
  }
  return "unknown";
}

}  // namespace troupe
