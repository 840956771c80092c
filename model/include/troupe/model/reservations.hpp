#pragma once
// Named reservations (docs/reservations.md), without threads: which tasks may run on which
// workers at a given moment. Workers a reservation holds take only the tasks that name it (label
// `reservation`) while it is active; tasks naming it run only on its workers. Built when the
// runtime starts, from [reservations.NAME] and the runtime's workers; the runtime asks at
// submit, the balancer as it places.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/config.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

/// The label a task names its reservation with, and the label that says whose task it is.
inline constexpr const char* reservation_label = "reservation";
inline constexpr const char* client_label = "client";

class reservation_book {
 public:
  struct entry {
    std::string name;
    std::vector<size_t> workers;  ///< indices among the runtime's workers
    std::vector<std::string> clients;
    std::optional<time_point> from, until;  ///< on the runtime's clock
  };

  reservation_book() = default;
  /// Throws config_error (file "config") naming reservations.NAME.workers when a worker name is
  /// unknown or held twice. `now` and `wall_now` are the same moment on both clocks.
  reservation_book(const std::vector<reservation_config>& cfg,
                   const std::vector<std::string>& worker_names, time_point now,
                   std::chrono::system_clock::time_point wall_now);

  bool empty() const { return entries_.empty(); }
  const std::vector<entry>& entries() const { return entries_; }
  const entry* find(const std::string& name) const;
  static bool active(const entry& e, time_point now) {
    return (!e.from || now >= *e.from) && (!e.until || now < *e.until);
  }
  static bool ended(const entry& e, time_point now) { return e.until && now >= *e.until; }

  /// Whether a task naming `name` ("": none) may run on worker w now.
  bool allows(size_t w, const std::string& name, time_point now) const;
  /// Whether it may there now or later (false: never again).
  bool could_ever(size_t w, const std::string& name, time_point now) const;
  /// The next moment after `now` at which a reservation starts or ends.
  std::optional<time_point> next_change(time_point now) const;
  /// Why a task may not name the reservation it names (unknown, not its client's, ended);
  /// "" when it may, or names none.
  std::string refusal(const task_spec& spec, time_point now) const;
  /// The reservation holding worker w for good from some time on (no `until`), if any: tasks
  /// that do not name it can never count on that worker.
  const entry* held_for_good(size_t w) const;

 private:
  std::vector<entry> entries_;
  std::vector<int> holder_;  ///< per worker: its entry, -1 if none
};

/// The reservation a task names ("" if none).
inline std::string reservation_of(const task_spec& s) {
  auto it = s.labels.find(reservation_label);
  return it == s.labels.end() ? std::string{} : it->second;
}

}  // namespace troupe
