#include "troupe/transport/codec.hpp"

#define MSGPACK_NO_BOOST 1
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <string_view>

namespace troupe::wire {

// ---------------------------------------------------------------------------------------------
// Names

const char* to_string(msg_type t) noexcept {
  switch (t) {
    case msg_type::hello:
      return "hello";
    case msg_type::welcome:
      return "welcome";
    case msg_type::heartbeat:
      return "heartbeat";
    case msg_type::assign:
      return "assign";
    case msg_type::results:
      return "results";
    case msg_type::worker_state:
      return "worker_state";
    case msg_type::submit:
      return "submit";
    case msg_type::submitted:
      return "submitted";
    case msg_type::result:
      return "result";
    case msg_type::cancel:
      return "cancel";
    case msg_type::status_request:
      return "status_request";
    case msg_type::status:
      return "status";
    case msg_type::error:
      return "error";
    case msg_type::bye:
      return "bye";
    case msg_type::replay_request:
      return "replay_request";
    case msg_type::replay:
      return "replay";
    case msg_type::snapshot_request:
      return "snapshot_request";
    case msg_type::snapshot:
      return "snapshot";
  }
  return "?";
}

bool parse_msg_type(const std::string& name, msg_type& out) noexcept {
  for (int i = 0; i <= int(last_msg_type); ++i)
    if (name == to_string(msg_type(i))) {
      out = msg_type(i);
      return true;
    }
  return false;
}

const char* to_string(wire_errc e) noexcept {
  switch (e) {
    case wire_errc::malformed:
      return "malformed";
    case wire_errc::too_large:
      return "too_large";
    case wire_errc::unknown_type:
      return "unknown_type";
    case wire_errc::bad_version:
      return "bad_version";
    case wire_errc::unknown_node:
      return "unknown_node";
    case wire_errc::not_joined:
      return "not_joined";
    case wire_errc::stale_epoch:
      return "stale_epoch";
    case wire_errc::layout_mismatch:
      return "layout_mismatch";
    case wire_errc::overloaded:
      return "overloaded";
    case wire_errc::unexpected:
      return "unexpected";
  }
  return "?";
}

namespace {

/// Finds the enum value whose name is s among [0, last].
template <class Enum>
bool from_name(std::string_view s, Enum last, Enum& out) {
  for (int i = 0; i <= int(last); ++i)
    if (s == to_string(Enum(i))) {
      out = Enum(i);
      return true;
    }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Bounds check over raw bytes

[[noreturn]] void refuse(wire_errc code, const std::string& what) {
  throw decode_error(code, what);
}

uint64_t be(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void check_frame(const void* data, size_t size, const limits& lim) {
  if (size > lim.max_frame_bytes)
    refuse(wire_errc::too_large, "frame of " + std::to_string(size) + " bytes, the limit is " +
                                     std::to_string(lim.max_frame_bytes));
  if (size == 0) refuse(wire_errc::malformed, "empty frame");
  auto* p = static_cast<const uint8_t*>(data);
  size_t pos = 0;
  // Objects still expected at each open nesting level; depth 0 is the top-level object.
  uint64_t pending[64];
  size_t depth_cap = std::min<size_t>(lim.max_depth, 63);
  size_t depth = 0;
  pending[0] = 1;
  auto need = [&](uint64_t n, const char* what) {
    if (n > size - pos)
      refuse(wire_errc::malformed, std::string{"truncated frame: "} + what + " at byte " +
                                       std::to_string(pos) + " needs " + std::to_string(n) +
                                       " bytes, " + std::to_string(size - pos) + " left");
  };
  auto sized = [&](uint64_t len, size_t max, const char* what) {
    if (len > max)
      refuse(wire_errc::too_large, std::string{what} + " of " + std::to_string(len) +
                                       " bytes at byte " + std::to_string(pos) + ", the limit is " +
                                       std::to_string(max));
    need(len, what);
    pos += size_t(len);
  };
  auto open = [&](uint64_t children, uint64_t declared, const char* what) {
    if (declared > lim.max_elements)
      refuse(wire_errc::too_large, std::string{what} + " of " + std::to_string(declared) +
                                       " entries at byte " + std::to_string(pos) +
                                       ", the limit is " + std::to_string(lim.max_elements));
    // Every entry takes at least one byte: a count beyond what is left is a lie.
    if (children > size - pos)
      refuse(wire_errc::malformed, std::string{what} + " declares " + std::to_string(declared) +
                                       " entries at byte " + std::to_string(pos) + " but only " +
                                       std::to_string(size - pos) + " bytes are left");
    if (children == 0) return;
    if (depth + 1 > depth_cap)
      refuse(wire_errc::too_large, "nesting deeper than " + std::to_string(depth_cap) +
                                       " at byte " + std::to_string(pos));
    pending[++depth] = children;
  };
  while (true) {
    while (depth > 0 && pending[depth] == 0) --depth;
    if (pending[depth] == 0) break;  // depth 0 done
    --pending[depth];
    need(1, "type byte");
    uint8_t b = p[pos++];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
    if ((b & 0xf0) == 0x80) {
      open(uint64_t(b & 0x0f) * 2, b & 0x0f, "map");
      continue;
    }
    if ((b & 0xf0) == 0x90) {
      open(b & 0x0f, b & 0x0f, "array");
      continue;
    }
    if ((b & 0xe0) == 0xa0) {
      sized(b & 0x1f, lim.max_string_bytes, "string");
      continue;
    }
    switch (b) {
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        size_t n = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
        need(n, "binary length");
        auto len = be(p + pos, n);
        pos += n;
        sized(len, lim.max_binary_bytes, "binary");
        break;
      }
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        size_t n = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
        need(n + 1, "extension length");
        auto len = be(p + pos, n);
        pos += n + 1;
        sized(len, lim.max_binary_bytes, "extension");
        break;
      }
      case 0xca:
        need(4, "float32");
        pos += 4;
        break;
      case 0xcb:
        need(8, "float64");
        pos += 8;
        break;
      case 0xcc:
      case 0xd0:
        need(1, "int8");
        pos += 1;
        break;
      case 0xcd:
      case 0xd1:
        need(2, "int16");
        pos += 2;
        break;
      case 0xce:
      case 0xd2:
        need(4, "int32");
        pos += 4;
        break;
      case 0xcf:
      case 0xd3:
        need(8, "int64");
        pos += 8;
        break;
      case 0xd4:
        need(2, "fixext1");
        pos += 2;
        break;
      case 0xd5:
        need(3, "fixext2");
        pos += 3;
        break;
      case 0xd6:
        need(5, "fixext4");
        pos += 5;
        break;
      case 0xd7:
        need(9, "fixext8");
        pos += 9;
        break;
      case 0xd8:
        need(17, "fixext16");
        pos += 17;
        break;
      case 0xd9:
      case 0xda:
      case 0xdb: {
        size_t n = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
        need(n, "string length");
        auto len = be(p + pos, n);
        pos += n;
        sized(len, lim.max_string_bytes, "string");
        break;
      }
      case 0xdc:
      case 0xdd: {
        size_t n = b == 0xdc ? 2 : 4;
        need(n, "array length");
        auto len = be(p + pos, n);
        pos += n;
        open(len, len, "array");
        break;
      }
      case 0xde:
      case 0xdf: {
        size_t n = b == 0xde ? 2 : 4;
        need(n, "map length");
        auto len = be(p + pos, n);
        pos += n;
        open(len * 2, len, "map");
        break;
      }
      default:
        refuse(wire_errc::malformed, "byte 0x" + std::string{"0123456789abcdef"[b >> 4]} +
                                         "0123456789abcdef"[b & 15] + " at " +
                                         std::to_string(pos - 1) + " is not a MessagePack type");
    }
  }
  if (pos != size)
    refuse(wire_errc::malformed, std::to_string(size - pos) + " bytes after the end of the object");
}

namespace {

// ---------------------------------------------------------------------------------------------
// Encoding

using packer = msgpack::packer<msgpack::sbuffer>;

std::string done(msgpack::sbuffer& buf) {
  return std::string(buf.data(), buf.size());
}

void key(packer& pk, std::string_view k) {
  pk.pack_str(uint32_t(k.size()));
  pk.pack_str_body(k.data(), uint32_t(k.size()));
}

void str(packer& pk, std::string_view s) {
  pk.pack_str(uint32_t(s.size()));
  pk.pack_str_body(s.data(), uint32_t(s.size()));
}

void bin(packer& pk, const std::vector<uint8_t>& b) {
  pk.pack_bin(uint32_t(b.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), uint32_t(b.size()));
}

void write(packer& pk, const param_map& p) {
  pk.pack_map(uint32_t(p.values().size()));
  for (auto& [k, v] : p.values()) {
    key(pk, k);
    std::visit(
        [&](auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>)
            str(pk, x);
          else
            pk.pack(x);
        },
        v);
  }
}

void write(packer& pk, const resources& r) {
  pk.pack_map(4);
  key(pk, "cpu_slots"), pk.pack(r.cpu_slots);
  key(pk, "memory_bytes"), pk.pack(r.memory_bytes);
  key(pk, "gpu_count"), pk.pack(r.gpu_count);
  key(pk, "gpu_memory_bytes"), pk.pack(r.gpu_memory_bytes);
}

void write(packer& pk, const worker_capacity& r) {
  pk.pack_map(4);
  key(pk, "cpu_slots"), pk.pack(r.cpu_slots);
  key(pk, "memory_bytes"), pk.pack(r.memory_bytes);
  key(pk, "gpu_count"), pk.pack(r.gpu_count);
  key(pk, "gpu_memory_bytes"), pk.pack(r.gpu_memory_bytes);
}

void write(packer& pk, const task_spec& s, time_point now) {
  uint32_t n = 5 + (s.deadline ? 1 : 0) + (s.max_retries ? 1 : 0) + (s.retry_backoff ? 1 : 0) +
               (s.idempotency_key.empty() ? 0 : 1) + (s.labels.empty() ? 0 : 1);
  pk.pack_map(n);
  key(pk, "kind"), str(pk, s.kind);
  key(pk, "params"), write(pk, s.params);
  key(pk, "payload"), bin(pk, s.payload);
  key(pk, "priority"), pk.pack(s.priority);
  key(pk, "needs"), write(pk, s.needs);
  if (s.deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*s.deadline - now).count();
    key(pk, "deadline_ms"), pk.pack(int64_t(left));
  }
  if (s.max_retries) key(pk, "max_retries"), pk.pack(*s.max_retries);
  if (s.retry_backoff) key(pk, "retry_backoff_ms"), pk.pack(int64_t(s.retry_backoff->count()));
  if (!s.idempotency_key.empty()) key(pk, "key"), str(pk, s.idempotency_key);
  if (!s.labels.empty()) {
    key(pk, "labels");
    pk.pack_map(uint32_t(s.labels.size()));
    for (auto& [k, v] : s.labels) key(pk, k), str(pk, v);
  }
}

void write(packer& pk, const task_output& o) {
  key(pk, "values"), write(pk, o.values);
  key(pk, "bytes"), bin(pk, o.bytes);
}

template <class Body, class Fn>
std::string encode_with(Fn&& fn) {
  // One buffer per thread, reused: a fresh sbuffer allocates 8 KiB for every small frame.
  thread_local msgpack::sbuffer buf;
  buf.clear();
  packer pk{buf};
  fn(pk);
  return done(buf);
}

template <class T, class Fn>
void list(packer& pk, const std::vector<T>& v, Fn&& each) {
  pk.pack_array(uint32_t(v.size()));
  for (auto& x : v) each(x);
}

void write(packer& pk, const std::vector<gpu_device>& gpus) {
  list(pk, gpus, [&](const gpu_device& g) {
    pk.pack_map(6);
    key(pk, "index"), pk.pack(g.index);
    key(pk, "name"), str(pk, g.name);
    key(pk, "cc_major"), pk.pack(g.cc_major);
    key(pk, "cc_minor"), pk.pack(g.cc_minor);
    key(pk, "total_memory"), pk.pack(g.total_memory);
    key(pk, "free_memory"), pk.pack(g.free_memory);
  });
}

}  // namespace

std::string encode(const header& h) {
  return encode_with<header>([&](packer& pk) {
    pk.pack_map(6);
    key(pk, "v"), pk.pack(h.v);
    key(pk, "type"), str(pk, to_string(h.type));
    key(pk, "id"), pk.pack(h.id);
    key(pk, "corr"), pk.pack(h.corr);
    key(pk, "from"), str(pk, h.from);
    key(pk, "epoch"), pk.pack(h.epoch);
  });
}

std::string encode(const hello& m) {
  return encode_with<hello>([&](packer& pk) {
    pk.pack_map(5);
    key(pk, "node"), str(pk, m.node);
    key(pk, "gpus"), write(pk, m.gpus);
    key(pk, "gpu_note"), str(pk, m.gpu_note);
    key(pk, "workers");
    list(pk, m.workers, [&](const worker_info& w) {
      pk.pack_map(4);
      key(pk, "name"), str(pk, w.name);
      key(pk, "device"), str(pk, to_string(w.device));
      key(pk, "device_index"), pk.pack(w.device_index);
      key(pk, "capacity"), write(pk, w.capacity);
    });
    key(pk, "kinds");
    list(pk, m.kinds, [&](const std::string& k) { str(pk, k); });
  });
}

std::string encode(const welcome& m) {
  return encode_with<welcome>([&](packer& pk) {
    pk.pack_map(4);
    key(pk, "node"), str(pk, m.node);
    key(pk, "epoch"), pk.pack(m.epoch);
    key(pk, "heartbeat_ms"), pk.pack(m.heartbeat_ms);
    key(pk, "first_worker"), pk.pack(m.first_worker);
  });
}

std::string encode(const heartbeat& m) {
  return encode_with<heartbeat>([&](packer& pk) {
    if (m.gpus.empty()) return pk.pack_map(0), void();
    pk.pack_map(1);
    key(pk, "gpus");
    list(pk, m.gpus, [&](const gpu_memory_report& g) {
      pk.pack_map(6);
      key(pk, "worker"), pk.pack(g.worker);
      key(pk, "in_use"), pk.pack(g.in_use);
      key(pk, "cache"), pk.pack(g.cache);
      key(pk, "device_used"), pk.pack(g.device_used);
      key(pk, "device_total"), pk.pack(g.device_total);
      key(pk, "device_source"), str(pk, g.device_source);
    });
  });
}

std::string encode(const assign& m) {
  auto now = clock::now();
  return encode_with<assign>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "tasks");
    list(pk, m.tasks, [&](const assigned_task& t) {
      pk.pack_map(4);
      key(pk, "id"), pk.pack(t.id);
      key(pk, "attempt"), pk.pack(t.attempt);
      key(pk, "worker"), pk.pack(t.worker);
      key(pk, "spec"), write(pk, t.spec, now);
    });
  });
}

std::string encode(const results& m) {
  return encode_with<results>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "records");
    list(pk, m.records, [&](const attempt_result& r) {
      pk.pack_map(9);
      key(pk, "id"), pk.pack(r.id);
      key(pk, "attempt"), pk.pack(r.attempt);
      key(pk, "worker"), pk.pack(r.worker);
      key(pk, "code"), str(pk, to_string(r.code));
      key(pk, "message"), str(pk, r.message);
      write(pk, r.output);
      key(pk, "run_ns"), pk.pack(r.run_ns);
      key(pk, "counts"), pk.pack(r.counts_as_attempt);
    });
  });
}

std::string encode(const worker_state& m) {
  return encode_with<worker_state>([&](packer& pk) {
    pk.pack_map(5);
    key(pk, "worker"), pk.pack(m.worker);
    key(pk, "up"), pk.pack(m.up);
    key(pk, "crashed_task"), pk.pack(m.crashed_task);
    key(pk, "reason"), str(pk, m.reason);
    key(pk, "retired"), pk.pack(m.retired);
  });
}

std::string encode(const submit& m) {
  auto now = clock::now();
  return encode_with<submit>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "tasks");
    list(pk, m.tasks, [&](const task_spec& s) { write(pk, s, now); });
  });
}

std::string encode(const submitted& m) {
  return encode_with<submitted>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "ids");
    list(pk, m.ids, [&](task_id id) { pk.pack(id); });
  });
}

std::string encode(const result& m) {
  return encode_with<result>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "tasks");
    pk.pack_array(uint32_t(m.tasks.size()));
    for (size_t i = 0; i < m.tasks.size(); ++i) {
      auto& r = m.tasks[i];
      pk.pack_map(10);
      key(pk, "id"), pk.pack(r.id);
      key(pk, "kind"), str(pk, r.kind);
      key(pk, "outcome"), str(pk, to_string(r.status));
      key(pk, "code"), str(pk, to_string(r.error.code));
      key(pk, "message"), str(pk, r.error.message);
      write(pk, r.output);
      key(pk, "attempts"), pk.pack(r.attempts);
      key(pk, "worker"), pk.pack(r.timings.worker);
      key(pk, "latency_ms"), pk.pack(i < m.latency_ms.size() ? m.latency_ms[i] : 0.0);
    }
  });
}

std::string encode(const cancel& m) {
  return encode_with<cancel>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "ids");
    list(pk, m.ids, [&](task_id id) { pk.pack(id); });
  });
}

std::string encode(const status_request&) {
  return encode_with<status_request>([&](packer& pk) { pk.pack_map(0); });
}

std::string encode(const status& m) {
  return encode_with<status>([&](packer& pk) {
    auto& s = m.stats;
    pk.pack_map(23);
    key(pk, "events_dropped"), pk.pack(s.events_dropped);
    key(pk, "events_endpoint"), str(pk, m.events_endpoint);
    key(pk, "last_event_seq"), pk.pack(m.last_event_seq);
    key(pk, "frames_refused"), pk.pack(m.frames_refused);
    key(pk, "stale_frames"), pk.pack(m.stale_frames);
    key(pk, "submitted"), pk.pack(s.submitted);
    key(pk, "rejected"), pk.pack(s.rejected);
    key(pk, "completed"), pk.pack(s.completed);
    key(pk, "failed"), pk.pack(s.failed);
    key(pk, "cancelled"), pk.pack(s.cancelled);
    key(pk, "expired"), pk.pack(s.expired);
    key(pk, "retries"), pk.pack(s.retries);
    key(pk, "queued"), pk.pack(s.queued);
    key(pk, "in_flight"), pk.pack(s.in_flight);
    key(pk, "uptime_s"), pk.pack(s.uptime_s);
    key(pk, "errors_detected"), pk.pack(s.errors_detected);
    key(pk, "mean_error_detection_ms"), pk.pack(s.mean_error_detection_ms);
    key(pk, "mean_error_handling_ms"), pk.pack(s.mean_error_handling_ms);
    key(pk, "duplicates_dropped"), pk.pack(s.duplicates_dropped);
    key(pk, "busy_window_s"), pk.pack(s.busy_window_s);
    key(pk, "latency");
    pk.pack_map(uint32_t(s.latency.size()));
    for (auto& [kind, l] : s.latency) {
      key(pk, kind);
      pk.pack_map(6);
      key(pk, "count"), pk.pack(l.count);
      key(pk, "mean_ms"), pk.pack(l.mean_ms);
      key(pk, "p50_ms"), pk.pack(l.p50_ms);
      key(pk, "p95_ms"), pk.pack(l.p95_ms);
      key(pk, "p99_ms"), pk.pack(l.p99_ms);
      key(pk, "max_ms"), pk.pack(l.max_ms);
    }
    key(pk, "workers");
    pk.pack_array(uint32_t(s.workers.size()));
    for (size_t i = 0; i < s.workers.size(); ++i) {
      auto& w = s.workers[i];
      pk.pack_map(w.gpu_memory ? 10 : 9);
      if (auto& g = w.gpu_memory) {
        key(pk, "gpu_memory");
        pk.pack_map(7);
        key(pk, "capacity"), pk.pack(g->capacity);
        key(pk, "reserved"), pk.pack(g->reserved);
        key(pk, "in_use"), pk.pack(g->in_use);
        key(pk, "cache"), pk.pack(g->cache);
        key(pk, "device_used"), pk.pack(g->device_used);
        key(pk, "device_total"), pk.pack(g->device_total);
        key(pk, "device_source"), str(pk, g->device_source);
      }
      key(pk, "index"), pk.pack(w.index);
      key(pk, "name"), str(pk, w.name);
      key(pk, "node"), str(pk, i < m.worker_nodes.size() ? m.worker_nodes[i] : std::string{});
      key(pk, "device"), str(pk, w.device);
      key(pk, "state"), str(pk, w.state);
      key(pk, "tasks"), pk.pack(w.tasks);
      key(pk, "busy_s"), pk.pack(w.busy_s);
      key(pk, "restarts"), pk.pack(w.restarts);
      key(pk, "heartbeat_age_ms"), pk.pack(w.heartbeat_age_ms);
    }
    key(pk, "nodes");
    list(pk, m.nodes, [&](const node_status& n) {
      pk.pack_map(8);
      key(pk, "name"), str(pk, n.name);
      key(pk, "gpus"), write(pk, n.gpus);
      key(pk, "gpu_note"), str(pk, n.gpu_note);
      key(pk, "state"), str(pk, n.state);
      key(pk, "epoch"), pk.pack(n.epoch);
      key(pk, "joins"), pk.pack(n.joins);
      key(pk, "heartbeat_age_ms"), pk.pack(n.heartbeat_age_ms);
      key(pk, "workers");
      list(pk, n.workers, [&](int32_t w) { pk.pack(w); });
    });
  });
}

namespace {
void write(packer& pk, const event& e) {
  pk.pack_map(6 + (e.node.empty() ? 0 : 1) + (e.kind.empty() ? 0 : 1) + (e.values.empty() ? 0 : 1));
  key(pk, "seq"), pk.pack(e.seq);
  key(pk, "time_ns"), pk.pack(e.time_ns);
  key(pk, "topic"), str(pk, e.topic);
  key(pk, "task"), pk.pack(e.task);
  key(pk, "worker"), pk.pack(e.worker);
  key(pk, "detail"), str(pk, e.detail);
  if (!e.node.empty()) key(pk, "node"), str(pk, e.node);
  if (!e.kind.empty()) key(pk, "kind"), str(pk, e.kind);
  if (!e.values.empty()) key(pk, "values"), write(pk, e.values);
}
}  // namespace

std::string encode(const event& e) {
  return encode_with<event>([&](packer& pk) { write(pk, e); });
}

std::string encode(const replay_request& m) {
  return encode_with<replay_request>([&](packer& pk) {
    pk.pack_map(1);
    key(pk, "since"), pk.pack(m.since);
  });
}

std::string encode(const replay& m) {
  return encode_with<replay>([&](packer& pk) {
    pk.pack_map(3);
    key(pk, "complete"), pk.pack(m.complete);
    key(pk, "last_seq"), pk.pack(m.last_seq);
    key(pk, "events");
    list(pk, m.events, [&](const event& e) { write(pk, e); });
  });
}

std::string encode(const snapshot_request&) {
  return encode_with<snapshot_request>([&](packer& pk) { pk.pack_map(0); });
}

std::string encode(const snapshot& m) {
  return encode_with<snapshot>([&](packer& pk) {
    auto& s = m.state;
    pk.pack_map(5);
    key(pk, "seq"), pk.pack(s.seq);
    key(pk, "finished");
    pk.pack_array(uint32_t(s.finished.size()));
    for (auto& [id, state] : s.finished) {
      pk.pack_map(2);
      key(pk, "id"), pk.pack(id);
      key(pk, "state"), str(pk, state);
    }
    key(pk, "tasks");
    pk.pack_array(uint32_t(s.tasks.size()));
    for (auto& [id, state] : s.tasks) {
      pk.pack_map(2);
      key(pk, "id"), pk.pack(id);
      key(pk, "state"), str(pk, state);
    }
    key(pk, "workers");
    pk.pack_array(uint32_t(s.workers.size()));
    for (auto& [w, state] : s.workers) {
      pk.pack_map(2);
      key(pk, "index"), pk.pack(w);
      key(pk, "state"), str(pk, state);
    }
    key(pk, "nodes");
    pk.pack_array(uint32_t(s.nodes.size()));
    for (auto& [n, state] : s.nodes) {
      pk.pack_map(2);
      key(pk, "name"), str(pk, n);
      key(pk, "state"), str(pk, state);
    }
  });
}

std::string encode(const error& m) {
  return encode_with<error>([&](packer& pk) {
    pk.pack_map(2);
    key(pk, "code"), str(pk, to_string(m.code));
    key(pk, "message"), str(pk, m.message);
  });
}

// ---------------------------------------------------------------------------------------------
// Decoding

namespace {

using msgpack::object;
namespace mt = msgpack::type;

/// Where a value sits in a body ("submit.tasks[3].priority"), rendered only for an error: the
/// happy path builds no strings. Points at its parent, which lives further up the stack.
class where {
 public:
  explicit where(const char* root) : root_(root) {}
  where(const where& parent, std::string_view key) : parent_(&parent), key_(key) {}
  where(const where& parent, uint32_t index) : parent_(&parent), index_(int64_t(index)) {}
  std::string str() const {
    std::string s = parent_ ? parent_->str() : std::string{root_ ? root_ : ""};
    if (index_ >= 0) return s + "[" + std::to_string(index_) + "]";
    if (!key_.empty()) s += "." + std::string(key_);
    return s;
  }

 private:
  const where* parent_ = nullptr;
  const char* root_ = nullptr;
  std::string_view key_;
  int64_t index_ = -1;
};

const char* type_of(const object& o) {
  switch (o.type) {
    case mt::NIL:
      return "nil";
    case mt::BOOLEAN:
      return "bool";
    case mt::POSITIVE_INTEGER:
    case mt::NEGATIVE_INTEGER:
      return "int";
    case mt::FLOAT32:
    case mt::FLOAT64:
      return "float";
    case mt::STR:
      return "string";
    case mt::BIN:
      return "binary";
    case mt::ARRAY:
      return "array";
    case mt::MAP:
      return "map";
    default:
      return "extension";
  }
}

[[noreturn]] void wrong(const where& path, const char* expected, const object& o) {
  refuse(wire_errc::malformed, path.str() + ": expected " + expected + ", got " + type_of(o));
}

int64_t as_int(const object& o, const where& path) {
  if (o.type == mt::POSITIVE_INTEGER) {
    if (o.via.u64 > uint64_t(INT64_MAX))
      refuse(wire_errc::malformed, path.str() + ": integer too large");
    return int64_t(o.via.u64);
  }
  if (o.type == mt::NEGATIVE_INTEGER) return o.via.i64;
  wrong(path, "int", o);
}

uint64_t as_uint(const object& o, const where& path) {
  if (o.type == mt::POSITIVE_INTEGER) return o.via.u64;
  if (o.type == mt::NEGATIVE_INTEGER)
    refuse(wire_errc::malformed, path.str() + ": expected a non-negative int");
  wrong(path, "int", o);
}

template <class T>
T as_bounded(const object& o, const where& path) {
  if constexpr (std::is_signed_v<T>) {
    auto v = as_int(o, path);
    if (v < int64_t(std::numeric_limits<T>::min()) || v > int64_t(std::numeric_limits<T>::max()))
      refuse(wire_errc::malformed, path.str() + ": " + std::to_string(v) + " is out of range");
    return T(v);
  } else {
    auto v = as_uint(o, path);
    if (v > uint64_t(std::numeric_limits<T>::max()))
      refuse(wire_errc::malformed, path.str() + ": " + std::to_string(v) + " is out of range");
    return T(v);
  }
}

double as_double(const object& o, const where& path) {
  if (o.type == mt::FLOAT32 || o.type == mt::FLOAT64) return o.via.f64;
  if (o.type == mt::POSITIVE_INTEGER) return double(o.via.u64);
  if (o.type == mt::NEGATIVE_INTEGER) return double(o.via.i64);
  wrong(path, "number", o);
}

bool as_bool(const object& o, const where& path) {
  if (o.type != mt::BOOLEAN) wrong(path, "bool", o);
  return o.via.boolean;
}

std::string as_string(const object& o, const where& path) {
  if (o.type != mt::STR) wrong(path, "string", o);
  return std::string(o.via.str.ptr, o.via.str.size);
}

std::vector<uint8_t> as_bytes(const object& o, const where& path) {
  if (o.type == mt::BIN) return {o.via.bin.ptr, o.via.bin.ptr + o.via.bin.size};
  if (o.type == mt::STR) return {o.via.str.ptr, o.via.str.ptr + o.via.str.size};
  wrong(path, "binary", o);
}

const msgpack::object_array& as_array(const object& o, const where& path) {
  if (o.type != mt::ARRAY) wrong(path, "array", o);
  return o.via.array;
}

/// A body map: fields by name, errors by path ("submit.tasks[3].priority").
class fields {
 public:
  fields(const object& o, const where& path) : path_(path) {
    if (o.type != mt::MAP) wrong(path_, "map", o);
    map_ = &o.via.map;
  }
  const object* find(std::string_view k) const {
    for (uint32_t i = 0; i < map_->size; ++i) {
      auto& kv = map_->ptr[i];
      if (kv.key.type == mt::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == k)
        return &kv.val;
    }
    return nullptr;
  }
  const object& need(std::string_view k) const {
    auto* o = find(k);
    if (!o) refuse(wire_errc::malformed, path_.str() + ": missing field '" + std::string(k) + "'");
    return *o;
  }
  where at(std::string_view k) const { return where(path_, k); }

  template <class T>
  T num(std::string_view k) const {
    return as_bounded<T>(need(k), at(k));
  }
  template <class T>
  T num(std::string_view k, T fallback) const {
    auto* o = find(k);
    return o ? as_bounded<T>(*o, at(k)) : fallback;
  }
  std::string text(std::string_view k) const { return as_string(need(k), at(k)); }
  std::string text(std::string_view k, std::string fallback) const {
    auto* o = find(k);
    return o ? as_string(*o, at(k)) : fallback;
  }
  template <class Fn>
  void each(std::string_view k, Fn&& fn) const {
    where list = at(k);
    auto& arr = as_array(need(k), list);
    for (uint32_t i = 0; i < arr.size; ++i) fn(arr.ptr[i], where(list, i));
  }

 private:
  where path_;
  const msgpack::object_map* map_ = nullptr;
};

param_value read_param(const object& o, const where& path) {
  switch (o.type) {
    case mt::BOOLEAN:
      return o.via.boolean;
    case mt::POSITIVE_INTEGER:
    case mt::NEGATIVE_INTEGER:
      return as_int(o, path);
    case mt::FLOAT32:
    case mt::FLOAT64:
      return o.via.f64;
    case mt::STR:
      return as_string(o, path);
    case mt::ARRAY: {
      auto& arr = o.via.array;
      bool any_float = false;
      for (uint32_t i = 0; i < arr.size; ++i) {
        auto t = arr.ptr[i].type;
        if (t == mt::FLOAT32 || t == mt::FLOAT64)
          any_float = true;
        else if (t != mt::POSITIVE_INTEGER && t != mt::NEGATIVE_INTEGER)
          wrong(where(path, i), "number", arr.ptr[i]);
      }
      if (any_float) {
        std::vector<double> v(arr.size);
        for (uint32_t i = 0; i < arr.size; ++i) v[i] = as_double(arr.ptr[i], path);
        return v;
      }
      std::vector<int64_t> v(arr.size);
      for (uint32_t i = 0; i < arr.size; ++i) v[i] = as_int(arr.ptr[i], where(path, i));
      return v;
    }
    default:
      wrong(path, "bool, int, float, string or a list of numbers", o);
  }
}

param_map read_params(const object& o, const where& path) {
  if (o.type != mt::MAP) wrong(path, "map", o);
  param_map p;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    auto& kv = o.via.map.ptr[i];
    auto k = as_string(kv.key, where(path, "(key)"));
    p.set(k, read_param(kv.val, where(path, k)));
  }
  return p;
}

resources read_needs(const object& o, const where& path) {
  fields f{o, path};
  resources r;
  r.cpu_slots = f.num<uint32_t>("cpu_slots", r.cpu_slots);
  r.memory_bytes = f.num<uint64_t>("memory_bytes", 0);
  r.gpu_count = f.num<uint32_t>("gpu_count", 0);
  r.gpu_memory_bytes = f.num<uint64_t>("gpu_memory_bytes", 0);
  return r;
}

worker_capacity read_capacity(const object& o, const where& path) {
  fields f{o, path};
  worker_capacity r;
  r.cpu_slots = f.num<uint32_t>("cpu_slots");
  r.memory_bytes = f.num<uint64_t>("memory_bytes");
  r.gpu_count = f.num<uint32_t>("gpu_count");
  r.gpu_memory_bytes = f.num<uint64_t>("gpu_memory_bytes");
  return r;
}

/// The optional "gpus" list and "gpu_note" of a hello or a node's status.
void read_gpus(const fields& f, std::vector<gpu_device>& gpus, std::string& note) {
  if (f.find("gpus"))
    f.each("gpus", [&](const object& o, const where& path) {
      fields g{o, path};
      gpu_device d;
      d.index = g.num<int32_t>("index");
      d.name = g.text("name");
      d.cc_major = g.num<int32_t>("cc_major", 0);
      d.cc_minor = g.num<int32_t>("cc_minor", 0);
      d.total_memory = g.num<uint64_t>("total_memory", 0);
      d.free_memory = g.num<uint64_t>("free_memory", 0);
      gpus.push_back(std::move(d));
    });
  note = f.text("gpu_note", {});
}

task_spec read_spec(const object& o, const where& path, time_point now) {
  fields f{o, path};
  task_spec s;
  s.kind = f.text("kind");
  if (auto* p = f.find("params")) s.params = read_params(*p, f.at("params"));
  if (auto* p = f.find("payload")) s.payload = as_bytes(*p, f.at("payload"));
  s.priority = f.num<int32_t>("priority", 0);
  if (auto* n = f.find("needs")) s.needs = read_needs(*n, f.at("needs"));
  if (auto* d = f.find("deadline_ms"))
    s.deadline = now + std::chrono::milliseconds(as_int(*d, f.at("deadline_ms")));
  if (auto* r = f.find("max_retries"))
    s.max_retries = as_bounded<uint32_t>(*r, f.at("max_retries"));
  if (auto* b = f.find("retry_backoff_ms"))
    s.retry_backoff = std::chrono::milliseconds(as_bounded<uint32_t>(*b, f.at("retry_backoff_ms")));
  s.idempotency_key = f.text("key", {});
  if (auto* l = f.find("labels")) {
    if (l->type != mt::MAP) wrong(f.at("labels"), "map", *l);
    for (uint32_t i = 0; i < l->via.map.size; ++i) {
      auto& kv = l->via.map.ptr[i];
      auto k = as_string(kv.key, where(f.at("labels"), "(key)"));
      s.labels[k] = as_string(kv.val, where(f.at("labels"), k));
    }
  }
  return s;
}

task_output read_output(const fields& f) {
  task_output out;
  if (auto* v = f.find("values")) out.values = read_params(*v, f.at("values"));
  if (auto* b = f.find("bytes")) out.bytes = as_bytes(*b, f.at("bytes"));
  return out;
}

errc read_errc(const fields& f, std::string_view k) {
  auto name = f.text(k);
  errc e{};
  if (!from_name(name, errc::config_error, e))
    refuse(wire_errc::malformed, f.at(k).str() + ": unknown error code '" + name + "'");
  return e;
}

/// Parses a checked frame. The handle references the caller's bytes (no copy of strings).
msgpack::object_handle parse(const void* data, size_t size, const limits& lim) {
  check_frame(data, size, lim);
  msgpack::unpack_limit ul(lim.max_elements, lim.max_elements, lim.max_string_bytes,
                           lim.max_binary_bytes, lim.max_binary_bytes, lim.max_depth);
  size_t off = 0;
  try {
    return msgpack::unpack(
        static_cast<const char*>(data), size, off,
        [](mt::object_type, std::size_t, void*) { return true; }, nullptr, ul);
  } catch (const std::exception& e) {
    refuse(wire_errc::malformed, std::string{"not MessagePack: "} + e.what());
  }
}

template <class Fn>
auto with_body(const void* data, size_t size, const limits& lim, const char* name, Fn&& fn) {
  auto oh = parse(data, size, lim);
  where root{name};
  return fn(fields{oh.get(), root});
}

}  // namespace

header decode_header(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "header", [](const fields& f) {
    header h;
    h.v = f.num<uint32_t>("v");
    if (h.v != protocol_version)
      refuse(wire_errc::bad_version, "header.v: version " + std::to_string(h.v) +
                                         " is not supported (this peer speaks " +
                                         std::to_string(protocol_version) + ")");
    auto type = f.text("type");
    if (!parse_msg_type(type, h.type))
      refuse(wire_errc::unknown_type, "header.type: unknown message type '" + type + "'");
    h.id = f.num<uint64_t>("id", 0);
    h.corr = f.num<uint64_t>("corr", 0);
    h.from = f.text("from", {});
    h.epoch = f.num<uint64_t>("epoch", 0);
    return h;
  });
}

template <>
hello decode<hello>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "hello", [](const fields& f) {
    hello m;
    m.node = f.text("node");
    f.each("workers", [&](const object& o, const where& path) {
      fields w{o, path};
      worker_info info;
      info.name = w.text("name");
      auto device = w.text("device");
      if (!from_name(device, device_class::cuda, info.device))
        refuse(wire_errc::malformed, w.at("device").str() + ": expected \"cpu\" or \"cuda\"");
      info.device_index = w.num<int32_t>("device_index", -1);
      info.capacity = read_capacity(w.need("capacity"), w.at("capacity"));
      m.workers.push_back(std::move(info));
    });
    if (f.find("kinds"))
      f.each("kinds", [&](const object& o, const where& p) { m.kinds.push_back(as_string(o, p)); });
    read_gpus(f, m.gpus, m.gpu_note);
    return m;
  });
}

template <>
welcome decode<welcome>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "welcome", [](const fields& f) {
    welcome m;
    m.node = f.text("node");
    m.epoch = f.num<uint64_t>("epoch");
    m.heartbeat_ms = f.num<uint32_t>("heartbeat_ms");
    m.first_worker = f.num<uint32_t>("first_worker", 0);
    return m;
  });
}

template <>
heartbeat decode<heartbeat>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "heartbeat", [](const fields& f) {
    heartbeat m;
    if (f.find("gpus"))
      f.each("gpus", [&](const object& o, const where& path) {
        fields g{o, path};
        gpu_memory_report r;
        r.worker = g.num<int32_t>("worker");
        r.in_use = g.num<uint64_t>("in_use", 0);
        r.cache = g.num<uint64_t>("cache", 0);
        r.device_used = g.num<uint64_t>("device_used", 0);
        r.device_total = g.num<uint64_t>("device_total", 0);
        r.device_source = g.text("device_source", {});
        m.gpus.push_back(std::move(r));
      });
    return m;
  });
}

template <>
assign decode<assign>(const void* data, size_t size, const limits& lim) {
  auto now = clock::now();
  return with_body(data, size, lim, "assign", [&](const fields& f) {
    assign m;
    f.each("tasks", [&](const object& o, const where& path) {
      fields t{o, path};
      assigned_task a;
      a.id = t.num<uint64_t>("id");
      a.attempt = t.num<uint32_t>("attempt");
      a.worker = t.num<int32_t>("worker");
      a.spec = read_spec(t.need("spec"), t.at("spec"), now);
      m.tasks.push_back(std::move(a));
    });
    return m;
  });
}

template <>
results decode<results>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "results", [](const fields& f) {
    results m;
    f.each("records", [&](const object& o, const where& path) {
      fields r{o, path};
      attempt_result a;
      a.id = r.num<uint64_t>("id");
      a.attempt = r.num<uint32_t>("attempt");
      a.worker = r.num<int32_t>("worker");
      a.code = read_errc(r, "code");
      a.message = r.text("message", {});
      a.output = read_output(r);
      a.run_ns = r.num<int64_t>("run_ns", 0);
      if (auto* c = r.find("counts")) a.counts_as_attempt = as_bool(*c, r.at("counts"));
      m.records.push_back(std::move(a));
    });
    return m;
  });
}

template <>
worker_state decode<worker_state>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "worker_state", [](const fields& f) {
    worker_state m;
    m.worker = f.num<int32_t>("worker");
    m.up = as_bool(f.need("up"), f.at("up"));
    m.crashed_task = f.num<uint64_t>("crashed_task", 0);
    m.reason = f.text("reason", {});
    if (auto* r = f.find("retired")) m.retired = as_bool(*r, f.at("retired"));
    return m;
  });
}

template <>
submit decode<submit>(const void* data, size_t size, const limits& lim) {
  auto now = clock::now();
  return with_body(data, size, lim, "submit", [&](const fields& f) {
    submit m;
    f.each("tasks",
           [&](const object& o, const where& path) { m.tasks.push_back(read_spec(o, path, now)); });
    return m;
  });
}

template <>
submitted decode<submitted>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "submitted", [](const fields& f) {
    submitted m;
    f.each("ids", [&](const object& o, const where& p) { m.ids.push_back(as_uint(o, p)); });
    return m;
  });
}

template <>
result decode<result>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "result", [](const fields& f) {
    result m;
    f.each("tasks", [&](const object& o, const where& path) {
      fields r{o, path};
      task_result t;
      t.id = r.num<uint64_t>("id");
      t.kind = r.text("kind", {});
      auto name = r.text("outcome");
      if (!from_name(name, outcome::rejected, t.status))
        refuse(wire_errc::malformed, r.at("outcome").str() + ": unknown outcome '" + name + "'");
      t.error.code = read_errc(r, "code");
      t.error.message = r.text("message", {});
      t.output = read_output(r);
      t.attempts = r.num<uint32_t>("attempts", 0);
      t.timings.worker = r.num<int32_t>("worker", -1);
      m.tasks.push_back(std::move(t));
      auto* l = r.find("latency_ms");
      m.latency_ms.push_back(l ? as_double(*l, r.at("latency_ms")) : 0.0);
    });
    return m;
  });
}

template <>
cancel decode<cancel>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "cancel", [](const fields& f) {
    cancel m;
    f.each("ids", [&](const object& o, const where& p) { m.ids.push_back(as_uint(o, p)); });
    return m;
  });
}

template <>
status_request decode<status_request>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "status_request",
                   [](const fields&) { return status_request{}; });
}

template <>
status decode<status>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "status", [](const fields& f) {
    status m;
    auto& s = m.stats;
    m.events_endpoint = f.text("events_endpoint", {});
    m.last_event_seq = f.num<uint64_t>("last_event_seq", 0);
    m.frames_refused = f.num<uint64_t>("frames_refused", 0);
    m.stale_frames = f.num<uint64_t>("stale_frames", 0);
    s.submitted = f.num<uint64_t>("submitted", 0);
    s.rejected = f.num<uint64_t>("rejected", 0);
    s.completed = f.num<uint64_t>("completed", 0);
    s.failed = f.num<uint64_t>("failed", 0);
    s.cancelled = f.num<uint64_t>("cancelled", 0);
    s.expired = f.num<uint64_t>("expired", 0);
    s.retries = f.num<uint64_t>("retries", 0);
    s.queued = f.num<uint64_t>("queued", 0);
    s.in_flight = f.num<uint64_t>("in_flight", 0);
    s.errors_detected = f.num<uint64_t>("errors_detected", 0);
    s.events_dropped = f.num<uint64_t>("events_dropped", 0);
    s.duplicates_dropped = f.num<uint64_t>("duplicates_dropped", 0);
    for (auto [name, field] : {std::pair{"uptime_s", &s.uptime_s},
                               {"mean_error_detection_ms", &s.mean_error_detection_ms},
                               {"mean_error_handling_ms", &s.mean_error_handling_ms},
                               {"busy_window_s", &s.busy_window_s}})
      if (auto* x = f.find(name)) *field = as_double(*x, f.at(name));
    if (auto* l = f.find("latency")) {
      if (l->type != mt::MAP) wrong(f.at("latency"), "map", *l);
      for (uint32_t i = 0; i < l->via.map.size; ++i) {
        auto& kv = l->via.map.ptr[i];
        where latency = f.at("latency");
        auto kind = as_string(kv.key, where(latency, "(key)"));
        where entry(latency, kind);
        fields x{kv.val, entry};
        latency_summary ls;
        ls.count = x.num<uint64_t>("count", 0);
        ls.mean_ms = as_double(x.need("mean_ms"), x.at("mean_ms"));
        ls.p50_ms = as_double(x.need("p50_ms"), x.at("p50_ms"));
        ls.p95_ms = as_double(x.need("p95_ms"), x.at("p95_ms"));
        ls.p99_ms = as_double(x.need("p99_ms"), x.at("p99_ms"));
        ls.max_ms = as_double(x.need("max_ms"), x.at("max_ms"));
        s.latency.emplace(kind, ls);
      }
    }
    f.each("workers", [&](const object& o, const where& path) {
      fields w{o, path};
      worker_stats ws;
      ws.index = w.num<int32_t>("index");
      ws.name = w.text("name");
      m.worker_nodes.push_back(w.text("node", {}));
      ws.device = w.text("device", {});
      ws.state = w.text("state", {});
      ws.tasks = w.num<uint64_t>("tasks", 0);
      if (auto* b = w.find("busy_s")) ws.busy_s = as_double(*b, w.at("busy_s"));
      ws.restarts = w.num<uint32_t>("restarts", 0);
      if (auto* h = w.find("heartbeat_age_ms"))
        ws.heartbeat_age_ms = as_double(*h, w.at("heartbeat_age_ms"));
      if (auto* g = w.find("gpu_memory")) {
        fields x{*g, w.at("gpu_memory")};
        worker_stats::gpu_memory_figures fig;
        fig.capacity = x.num<uint64_t>("capacity", 0);
        fig.reserved = x.num<uint64_t>("reserved", 0);
        fig.in_use = x.num<uint64_t>("in_use", 0);
        fig.cache = x.num<uint64_t>("cache", 0);
        fig.device_used = x.num<uint64_t>("device_used", 0);
        fig.device_total = x.num<uint64_t>("device_total", 0);
        fig.device_source = x.text("device_source", {});
        ws.gpu_memory = std::move(fig);
      }
      s.workers.push_back(std::move(ws));
    });
    f.each("nodes", [&](const object& o, const where& path) {
      fields n{o, path};
      node_status ns;
      ns.name = n.text("name");
      ns.state = n.text("state");
      ns.epoch = n.num<uint64_t>("epoch", 0);
      ns.joins = n.num<uint32_t>("joins", 0);
      if (auto* h = n.find("heartbeat_age_ms"))
        ns.heartbeat_age_ms = as_double(*h, n.at("heartbeat_age_ms"));
      n.each("workers", [&](const object& w, const where& p) {
        ns.workers.push_back(as_bounded<int32_t>(w, p));
      });
      read_gpus(n, ns.gpus, ns.gpu_note);
      m.nodes.push_back(std::move(ns));
    });
    return m;
  });
}

namespace {
event read_event(const object& o, const where& path) {
  fields f{o, path};
  event e;
  e.seq = f.num<uint64_t>("seq");
  e.time_ns = f.num<int64_t>("time_ns", 0);
  e.topic = f.text("topic");
  e.task = f.num<uint64_t>("task", 0);
  e.worker = f.num<int32_t>("worker", -1);
  e.detail = f.text("detail", {});
  e.node = f.text("node", {});
  e.kind = f.text("kind", {});
  if (auto* p = f.find("values")) e.values = read_params(*p, f.at("values"));
  return e;
}
}  // namespace

template <>
event decode<event>(const void* data, size_t size, const limits& lim) {
  auto oh = parse(data, size, lim);
  return read_event(oh.get(), where{"event"});
}

template <>
replay_request decode<replay_request>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "replay_request",
                   [](const fields& f) { return replay_request{f.num<uint64_t>("since")}; });
}

template <>
replay decode<replay>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "replay", [](const fields& f) {
    replay m;
    m.complete = as_bool(f.need("complete"), f.at("complete"));
    m.last_seq = f.num<uint64_t>("last_seq", 0);
    f.each("events",
           [&](const object& o, const where& p) { m.events.push_back(read_event(o, p)); });
    return m;
  });
}

template <>
snapshot_request decode<snapshot_request>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "snapshot_request",
                   [](const fields&) { return snapshot_request{}; });
}

template <>
snapshot decode<snapshot>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "snapshot", [](const fields& f) {
    snapshot m;
    m.state.seq = f.num<uint64_t>("seq");
    if (f.find("finished"))
      f.each("finished", [&](const object& o, const where& p) {
        fields t{o, p};
        m.state.finished[t.num<uint64_t>("id")] = t.text("state");
      });
    f.each("tasks", [&](const object& o, const where& p) {
      fields t{o, p};
      m.state.tasks[t.num<uint64_t>("id")] = t.text("state");
    });
    f.each("workers", [&](const object& o, const where& p) {
      fields w{o, p};
      m.state.workers[w.num<int32_t>("index")] = w.text("state");
    });
    f.each("nodes", [&](const object& o, const where& p) {
      fields n{o, p};
      m.state.nodes[n.text("name")] = n.text("state");
    });
    return m;
  });
}

template <>
error decode<error>(const void* data, size_t size, const limits& lim) {
  return with_body(data, size, lim, "error", [](const fields& f) {
    error m;
    auto name = f.text("code");
    if (!from_name(name, wire_errc::unexpected, m.code))
      refuse(wire_errc::malformed, "error.code: unknown code '" + name + "'");
    m.message = f.text("message", {});
    return m;
  });
}

}  // namespace troupe::wire
