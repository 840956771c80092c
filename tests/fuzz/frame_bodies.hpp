#pragma once
// What fuzz_frame decodes: the first byte of an input picks one decoder of this table
// (byte % size), the rest is the frame. The seed writer (write_frame_seeds.cpp) writes each seed
// with the index of its body, so the table's order is the seeds' format: append, never reorder.
#include <cstddef>
#include <cstdint>
#include <string>

#include "troupe/transport/codec.hpp"

namespace troupe::fuzz {

/// Decodes a frame as one body; throws wire::decode_error as the codec does.
using frame_decoder = void (*)(const uint8_t* data, size_t size, const wire::limits& lim);

/// Thrown when the encoding of a decoded body does not decode: a peer could not pass on what it
/// accepted (a finding, unlike decode_error).
struct reencode_failure {
  std::string why;
};

/// The limits a head with the default configuration decodes under (head.cpp, on_message).
inline wire::limits default_limits() {
  return wire::limits::for_payload(runtime_config{}.max_payload_bytes);
}

/// Small limits, so that inputs of a few bytes reach every "over the limit" path too.
inline wire::limits tight_limits() {
  wire::limits l;
  l.max_frame_bytes = 4096;
  l.max_elements = 16;
  l.max_depth = 4;
  l.max_string_bytes = 64;
  l.max_binary_bytes = 64;
  l.max_tasks_per_submit = 2;
  return l;
}

/// Throws reencode_failure if the encoding of a decoded body does not decode.
template <class Body>
void check_reencoding(const Body& body) {
  // Under the default limits: the encoding writes every key, so it may outgrow tight ones.
  static const auto recheck = default_limits();
  auto again = wire::encode(body);
  try {
    wire::decode<Body>(again.data(), again.size(), recheck);
  } catch (const wire::decode_error& e) {
    throw reencode_failure{e.what()};
  }
}

template <class Body>
void decode_body(const uint8_t* data, size_t size, const wire::limits& lim) {
  check_reencoding(wire::decode<Body>(data, size, lim));
}

inline void decode_header(const uint8_t* data, size_t size, const wire::limits& lim) {
  check_reencoding(wire::decode_header(data, size, lim));
}

/// How a node reads an assign: task by task.
inline void decode_assign_by_task(const uint8_t* data, size_t size, const wire::limits& lim) {
  wire::decode_assign_by_task(data, size, lim);
}

struct frame_kind {
  const char* name;
  frame_decoder decode;
};

// Every body a head, node, process host, client or subscriber decodes (a node's data socket
// too: output_request, output_reply).
inline constexpr frame_kind frame_kinds[] = {
    {"header", decode_header},
    {"hello", decode_body<wire::hello>},
    {"welcome", decode_body<wire::welcome>},
    {"heartbeat", decode_body<wire::heartbeat>},
    {"assign", decode_body<wire::assign>},
    {"assign_by_task", decode_assign_by_task},
    {"results", decode_body<wire::results>},
    {"worker_state", decode_body<wire::worker_state>},
    {"submit", decode_body<wire::submit>},
    {"submitted", decode_body<wire::submitted>},
    {"result", decode_body<wire::result>},
    {"cancel", decode_body<wire::cancel>},
    {"status_request", decode_body<wire::status_request>},
    {"status", decode_body<wire::status>},
    {"error", decode_body<wire::error>},
    {"replay_request", decode_body<wire::replay_request>},
    {"replay", decode_body<wire::replay>},
    {"snapshot_request", decode_body<wire::snapshot_request>},
    {"snapshot", decode_body<wire::snapshot>},
    {"fetch", decode_body<wire::fetch>},
    {"fetched", decode_body<wire::fetched>},
    {"event", decode_body<event>},
    {"output_request", decode_body<wire::output_request>},
    {"output_reply", decode_body<wire::output_reply>},
};
inline constexpr size_t frame_kind_count = sizeof(frame_kinds) / sizeof(frame_kinds[0]);

}  // namespace troupe::fuzz
