#pragma once
// A bound on log lines about one kind of trouble a peer can cause at will (refused connections,
// refused messages): at most `per_window` lines per window; the rest are counted, and the count
// is reported once when the next window opens.
#include <chrono>
#include <cstdint>

namespace troupe {

class log_limiter {
 public:
  explicit log_limiter(int per_window = 20,
                       std::chrono::steady_clock::duration window = std::chrono::seconds{10})
      : per_window_(per_window), window_(window) {}

  /// Whether to log this occurrence. `unshown` is set to the lines left out in the window that
  /// just ended (0 when none, or when no window ended): report it before this line.
  bool allow(uint64_t& unshown,
             std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    unshown = 0;
    if (now - started_ >= window_) {
      unshown = unlogged_;
      started_ = now, logged_ = 0, unlogged_ = 0;
    }
    if (logged_ < per_window_) {
      ++logged_;
      return true;
    }
    ++unlogged_;
    return false;
  }

 private:
  int per_window_;
  std::chrono::steady_clock::duration window_;
  std::chrono::steady_clock::time_point started_{};
  int logged_ = 0;
  uint64_t unlogged_ = 0;
};

}  // namespace troupe
