#include "troupe/actors/cpu_worker.hpp"

#include <spdlog/spdlog.h>

#include <caf/all.hpp>

namespace troupe {

namespace {

using self_ptr = worker_actor::stateful_pointer<cpu_worker_state>;
constexpr auto flush_interval = std::chrono::milliseconds(1);

void report(self_ptr self, bool busy) {
  auto& st = self->state;
  self->send(st.monitor, work_report_msg{st.index, st.generation, st.tasks_since_report,
                                         st.busy_ns_since_report, busy});
  st.tasks_since_report = 0;
  st.busy_ns_since_report = 0;
}

void flush(self_ptr self, std::vector<attempt_record>& records, event_batch& events, bool busy) {
  auto& st = self->state;
  events.flush(self, st.bus);
  report(self, busy);  // before the results, so stats taken after a result include its work
  if (!records.empty()) {
    self->send(st.balancer, results_msg{st.index, st.generation, std::move(records)});
    records.clear();
  }
}

}  // namespace

worker_actor::behavior_type cpu_worker_impl(worker_actor::stateful_pointer<cpu_worker_state> self,
                                            runtime_core* core, int32_t index, uint32_t generation,
                                            balancer_actor balancer, monitor_actor monitor,
                                            supervisor_actor supervisor, event_bus_actor bus) {
  auto& st = self->state;
  st.core = core;
  st.index = index;
  st.generation = generation;
  st.balancer = std::move(balancer);
  st.monitor = std::move(monitor);
  st.supervisor = std::move(supervisor);
  st.bus = std::move(bus);
  self->delayed_send(self, core->cfg.heartbeat_interval, heartbeat_tick_msg{});
  return {
      [=](assign_msg& msg) {
        auto& st = self->state;
        std::vector<attempt_record> records;
        records.reserve(msg.tasks.size());
        auto now = clock::now();
        auto flush_at = now + flush_interval;
        event_batch events{st.core->events};
        for (auto& a : msg.tasks) {
          auto& t = *a.task;
          attempt_record rec;
          rec.task = a.task;
          rec.attempt = a.attempt;
          rec.worker = st.index;
          if (t.cancel_requested.load(std::memory_order_relaxed)) {
            rec.code = errc::cancelled;  // the queue has already recorded why
          } else if (t.spec.deadline && *t.spec.deadline <= now) {
            rec.code = errc::deadline_expired;
          } else {
            if (events.wanted()) events.add("task.started", t.id, st.index, t.spec.kind);
            auto& desc = st.core->workers[size_t(st.index)];
            task_context ctx{t.spec,      a.attempt,           st.index,
                             desc.device, &t.cancel_requested, desc.device_index};
            rec.started = now;
            try {
              rec.output =
                  desc.device == device_class::cpu ? t.kind->def.cpu(ctx) : t.kind->def.cuda(ctx);
            } catch (const task_failure& f) {
              rec.code = f.code;
              rec.message = f.message;
            } catch (...) {
              // A crash of the implementation: report what ran, then die so that the supervisor
              // gives us a fresh start. The balancer takes the rest of the batch back.
              std::string what = "unknown exception";
              try {
                throw;
              } catch (const std::exception& e) {
                what = e.what();
              } catch (...) {
              }
              flush(self, records, events, false);
              self->send(
                  st.supervisor,
                  crash_report_msg{st.index, st.generation, t.id,
                                   "task kind '" + t.spec.kind + "' threw: " + what, clock::now()});
              self->quit(caf::make_error(caf::sec::runtime_error));
              return;
            }
            now = clock::now();
            rec.finished = now;
            ++st.tasks_since_report;
            st.busy_ns_since_report += (rec.finished - rec.started).count();
          }
          records.push_back(std::move(rec));
          if (now >= flush_at) {
            flush(self, records, events, true);
            flush_at = now + flush_interval;
          }
        }
        flush(self, records, events, false);
      },
      [=](const heartbeat_tick_msg&) {
        report(self, false);
        self->delayed_send(self, self->state.core->cfg.heartbeat_interval, heartbeat_tick_msg{});
      },
  };
}

}  // namespace troupe
