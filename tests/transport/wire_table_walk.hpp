#pragma once
// Walks a field table (wire_fields.hpp) without encoding anything: which keys a struct has and
// which bytes of the struct its table reaches. Shared by the round-trip and the doc tests.
#include <map>
#include <string>
#include <vector>

#include "troupe/transport/wire_fields.hpp"

namespace troupe::wire::testing {

/// One member reached by a table: its bytes.
struct reached {
  const void* at;
  size_t size;
};

struct table_walk {
  std::vector<std::string> keys;                   ///< in table order
  std::vector<reached> members;                    ///< the members (or columns) the keys come from
  std::map<std::string, std::string> column_keys;  ///< key of a with_column -> its column key

  template <class T, class... Opts>
  void operator()(const char* key, T&& member, Opts...) {
    keys.emplace_back(key);
    record(member);
    note_column(key, member);
  }

 private:
  template <class T>
  void note_column(const char*, const T&) {}
  template <class R, class V>
  void note_column(const char* key, const with_column<R, V>& c) {
    column_keys[key] = c.key;
  }
  template <class T>
  void record(T& m) {
    members.push_back({&m, sizeof(m)});
  }
  template <class R, class V>
  void record(with_column<R, V>& c) {
    record(c.rows);
    record(c.column);
  }
  template <class K, class V>
  void record(as_pairs<K, V>& p) {
    record(p.map);
  }
};

template <class T>
table_walk walk(T& m) {
  table_walk w;
  fields(w, m);
  return w;
}

template <class T>
std::vector<std::string> keys_of() {
  T m{};
  return walk(m).keys;
}

}  // namespace troupe::wire::testing
