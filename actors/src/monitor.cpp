#include "troupe/actors/monitor.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "troupe/model/log.hpp"

namespace troupe {

namespace {

using self_ptr = monitor_actor::stateful_pointer<monitor_state>;

double ms(int64_t ns) {
  return double(ns) / 1e6;
}

runtime_stats snapshot(const monitor_state& st) {
  auto now = clock::now();
  runtime_stats s = st.totals;
  s.uptime_s = std::chrono::duration<double>(now - st.started).count();
  if (st.first_submit != time_point{})
    s.busy_window_s = std::chrono::duration<double>(st.last_finish - st.first_submit).count();
  s.errors_detected = st.detection_n;
  s.events_dropped = st.gate->dropped.load(std::memory_order_relaxed);
  s.mean_error_detection_ms = st.detection_n ? st.detection_sum_ms / double(st.detection_n) : 0;
  s.mean_error_handling_ms = st.handling_n ? st.handling_sum_ms / double(st.handling_n) : 0;
  s.mean_recovery_ms = st.totals.recovered ? st.recovery_sum_ms / double(st.totals.recovered) : 0;
  for (auto& [kind, h] : st.latency) {
    latency_summary l;
    l.count = h.count();
    l.mean_ms = h.mean() / 1e6;
    l.p50_ms = ms(int64_t(h.quantile(0.50)));
    l.p95_ms = ms(int64_t(h.quantile(0.95)));
    l.p99_ms = ms(int64_t(h.quantile(0.99)));
    l.max_ms = ms(int64_t(h.max()));
    s.latency.emplace(kind, l);
  }
  for (size_t i = 0; i < st.workers.size(); ++i) {
    auto& w = st.workers[i];
    worker_stats ws;
    ws.index = int32_t(i);
    auto& desc = st.setup->workers[i];
    ws.name = desc.name;
    ws.device = desc.device == device_class::cpu ? std::string{"cpu"}
                                                 : "cuda:" + std::to_string(desc.device_index);
    ws.state = w.state;
    ws.tasks = w.tasks;
    ws.busy_s = double(w.busy_ns) / 1e9;
    ws.restarts = w.restarts;
    ws.heartbeat_age_ms =
        w.last_heard == time_point{}
            ? -1
            : std::chrono::duration<double, std::milli>(now - w.last_heard).count();
    if (desc.device == device_class::cuda) {
      auto& g = st.gauges->gpu(i);
      auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
      auto capacity = load(g.capacity);  // the ledger's, once the balancer has shown it
      ws.gpu_memory =
          worker_stats::gpu_memory_figures{capacity ? capacity : desc.capacity.gpu_memory_bytes,
                                           load(g.reserved),
                                           load(g.task_bytes),
                                           load(g.cache_bytes),
                                           load(g.device_used),
                                           load(g.device_total),
                                           g.device_source.load(std::memory_order_relaxed)};
    }
    s.workers.push_back(ws);
  }
  for (auto& e : st.setup->reservations.entries()) {
    reservation_stats r;
    r.name = e.name;
    r.clients = e.clients;
    r.active = reservation_book::active(e, now);
    auto secs = [&](time_point t) { return std::chrono::duration<double>(t - now).count(); };
    r.starts_in_s = e.from && *e.from > now ? secs(*e.from) : 0;
    r.ends_in_s = e.until ? std::max(0.0, secs(*e.until)) : -1;
    for (auto w : e.workers) {
      r.workers.push_back(s.workers[w].name);
      if (s.workers[w].state == "busy")
        ++r.busy;
      else if (r.active && s.workers[w].state == "idle")
        ++r.idle;
    }
    s.reservations.push_back(std::move(r));
  }
  return s;
}

/// A metrics.snapshot event: its figures as structured values, and the same as a JSON object
/// in its detail (docs/protocol.md §7). nlohmann::json does the quoting: names may hold anything.
void fill_metrics(monitor_state& st, event& e) {
  auto now = clock::now();
  auto s = snapshot(st);
  auto finished = s.completed + s.failed + s.cancelled + s.expired;
  auto window = std::chrono::duration<double>(now - st.last_metrics).count();
  auto throughput = window > 0 ? double(finished - st.finished_at_last_metrics) / window : 0.0;
  st.finished_at_last_metrics = finished;
  st.last_metrics = now;
  auto in_system = st.admission->in_system();
  auto queued = std::min<uint64_t>(s.queued, in_system);
  nlohmann::json j = {{"throughput_tps", throughput},
                      {"queued", queued},
                      {"in_system", in_system},
                      {"completed", s.completed},
                      {"failed", s.failed},
                      {"events_dropped", s.events_dropped},
                      {"workers", nlohmann::json::array()},
                      {"latency_ms", nlohmann::json::object()}};
  auto& v = e.values;
  v.set("throughput_tps", throughput);
  v.set("queued", int64_t(queued));
  v.set("in_system", int64_t(in_system));
  v.set("completed", int64_t(s.completed));
  v.set("failed", int64_t(s.failed));
  v.set("events_dropped", int64_t(s.events_dropped));
  for (auto& w : s.workers) {
    auto utilisation = s.uptime_s > 0 ? w.busy_s / s.uptime_s : 0.0;
    j["workers"].push_back({{"name", w.name}, {"state", w.state}, {"utilisation", utilisation}});
    v.set("worker." + w.name + ".state", w.state);
    v.set("worker." + w.name + ".utilisation", utilisation);
  }
  for (auto& [kind, l] : s.latency) {
    j["latency_ms"][kind] = {{"p50", l.p50_ms}, {"p95", l.p95_ms}, {"p99", l.p99_ms}};
    v.set("latency_ms." + kind + ".p50", l.p50_ms);
    v.set("latency_ms." + kind + ".p95", l.p95_ms);
    v.set("latency_ms." + kind + ".p99", l.p99_ms);
  }
  e.detail = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

namespace {

double ms_of(duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

/// queue.pressure on crossing the high mark (pressure_ratio of the bound) and when back below
/// half of it: hysteresis, so that a queue near the mark does not flap.
void check_pressure(monitor_state& st, event_batch& events) {
  auto depth = st.admission->in_system();
  auto bound = double(st.setup->cfg.queue_bound);
  auto high = st.setup->cfg.pressure_ratio * bound;
  auto text = [&](const char* level) {
    return std::string{level} + ": " + std::to_string(depth) + " of " +
           std::to_string(st.setup->cfg.queue_bound) + " tasks admitted and unfinished";
  };
  if (!st.pressure_high && double(depth) >= high) {
    st.pressure_high = true;
    events.add("queue.pressure", 0, -1, text("high"));
  } else if (st.pressure_high && double(depth) < high / 2) {
    st.pressure_high = false;
    events.add("queue.pressure", 0, -1, text("normal"));
  }
}

/// A worker restarted twice or more within the supervision's restart period is degraded: it
/// is still in service, but something keeps killing it.
void note_restart(self_ptr self, int32_t worker) {
  auto& st = self->state;
  auto& w = st.workers.at(size_t(worker));
  auto now = self->clock().now();
  auto period = st.setup->cfg.restart_period;
  w.restarted_at.push_back(now);
  while (!w.restarted_at.empty() && now - w.restarted_at.front() > period)
    w.restarted_at.erase(w.restarted_at.begin());
  if (w.restarted_at.size() < 2) return;
  event_batch events{*st.gate};
  events.add("worker.degraded", 0, worker,
             "restarted " + std::to_string(w.restarted_at.size()) + " times in the last " +
                 std::to_string(period.count()) + " ms");
  events.flush(self, st.bus);
}

}  // namespace

monitor_actor::behavior_type monitor_impl(monitor_actor::stateful_pointer<monitor_state> self,
                                          setup_ptr setup, std::shared_ptr<const event_gate> gate,
                                          std::shared_ptr<const worker_gauges> gauges,
                                          std::shared_ptr<const admission_gate> admission,
                                          event_bus_actor bus) {
  auto& st = self->state;
  st.setup = setup;
  st.gate = std::move(gate);
  st.gauges = std::move(gauges);
  st.admission = std::move(admission);
  st.bus = std::move(bus);
  st.last_metrics = clock::now();
  if (setup->cfg.metrics_interval.count() > 0)
    self->delayed_send(self, setup->cfg.metrics_interval, metrics_tick_msg{});
  st.workers.resize(setup->workers.size());
  auto now = self->clock().now();  // heartbeats: the actor clock (tests drive it)
  for (size_t i = 0; i < st.workers.size(); ++i) {
    st.workers[i].last_heard = now;
    // A remote worker is watched once its node joins (membership reports it up).
    if (setup->workers[i].remote()) st.workers[i].state = "absent";
  }
  self->delayed_send(self, setup->cfg.heartbeat_interval, monitor_tick_msg{});
  return {
      [=](const finished_msg& msg) {
        auto& st = self->state;
        for (auto& r : msg.records) {
          st.latency[*r.kind].record(uint64_t(std::max<int64_t>(0, r.latency_ns)));
          st.totals.attempts += r.attempts;
          st.totals.sum_completion_s += double(std::max<int64_t>(0, r.latency_ns)) / 1e9;
          switch (r.status) {
            case outcome::completed:
              ++st.totals.completed;
              break;
            case outcome::failed:
              ++st.totals.failed;
              break;
            case outcome::cancelled:
              ++st.totals.cancelled;
              break;
            case outcome::expired:
              ++st.totals.expired;
              break;
            default:
              break;
          }
          if (st.first_submit == time_point{} || r.submitted < st.first_submit)
            st.first_submit = r.submitted;
          st.last_finish = std::max(st.last_finish, r.finished);
        }
        for (auto d : msg.detection_ms) st.detection_sum_ms += d, ++st.detection_n;
        for (auto h : msg.handling_ms) st.handling_sum_ms += h, ++st.handling_n;
        for (auto r : msg.recovery_ms) st.recovery_sum_ms += r, ++st.totals.recovered;
        st.totals.retries += msg.retries;
        st.totals.preempted += msg.preempted;
        st.totals.duplicates_dropped += msg.duplicates;
        st.totals.queued = msg.queued;
      },
      [=](const work_report_msg& msg) {
        auto& w = self->state.workers.at(size_t(msg.worker));
        if (msg.generation < w.generation) return;  // a replaced worker's late report
        w.generation = msg.generation;
        w.last_heard = self->clock().now();
        w.tasks += msg.tasks;
        w.busy_ns += msg.busy_ns;
        if (w.state != "restarting" && w.state != "down" && w.state != "absent")
          w.state = msg.busy ? "busy" : "idle";
        w.reported_silent = false;
        w.reported_late = false;
      },
      [=](const worker_state_msg& msg) {
        auto& st = self->state;
        auto& w = st.workers.at(size_t(msg.worker));
        if (msg.state == "restarting") note_restart(self, msg.worker);
        w.state = msg.state;
        w.restarts = msg.restarts;
        w.last_heard = self->clock().now();
        w.reported_silent = false;
        if (msg.state == "up") {
          w.generation = std::max(w.generation, msg.generation);
          w.state = "idle";
        }
      },
      [=](const monitor_tick_msg&) {
        auto& st = self->state;
        auto now = self->clock().now();
        event_batch events{*st.gate};
        check_pressure(st, events);
        for (size_t i = 0; i < st.workers.size(); ++i) {
          auto& w = st.workers[i];
          if (w.reported_silent || w.state == "restarting" || w.state == "down" ||
              w.state == "absent" || st.setup->workers[i].remote())
            continue;  // remote workers: membership watches their node's heartbeats
          auto silent = now - w.last_heard;
          if (!w.reported_late && silent > st.setup->cfg.heartbeat_timeout / 2) {
            w.reported_late = true;  // a warning before the supervisor is told
            events.add("worker.degraded", 0, int32_t(i),
                       "heartbeat late: " + std::to_string(int64_t(ms_of(silent))) +
                           " ms (unresponsive after " +
                           std::to_string(st.setup->cfg.heartbeat_timeout.count()) + " ms)");
          }
          if (silent > st.setup->cfg.heartbeat_timeout && st.supervisor) {
            w.reported_silent = true;
            w.state = "unresponsive";
            auto silent_ms = std::chrono::duration<double, std::milli>(silent).count();
            troupe::logger().warn("monitor: worker {} silent for {:.0f} ms", i, silent_ms);
            self->send(st.supervisor, unresponsive_msg{int32_t(i), w.generation, silent_ms});
          }
        }
        events.flush(self, st.bus);
        self->delayed_send(self, st.setup->cfg.heartbeat_interval, monitor_tick_msg{});
      },
      [=](const metrics_tick_msg&) {
        auto& st = self->state;
        self->delayed_send(self, st.setup->cfg.metrics_interval, metrics_tick_msg{});
        event_batch events{*st.gate};
        if (!events.wanted()) return;  // nobody listens: build nothing
        if (auto* e = events.add("metrics.snapshot", 0, -1, {})) fill_metrics(st, *e);
        events.flush(self, st.bus);
      },
      [=](supervisor_actor& sup) { self->state.supervisor = std::move(sup); },
      [=](const stats_request&) -> runtime_stats { return snapshot(self->state); },
  };
}

}  // namespace troupe
