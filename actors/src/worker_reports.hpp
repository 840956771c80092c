#pragma once
// What both worker actors (device_worker, cuda_worker) send about their work: heartbeats with the
// work done to the monitor, results in batches to the balancer, events to the bus.
#include <caf/all.hpp>

#include "troupe/actors/messages.hpp"

namespace troupe::worker_reports {

/// Sends what the worker did since its last report to the monitor, and resets the counters.
template <class Self, class State>
void heartbeat(Self self, State& st, bool busy) {
  self->send(st.monitor, work_report_msg{st.index, st.generation, st.tasks_since_report,
                                         st.busy_ns_since_report, busy});
  st.tasks_since_report = 0;
  st.busy_ns_since_report = 0;
}

/// Events first, then the heartbeat (stats taken after a result include its work), then the
/// results.
template <class Self, class State>
void flush(Self self, State& st, std::vector<attempt_record>& records, event_batch& events,
           bool busy) {
  events.flush(self, st.bus);
  heartbeat(self, st, busy);
  if (!records.empty()) {
    self->send(st.balancer, results_msg{st.index, st.generation, std::move(records)});
    records.clear();
  }
}

inline attempt_record record_of(const assignment& a, int32_t worker) {
  attempt_record rec;
  rec.task = a.task;
  rec.attempt = a.attempt;
  rec.worker = worker;
  return rec;
}

/// Why a task must not start now (cancelled, past its deadline), or errc::none.
inline errc skip_reason(const task_state& t, time_point now) {
  if (t.cancel_requested.load(std::memory_order_relaxed))
    return errc::cancelled;  // the queue has already recorded why
  if (t.spec.deadline && *t.spec.deadline <= now) return errc::deadline_expired;
  return errc::none;
}

/// "task kind 'K' threw: what" from a crash.
inline std::string crash_text(const task_state& t, std::exception_ptr ep) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  return "task kind '" + t.spec.kind + "' threw: " + what;
}

}  // namespace troupe::worker_reports
