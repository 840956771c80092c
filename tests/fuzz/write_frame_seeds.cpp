// Writes fuzz_frame's seed corpus: real frames from the codec, one file per message, each led by
// the index of its body in frame_bodies.hpp. Usage: fuzz_frame_seeds DIR (README.md).
#include <cstdio>
#include <fstream>
#include <string>

#include "frame_bodies.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

std::string dir;
int written = 0;

size_t index_of(const char* name) {
  for (size_t i = 0; i < fuzz::frame_kind_count; ++i)
    if (std::string{fuzz::frame_kinds[i].name} == name) return i;
  std::fprintf(stderr, "fuzz_frame_seeds: no body named %s in frame_bodies.hpp\n", name);
  std::exit(1);
}

/// Writes <index>-<body>[-variant]: the selector byte, then the frame.
void seed(const char* body, const std::string& frame, const std::string& variant = "") {
  auto index = index_of(body);
  char prefix[8];
  std::snprintf(prefix, sizeof prefix, "%02zu-", index);
  auto path = dir + "/" + prefix + body + (variant.empty() ? "" : "-" + variant);
  std::ofstream out{path, std::ios::binary};
  out.put(char(index));
  out.write(frame.data(), std::streamsize(frame.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz_frame_seeds: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  ++written;
}

param_map sample_params() {
  return {{"layers", std::vector<int64_t>{784, 256, 10}},
          {"batch", int64_t{32}},
          {"scale", 0.5},
          {"name", std::string{"m1"}},
          {"fast", true},
          {"weights", std::vector<double>{0.25, -1.5}}};
}

task_spec sample_spec() {
  task_spec s;
  s.kind = "mlp";
  s.params = sample_params();
  s.payload = {1, 2, 3, 255};
  s.priority = 5;
  s.deadline = clock::now() + 30s;
  s.needs = {2, uint64_t(1) << 20, 1, uint64_t(3) << 30};
  s.max_retries = 3;
  s.retry_backoff = 20ms;
  s.timeout = 3000ms;
  s.idempotency_key = "order-1";
  s.labels = {{"tenant", "a"}};
  return s;
}

task_spec plain_spec(const char* kind) {
  task_spec s;
  s.kind = kind;
  return s;
}

gpu_device sample_gpu() {
  return {0, "NVIDIA H100 80GB HBM3", 9, 0, uint64_t(80) << 30, uint64_t(79) << 30};
}

event sample_event(uint64_t seq, const char* topic) {
  event e;
  e.seq = seq;
  e.time_ns = 1700000000123456789;
  e.topic = topic;
  e.task = 7;
  e.worker = 1;
  e.detail = "gemm";
  e.node = "a";
  e.kind = "gemm";
  e.incarnation = 3;
  return e;
}

task_result sample_result(outcome how, errc code) {
  task_result t;
  t.id = 42;
  t.kind = "gemm";
  t.status = how;
  t.error = {code, code == errc::none ? "" : "boom"};
  t.output = {{{"checksum", 1.5}}, {9, 8, 7}};
  t.attempts = 2;
  t.timings.worker = 1;
  return t;
}

void write_all() {
  seed("header", wire::encode(wire::header{wire::protocol_version, wire::msg_type::hello, 1, 0,
                                           "node-a", 1700000000}));
  seed("header",
       wire::encode(
           wire::header{wire::protocol_version, wire::msg_type::fetched, 9, 8, "client", 0}),
       "reply");

  wire::hello hello;
  hello.node = "a";
  hello.workers = {{"cpu-0", device_class::cpu, -1, {1, uint64_t(1) << 30, 0, 0}},
                   {"cuda-0", device_class::cuda, 0, {1, 1 << 20, 1, uint64_t(80) << 30}}};
  hello.kinds = {"gemm", "mlp", "noop"};
  hello.gpus = {sample_gpu()};
  hello.kind_devices = {{"gemm", {device_class::cpu, device_class::cuda}}};
  hello.max_payload_bytes = uint64_t(64) << 20;
  seed("hello", wire::encode(hello));
  wire::hello no_gpu;
  no_gpu.node = "b";
  no_gpu.workers = {{"cpu-0", device_class::cpu, -1, {1, 1 << 20, 0, 0}}};
  no_gpu.gpu_note = "no NVIDIA driver";
  seed("hello", wire::encode(no_gpu), "no-gpu");

  seed("welcome", wire::encode(wire::welcome{"a", 1700000000, 200, 4}));

  wire::heartbeat beat;
  beat.gpus = {{1, 100, 200, 3000, 8000, "nvml"}};
  beat.last_assign = 981;
  beat.holding = {7, 8, uint64_t(1) << 60};
  seed("heartbeat", wire::encode(beat));
  seed("heartbeat", wire::encode(wire::heartbeat{}), "empty");

  wire::assign assign;
  assign.tasks = {{42, 1, 0, sample_spec()}, {43, 2, 1, plain_spec("noop")}};
  seed("assign", wire::encode(assign));
  seed("assign_by_task", wire::encode(assign));

  wire::attempt_result done;
  done.id = 42;
  done.attempt = 1;
  done.worker = 0;
  done.output = {{{"checksum", 12.5}, {"argmax", std::vector<int64_t>{1, 2}}}, {1, 2}};
  done.run_ns = 123456;
  wire::attempt_result failed;
  failed.id = 43;
  failed.attempt = 2;
  failed.worker = 1;
  failed.code = errc::task_failed;
  failed.message = "transient fault";
  failed.counts_as_attempt = false;
  seed("results", wire::encode(wire::results{{done, failed}}));

  seed("worker_state", wire::encode(wire::worker_state{1, false, 43, "crashed", false}));

  seed("submit", wire::encode(wire::submit{{sample_spec(), plain_spec("echo")}, 17}));
  seed("submit", wire::encode(wire::submit{{plain_spec("noop")}, 0}), "one");

  seed("submitted", wire::encode(wire::submitted{{7, 8, 9}}));

  seed("result", wire::encode(wire::result{{sample_result(outcome::completed, errc::none),
                                            sample_result(outcome::failed, errc::task_failed)},
                                           {1.5, 2.75}}));

  seed("cancel", wire::encode(wire::cancel{{7, 8}}));
  seed("status_request", wire::encode(wire::status_request{}));

  wire::status status;
  status.stats.submitted = 100;
  status.stats.completed = 98;
  status.stats.latency["gemm"] = {3, 1.0, 0.5, 2.0, 3.0, 4.0};
  worker_stats w;
  w.index = 0;
  w.name = "a/cuda-0";
  w.device = "cuda:0";
  w.state = "busy";
  w.gpu_memory = worker_stats::gpu_memory_figures{1000, 300, 200, 100, 5000, 8000, "nvml"};
  status.stats.workers = {w};
  status.worker_nodes = {"a"};
  status.nodes.push_back({"a", "joined", 99, 2, 12.5, {0}, {sample_gpu()}, ""});
  status.events_endpoint = "tcp://127.0.0.1:5556";
  seed("status", wire::encode(status));

  seed("error", wire::encode(wire::error{wire::wire_errc::too_large, "frame of 9 bytes"}));
  seed("replay_request", wire::encode(wire::replay_request{5}));
  seed("replay", wire::encode(wire::replay{
                     true, 7, {sample_event(6, "task.done"), sample_event(7, "worker.down")}}));
  seed("snapshot_request", wire::encode(wire::snapshot_request{}));

  wire::snapshot snap;
  snap.state.seq = 12;
  snap.state.tasks = {{7, "queued"}, {8, "started"}};
  snap.state.workers = {{0, "up"}, {1, "restarting"}};
  snap.state.nodes = {{"a", "joined"}};
  snap.state.finished = {{6, "completed"}};
  seed("snapshot", wire::encode(snap));

  seed("fetch", wire::encode(wire::fetch{{7, 8, 9}}));
  seed("fetched", wire::encode(wire::fetched{{7}, {8, 9}}));
  seed("output_request", wire::encode(wire::output_request{{41, 42}, 77}));
  wire::output_reply kept_reply;
  kept_reply.task = 41;
  kept_reply.found = true;
  kept_reply.output.values.set("x", int64_t{3});
  kept_reply.output.bytes = {1, 2, 3};
  seed("output_reply", wire::encode(kept_reply));

  auto metrics = sample_event(12, "metrics.snapshot");
  metrics.values = {{"throughput_tps", 1234.5}, {"worker.cpu-0.utilisation", 0.75}};
  seed("event", wire::encode(metrics));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_frame_seeds DIR (tests/fuzz/corpus/fuzz_frame)\n");
    return 2;
  }
  dir = argv[1];
  write_all();
  std::printf("fuzz_frame_seeds: %d seeds in %s\n", written, dir.c_str());
  return 0;
}
