#include "troupe/model/idempotency_keys.hpp"

#include <memory>

namespace troupe {

const task_handle* idempotency_keys::find(const std::string& key) const {
  auto i = keys_.find(key);
  return i == keys_.end() ? nullptr : &i->second.handle;
}

void idempotency_keys::remember(const std::string& key, const std::string& scope, task_handle h,
                                time_point now) {
  auto [i, fresh] = keys_.try_emplace(key);
  if (!fresh) return;
  auto& e = i->second;
  e.handle = std::move(h);
  e.at = now;
  e.scope = scope;
  e.in_all = all_.insert(all_.end(), key);
  auto& s = scopes_[scope];
  e.in_scope = s.order.insert(s.order.end(), key);
  forget_past_bounds(s, now);
}

void idempotency_keys::forget_past_bounds(scope_state& s, time_point now) {
  // The scope's own first: a client over its share loses its oldest keys, nobody else's. The
  // newest key stays whatever the bounds (it was just given).
  auto over_scope = [&] {
    return s.order.size() > 1 && &s != unscoped() &&
           ((bounds_.max_keys_per_scope && s.order.size() > bounds_.max_keys_per_scope) ||
            (bounds_.max_bytes_per_scope && s.bytes > bounds_.max_bytes_per_scope));
  };
  while (over_scope()) forget(s.order.front());  // s outlives this: its newest key stays
  while (all_.size() > 1 && (all_.size() > bounds_.max_keys || bytes_ > bounds_.max_bytes ||
                             now - keys_.at(all_.front()).at > bounds_.lifetime))
    forget(all_.front());
}

const idempotency_keys::scope_state* idempotency_keys::unscoped() const {
  auto s = scopes_.find(std::string{});
  return s == scopes_.end() ? nullptr : &s->second;
}

void idempotency_keys::forget(std::string key) {
  auto i = keys_.find(key);
  if (i == keys_.end()) return;
  auto& e = i->second;
  if (sweep_ == e.in_all) ++sweep_;
  all_.erase(e.in_all);
  auto s = scopes_.find(e.scope);
  s->second.order.erase(e.in_scope);
  s->second.bytes -= e.bytes;
  bytes_ -= e.bytes;
  if (s->second.order.empty()) scopes_.erase(s);
  keys_.erase(i);
}

void idempotency_keys::sweep(size_t n, time_point now) {
  for (size_t k = 0; k < n && !all_.empty(); ++k) {
    if (sweep_ == all_.end()) sweep_ = all_.begin();
    auto& e = keys_.at(*sweep_++);
    if (e.result_only || !e.handle.valid() || !e.handle.ready()) continue;
    auto copy = std::make_shared<completion>();
    e.bytes = output_bytes(e.handle.get().output);
    copy->set(task_result{e.handle.get()});
    e.handle = task_handle{e.handle.id(), std::move(copy)};
    e.result_only = true;
    bytes_ += e.bytes;
    auto& s = scopes_.at(e.scope);
    s.bytes += e.bytes;
    // Large outputs push out the oldest keys: of their client first.
    forget_past_bounds(s, now);
  }
}

size_t idempotency_keys::keys_of(const std::string& scope) const {
  auto s = scopes_.find(scope);
  return s == scopes_.end() ? 0 : s->second.order.size();
}

uint64_t idempotency_keys::bytes_of(const std::string& scope) const {
  auto s = scopes_.find(scope);
  return s == scopes_.end() ? 0 : s->second.bytes;
}

}  // namespace troupe
