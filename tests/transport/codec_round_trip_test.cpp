// Every wire message survives a round trip with every field set to something other than its
// default, and every member of every struct on the wire is in its field table: a member added to
// a struct but not to wire_fields.hpp fails here (the structured bindings below stop compiling,
// or the member is reached by no table).
#include <gtest/gtest.h>

#include <type_traits>

#include "round_trip.hpp"
#include "troupe/transport/codec.hpp"
#include "wire_table_walk.hpp"

namespace troupe::wire {
namespace {

using namespace std::chrono_literals;

using testing::round_trip;

// --- samples: every field away from its default ---------------------------------------------

param_map sample_params(int salt) {
  return {{"layers", std::vector<int64_t>{64, -32, salt}},
          {"scale", 0.5 + salt},
          {"name", std::string{"m"} + std::to_string(salt)},
          {"seed", int64_t{-7} - salt},
          {"fast", true},
          {"weights", std::vector<double>{0.25, -1.5}}};
}

task_spec sample_spec(int salt) {
  task_spec s;
  s.kind = "mlp" + std::to_string(salt);
  s.params = sample_params(salt);
  s.payload = {1, 2, 3, uint8_t(salt), 255};
  s.priority = -3 - salt;
  s.deadline = clock::now() + 30s + std::chrono::seconds(salt);
  s.needs = {2u + salt, uint64_t(1) << 20, 1, uint64_t(3) << 30};
  s.max_retries = 5u + salt;
  s.retry_backoff = std::chrono::milliseconds(20 + salt);
  s.timeout = std::chrono::milliseconds(3000 + salt);
  s.idempotency_key = "order-" + std::to_string(salt);
  s.labels = {{"tenant", "a"}, {"zone", std::to_string(salt)}};
  s.after = {uint32_t(salt), 7};
  s.inputs = {task_input{"x", uint32_t(salt), "checksum"}, task_input{"payload", 3, "bytes"}};
  s.preemptible = salt % 2 == 0;
  return s;
}

gpu_device sample_gpu(int salt) {
  return {1 + salt, "NVIDIA H100 80GB HBM3", 9, 1 + salt, uint64_t(80) << 30, uint64_t(79) << 30};
}

event sample_event(int salt) {
  event e;
  e.seq = 42u + salt;
  e.time_ns = 1700000000123456789 + salt;
  e.topic = "metrics.snapshot";
  e.task = 7u + salt;
  e.worker = 3 + salt;
  e.detail = "detail " + std::to_string(salt);
  e.node = "node-" + std::to_string(salt);
  e.kind = "gemm";
  e.values = sample_params(salt);
  return e;
}

task_result sample_task_result(int salt) {
  task_result t;
  t.id = 5u + salt;
  t.kind = "gemm";
  t.status = outcome::failed;
  t.error = {errc::kernel_crashed, "segfault " + std::to_string(salt)};
  t.output = {sample_params(salt), {9, 8, uint8_t(salt)}};
  t.attempts = 3u + salt;
  t.timings.worker = 2 + salt;
  if (salt == 0) {  // the other one never ran: its times stay unset
    auto now = clock::now();
    t.timings.queued = now - std::chrono::milliseconds(30);
    t.timings.started = now - std::chrono::milliseconds(20);
    t.timings.ran_until = now - std::chrono::microseconds(7);
  }
  return t;
}

worker_stats sample_worker_stats(int salt) {
  worker_stats w;
  w.index = 4 + salt;
  w.name = "a/cuda-" + std::to_string(salt);
  w.device = "cuda:1";
  w.state = "busy";
  w.tasks = 11u + salt;
  w.busy_s = 2.5 + salt;
  w.restarts = 2u + salt;
  w.heartbeat_age_ms = 12.25 + salt;
  w.gpu_memory = worker_stats::gpu_memory_figures{1000u + salt, 300, 200, 100, 5000, 8000, "nvml"};
  return w;
}

// --- comparisons: every member -------------------------------------------------------------

void expect_same(double a, double b) {
  EXPECT_DOUBLE_EQ(a, b);
}

void expect_same(const header& a, const header& b) {
  EXPECT_EQ(a.v, b.v);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.corr, b.corr);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.epoch, b.epoch);
}

void expect_same(const gpu_device& a, const gpu_device& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.cc_major, b.cc_major);
  EXPECT_EQ(a.cc_minor, b.cc_minor);
  EXPECT_EQ(a.total_memory, b.total_memory);
  EXPECT_EQ(a.free_memory, b.free_memory);
}

void expect_same(const task_spec& a, const task_spec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.payload, b.payload);
  EXPECT_EQ(a.priority, b.priority);
  ASSERT_EQ(a.deadline.has_value(), b.deadline.has_value());
  if (a.deadline) {
    EXPECT_LT(std::chrono::abs(*a.deadline - *b.deadline), 5s);  // 30 s ahead: relative
  }
  EXPECT_EQ(a.needs.cpu_slots, b.needs.cpu_slots);
  EXPECT_EQ(a.needs.memory_bytes, b.needs.memory_bytes);
  EXPECT_EQ(a.needs.gpu_count, b.needs.gpu_count);
  EXPECT_EQ(a.needs.gpu_memory_bytes, b.needs.gpu_memory_bytes);
  EXPECT_EQ(a.max_retries, b.max_retries);
  EXPECT_EQ(a.retry_backoff, b.retry_backoff);
  EXPECT_EQ(a.timeout, b.timeout);
  EXPECT_EQ(a.idempotency_key, b.idempotency_key);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.after, b.after);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.preemptible, b.preemptible);
}

void expect_same(const task_output& a, const task_output& b) {
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.bytes, b.bytes);
}

void expect_same(const task_result& a, const task_result& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.status, b.status);
  expect_same(a.output, b.output);
  EXPECT_EQ(a.error.code, b.error.code);
  EXPECT_EQ(a.error.message, b.error.message);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.timings.worker, b.timings.worker);
  // Run times move relative to the message: the same up to the transit time (here: the time
  // between encoding and decoding, well under a second), and unset stays unset.
  for (auto [x, y] : {std::pair{a.timings.queued, b.timings.queued},
                      std::pair{a.timings.started, b.timings.started},
                      std::pair{a.timings.ran_until, b.timings.ran_until}}) {
    EXPECT_EQ(x == time_point{}, y == time_point{});
    if (x != time_point{}) {
      EXPECT_GE(y, x - std::chrono::microseconds(1));
      EXPECT_LT(y - x, std::chrono::seconds(1));
    }
  }
  if (a.timings.started != time_point{}) {
    auto run = [](const task_result& r) { return r.timings.ran_until - r.timings.started; };
    EXPECT_LE(std::chrono::abs(run(a) - run(b)), std::chrono::microseconds(1))
        << "durations survive whole (to the microsecond)";
  }
}

void expect_same(const worker_stats& a, const worker_stats& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.tasks, b.tasks);
  EXPECT_DOUBLE_EQ(a.busy_s, b.busy_s);
  EXPECT_EQ(a.restarts, b.restarts);
  EXPECT_DOUBLE_EQ(a.heartbeat_age_ms, b.heartbeat_age_ms);
  ASSERT_EQ(a.gpu_memory.has_value(), b.gpu_memory.has_value());
  if (!a.gpu_memory) return;
  auto &x = *a.gpu_memory, &y = *b.gpu_memory;
  EXPECT_EQ(x.capacity, y.capacity);
  EXPECT_EQ(x.reserved, y.reserved);
  EXPECT_EQ(x.in_use, y.in_use);
  EXPECT_EQ(x.cache, y.cache);
  EXPECT_EQ(x.device_used, y.device_used);
  EXPECT_EQ(x.device_total, y.device_total);
  EXPECT_EQ(x.device_source, y.device_source);
}

void expect_same(const event& a, const event& b) {
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.time_ns, b.time_ns);
  EXPECT_EQ(a.topic, b.topic);
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.worker, b.worker);
  EXPECT_EQ(a.detail, b.detail);
  EXPECT_EQ(a.node, b.node);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.values, b.values);
}

template <class T>
void expect_same(const std::vector<T>& a, const std::vector<T>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("[" + std::to_string(i) + "]");
    expect_same(a[i], b[i]);
  }
}

// --- one round trip per message type, plus the header and the event --------------------------

TEST(CodecRoundTrip, Header) {
  header h{protocol_version, msg_type::snapshot, uint64_t(1) << 40, 9, "node-a", 1234567890123ull};
  auto bytes = encode(h);
  expect_same(h, decode_header(bytes.data(), bytes.size(), limits{}));
}

TEST(CodecRoundTrip, Hello) {
  hello m;
  m.node = "b";
  m.workers = {{"cpu-0", device_class::cpu, 3, {2, 1 << 30, 0, 5}},
               {"cuda-1", device_class::cuda, 1, {1, 7, 1, uint64_t(80) << 30}}};
  m.kinds = {"gemm", "mlp"};
  m.gpus = {sample_gpu(0), sample_gpu(1)};
  m.gpu_note = "one GPU lacks memory pools";
  m.kind_devices = {{"gemm", {device_class::cpu, device_class::cuda}},
                    {"mlp", {device_class::cuda}}};
  m.max_payload_bytes = 12345678;
  m.data_endpoint = "tcp://10.0.0.2:41000";
  auto b = round_trip(m);
  EXPECT_EQ(b.data_endpoint, m.data_endpoint);
  EXPECT_EQ(b.kind_devices, m.kind_devices);
  EXPECT_EQ(b.max_payload_bytes, m.max_payload_bytes);
  EXPECT_EQ(b.node, m.node);
  ASSERT_EQ(b.workers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto &x = m.workers[i], &y = b.workers[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.device, y.device);
    EXPECT_EQ(x.device_index, y.device_index);
    EXPECT_EQ(x.capacity.cpu_slots, y.capacity.cpu_slots);
    EXPECT_EQ(x.capacity.memory_bytes, y.capacity.memory_bytes);
    EXPECT_EQ(x.capacity.gpu_count, y.capacity.gpu_count);
    EXPECT_EQ(x.capacity.gpu_memory_bytes, y.capacity.gpu_memory_bytes);
  }
  EXPECT_EQ(b.kinds, m.kinds);
  expect_same(m.gpus, b.gpus);
  EXPECT_EQ(b.gpu_note, m.gpu_note);
}

TEST(CodecRoundTrip, Welcome) {
  welcome m{"b", 77, 200, 4};
  auto b = round_trip(m);
  EXPECT_EQ(b.node, "b");
  EXPECT_EQ(b.epoch, 77u);
  EXPECT_EQ(b.heartbeat_ms, 200u);
  EXPECT_EQ(b.first_worker, 4u);
  EXPECT_TRUE(b.data_peers.empty());
  m.data_peers = {{"a", std::string(40, 'A')}, {"b", std::string(40, 'B')}};
  auto c = round_trip(m);
  ASSERT_EQ(c.data_peers.size(), 2u);
  EXPECT_EQ(c.data_peers[1].node, "b");
  EXPECT_EQ(c.data_peers[1].key, std::string(40, 'B'));
}

TEST(CodecRoundTrip, OutputRequestAndReply) {
  auto r = round_trip(output_request{{41, 42}, 99});
  EXPECT_EQ(r.tasks, (std::vector<task_id>{41, 42}));
  EXPECT_EQ(r.epoch, 99u);
  output_reply found;
  found.task = 41;
  found.found = true;
  found.output.values.set("x", std::string(1000, 'x'));
  found.output.bytes = {0, 1, 2};
  auto f = round_trip(found);
  EXPECT_EQ(f.task, 41u);
  EXPECT_TRUE(f.found);
  EXPECT_EQ(f.output.values.get_string("x", ""), std::string(1000, 'x'));
  EXPECT_EQ(f.output.bytes, found.output.bytes);
  output_reply shared;
  shared.task = 43;
  shared.found = true;
  shared.kept = std::make_shared<const task_output>(found.output);
  auto s = round_trip(shared);
  EXPECT_EQ(s.output.bytes, found.output.bytes) << "a kept output goes as the output";
  EXPECT_FALSE(s.kept);
  auto missing = round_trip(output_reply{42, false, "not kept", {}, {}});
  EXPECT_FALSE(missing.found);
  EXPECT_EQ(missing.message, "not kept");
}

TEST(CodecRoundTrip, Heartbeat) {
  heartbeat m;
  m.gpus = {{1, 100, 200, 3000, 8000, "nvml"}, {2, 1, 2, 3, 4, "cuda"}};
  m.last_assign = 981;
  m.holding = {7, 8, uint64_t(1) << 60};
  m.preemptible_running = {8};
  auto b = round_trip(m);
  EXPECT_EQ(b.last_assign, m.last_assign);
  EXPECT_EQ(b.holding, m.holding);
  EXPECT_EQ(b.preemptible_running, m.preemptible_running);
  ASSERT_EQ(b.gpus.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto &x = m.gpus[i], &y = b.gpus[i];
    EXPECT_EQ(x.worker, y.worker);
    EXPECT_EQ(x.in_use, y.in_use);
    EXPECT_EQ(x.cache, y.cache);
    EXPECT_EQ(x.device_used, y.device_used);
    EXPECT_EQ(x.device_total, y.device_total);
    EXPECT_EQ(x.device_source, y.device_source);
  }
  auto head_s = round_trip(heartbeat{});
  EXPECT_TRUE(head_s.gpus.empty());
  EXPECT_FALSE(head_s.last_assign.has_value()) << "a head's heartbeat says nothing of holding";
}

TEST(CodecRoundTrip, Assign) {
  assign m;
  m.tasks = {{42, 2, 1, sample_spec(0)}, {43, 3, 2, sample_spec(1)}};
  m.tasks[1].keep_output = true;
  m.tasks[1].kept_inputs = {{0, 41}, {2, 40, "a", "tcp://10.0.0.1:41000", 77}};
  auto b = round_trip(m);
  ASSERT_EQ(b.tasks.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(b.tasks[i].id, m.tasks[i].id);
    EXPECT_EQ(b.tasks[i].attempt, m.tasks[i].attempt);
    EXPECT_EQ(b.tasks[i].worker, m.tasks[i].worker);
    EXPECT_EQ(b.tasks[i].keep_output, m.tasks[i].keep_output);
    ASSERT_EQ(b.tasks[i].kept_inputs.size(), m.tasks[i].kept_inputs.size());
    for (size_t k = 0; k < m.tasks[i].kept_inputs.size(); ++k) {
      EXPECT_EQ(b.tasks[i].kept_inputs[k].input, m.tasks[i].kept_inputs[k].input);
      EXPECT_EQ(b.tasks[i].kept_inputs[k].task, m.tasks[i].kept_inputs[k].task);
      EXPECT_EQ(b.tasks[i].kept_inputs[k].node, m.tasks[i].kept_inputs[k].node);
      EXPECT_EQ(b.tasks[i].kept_inputs[k].endpoint, m.tasks[i].kept_inputs[k].endpoint);
      EXPECT_EQ(b.tasks[i].kept_inputs[k].epoch, m.tasks[i].kept_inputs[k].epoch);
    }
    expect_same(m.tasks[i].spec, b.tasks[i].spec);
  }
}

TEST(CodecRoundTrip, Results) {
  attempt_result a;
  a.id = 5;
  a.attempt = 2;
  a.worker = 1;
  a.code = errc::task_failed;
  a.message = "boom";
  a.output = {sample_params(3), {9, 9}};
  a.run_ns = 1234;
  a.counts_as_attempt = false;
  results m{{a}};
  auto b = round_trip(m);
  ASSERT_EQ(b.records.size(), 1u);
  auto& y = b.records[0];
  EXPECT_EQ(y.id, a.id);
  EXPECT_EQ(y.attempt, a.attempt);
  EXPECT_EQ(y.worker, a.worker);
  EXPECT_EQ(y.code, a.code);
  EXPECT_EQ(y.message, a.message);
  expect_same(a.output, y.output);
  EXPECT_EQ(y.run_ns, a.run_ns);
  EXPECT_EQ(y.counts_as_attempt, a.counts_as_attempt);
}

TEST(CodecRoundTrip, WorkerState) {
  worker_state m{3, true, 77, "crashed", true};
  auto b = round_trip(m);
  EXPECT_EQ(b.worker, 3);
  EXPECT_TRUE(b.up);
  EXPECT_EQ(b.crashed_task, 77u);
  EXPECT_EQ(b.reason, "crashed");
  EXPECT_TRUE(b.retired);
}

TEST(CodecRoundTrip, Submit) {
  submit m{{sample_spec(0), sample_spec(1)}};
  auto b = round_trip(m);
  ASSERT_EQ(b.tasks.size(), 2u);
  expect_same(m.tasks[0], b.tasks[0]);
  expect_same(m.tasks[1], b.tasks[1]);
  EXPECT_FALSE(b.on_failure.has_value());
  m.on_failure = failure_policy::run_what_can;
  EXPECT_EQ(round_trip(m).on_failure, failure_policy::run_what_can);
  EXPECT_FALSE(b.gang);
  m.gang = true;
  EXPECT_TRUE(round_trip(m).gang);
}

TEST(CodecRoundTrip, Submitted) {
  EXPECT_EQ(round_trip(submitted{{7, 8, uint64_t(1) << 50}}).ids,
            (std::vector<task_id>{7, 8, uint64_t(1) << 50}));
}

TEST(CodecRoundTrip, Result) {
  result m{{sample_task_result(0), sample_task_result(1)}, {1.5, 2.75}};
  auto b = round_trip(m);
  expect_same(m.tasks, b.tasks);
  expect_same(m.latency_ms, b.latency_ms);
}

TEST(CodecRoundTrip, Cancel) {
  EXPECT_EQ(round_trip(cancel{{3, 4}}).ids, (std::vector<task_id>{3, 4}));
  EXPECT_FALSE(round_trip(cancel{{3}}).preempt);
  auto preempt = round_trip(cancel{{5}, true});
  EXPECT_TRUE(preempt.preempt);
  EXPECT_EQ(preempt.ids, (std::vector<task_id>{5}));
  EXPECT_EQ(round_trip(fetch{{5, 6}}).ids, (std::vector<task_id>{5, 6}));
  auto f = round_trip(fetched{{7}, {8, 9}});
  EXPECT_EQ(f.pending, (std::vector<task_id>{7}));
  EXPECT_EQ(f.unknown, (std::vector<task_id>{8, 9}));
  submit s;
  s.token = 0x7fff'ffff'ffff'fff1;
  EXPECT_EQ(round_trip(s).token, s.token);
}

TEST(CodecRoundTrip, StatusRequest) {
  static_assert(std::is_empty_v<status_request>);
  round_trip(status_request{});
}

TEST(CodecRoundTrip, Status) {
  status m;
  auto& s = m.stats;
  uint64_t n = 1000;
  for (auto* x : {&s.submitted, &s.rejected, &s.completed, &s.failed, &s.cancelled, &s.expired,
                  &s.retries, &s.duplicates_dropped, &s.queued, &s.in_flight, &s.errors_detected,
                  &s.events_dropped, &s.recovered, &s.attempts, &s.preempted})
    *x = ++n;
  double d = 0.5;
  for (auto* x : {&s.mean_error_detection_ms, &s.mean_error_handling_ms, &s.uptime_s,
                  &s.busy_window_s, &s.mean_recovery_ms, &s.sum_completion_s})
    *x = (d += 1.25);
  s.latency["gemm"] = {3, 1.0, 0.5, 2.0, 3.0, 4.0};
  s.latency["mlp"] = {4, 1.5, 0.75, 2.5, 3.5, 4.5};
  s.workers = {sample_worker_stats(0), sample_worker_stats(1)};
  s.reservations = {{"train", {"a/cpu-0", "b/cuda-1"}, {"svc"}, true, 1, 1, 0, 3600.5}};
  m.worker_nodes = {"a", "b"};
  m.nodes.push_back(
      {"a", "joined", 99, 2, 12.5, {0, 1}, {sample_gpu(0)}, "note", 3, 4096, 2, 2048, 1});
  m.events_endpoint = "tcp://127.0.0.1:5556";
  m.last_event_seq = 5;
  m.frames_refused = 3;
  m.stale_frames = 4;

  auto b = round_trip(m);
  auto& t = b.stats;
  for (auto [x, y, name] : std::initializer_list<std::tuple<uint64_t, uint64_t, const char*>>{
           {s.submitted, t.submitted, "submitted"},
           {s.rejected, t.rejected, "rejected"},
           {s.completed, t.completed, "completed"},
           {s.failed, t.failed, "failed"},
           {s.cancelled, t.cancelled, "cancelled"},
           {s.expired, t.expired, "expired"},
           {s.retries, t.retries, "retries"},
           {s.preempted, t.preempted, "preempted"},
           {s.duplicates_dropped, t.duplicates_dropped, "duplicates_dropped"},
           {s.queued, t.queued, "queued"},
           {s.in_flight, t.in_flight, "in_flight"},
           {s.errors_detected, t.errors_detected, "errors_detected"},
           {s.events_dropped, t.events_dropped, "events_dropped"},
           {s.recovered, t.recovered, "recovered"},
           {s.attempts, t.attempts, "attempts"},
           {m.last_event_seq, b.last_event_seq, "last_event_seq"},
           {m.frames_refused, b.frames_refused, "frames_refused"},
           {m.stale_frames, b.stale_frames, "stale_frames"}})
    EXPECT_EQ(x, y) << name;
  EXPECT_DOUBLE_EQ(s.mean_error_detection_ms, t.mean_error_detection_ms);
  EXPECT_DOUBLE_EQ(s.mean_error_handling_ms, t.mean_error_handling_ms);
  EXPECT_DOUBLE_EQ(s.uptime_s, t.uptime_s);
  EXPECT_DOUBLE_EQ(s.busy_window_s, t.busy_window_s);
  EXPECT_DOUBLE_EQ(s.mean_recovery_ms, t.mean_recovery_ms);
  EXPECT_DOUBLE_EQ(s.sum_completion_s, t.sum_completion_s);
  ASSERT_EQ(t.latency.size(), 2u);
  for (auto& [kind, x] : s.latency) {
    auto& y = t.latency.at(kind);
    EXPECT_EQ(x.count, y.count);
    EXPECT_DOUBLE_EQ(x.mean_ms, y.mean_ms);
    EXPECT_DOUBLE_EQ(x.p50_ms, y.p50_ms);
    EXPECT_DOUBLE_EQ(x.p95_ms, y.p95_ms);
    EXPECT_DOUBLE_EQ(x.p99_ms, y.p99_ms);
    EXPECT_DOUBLE_EQ(x.max_ms, y.max_ms);
  }
  expect_same(s.workers, t.workers);
  ASSERT_EQ(t.reservations.size(), 1u);
  auto &rx = s.reservations[0], &ry = t.reservations[0];
  EXPECT_EQ(rx.name, ry.name);
  EXPECT_EQ(rx.workers, ry.workers);
  EXPECT_EQ(rx.clients, ry.clients);
  EXPECT_EQ(rx.active, ry.active);
  EXPECT_EQ(rx.busy, ry.busy);
  EXPECT_EQ(rx.idle, ry.idle);
  EXPECT_DOUBLE_EQ(rx.starts_in_s, ry.starts_in_s);
  EXPECT_DOUBLE_EQ(rx.ends_in_s, ry.ends_in_s);
  EXPECT_EQ(b.worker_nodes, m.worker_nodes);
  EXPECT_EQ(b.events_endpoint, m.events_endpoint);
  ASSERT_EQ(b.nodes.size(), 1u);
  auto &x = m.nodes[0], &y = b.nodes[0];
  EXPECT_EQ(x.name, y.name);
  EXPECT_EQ(x.state, y.state);
  EXPECT_EQ(x.epoch, y.epoch);
  EXPECT_EQ(x.joins, y.joins);
  EXPECT_DOUBLE_EQ(x.heartbeat_age_ms, y.heartbeat_age_ms);
  EXPECT_EQ(x.workers, y.workers);
  expect_same(x.gpus, y.gpus);
  EXPECT_EQ(x.gpu_note, y.gpu_note);
  EXPECT_EQ(x.kept_inputs, y.kept_inputs);
  EXPECT_EQ(x.kept_input_bytes, y.kept_input_bytes);
  EXPECT_EQ(x.fetched_inputs, y.fetched_inputs);
  EXPECT_EQ(x.fetched_input_bytes, y.fetched_input_bytes);
  EXPECT_EQ(x.preemptible_running, y.preemptible_running);
}

TEST(CodecRoundTrip, Error) {
  auto b = round_trip(error{wire_errc::layout_mismatch, "old"});
  EXPECT_EQ(b.code, wire_errc::layout_mismatch);
  EXPECT_EQ(b.message, "old");
}

TEST(CodecRoundTrip, Bye) {
  // bye has no body struct: its body is an empty map, as status_request's.
  EXPECT_EQ(encode(status_request{}), std::string("\x80", 1));
}

TEST(CodecRoundTrip, ReplayRequest) {
  EXPECT_EQ(round_trip(replay_request{17}).since, 17u);
}

TEST(CodecRoundTrip, Replay) {
  replay m{true, 43, {sample_event(0), sample_event(1)}};
  auto b = round_trip(m);
  EXPECT_TRUE(b.complete);
  EXPECT_EQ(b.last_seq, 43u);
  expect_same(m.events, b.events);
}

TEST(CodecRoundTrip, SnapshotRequest) {
  static_assert(std::is_empty_v<snapshot_request>);
  round_trip(snapshot_request{});
}

TEST(CodecRoundTrip, Snapshot) {
  snapshot m;
  m.state.seq = 99;
  m.state.tasks = {{5, "started"}, {6, "queued"}};
  m.state.workers = {{0, "up"}, {-1, "down"}};
  m.state.nodes = {{"b", "suspect"}};
  m.state.finished = {{4, "failed"}};
  auto b = round_trip(m);
  EXPECT_EQ(b.state.seq, 99u);
  EXPECT_EQ(b.state.tasks, m.state.tasks);
  EXPECT_EQ(b.state.workers, m.state.workers);
  EXPECT_EQ(b.state.nodes, m.state.nodes);
  EXPECT_EQ(b.state.finished, m.state.finished);
}

TEST(CodecRoundTrip, Event) {
  auto e = sample_event(2);
  auto bytes = encode(e);
  expect_same(e, decode<event>(bytes.data(), bytes.size(), limits{}));
}

// --- every member is in a table -------------------------------------------------------------

using testing::reached;

void expect_reached(const char* name, const std::vector<reached>& r, int index, const void* at,
                    size_t size) {
  auto* p = static_cast<const char*>(at);
  bool hit = false;
  for (auto& x : r) hit = hit || (x.at >= at && static_cast<const char*>(x.at) < p + size);
  EXPECT_TRUE(hit) << name << ": member " << index
                   << " (in declaration order) is in no field table of wire_fields.hpp";
}

/// Each member (a structured binding of the struct, so that one more member stops the build)
/// must hold something a table reaches.
template <class... M>
void expect_on_wire(const char* name, const std::vector<reached>& r, const M&... members) {
  int i = 0;
  (expect_reached(name, r, i++, &members, sizeof(members)), ...);
}

template <class T>
std::vector<reached> reached_by(T& m) {
  return testing::walk(m).members;
}

TEST(CodecTables, EveryMemberOfEveryWireStructIsInATable) {
  {
    header m;
    auto& [a, b, c, d, e, f] = m;
    expect_on_wire("header", reached_by(m), a, b, c, d, e, f);
  }
  {
    worker_info m;
    auto& [a, b, c, d] = m;
    expect_on_wire("worker_info", reached_by(m), a, b, c, d);
  }
  {
    worker_capacity m;
    auto& [a, b, c, d] = m;
    expect_on_wire("worker_capacity", reached_by(m), a, b, c, d);
  }
  {
    resources m;
    auto& [a, b, c, d] = m;
    expect_on_wire("resources", reached_by(m), a, b, c, d);
  }
  {
    gpu_device m;
    auto& [a, b, c, d, e, f] = m;
    expect_on_wire("gpu_device", reached_by(m), a, b, c, d, e, f);
  }
  {
    hello m;
    auto& [a, b, c, d, e, f, g, h] = m;
    expect_on_wire("hello", reached_by(m), a, b, c, d, e, f, g, h);
  }
  {
    welcome m;
    auto& [a, b, c, d, e] = m;
    expect_on_wire("welcome", reached_by(m), a, b, c, d, e);
  }
  {
    data_peer m;
    auto& [a, b] = m;
    expect_on_wire("data_peer", reached_by(m), a, b);
  }
  {
    gpu_memory_report m;
    auto& [a, b, c, d, e, f] = m;
    expect_on_wire("gpu_memory_report", reached_by(m), a, b, c, d, e, f);
  }
  {
    heartbeat m;
    auto& [a, b, c, d] = m;
    expect_on_wire("heartbeat", reached_by(m), a, b, c, d);
  }
  {
    assigned_task m;
    auto& [a, b, c, d, e, f, g] = m;
    expect_on_wire("assigned_task", reached_by(m), a, b, c, d, e, f, g);
  }
  {
    kept_input m;
    auto& [a, b, c, d, e] = m;
    expect_on_wire("kept_input", reached_by(m), a, b, c, d, e);
  }
  {
    assign m;
    auto& [a] = m;
    expect_on_wire("assign", reached_by(m), a);
  }
  {
    task_spec m;
    auto& [a, b, c, d, e, f, g, h, i, j, k, l, n, o] = m;
    expect_on_wire("task_spec", reached_by(m), a, b, c, d, e, f, g, h, i, j, k, l, n, o);
  }
  {
    task_input m;
    auto& [a, b, c] = m;
    expect_on_wire("task_input", reached_by(m), a, b, c);
  }
  {
    attempt_result m;
    auto& [a, b, c, d, e, f, g, h] = m;
    auto r = reached_by(m);
    expect_on_wire("attempt_result", r, a, b, c, d, e, f, g, h);
    auto& [values, bytes] = m.output;  // flattened into the record
    expect_on_wire("attempt_result.output", r, values, bytes);
  }
  {
    results m;
    auto& [a] = m;
    expect_on_wire("results", reached_by(m), a);
  }
  {
    worker_state m;
    auto& [a, b, c, d, e] = m;
    expect_on_wire("worker_state", reached_by(m), a, b, c, d, e);
  }
  {
    submit m;
    auto& [a, b, c, d] = m;
    expect_on_wire("submit", reached_by(m), a, b, c, d);
  }
  {
    submitted m;
    auto& [a] = m;
    expect_on_wire("submitted", reached_by(m), a);
  }
  {
    task_result m;
    auto& [a, b, c, d, e, f, g] = m;
    auto r = reached_by(m);
    expect_on_wire("task_result", r, a, b, c, d, e, f, g);
    auto& [values, bytes] = m.output;
    expect_on_wire("task_result.output", r, values, bytes);
    auto& [code, message] = m.error;
    expect_on_wire("task_result.error", r, code, message);
    // The run's times travel relative to the message; submit and record times do not (the
    // client has its own latency_ms).
    auto& [submitted_at, queued_at, started_at, finished_at, worker, ran_until] = m.timings;
    (void)submitted_at, (void)finished_at;
    expect_on_wire("task_result.timings", r, worker, queued_at, started_at, ran_until);
  }
  {
    result m;
    auto& [a, b] = m;
    expect_on_wire("result", reached_by(m), a, b);
  }
  {
    cancel m;
    auto& [a, b] = m;
    expect_on_wire("cancel", reached_by(m), a, b);
  }
  {
    fetch m;
    auto& [a] = m;
    expect_on_wire("fetch", reached_by(m), a);
  }
  {
    fetched m;
    auto& [a, b] = m;
    expect_on_wire("fetched", reached_by(m), a, b);
  }
  {
    output_request m;
    auto& [a, b] = m;
    expect_on_wire("output_request", reached_by(m), a, b);
  }
  {
    output_reply m;
    auto& [a, b, c, d, kept] = m;  // kept: sending only, written in place of d
    (void)kept;
    expect_on_wire("output_reply", reached_by(m), a, b, c, d);
  }
  {
    latency_summary m;
    auto& [a, b, c, d, e, f] = m;
    expect_on_wire("latency_summary", reached_by(m), a, b, c, d, e, f);
  }
  {
    worker_stats::gpu_memory_figures m;
    auto& [a, b, c, d, e, f, g] = m;
    expect_on_wire("gpu_memory_figures", reached_by(m), a, b, c, d, e, f, g);
  }
  {
    worker_stats m;
    auto& [a, b, c, d, e, f, g, h, i] = m;
    expect_on_wire("worker_stats", reached_by(m), a, b, c, d, e, f, g, h, i);
  }
  {
    node_status m;
    auto& [a, b, c, d, e, f, g, h, i, j, k, l, n] = m;
    expect_on_wire("node_status", reached_by(m), a, b, c, d, e, f, g, h, i, j, k, l, n);
  }
  {
    status m;
    auto& [a, b, c, d, e, f, g] = m;
    auto r = reached_by(m);
    expect_on_wire("status", r, a, b, c, d, e, f, g);
    auto& [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16, s17, s18, s19,
           s20, s21, s22, s23, s24] = m.stats;  // flattened into the body
    expect_on_wire("status.stats", r, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14,
                   s15, s16, s17, s18, s19, s20, s21, s22, s23, s24);
  }
  {
    reservation_stats m;
    auto& [a, b, c, d, e, f, g, h] = m;
    expect_on_wire("reservation_stats", reached_by(m), a, b, c, d, e, f, g, h);
  }
  {
    error m;
    auto& [a, b] = m;
    expect_on_wire("error", reached_by(m), a, b);
  }
  {
    event m;
    auto& [a, b, c, d, e, f, g, h, i, j] = m;
    expect_on_wire("event", reached_by(m), a, b, c, d, e, f, g, h, i, j);
  }
  {
    replay_request m;
    auto& [a] = m;
    expect_on_wire("replay_request", reached_by(m), a);
  }
  {
    replay m;
    auto& [a, b, c, d] = m;
    expect_on_wire("replay", reached_by(m), a, b, c, d);
  }
  {
    snapshot m;
    auto r = reached_by(m);
    auto& [a, b] = m;
    expect_on_wire("snapshot", r, a, b);
    auto& [s1, s2, s3, s4, s5] = m.state;  // flattened into the body
    expect_on_wire("snapshot.state", r, s1, s2, s3, s4, s5);
  }
}

}  // namespace
}  // namespace troupe::wire
