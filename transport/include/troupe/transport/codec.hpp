#pragma once
// MessagePack form of the wire messages (wire.hpp). Decoding is bounded before anything is
// allocated: the frame size, then a walk over the raw bytes that checks every declared length
// against the bytes that are really there, the element counts and the nesting depth; only then
// does msgpack-c build objects, under the same limits (its defaults are unlimited: five bytes
// can ask for gigabytes). Unknown keys in a body are ignored, so that a newer peer's additions
// do not break an older one; missing required keys and wrong types are errors naming the field.
#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <zmq.hpp>

#include "troupe/model/config.hpp"
#include "troupe/transport/wire.hpp"

namespace troupe::wire {

struct limits {
  size_t max_frame_bytes = size_t(frame_limit_bytes(runtime_config{}.max_payload_bytes));
  size_t max_elements = size_t(1) << 20;      ///< entries of one array or map
  size_t max_depth = 32;                      ///< nesting of arrays and maps
  size_t max_string_bytes = size_t(1) << 20;  ///< one string
  size_t max_binary_bytes = size_t(runtime_config{}.max_payload_bytes);  ///< payloads, outputs
  size_t max_tasks_per_submit = 10000;  ///< tasks of one submit (cluster.max_tasks_per_submit)
  /// Objects (values, keys, entries) in one frame, all arrays and maps together: decoding
  /// builds about 24 bytes per object, so a frame of many tiny ones (a megabyte of nils) is
  /// refused before it costs many times its size.
  size_t max_objects = (size_t(1) << 20) + (size_t(1) << 16);

  /// Limits that carry any task or output of limits.max_payload_bytes: a frame of one such task
  /// (frame_limit_bytes), a binary or a string of that size, a list of that many numbers.
  static limits for_payload(uint64_t max_payload_bytes) {
    limits l;
    l.max_frame_bytes = size_t(frame_limit_bytes(max_payload_bytes));
    l.max_binary_bytes = size_t(max_payload_bytes);
    l.max_string_bytes = std::max(l.max_string_bytes, size_t(max_payload_bytes));
    l.max_elements = std::max(l.max_elements, size_t(max_payload_bytes / 8));
    l.max_objects = l.max_elements + (size_t(1) << 20);
    return l;
  }

  /// Limits for messages that carry no payload (hello, heartbeat, cancel, fetch, requests):
  /// 16 MiB frames of at most a million ids, and as many objects.
  limits control() const {
    limits l = *this;
    l.max_frame_bytes = std::min(max_frame_bytes, size_t(16) << 20);
    l.max_elements = size_t(1) << 20;
    l.max_objects = l.max_elements + (size_t(1) << 16);
    l.max_string_bytes = std::min(max_string_bytes, size_t(1) << 20);
    l.max_binary_bytes = std::min(max_binary_bytes, size_t(1) << 20);
    return l;
  }
};

/// Why a frame was refused: the code goes back to the sender in an error message.
class decode_error : public std::runtime_error {
 public:
  decode_error(wire_errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  wire_errc code() const { return code_; }

 private:
  wire_errc code_;
};

/// Throws decode_error if the bytes are not one complete MessagePack object within the limits.
/// Allocates nothing.
void check_frame(const void* data, size_t size, const limits& lim);

std::string encode(const header& h);
std::string encode(const hello& m);
std::string encode(const welcome& m);
std::string encode(const heartbeat& m);
std::string encode(const assign& m);
std::string encode(const results& m);
std::string encode(const worker_state& m);
std::string encode(const submit& m);
std::string encode(const submitted& m);
std::string encode(const result& m);
std::string encode(const cancel& m);
std::string encode(const status_request& m);
std::string encode(const status& m);
std::string encode(const error& m);
std::string encode(const replay_request& m);
std::string encode(const replay& m);
std::string encode(const snapshot_request& m);
std::string encode(const snapshot& m);
std::string encode(const fetch& m);
std::string encode(const fetched& m);
std::string encode(const output_request& m);
std::string encode(const output_reply& m);
/// The body of a PUB message (its first frame is the topic).
std::string encode(const event& e);

/// The same encodings, straight into a zmq message: a small body is copied once from a reused
/// buffer, a large one (payloads, outputs) goes in the buffer it was packed into, without a copy.
template <class Body>
zmq::message_t encode_message(const Body& m);

/// Decoders: check_frame first, then the shape. Throw decode_error naming the field.
header decode_header(const void* data, size_t size, const limits& lim);
template <class Body>
Body decode(const void* data, size_t size, const limits& lim);

/// A task of an assign that could not be read, named by what of it could be.
struct unreadable_task {
  task_id id = 0;
  uint32_t attempt = 0;
  int32_t worker = -1;
  std::string reason;  ///< the decode error, naming the field
};

/// An assign read task by task, so that one task the node cannot read fails alone.
struct assign_by_task {
  assign readable;
  std::vector<unreadable_task> unreadable;  ///< their id, attempt and worker could be read
  std::vector<std::string> unnamed;  ///< not even those: why, for each (the head finds them lost)
};

/// Throws decode_error only if the frame itself is broken: not MessagePack, over the limits,
/// not a map, or without a `tasks` array.
assign_by_task decode_assign_by_task(const void* data, size_t size, const limits& lim);

}  // namespace troupe::wire
