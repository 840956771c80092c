// The wire codec: every message survives a round trip; hostile bytes are refused with a reason,
// without crashing and without allocating what they declare.
#include "troupe/transport/codec.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include "round_trip.hpp"

namespace troupe::wire {
namespace {

using testing::round_trip;

task_spec kind_only(const std::string& kind) {
  task_spec s;
  s.kind = kind;
  return s;
}

task_spec sample_spec() {
  task_spec s;
  s.kind = "mlp";
  s.params = {{"layers", std::vector<int64_t>{64, 32, 10}},
              {"scale", 0.5},
              {"name", std::string{"m1"}},
              {"seed", int64_t{-7}},
              {"fast", true},
              {"weights", std::vector<double>{0.25, -1.5}}};
  s.payload = {1, 2, 3, 255};
  s.priority = -3;
  s.deadline = clock::now() + std::chrono::seconds(30);
  s.needs.cpu_slots = 2;
  s.needs.memory_bytes = 1 << 20;
  s.needs.gpu_count = 1;
  s.needs.gpu_memory_bytes = uint64_t(3) << 30;
  s.max_retries = 5;
  s.retry_backoff = std::chrono::milliseconds(20);
  s.idempotency_key = "order-17";
  s.labels = {{"tenant", "a"}};
  return s;
}

void expect_same(const task_spec& a, const task_spec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.payload, b.payload);
  EXPECT_EQ(a.priority, b.priority);
  ASSERT_EQ(a.deadline.has_value(), b.deadline.has_value());
  if (a.deadline) {
    EXPECT_NEAR(double((*a.deadline - *b.deadline).count()) / 1e6, 0, 5000.0);
  }
  EXPECT_EQ(a.needs.cpu_slots, b.needs.cpu_slots);
  EXPECT_EQ(a.needs.memory_bytes, b.needs.memory_bytes);
  EXPECT_EQ(a.needs.gpu_count, b.needs.gpu_count);
  EXPECT_EQ(a.needs.gpu_memory_bytes, b.needs.gpu_memory_bytes);
  EXPECT_EQ(a.max_retries, b.max_retries);
  EXPECT_EQ(a.retry_backoff, b.retry_backoff);
  EXPECT_EQ(a.idempotency_key, b.idempotency_key);
  EXPECT_EQ(a.labels, b.labels);
}

TEST(WireCodec, HeaderRoundTrips) {
  header h;
  h.type = msg_type::results;
  h.id = 1ull << 40;
  h.corr = 9;
  h.from = "node-a";
  h.epoch = 123456789012345ull;
  auto bytes = encode(h);
  auto back = decode_header(bytes.data(), bytes.size(), limits{});
  EXPECT_EQ(back.v, protocol_version);
  EXPECT_EQ(back.type, msg_type::results);
  EXPECT_EQ(back.id, h.id);
  EXPECT_EQ(back.corr, 9u);
  EXPECT_EQ(back.from, "node-a");
  EXPECT_EQ(back.epoch, h.epoch);
}

TEST(WireCodec, EveryMessageTypeHasAName) {
  for (int i = 0; i <= int(last_msg_type); ++i) {
    msg_type back{};
    ASSERT_TRUE(parse_msg_type(to_string(msg_type(i)), back)) << i;
    EXPECT_EQ(int(back), i);
  }
}

TEST(WireCodec, HelloAndWelcomeRoundTrip) {
  hello h;
  h.node = "b";
  h.workers.push_back({"cpu-0", device_class::cpu, -1, {1, 1 << 30, 0, 0}});
  h.workers.push_back({"cuda-1", device_class::cuda, 1, {1, 0, 1, uint64_t(80) << 30}});
  h.kinds = {"gemm", "mlp"};
  h.gpus.push_back({1, "NVIDIA H100 80GB HBM3", 9, 0, uint64_t(80) << 30, uint64_t(79) << 30});
  auto back = round_trip(h);
  ASSERT_EQ(back.gpus.size(), 1u);
  EXPECT_EQ(back.gpus[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(back.gpus[0].cc_major, 9);
  EXPECT_EQ(back.gpus[0].free_memory, uint64_t(79) << 30);
  hello without;  // a node without GPUs says why
  without.node = "c";
  without.gpu_note = "CUDA unavailable: cudaErrorNoDevice";
  EXPECT_EQ(round_trip(without).gpu_note, without.gpu_note);
  EXPECT_EQ(back.node, "b");
  ASSERT_EQ(back.workers.size(), 2u);
  EXPECT_EQ(back.workers[1].device, device_class::cuda);
  EXPECT_EQ(back.workers[1].device_index, 1);
  EXPECT_EQ(back.workers[1].capacity.gpu_memory_bytes, uint64_t(80) << 30);
  EXPECT_EQ(back.workers[0].capacity.memory_bytes, uint64_t(1) << 30);
  EXPECT_EQ(back.kinds, h.kinds);

  welcome w{"b", 77, 200, 4};
  auto wb = round_trip(w);
  EXPECT_EQ(wb.node, "b");
  EXPECT_EQ(wb.epoch, 77u);
  EXPECT_EQ(wb.heartbeat_ms, 200u);
  EXPECT_EQ(wb.first_worker, 4u);
  round_trip(heartbeat{});
  round_trip(status_request{});
  heartbeat hb;  // a node's, with its GPU workers' memory
  hb.gpus.push_back({1, 100, 200, 3000, 8000, "nvml"});
  auto hbb = round_trip(hb);
  ASSERT_EQ(hbb.gpus.size(), 1u);
  EXPECT_EQ(hbb.gpus[0].worker, 1);
  EXPECT_EQ(hbb.gpus[0].cache, 200u);
  EXPECT_EQ(hbb.gpus[0].device_total, 8000u);
  EXPECT_EQ(hbb.gpus[0].device_source, "nvml");
  EXPECT_TRUE(round_trip(heartbeat{}).gpus.empty());
}

TEST(WireCodec, AssignCarriesTheWholeSpec) {
  assign a;
  a.tasks.push_back({42, 2, 1, sample_spec()});
  a.tasks.push_back({43, 1, 0, kind_only("noop")});
  auto back = round_trip(a);
  ASSERT_EQ(back.tasks.size(), 2u);
  EXPECT_EQ(back.tasks[0].id, 42u);
  EXPECT_EQ(back.tasks[0].attempt, 2u);
  EXPECT_EQ(back.tasks[0].worker, 1);
  expect_same(a.tasks[0].spec, back.tasks[0].spec);
  expect_same(a.tasks[1].spec, back.tasks[1].spec);
}

TEST(WireCodec, SubmitAndSubmittedRoundTrip) {
  submit s;
  s.tasks = {sample_spec(), kind_only("noop")};
  auto back = round_trip(s);
  ASSERT_EQ(back.tasks.size(), 2u);
  expect_same(s.tasks[0], back.tasks[0]);
  EXPECT_EQ(round_trip(submitted{{7, 8, 9}}).ids, (std::vector<task_id>{7, 8, 9}));
  EXPECT_EQ(round_trip(cancel{{3}}).ids, (std::vector<task_id>{3}));
}

TEST(WireCodec, ResultsAndResultRoundTrip) {
  results r;
  attempt_result a;
  a.id = 5;
  a.attempt = 1;
  a.worker = 0;
  a.code = errc::task_failed;
  a.message = "boom";
  a.output.values = {{"checksum", 1.25}};
  a.output.bytes = {9, 9};
  a.run_ns = 1234;
  a.counts_as_attempt = false;
  r.records.push_back(a);
  auto back = round_trip(r);
  ASSERT_EQ(back.records.size(), 1u);
  EXPECT_EQ(back.records[0].code, errc::task_failed);
  EXPECT_EQ(back.records[0].message, "boom");
  EXPECT_EQ(back.records[0].output.values, a.output.values);
  EXPECT_EQ(back.records[0].output.bytes, a.output.bytes);
  EXPECT_EQ(back.records[0].run_ns, 1234);
  EXPECT_FALSE(back.records[0].counts_as_attempt);

  result res;
  task_result t;
  t.id = 5;
  t.kind = "gemm";
  t.status = outcome::failed;
  t.error = {errc::kernel_crashed, "segfault"};
  t.attempts = 3;
  t.timings.worker = 2;
  res.tasks.push_back(t);
  res.latency_ms.push_back(1.5);
  auto rb = round_trip(res);
  ASSERT_EQ(rb.tasks.size(), 1u);
  EXPECT_EQ(rb.tasks[0].status, outcome::failed);
  EXPECT_EQ(rb.tasks[0].error.code, errc::kernel_crashed);
  EXPECT_EQ(rb.tasks[0].attempts, 3u);
  EXPECT_EQ(rb.tasks[0].timings.worker, 2);
  EXPECT_DOUBLE_EQ(rb.latency_ms[0], 1.5);
}

TEST(WireCodec, WorkerStateStatusAndErrorRoundTrip) {
  auto ws = round_trip(worker_state{3, false, 77, "crashed", true});
  EXPECT_EQ(ws.worker, 3);
  EXPECT_FALSE(ws.up);
  EXPECT_EQ(ws.crashed_task, 77u);
  EXPECT_TRUE(ws.retired);

  status s;
  s.stats.completed = 10;
  s.stats.queued = 4;
  s.stats.latency["gemm"] = {3, 1.0, 0.5, 2.0, 3.0, 4.0};
  worker_stats w;
  w.index = 0;
  w.name = "a/cpu-0";
  w.state = "idle";
  w.restarts = 2;
  s.stats.workers.push_back(w);
  s.worker_nodes.push_back("a");
  w.name = "a/cuda-0";
  w.gpu_memory = worker_stats::gpu_memory_figures{1000, 300, 200, 100, 5000, 8000, "nvml"};
  s.stats.workers.push_back(w);
  s.worker_nodes.push_back("a");
  s.nodes.push_back({"a", "joined", 99, 2, 12.5, {0, 1}, {{0, "GPU", 8, 0, 8000, 7000}}, {}});
  s.frames_refused = 3;
  s.last_event_seq = 5;
  s.stale_frames = 4;
  auto sb = round_trip(s);
  EXPECT_EQ(sb.frames_refused, 3u);
  EXPECT_EQ(sb.last_event_seq, 5u);
  EXPECT_EQ(sb.stale_frames, 4u);
  EXPECT_EQ(sb.stats.completed, 10u);
  EXPECT_EQ(sb.stats.queued, 4u);
  EXPECT_DOUBLE_EQ(sb.stats.latency["gemm"].p99_ms, 3.0);
  ASSERT_EQ(sb.stats.workers.size(), 2u);
  EXPECT_EQ(sb.stats.workers[0].restarts, 2u);
  EXPECT_FALSE(sb.stats.workers[0].gpu_memory);
  ASSERT_TRUE(sb.stats.workers[1].gpu_memory);
  EXPECT_EQ(sb.stats.workers[1].gpu_memory->reserved, 300u);
  EXPECT_EQ(sb.stats.workers[1].gpu_memory->device_source, "nvml");
  EXPECT_EQ(sb.worker_nodes, s.worker_nodes);
  ASSERT_EQ(sb.nodes.size(), 1u);
  EXPECT_EQ(sb.nodes[0].joins, 2u);
  EXPECT_EQ(sb.nodes[0].workers, (std::vector<int32_t>{0, 1}));
  ASSERT_EQ(sb.nodes[0].gpus.size(), 1u);
  EXPECT_EQ(sb.nodes[0].gpus[0].total_memory, 8000u);

  auto e = round_trip(error{wire_errc::stale_epoch, "old"});
  EXPECT_EQ(e.code, wire_errc::stale_epoch);
  EXPECT_EQ(e.message, "old");
}

// Every figure of runtime_stats reaching a client: CodecRoundTrip.Status (codec_round_trip_test).

TEST(WireCodec, EventsReplaysAndSnapshotsRoundTrip) {
  event e;
  e.seq = 42;
  e.time_ns = 1700000000123456789;
  e.topic = "node.joined";
  e.worker = -1;
  e.detail = "epoch 9";
  e.node = "a";
  auto eb = encode(e);
  auto back = decode<event>(eb.data(), eb.size(), limits{});
  EXPECT_EQ(back.seq, 42u);
  EXPECT_EQ(back.time_ns, e.time_ns);
  EXPECT_EQ(back.topic, "node.joined");
  EXPECT_EQ(back.node, "a");
  EXPECT_EQ(back.detail, "epoch 9");

  EXPECT_EQ(round_trip(replay_request{17}).since, 17u);
  replay r;
  r.complete = true;
  r.last_seq = 43;
  r.events = {e, e};
  auto rb = round_trip(r);
  EXPECT_TRUE(rb.complete);
  EXPECT_EQ(rb.last_seq, 43u);
  ASSERT_EQ(rb.events.size(), 2u);
  EXPECT_EQ(rb.events[1].node, "a");

  snapshot s;
  s.state.seq = 99;
  s.state.tasks = {{5, "started"}, {6, "queued"}};
  s.state.workers = {{0, "up"}};
  s.state.nodes = {{"b", "suspect"}};
  s.state.finished = {{4, "failed"}};
  auto sb = round_trip(s);
  EXPECT_EQ(sb.state.seq, 99u);
  EXPECT_EQ(sb.state.tasks, s.state.tasks);
  EXPECT_EQ(sb.state.workers, s.state.workers);
  EXPECT_EQ(sb.state.nodes, s.state.nodes);
  EXPECT_EQ(sb.state.finished, s.state.finished);
  round_trip(snapshot_request{});
}

// --- hostile input --------------------------------------------------------------------------

template <class Body = submit>
wire_errc refusal_of(const std::string& bytes, const limits& lim = {}) {
  try {
    decode<Body>(bytes.data(), bytes.size(), lim);
  } catch (const decode_error& e) {
    EXPECT_NE(std::string{e.what()}, "");
    return e.code();
  }
  ADD_FAILURE() << "accepted";
  return wire_errc::unexpected;
}

wire_errc refusal(const std::string& bytes, const limits& lim = {}) {
  return refusal_of<submit>(bytes, lim);
}

size_t heap_in_use() {
  return mallinfo2().uordblks;
}

TEST(WireCodecHostile, DeclaredHugeLengthsAreRefusedWithoutAllocating) {
  auto before = heap_in_use();
  // array32 declaring 4 Gi entries, in 5 bytes
  EXPECT_EQ(refusal(std::string{"\xdd\xff\xff\xff\xff", 5}), wire_errc::too_large);
  // map32 of 4 Gi pairs
  EXPECT_EQ(refusal(std::string{"\xdf\xff\xff\xff\xff", 5}), wire_errc::too_large);
  // str32 and bin32 of 4 GiB
  EXPECT_EQ(refusal(std::string{"\xdb\xff\xff\xff\xff", 5}), wire_errc::too_large);
  EXPECT_EQ(refusal(std::string{"\xc6\xff\xff\xff\xff", 5}), wire_errc::too_large);
  // within the limits, but more entries than bytes left: a lie
  EXPECT_EQ(refusal(std::string{"\xdd\x00\x01\x00\x00", 5}), wire_errc::malformed);
  EXPECT_LT(heap_in_use(), before + (1 << 20));
}

// A submit of more tasks than the head takes is refused whole, naming the limit, before its
// tasks are decoded; one at the limit is decoded.
TEST(WireCodecHostile, ASubmitOfMoreTasksThanTheLimitIsRefusedNamingIt) {
  limits lim;
  lim.max_tasks_per_submit = 100;
  submit m;
  m.tasks.resize(100);
  for (auto& t : m.tasks) t.kind = "noop";
  auto at_limit = encode(m);
  EXPECT_EQ(decode<submit>(at_limit.data(), at_limit.size(), lim).tasks.size(), 100u);
  m.tasks.resize(101, m.tasks.front());
  auto over = encode(m);
  try {
    decode<submit>(over.data(), over.size(), lim);
    ADD_FAILURE() << "accepted";
  } catch (const decode_error& e) {
    EXPECT_EQ(e.code(), wire_errc::too_large);
    EXPECT_NE(std::string{e.what()}.find("101 tasks, at most 100"), std::string::npos) << e.what();
    EXPECT_NE(std::string{e.what()}.find("cluster.max_tasks_per_submit"), std::string::npos);
  }
}

// Many tiny values cost about 24 bytes each once decoded: a frame of them is refused by count,
// before decoding (the fuzzer's finding: 64 MiB of nils in a hello made 1.5 GB).
TEST(WireCodecHostile, AFrameOfTooManyValuesIsRefusedBeforeItIsDecoded) {
  auto lim = limits::for_payload(64 << 20).control();
  // {"kinds": [nil x 600,000], "other": [nil x 600,000]}: each array within max_elements.
  auto array_of_nils = [](uint32_t n) {
    std::string a{"\xdd"};
    for (int shift = 24; shift >= 0; shift -= 8) a += char((n >> shift) & 0xff);
    return a + std::string(n, '\xc0');
  };
  std::string frame = "\x82\xa5kinds" + array_of_nils(600000) + "\xa5other" + array_of_nils(600000);
  auto before = heap_in_use();
  EXPECT_EQ(refusal_of<hello>(frame, lim), wire_errc::too_large);
  EXPECT_LT(heap_in_use(), before + (1 << 20));
  // One array of them is within the limit (and is refused later for its shape, not its size).
  std::string one = "\x81\xa5kinds" + array_of_nils(600000);
  EXPECT_EQ(refusal_of<hello>(one, lim), wire_errc::malformed);
}

TEST(WireCodecHostile, DeepNestingIsRefused) {
  std::string deep(10000, '\x91');  // 10,000 nested one-element arrays
  deep += '\x01';
  EXPECT_EQ(refusal(deep), wire_errc::too_large);
}

TEST(WireCodecHostile, TruncatedFramesAreRefused) {
  submit s;
  s.tasks = {sample_spec()};
  auto bytes = encode(s);
  for (size_t cut : {size_t(1), bytes.size() / 2, bytes.size() - 1})
    EXPECT_EQ(refusal(bytes.substr(0, cut)), wire_errc::malformed) << cut;
  EXPECT_EQ(refusal(bytes + "\x01"), wire_errc::malformed);  // trailing garbage
  EXPECT_EQ(refusal(""), wire_errc::malformed);
  EXPECT_EQ(refusal(std::string{"\xc1", 1}), wire_errc::malformed);  // never-used type byte
}

TEST(WireCodecHostile, WrongTypesNameTheField) {
  // {"tasks": [{"kind": 5}]}
  std::string bytes = "\x81\xa5tasks\x91\x81\xa4kind\x05";
  try {
    decode<submit>(bytes.data(), bytes.size(), limits{});
    FAIL() << "accepted";
  } catch (const decode_error& e) {
    EXPECT_EQ(e.code(), wire_errc::malformed);
    EXPECT_NE(std::string{e.what()}.find("submit.tasks[0].kind"), std::string::npos) << e.what();
    EXPECT_NE(std::string{e.what()}.find("expected string"), std::string::npos) << e.what();
  }
  EXPECT_EQ(refusal("\x92\x01\x02"), wire_errc::malformed);  // an array where a map belongs
}

TEST(WireCodecHostile, AnAssignIsReadTaskByTaskSoThatOneUnreadableTaskFailsAlone) {
  // Small positive ints are one byte in MessagePack (a "positive fixint").
  auto task = [](char id, char attempt, char worker, const std::string& kind) {
    return std::string{"\x84\xa2id"} + id + "\xa7" + "attempt" + attempt + "\xa6" + "worker" +
           worker + "\xa4spec\x81\xa4kind" + kind;
  };
  // {"tasks": [{id 1, attempt 1, worker 0, kind "noop"}, {id 2, attempt 3, worker 1, kind 5},
  //            {"spec": {"kind": "noop"}} (no id), {id 4, attempt 1, worker 0, kind "noop"}]}
  std::string ok1 = task(1, 1, 0, "\xa4noop");
  std::string bad = task(2, 3, 1, "\x05");
  std::string nameless = "\x81\xa4spec\x81\xa4kind\xa4noop";
  std::string ok4 = task(4, 1, 0, "\xa4noop");
  std::string bytes = "\x81\xa5tasks\x94" + ok1 + bad + nameless + ok4;
  EXPECT_EQ(refusal_of<assign>(bytes), wire_errc::malformed) << "read whole, the frame fails";
  auto read = decode_assign_by_task(bytes.data(), bytes.size(), limits{});
  ASSERT_EQ(read.readable.tasks.size(), 2u);
  EXPECT_EQ(read.readable.tasks[0].id, 1u);
  EXPECT_EQ(read.readable.tasks[1].id, 4u);
  EXPECT_EQ(read.readable.tasks[1].spec.kind, "noop");
  ASSERT_EQ(read.unreadable.size(), 1u);
  EXPECT_EQ(read.unreadable[0].id, 2u);
  EXPECT_EQ(read.unreadable[0].attempt, 3u);
  EXPECT_EQ(read.unreadable[0].worker, 1);
  EXPECT_NE(read.unreadable[0].reason.find("assign.tasks[1].spec.kind"), std::string::npos)
      << read.unreadable[0].reason;
  ASSERT_EQ(read.unnamed.size(), 1u);
  EXPECT_NE(read.unnamed[0].find("assign.tasks[2]"), std::string::npos) << read.unnamed[0];
  // A frame that is broken as a whole is still refused.
  std::string no_tasks = "\x81\xa4task\x90";
  EXPECT_THROW(decode_assign_by_task(no_tasks.data(), no_tasks.size(), limits{}), decode_error);
  EXPECT_THROW(decode_assign_by_task(bytes.data(), bytes.size() - 1, limits{}), decode_error);
}

TEST(WireCodecHostile, ADeadlineTooFarAwayToBeATimeIsRefusedNamingTheField) {
  // {"tasks": [{"kind": "noop", "deadline_ms": INT64_MAX}]}: would overflow the time point
  std::string bytes = std::string{"\x81\xa5tasks\x91\x82\xa4kind\xa4noop\xab"} + "deadline_ms" +
                      std::string{"\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9};
  try {
    decode<submit>(bytes.data(), bytes.size(), limits{});
    FAIL() << "accepted";
  } catch (const decode_error& e) {
    EXPECT_EQ(e.code(), wire_errc::malformed);
    EXPECT_NE(std::string{e.what()}.find("submit.tasks[0].deadline_ms"), std::string::npos)
        << e.what();
  }
  submit ok{{kind_only("noop")}};
  ok.tasks[0].deadline = clock::now() + std::chrono::hours(24 * 365);  // a year is fine
  EXPECT_TRUE(round_trip(ok).tasks[0].deadline.has_value());
}

TEST(WireCodecHostile, UnknownVersionsAndTypesAreRefused) {
  header h;
  h.type = msg_type::submit;
  h.v = 99;
  auto bytes = encode(h);
  try {
    decode_header(bytes.data(), bytes.size(), limits{});
    FAIL();
  } catch (const decode_error& e) {
    EXPECT_EQ(e.code(), wire_errc::bad_version);
  }
  // {"v":1,"type":"launch_missiles"}
  std::string unknown = "\x82\xa1v\x01\xa4type\xaflaunch_missiles";
  try {
    decode_header(unknown.data(), unknown.size(), limits{});
    FAIL();
  } catch (const decode_error& e) {
    EXPECT_EQ(e.code(), wire_errc::unknown_type);
    EXPECT_NE(std::string{e.what()}.find("launch_missiles"), std::string::npos);
  }
}

TEST(WireCodecHostile, FrameSizeLimitIsEnforced) {
  limits lim;
  lim.max_frame_bytes = 64;
  submit s;
  s.tasks = {sample_spec()};
  auto bytes = encode(s);
  ASSERT_GT(bytes.size(), 64u);
  EXPECT_EQ(refusal(bytes, lim), wire_errc::too_large);
}

TEST(WireCodecHostile, RandomBytesNeverCrash) {
  uint64_t x = 88172645463325252ull;
  submit s;
  s.tasks = {sample_spec(), sample_spec()};
  auto good = encode(s);
  for (int round = 0; round < 20000; ++round) {
    auto bytes = good;
    for (int flips = 0; flips < 1 + round % 4; ++flips) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      bytes[x % bytes.size()] = char(x >> 32);
    }
    try {
      decode<submit>(bytes.data(), bytes.size(), limits{});
    } catch (const decode_error&) {
    }
  }
  SUCCEED();
}

}  // namespace
}  // namespace troupe::wire
