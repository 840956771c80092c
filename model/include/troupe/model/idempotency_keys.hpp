#pragma once
// Idempotency keys: which task a key named, so that a submit sent again gets that task, not a
// new one. Bounded in keys, in bytes of the results kept and in age, for everyone together and
// per client (its scope: the head's client key or connection; "" in process), so that one
// client's keys push out only its own. Past a bound the oldest key goes (a later submit with it
// creates a new task). Plain logic without locks: the runtime holds it under its mutex, and the
// caller gives the time.
#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

#include "troupe/model/completion.hpp"

namespace troupe {

struct idempotency_bounds {
  size_t max_keys = 65536;
  uint64_t max_bytes = uint64_t(256) << 20;  ///< outputs of ended tasks kept under keys
  std::chrono::seconds lifetime{3600};
  /// Per client; 0: only the overall bound. The scope "" (in process) has only the overall ones.
  size_t max_keys_per_scope = 0;
  uint64_t max_bytes_per_scope = 0;
};

class idempotency_keys {
 public:
  explicit idempotency_keys(idempotency_bounds b = {}) : bounds_(b) {}
  // Not copied or moved: the sweep position is an iterator into the list.
  idempotency_keys(const idempotency_keys&) = delete;
  idempotency_keys& operator=(const idempotency_keys&) = delete;
  /// Bounds for what is remembered from now on (set before the first key).
  void set_bounds(const idempotency_bounds& b) { bounds_ = b; }

  /// The task a key named, if it is still remembered.
  const task_handle* find(const std::string& key) const;
  /// Remembers that `key` (of `scope`) names the task of `h`, unless it names one already;
  /// then forgets the oldest keys past the bounds (of the scope first, then of everyone).
  void remember(const std::string& key, const std::string& scope, task_handle h, time_point now);
  /// Looks at up to `n` keys: one whose task ended keeps only a copy of its result (the task's
  /// record, with its payload, is no longer kept alive), and its output counts in bytes (which
  /// may push out the oldest keys).
  void sweep(size_t n, time_point now);

  size_t size() const { return keys_.size(); }
  uint64_t bytes() const { return bytes_; }
  size_t keys_of(const std::string& scope) const;
  uint64_t bytes_of(const std::string& scope) const;

 private:
  struct scope_state {
    std::list<std::string> order;  // its keys, oldest first
    uint64_t bytes = 0;
  };
  struct entry {
    task_handle handle;
    bool result_only = false;
    uint64_t bytes = 0;
    time_point at{};
    std::string scope;
    std::list<std::string>::iterator in_all, in_scope;
  };
  void forget(std::string key);  // a copy: callers pass the front of a list it erases
  /// The scope "" (submits in process, not through a head): only the overall bounds apply.
  const scope_state* unscoped() const;
  void forget_past_bounds(scope_state& s, time_point now);

  idempotency_bounds bounds_;
  std::unordered_map<std::string, entry> keys_;
  std::list<std::string> all_;  // every key, oldest first
  std::unordered_map<std::string, scope_state> scopes_;
  std::list<std::string>::iterator sweep_ = all_.end();  // where the next sweep starts
  uint64_t bytes_ = 0;
};

}  // namespace troupe
