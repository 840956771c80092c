#pragma once
// The field table of every wire message: for each struct of wire.hpp, and for each model struct
// they carry, one function template in the style of CAF's inspect() names the MessagePack map key
// of every member, once. The codec's one encoder and one decoder walk these tables
// (codec.cpp); the tests walk them to check that every member of a struct is on the wire and
// that docs/protocol.md lists exactly these keys.
//
//   f(key, member, options...)
//
// - `required`: the decoder refuses a body without the key, naming it. Without it, an absent
//   key leaves the member at its default.
// - `omit_empty`: the encoder leaves the key out when the member is empty (a flag when false, a
//   number when 0). (A std::optional member is always left out when unset.) Every other key is
//   always written.
// - a converter, where the wire form differs from the member: `remaining_ms`, `as_ms`,
//   `supported_version`.
// - `with_column` and `as_pairs` adapt members whose wire shape is not theirs.
//
// A table may call the table of a member to flatten its keys into the parent's map.
// Enums travel as their names (to_string); ints, floats, bools, strings, bytes (bin), parameter
// maps, vectors (arrays) and string-keyed maps as themselves.
#include <map>
#include <vector>

#include "troupe/transport/wire.hpp"

namespace troupe::wire {

/// The decoder refuses a body without this key.
struct required_t {};
inline constexpr required_t required{};

/// The encoder leaves the key out when the member is empty.
struct omit_empty_t {};
inline constexpr omit_empty_t omit_empty{};

/// A deadline (time_point) as int milliseconds remaining: relative to when the message is
/// encoded, and back to a time_point relative to when it is decoded.
struct remaining_ms_t {};
inline constexpr remaining_ms_t remaining_ms{};

/// A time point of a task's run as int microseconds relative to when the message is encoded
/// (negative: before), and back relative to when it is decoded: processes share no clock, so a
/// reader's times are the writer's shifted by the transit time. Left out when unset.
struct since_encoded_us_t {};
inline constexpr since_encoded_us_t since_encoded_us{};

/// A std::chrono::milliseconds as an int count (written as int64, read as uint32).
struct as_ms_t {};
inline constexpr as_ms_t as_ms{};

/// header.v: a uint32; another value than protocol_version is refused with bad_version.
struct supported_version_t {};
inline constexpr supported_version_t supported_version{};

/// Two vectors that travel as one array of maps: entry i holds the keys of rows[i] and
/// column[i] under `key` (a missing column value is written as V{} and read back as V{}).
template <class Row, class V>
struct with_column {
  std::vector<Row>& rows;
  const char* key;
  std::vector<V>& column;
};

/// A map that travels as an array of {key_name: k, value_name: v} maps (both required).
template <class K, class V>
struct as_pairs {
  std::map<K, V>& map;
  const char* key_name;
  const char* value_name;
};

// --- model structs carried by the messages --------------------------------------------------

template <class F>
void fields(F& f, worker_capacity& m) {
  f("cpu_slots", m.cpu_slots, required);
  f("memory_bytes", m.memory_bytes, required);
  f("gpu_count", m.gpu_count, required);
  f("gpu_memory_bytes", m.gpu_memory_bytes, required);
}

template <class F>
void fields(F& f, resources& m) {
  f("cpu_slots", m.cpu_slots);
  f("memory_bytes", m.memory_bytes);
  f("gpu_count", m.gpu_count);
  f("gpu_memory_bytes", m.gpu_memory_bytes);
}

template <class F>
void fields(F& f, gpu_device& m) {
  f("index", m.index, required);
  f("name", m.name, required);
  f("cc_major", m.cc_major);
  f("cc_minor", m.cc_minor);
  f("total_memory", m.total_memory);
  f("free_memory", m.free_memory);
}

/// A graph task's input (task_spec::inputs).
template <class F>
void fields(F& f, task_input& m) {
  f("param", m.param, required);
  f("from", m.from, required);
  f("field", m.field, required);
}

/// A task as submitted (and as assigned to a node).
template <class F>
void fields(F& f, task_spec& m) {
  f("kind", m.kind, required);
  f("params", m.params);
  f("payload", m.payload);
  f("priority", m.priority);
  f("needs", m.needs);
  f("deadline_ms", m.deadline, remaining_ms);
  f("max_retries", m.max_retries);
  f("retry_backoff_ms", m.retry_backoff, as_ms);
  f("timeout_ms", m.timeout, as_ms);
  f("key", m.idempotency_key, omit_empty);
  f("labels", m.labels, omit_empty);
  f("after", m.after, omit_empty);
  f("inputs", m.inputs, omit_empty);
  f("preemptible", m.preemptible, omit_empty);
}

/// Flattened into the map of a record that carries an output.
template <class F>
void fields(F& f, task_output& m) {
  f("values", m.values);
  f("bytes", m.bytes);
}

/// A terminal record sent to a client. Its run's times travel relative to the message
/// (since_encoded_us), for a timeline of the tasks (troupe submit --graph --trace); `result`
/// adds latency_ms.
template <class F>
void fields(F& f, task_result& m) {
  f("id", m.id, required);
  f("kind", m.kind);
  f("outcome", m.status, required);
  f("code", m.error.code, required);
  f("message", m.error.message);
  fields(f, m.output);
  f("attempts", m.attempts);
  f("worker", m.timings.worker);
  f("queued_us", m.timings.queued, since_encoded_us);
  f("started_us", m.timings.started, since_encoded_us);
  f("ran_until_us", m.timings.ran_until, since_encoded_us);
}

template <class F>
void fields(F& f, latency_summary& m) {
  f("count", m.count);
  f("mean_ms", m.mean_ms, required);
  f("p50_ms", m.p50_ms, required);
  f("p95_ms", m.p95_ms, required);
  f("p99_ms", m.p99_ms, required);
  f("max_ms", m.max_ms, required);
}

template <class F>
void fields(F& f, worker_stats::gpu_memory_figures& m) {
  f("capacity", m.capacity);
  f("reserved", m.reserved);
  f("in_use", m.in_use);
  f("cache", m.cache);
  f("device_used", m.device_used);
  f("device_total", m.device_total);
  f("device_source", m.device_source);
}

/// A reservation of `status` (docs/reservations.md).
template <class F>
void fields(F& f, reservation_stats& m) {
  f("name", m.name, required);
  f("workers", m.workers);
  f("clients", m.clients, omit_empty);
  f("active", m.active);
  f("busy", m.busy);
  f("idle", m.idle);
  f("starts_in_s", m.starts_in_s);
  f("ends_in_s", m.ends_in_s);
}

/// A worker of `status`; `status` adds its node.
template <class F>
void fields(F& f, worker_stats& m) {
  f("gpu_memory", m.gpu_memory);
  f("index", m.index, required);
  f("name", m.name, required);
  f("device", m.device);
  f("state", m.state);
  f("tasks", m.tasks);
  f("busy_s", m.busy_s);
  f("restarts", m.restarts);
  f("heartbeat_age_ms", m.heartbeat_age_ms);
}

/// A published event (a PUB message's body, and an entry of `replay`).
template <class F>
void fields(F& f, event& m) {
  f("seq", m.seq, required);
  f("time_ns", m.time_ns);
  f("topic", m.topic, required);
  f("task", m.task);
  f("worker", m.worker);
  f("detail", m.detail);
  f("node", m.node, omit_empty);
  f("kind", m.kind, omit_empty);
  f("values", m.values, omit_empty);
  f("incarnation", m.incarnation);
}

// --- the header and the parts of messages ---------------------------------------------------

template <class F>
void fields(F& f, header& m) {
  f("v", m.v, required, supported_version);
  f("type", m.type, required);
  f("id", m.id);
  f("corr", m.corr);
  f("from", m.from);
  f("epoch", m.epoch);
}

template <class F>
void fields(F& f, worker_info& m) {
  f("name", m.name, required);
  f("device", m.device, required);
  f("device_index", m.device_index);
  f("capacity", m.capacity, required);
}

template <class F>
void fields(F& f, gpu_memory_report& m) {
  f("worker", m.worker, required);
  f("in_use", m.in_use);
  f("cache", m.cache);
  f("device_used", m.device_used);
  f("device_total", m.device_total);
  f("device_source", m.device_source);
}

template <class F>
void fields(F& f, kept_input& m) {
  f("input", m.input, required);
  f("task", m.task, required);
  f("node", m.node, omit_empty);
  f("endpoint", m.endpoint, omit_empty);
  f("epoch", m.epoch, omit_empty);
}

template <class F>
void fields(F& f, assigned_task& m) {
  f("id", m.id, required);
  f("attempt", m.attempt, required);
  f("worker", m.worker, required);
  f("spec", m.spec, required);
  f("order", m.order);
  f("keep_output", m.keep_output, omit_empty);
  f("kept_inputs", m.kept_inputs, omit_empty);
}

template <class F>
void fields(F& f, attempt_result& m) {
  f("id", m.id, required);
  f("attempt", m.attempt, required);
  f("worker", m.worker, required);
  f("code", m.code, required);
  f("message", m.message);
  fields(f, m.output);
  f("run_ns", m.run_ns);
  f("counts", m.counts_as_attempt);
}

template <class F>
void fields(F& f, node_status& m) {
  f("name", m.name, required);
  f("gpus", m.gpus);
  f("gpu_note", m.gpu_note);
  f("state", m.state, required);
  f("epoch", m.epoch);
  f("joins", m.joins);
  f("heartbeat_age_ms", m.heartbeat_age_ms);
  f("workers", m.workers, required);
  f("kept_inputs", m.kept_inputs, omit_empty);
  f("kept_input_bytes", m.kept_input_bytes, omit_empty);
  f("fetched_inputs", m.fetched_inputs, omit_empty);
  f("fetched_input_bytes", m.fetched_input_bytes, omit_empty);
  f("preemptible_running", m.preemptible_running, omit_empty);
}

// --- message bodies, in msg_type order ------------------------------------------------------

template <class F>
void fields(F& f, hello& m) {
  f("node", m.node, required);
  f("gpus", m.gpus);
  f("gpu_note", m.gpu_note);
  f("workers", m.workers, required);
  f("kinds", m.kinds);
  f("kind_devices", m.kind_devices, omit_empty);
  f("max_payload_bytes", m.max_payload_bytes);
  f("data_endpoint", m.data_endpoint, omit_empty);
}

template <class F>
void fields(F& f, data_peer& m) {
  f("node", m.node, required);
  f("key", m.key, required);
}

template <class F>
void fields(F& f, welcome& m) {
  f("node", m.node, required);
  f("epoch", m.epoch, required);
  f("heartbeat_ms", m.heartbeat_ms, required);
  f("first_worker", m.first_worker);
  f("data_peers", m.data_peers, omit_empty);
}

template <class F>
void fields(F& f, heartbeat& m) {
  f("gpus", m.gpus, omit_empty);
  f("last_assign", m.last_assign);
  f("holding", m.holding, omit_empty);
  f("preemptible_running", m.preemptible_running, omit_empty);
}

template <class F>
void fields(F& f, assign& m) {
  f("tasks", m.tasks, required);
}

template <class F>
void fields(F& f, results& m) {
  f("records", m.records, required);
}

template <class F>
void fields(F& f, worker_state& m) {
  f("worker", m.worker, required);
  f("up", m.up, required);
  f("crashed_task", m.crashed_task);
  f("reason", m.reason);
  f("retired", m.retired);
}

template <class F>
void fields(F& f, submit& m) {
  f("tasks", m.tasks, required);
  f("token", m.token);
  f("on_failure", m.on_failure);
  f("gang", m.gang, omit_empty);
}

template <class F>
void fields(F& f, submitted& m) {
  f("ids", m.ids, required);
}

template <class F>
void fields(F& f, result& m) {
  f("tasks", with_column<task_result, double>{m.tasks, "latency_ms", m.latency_ms}, required);
}

template <class F>
void fields(F& f, cancel& m) {
  f("ids", m.ids, required);
  f("preempt", m.preempt, omit_empty);
}

template <class F>
void fields(F& f, fetch& m) {
  f("ids", m.ids, required);
}

template <class F>
void fields(F& f, fetched& m) {
  f("pending", m.pending, required);
  f("unknown", m.unknown, required);
}

template <class F>
void fields(F& f, output_request& m) {
  f("tasks", m.tasks, required);
  f("epoch", m.epoch, required);
}

template <class F>
void fields(F& f, output_reply& m) {
  f("task", m.task, required);
  f("found", m.found, required);
  f("message", m.message, omit_empty);
  // The encoder only reads: a kept output shared with the node's store is written as it is.
  fields(f, m.kept ? const_cast<task_output&>(*m.kept) : m.output);
}

template <class F>
void fields(F&, status_request&) {}

/// runtime_stats flattened into the body, with the head's own figures.
template <class F>
void fields(F& f, status& m) {
  auto& s = m.stats;
  f("events_dropped", s.events_dropped);
  f("events_endpoint", m.events_endpoint);
  f("last_event_seq", m.last_event_seq);
  f("frames_refused", m.frames_refused);
  f("stale_frames", m.stale_frames);
  f("submitted", s.submitted);
  f("rejected", s.rejected);
  f("completed", s.completed);
  f("failed", s.failed);
  f("cancelled", s.cancelled);
  f("expired", s.expired);
  f("retries", s.retries);
  f("preempted", s.preempted);
  f("queued", s.queued);
  f("in_flight", s.in_flight);
  f("uptime_s", s.uptime_s);
  f("errors_detected", s.errors_detected);
  f("mean_error_detection_ms", s.mean_error_detection_ms);
  f("mean_error_handling_ms", s.mean_error_handling_ms);
  f("mean_recovery_ms", s.mean_recovery_ms);
  f("recovered", s.recovered);
  f("attempts", s.attempts);
  f("sum_completion_s", s.sum_completion_s);
  f("duplicates_dropped", s.duplicates_dropped);
  f("busy_window_s", s.busy_window_s);
  f("latency", s.latency);
  f("workers", with_column<worker_stats, std::string>{s.workers, "node", m.worker_nodes}, required);
  f("reservations", s.reservations, omit_empty);
  f("nodes", m.nodes, required);
}

template <class F>
void fields(F& f, error& m) {
  f("code", m.code, required);
  f("message", m.message);
}

template <class F>
void fields(F& f, replay_request& m) {
  f("since", m.since, required);
}

template <class F>
void fields(F& f, replay& m) {
  f("complete", m.complete, required);
  f("last_seq", m.last_seq);
  f("events", m.events, required);
  f("through", m.through);
}

template <class F>
void fields(F&, snapshot_request&) {}

template <class F>
void fields(F& f, snapshot& m) {
  auto& s = m.state;
  f("seq", s.seq, required);
  f("finished", as_pairs<task_id, std::string>{s.finished, "id", "state"});
  f("tasks", as_pairs<task_id, std::string>{s.tasks, "id", "state"}, required);
  f("workers", as_pairs<int32_t, std::string>{s.workers, "index", "state"}, required);
  f("nodes", as_pairs<std::string, std::string>{s.nodes, "name", "state"}, required);
  f("topics", m.topics, omit_empty);
}

}  // namespace troupe::wire
