#pragma once
// A supervisor's restart intensity, as in Erlang/OTP: at most `max_restarts` restarts of any of
// its children within `period`; one more and it gives up (escalates). Restarts back off
// exponentially (backoff * 2^(recent restarts), capped). Times come from the caller: the actor
// clock, or a test's.
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

#include "troupe/model/task.hpp"

namespace troupe {

class restart_intensity {
 public:
  restart_intensity(uint32_t max_restarts, std::chrono::milliseconds period,
                    std::chrono::milliseconds backoff, std::chrono::milliseconds backoff_max)
      : max_(max_restarts), period_(period), backoff_(backoff), backoff_max_(backoff_max) {}

  /// A child was lost at `now`. The delay before restarting it, or nullopt: the limit is
  /// reached, give up.
  std::optional<std::chrono::milliseconds> on_child_lost(time_point now);
  /// Restarts counted within the period, as of the last call.
  size_t recent() const { return recent_.size(); }
  uint32_t limit() const { return max_; }
  std::chrono::milliseconds period() const { return period_; }

 private:
  uint32_t max_;
  std::chrono::milliseconds period_, backoff_, backoff_max_;
  std::deque<time_point> recent_;
};

}  // namespace troupe
