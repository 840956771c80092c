#include "troupe/transport/codec.hpp"

#include "troupe/transport/wire_fields.hpp"

#define MSGPACK_NO_BOOST 1
#include <cstdlib>
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <optional>
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
    case msg_type::fetch:
      return "fetch";
    case msg_type::fetched:
      return "fetched";
    case msg_type::output_request:
      return "output_request";
    case msg_type::output_reply:
      return "output_reply";
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
    case wire_errc::name_taken:
      return "name_taken";
    case wire_errc::forbidden:
      return "forbidden";
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
    refuse(wire_errc::too_large,
           "frame of " + std::to_string(size) + " bytes, the limit is " +
               std::to_string(lim.max_frame_bytes) +
               " (limits.max_payload_bytes + 1 MiB: one task or output of that size per frame)");
  if (size == 0) refuse(wire_errc::malformed, "empty frame");
  auto* p = static_cast<const uint8_t*>(data);
  size_t pos = 0;
  // Objects still expected at each open nesting level; depth 0 is the top-level object.
  uint64_t pending[64];
  size_t depth_cap = std::min<size_t>(lim.max_depth, 63);
  size_t depth = 0;
  pending[0] = 1;
  uint64_t objects = 1;
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
    objects += children;
    if (objects > lim.max_objects)
      refuse(wire_errc::too_large, "more than " + std::to_string(lim.max_objects) +
                                       " values in one frame (at byte " + std::to_string(pos) +
                                       ")");
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
// Reading MessagePack values, with errors naming the field

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

shared_bytes as_bytes(const object& o, const where& path) {
  if (o.type == mt::BIN) return shared_bytes(o.via.bin.ptr, o.via.bin.ptr + o.via.bin.size);
  if (o.type == mt::STR) return shared_bytes(o.via.str.ptr, o.via.str.ptr + o.via.str.size);
  wrong(path, "binary", o);
}

const msgpack::object_array& as_array(const object& o, const where& path) {
  if (o.type != mt::ARRAY) wrong(path, "array", o);
  return o.via.array;
}

const msgpack::object_map& as_map(const object& o, const where& path) {
  if (o.type != mt::MAP) wrong(path, "map", o);
  return o.via.map;
}

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

/// The names of an enum on the wire, and how an unknown one is refused.
template <class E>
struct enum_names;
template <>
struct enum_names<device_class> {
  static constexpr auto last = device_class::cuda;
  static void unknown(const where& p, const std::string&) {
    refuse(wire_errc::malformed, p.str() + ": expected \"cpu\" or \"cuda\"");
  }
};
template <>
struct enum_names<errc> {
  static constexpr auto last = errc::preempted;
  static void unknown(const where& p, const std::string& name) {
    refuse(wire_errc::malformed, p.str() + ": unknown error code '" + name + "'");
  }
};
template <>
struct enum_names<failure_policy> {
  static constexpr auto last = failure_policy::cancel_graph;
  static void unknown(const where& p, const std::string& name) {
    refuse(wire_errc::malformed, p.str() + ": unknown failure policy '" + name +
                                     "' (cancel_dependents, run_what_can, cancel_graph)");
  }
};
template <>
struct enum_names<outcome> {
  static constexpr auto last = outcome::rejected;
  static void unknown(const where& p, const std::string& name) {
    refuse(wire_errc::malformed, p.str() + ": unknown outcome '" + name + "'");
  }
};
template <>
struct enum_names<wire_errc> {
  static constexpr auto last = wire_errc::forbidden;
  static void unknown(const where& p, const std::string& name) {
    refuse(wire_errc::malformed, p.str() + ": unknown code '" + name + "'");
  }
};
template <>
struct enum_names<msg_type> {
  static constexpr auto last = last_msg_type;
  static void unknown(const where& p, const std::string& name) {
    refuse(wire_errc::unknown_type, p.str() + ": unknown message type '" + name + "'");
  }
};

// ---------------------------------------------------------------------------------------------
// The field tables' options and member shapes

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class V>
struct is_string_map<std::map<std::string, V>> : std::true_type {};
template <class T>
struct is_column : std::false_type {};
template <class R, class V>
struct is_column<with_column<R, V>> : std::true_type {};
template <class T>
struct is_pairs : std::false_type {};
template <class K, class V>
struct is_pairs<as_pairs<K, V>> : std::true_type {};

template <class X, class... Opts>
constexpr bool has_option = (std::is_same_v<X, Opts> || ...);

/// The converter among a field's options, or `plain`.
struct plain {};
template <class... Opts>
struct converter_of {
  using type = plain;
};
template <class O, class... Rest>
struct converter_of<O, Rest...> {
  using type = std::conditional_t<std::is_same_v<O, required_t> || std::is_same_v<O, omit_empty_t>,
                                  typename converter_of<Rest...>::type, O>;
};

template <class T>
using bare = std::remove_cv_t<std::remove_reference_t<T>>;

/// Whether the encoder writes this member.
template <class T, class... Opts>
bool written(const T& member) {
  if constexpr (is_optional<T>::value) return member.has_value();
  if constexpr (has_option<since_encoded_us_t, Opts...>) return member != time_point{};
  if constexpr (has_option<omit_empty_t, Opts...>) {
    if constexpr (std::is_same_v<T, bool>)
      return member;  // a flag is left out when false
    else if constexpr (std::is_arithmetic_v<T>)
      return member != T{};  // a count is left out when 0
    else
      return !member.empty();
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Encoding: one walk over the tables

using packer = msgpack::packer<msgpack::sbuffer>;

void str(packer& pk, std::string_view s) {
  pk.pack_str(uint32_t(s.size()));
  pk.pack_str_body(s.data(), uint32_t(s.size()));
}

/// Counts the keys the encoder will write (a map's size comes first).
struct key_counter {
  uint32_t n = 0;
  template <class T, class... Opts>
  void operator()(const char*, T&& member, Opts...) {
    n += written<bare<T>, Opts...>(member) ? 1 : 0;
  }
};

class encoder {
 public:
  encoder(msgpack::sbuffer& buf, time_point now) : buf_(buf), pk_(buf), now_(now) {}

  /// A table entry.
  template <class T, class... Opts>
  void operator()(const char* key, T&& member, Opts...) {
    using C = typename converter_of<Opts...>::type;
    if (!written<bare<T>, Opts...>(member)) return;
    str(pk_, key);
    if constexpr (is_optional<bare<T>>::value)
      put(*member, C{});
    else
      put(member, C{});
  }

  template <class T>
  void value(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      str(pk_, v);
    } else if constexpr (std::is_same_v<T, shared_bytes>) {
      pk_.pack_bin(uint32_t(v.size()));
      pk_.pack_bin_body(reinterpret_cast<const char*>(v.data()), uint32_t(v.size()));
    } else if constexpr (std::is_same_v<T, param_map>) {
      pk_.pack_map(uint32_t(v.values().size()));
      for (auto& [k, x] : v.values()) {
        str(pk_, k);
        std::visit([&](auto& y) { value(y); }, x);
      }
    } else if constexpr (std::is_enum_v<T>) {
      str(pk_, to_string(v));
    } else if constexpr (std::is_floating_point_v<T>) {
      float64(double(v));
    } else if constexpr (std::is_arithmetic_v<T>) {
      pk_.pack(v);
    } else if constexpr (is_vector<T>::value) {
      pk_.pack_array(uint32_t(v.size()));
      for (auto& x : v) value(x);
    } else if constexpr (is_string_map<T>::value) {
      pk_.pack_map(uint32_t(v.size()));
      for (auto& [k, x] : v) str(pk_, k), value(x);
    } else if constexpr (is_column<T>::value) {
      pk_.pack_array(uint32_t(v.rows.size()));
      for (size_t i = 0; i < v.rows.size(); ++i) {
        using V = typename std::decay_t<decltype(v.column)>::value_type;
        auto& row = v.rows[i];
        key_counter c;
        fields(c, row);
        pk_.pack_map(c.n + 1);
        fields(*this, row);
        str(pk_, v.key);
        value(i < v.column.size() ? v.column[i] : V{});
      }
    } else if constexpr (is_pairs<T>::value) {
      pk_.pack_array(uint32_t(v.map.size()));
      for (auto& [k, x] : v.map) {
        pk_.pack_map(2);
        str(pk_, v.key_name), value(k);
        str(pk_, v.value_name), value(x);
      }
    } else {  // a struct with a table; tables take a mutable reference, as CAF's inspect does
      auto& m = const_cast<T&>(v);
      key_counter c;
      fields(c, m);
      pk_.pack_map(c.n);
      fields(*this, m);
    }
  }

 private:
  template <class T>
  void put(const T& v, plain) {
    value(v);
  }
  void put(time_point deadline, remaining_ms_t) {
    using std::chrono::milliseconds;
    pk_.pack(int64_t(std::chrono::duration_cast<milliseconds>(deadline - now_).count()));
  }
  void put(std::chrono::milliseconds d, as_ms_t) { pk_.pack(int64_t(d.count())); }
  void put(time_point t, since_encoded_us_t) {
    pk_.pack(int64_t(std::chrono::duration_cast<std::chrono::microseconds>(t - now_).count()));
  }
  void put(uint32_t v, supported_version_t) { pk_.pack(v); }

  /// Always a float64: msgpack-cxx's pack_double writes a double that holds a whole number as an
  /// integer (4.0 arrives as 4, 1e19 as a uint64 that no int64 holds, -0.0 as 0).
  void float64(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    char out[9];
    out[0] = char(0xcb);
    for (int i = 0; i < 8; ++i) out[1 + i] = char(bits >> (56 - 8 * i));
    buf_.write(out, sizeof out);
  }

  msgpack::sbuffer& buf_;
  packer pk_;
  time_point now_;
};

template <class T>
std::string encode_body(const T& m) {
  // One buffer per thread, reused: a fresh sbuffer allocates 8 KiB for every small frame.
  thread_local msgpack::sbuffer buf;
  buf.clear();
  encoder{buf, clock::now()}.value(m);
  return std::string(buf.data(), buf.size());
}

/// Bodies from this size on leave in the buffer they were packed into (a copy costs more than
/// the buffer's next growth from empty).
constexpr size_t own_buffer_bytes = size_t(256) << 10;

template <class T>
zmq::message_t encode_message_body(const T& m) {
  thread_local msgpack::sbuffer buf;
  buf.clear();
  encoder{buf, clock::now()}.value(m);
  if (buf.size() < own_buffer_bytes) return zmq::message_t(buf.data(), buf.size());
  auto size = buf.size();
  char* data = buf.release();  // malloc'd; the buffer starts empty again
  return zmq::message_t(
      data, size, [](void* d, void*) { std::free(d); }, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Decoding: one walk over the tables

/// A body map: fields by name, errors by path ("submit.tasks[3].priority").
class body_map {
 public:
  body_map(const object& o, const where& path) : path_(path), map_(&as_map(o, path)) {}
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

 private:
  where path_;
  const msgpack::object_map* map_;
};

class decoder {
 public:
  explicit decoder(time_point now) : now_(now) {}

  /// A table entry: only while walking the table of `map`.
  template <class T, class... Opts>
  void operator()(const char* key, T&& member, Opts...) {
    using C = typename converter_of<Opts...>::type;
    const object* o = has_option<required_t, Opts...> ? &map_->need(key) : map_->find(key);
    if (!o) return;
    where path = map_->at(key);
    if constexpr (is_optional<bare<T>>::value) {
      typename bare<T>::value_type v{};
      get(*o, path, v, C{});
      member = std::move(v);
    } else {
      get(*o, path, member, C{});
    }
  }

  template <class T>
  void value(const object& o, const where& path, T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      v = as_string(o, path);
    } else if constexpr (std::is_same_v<T, shared_bytes>) {
      v = as_bytes(o, path);
    } else if constexpr (std::is_same_v<T, param_map>) {
      auto& map = as_map(o, path);
      for (uint32_t i = 0; i < map.size; ++i) {
        auto& kv = map.ptr[i];
        auto k = as_string(kv.key, where(path, "(key)"));
        v.set(k, read_param(kv.val, where(path, k)));
      }
    } else if constexpr (std::is_enum_v<T>) {
      auto name = as_string(o, path);
      if (!from_name(name, enum_names<T>::last, v)) enum_names<T>::unknown(path, name);
    } else if constexpr (std::is_same_v<T, bool>) {
      v = as_bool(o, path);
    } else if constexpr (std::is_floating_point_v<T>) {
      v = as_double(o, path);
    } else if constexpr (std::is_integral_v<T>) {
      v = as_bounded<T>(o, path);
    } else if constexpr (is_vector<T>::value) {
      auto& arr = as_array(o, path);
      for (uint32_t i = 0; i < arr.size; ++i) {
        typename T::value_type x{};
        value(arr.ptr[i], where(path, i), x);
        v.push_back(std::move(x));
      }
    } else if constexpr (is_string_map<T>::value) {
      auto& map = as_map(o, path);
      for (uint32_t i = 0; i < map.size; ++i) {
        auto& kv = map.ptr[i];
        auto k = as_string(kv.key, where(path, "(key)"));
        typename T::mapped_type x{};
        value(kv.val, where(path, k), x);
        v.insert_or_assign(std::move(k), std::move(x));
      }
    } else if constexpr (is_column<T>::value) {
      auto& arr = as_array(o, path);
      for (uint32_t i = 0; i < arr.size; ++i) {
        typename std::decay_t<decltype(v.rows)>::value_type row{};
        typename std::decay_t<decltype(v.column)>::value_type cell{};
        walk(arr.ptr[i], where(path, i), [&](decoder& d) {
          fields(d, row);
          d(v.key, cell);
        });
        v.rows.push_back(std::move(row));
        v.column.push_back(std::move(cell));
      }
    } else if constexpr (is_pairs<T>::value) {
      auto& arr = as_array(o, path);
      for (uint32_t i = 0; i < arr.size; ++i) {
        typename std::decay_t<decltype(v.map)>::key_type k{};
        typename std::decay_t<decltype(v.map)>::mapped_type x{};
        walk(arr.ptr[i], where(path, i), [&](decoder& d) {
          d(v.key_name, k, required);
          d(v.value_name, x, required);
        });
        v.map.insert_or_assign(std::move(k), std::move(x));
      }
    } else {  // a struct with a table
      walk(o, path, [&](decoder& d) { fields(d, v); });
    }
  }

 private:
  /// Runs fn with a decoder reading the map o.
  template <class Fn>
  void walk(const object& o, const where& path, Fn&& fn) {
    body_map map{o, path};
    decoder d{now_};
    d.map_ = &map;
    fn(d);
  }

  template <class T>
  void get(const object& o, const where& path, T& v, plain) {
    value(o, path, v);
  }
  void get(const object& o, const where& path, time_point& deadline, remaining_ms_t) {
    // Past about 35 years either way the time point would overflow its nanoseconds.
    constexpr int64_t limit = int64_t(1) << 40;
    auto ms = as_int(o, path);
    if (ms > limit || ms < -limit)
      refuse(wire_errc::malformed, path.str() + ": " + std::to_string(ms) +
                                       " ms is out of range (at most 2^40 either way)");
    deadline = now_ + std::chrono::milliseconds(ms);
  }
  void get(const object& o, const where& path, time_point& t, since_encoded_us_t) {
    constexpr int64_t limit = int64_t(1) << 50;  // about 35 years either way, as deadlines
    auto us = as_int(o, path);
    if (us > limit || us < -limit)
      refuse(wire_errc::malformed, path.str() + ": " + std::to_string(us) +
                                       " us is out of range (at most 2^50 either way)");
    t = now_ + std::chrono::microseconds(us);
  }
  void get(const object& o, const where& path, std::chrono::milliseconds& d, as_ms_t) {
    d = std::chrono::milliseconds(as_bounded<uint32_t>(o, path));
  }
  void get(const object& o, const where& path, uint32_t& v, supported_version_t) {
    v = as_bounded<uint32_t>(o, path);
    if (v != protocol_version)
      refuse(wire_errc::bad_version, path.str() + ": version " + std::to_string(v) +
                                         " is not supported (this peer speaks " +
                                         std::to_string(protocol_version) + ")");
  }

  time_point now_;
  const body_map* map_ = nullptr;
};

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

/// Refuses a submit of too many tasks before any of them is decoded (a task decodes to far more
/// memory than its bytes on the wire).
void check_submit_size(const object& o, const limits& lim) {
  if (o.type != mt::MAP) return;  // the decoder names the problem
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    auto& kv = o.via.map.ptr[i];
    if (kv.key.type != mt::STR ||
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) != "tasks" ||
        kv.val.type != mt::ARRAY)
      continue;
    if (kv.val.via.array.size > lim.max_tasks_per_submit)
      refuse(wire_errc::too_large, "submit.tasks: " + std::to_string(kv.val.via.array.size) +
                                       " tasks, at most " +
                                       std::to_string(lim.max_tasks_per_submit) +
                                       " per submit (cluster.max_tasks_per_submit)");
  }
}

template <class T>
T decode_body(const void* data, size_t size, const limits& lim, const char* root) {
  auto oh = parse(data, size, lim);
  if constexpr (std::is_same_v<T, submit>) check_submit_size(oh.get(), lim);
  T m;
  decoder{clock::now()}.value(oh.get(), where{root}, m);
  return m;
}

/// The id, attempt and worker of an assigned task whose other fields could not be read.
std::optional<unreadable_task> name_of(const object& o, const where& path) try {
  body_map map{o, path};
  unreadable_task u;
  u.id = as_bounded<task_id>(map.need("id"), map.at("id"));
  u.attempt = as_bounded<uint32_t>(map.need("attempt"), map.at("attempt"));
  u.worker = as_bounded<int32_t>(map.need("worker"), map.at("worker"));
  return u;
} catch (const decode_error&) {
  return std::nullopt;
}

}  // namespace

assign_by_task decode_assign_by_task(const void* data, size_t size, const limits& lim) {
  auto oh = parse(data, size, lim);
  where root{"assign"};
  body_map map{oh.get(), root};
  auto path = map.at("tasks");
  auto& tasks = as_array(map.need("tasks"), path);
  assign_by_task out;
  out.readable.tasks.reserve(tasks.size);
  decoder d{clock::now()};
  for (uint32_t i = 0; i < tasks.size; ++i) {
    where at{path, i};
    assigned_task t;
    try {
      d.value(tasks.ptr[i], at, t);
      out.readable.tasks.push_back(std::move(t));
    } catch (const decode_error& e) {
      if (auto u = name_of(tasks.ptr[i], at)) {
        u->reason = e.what();
        out.unreadable.push_back(std::move(*u));
      } else {
        out.unnamed.push_back(e.what());
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The public encode and decode of every body, from its table

header decode_header(const void* data, size_t size, const limits& lim) {
  return decode_body<header>(data, size, lim, "header");
}

#define TROUPE_WIRE_BODY(T)                                       \
  std::string encode(const T& m) {                                \
    return encode_body(m);                                        \
  }                                                               \
  template <>                                                     \
  zmq::message_t encode_message<T>(const T& m) {                  \
    return encode_message_body(m);                                \
  }                                                               \
  template <>                                                     \
  T decode<T>(const void* data, size_t size, const limits& lim) { \
    return decode_body<T>(data, size, lim, #T);                   \
  }

TROUPE_WIRE_BODY(header)
TROUPE_WIRE_BODY(hello)
TROUPE_WIRE_BODY(welcome)
TROUPE_WIRE_BODY(heartbeat)
TROUPE_WIRE_BODY(assign)
TROUPE_WIRE_BODY(results)
TROUPE_WIRE_BODY(worker_state)
TROUPE_WIRE_BODY(submit)
TROUPE_WIRE_BODY(submitted)
TROUPE_WIRE_BODY(result)
TROUPE_WIRE_BODY(cancel)
TROUPE_WIRE_BODY(status_request)
TROUPE_WIRE_BODY(status)
TROUPE_WIRE_BODY(error)
TROUPE_WIRE_BODY(replay_request)
TROUPE_WIRE_BODY(replay)
TROUPE_WIRE_BODY(snapshot_request)
TROUPE_WIRE_BODY(snapshot)
TROUPE_WIRE_BODY(fetch)
TROUPE_WIRE_BODY(fetched)
TROUPE_WIRE_BODY(output_request)
TROUPE_WIRE_BODY(output_reply)
TROUPE_WIRE_BODY(event)

#undef TROUPE_WIRE_BODY

}  // namespace troupe::wire
