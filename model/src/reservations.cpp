#include "troupe/model/reservations.hpp"

#include <algorithm>

namespace troupe {

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

reservation_book::reservation_book(const std::vector<reservation_config>& cfg,
                                   const std::vector<std::string>& worker_names, time_point now,
                                   std::chrono::system_clock::time_point wall_now)
    : holder_(worker_names.size(), -1) {
  auto steady = [&](std::chrono::system_clock::time_point t) {
    return now + std::chrono::duration_cast<duration>(t - wall_now);
  };
  for (auto& r : cfg) {
    entry e;
    e.name = r.name;
    e.clients = r.clients;
    if (r.from) e.from = steady(*r.from);
    if (r.until) e.until = steady(*r.until);
    for (auto& w : r.workers) {
      auto it = std::find(worker_names.begin(), worker_names.end(), w);
      if (it == worker_names.end())
        throw config_error("config", r.line, "reservations." + r.name + ".workers",
                           "no worker '" + w + "' (workers: " + joined(worker_names) + ")");
      auto index = size_t(it - worker_names.begin());
      if (holder_[index] >= 0)
        throw config_error("config", r.line, "reservations." + r.name + ".workers",
                           "worker '" + w + "' is held by reservation '" +
                               entries_[size_t(holder_[index])].name + "' already");
      holder_[index] = int(entries_.size());
      e.workers.push_back(index);
    }
    entries_.push_back(std::move(e));
  }
}

const reservation_book::entry* reservation_book::find(const std::string& name) const {
  for (auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

bool reservation_book::allows(size_t w, const std::string& name, time_point now) const {
  const entry* holder =
      w < holder_.size() && holder_[w] >= 0 ? &entries_[size_t(holder_[w])] : nullptr;
  if (!name.empty()) return holder && holder->name == name && !ended(*holder, now);
  return !holder || !active(*holder, now);
}

bool reservation_book::could_ever(size_t w, const std::string& name, time_point now) const {
  if (!name.empty()) return allows(w, name, now);
  return held_for_good(w) == nullptr;
}

std::optional<time_point> reservation_book::next_change(time_point now) const {
  std::optional<time_point> next;
  for (auto& e : entries_)
    for (auto& t : {e.from, e.until})
      if (t && *t > now && (!next || *t < *next)) next = *t;
  return next;
}

std::string reservation_book::refusal(const task_spec& spec, time_point now) const {
  auto name = reservation_of(spec);
  if (name.empty()) return {};
  auto* e = find(name);
  if (!e) {
    std::vector<std::string> known;
    for (auto& k : entries_) known.push_back(k.name);
    return "unknown reservation '" + name +
           "' (reservations: " + (known.empty() ? std::string{"none"} : joined(known)) + ")";
  }
  if (!e->clients.empty()) {
    auto it = spec.labels.find(client_label);
    auto client = it == spec.labels.end() ? std::string{} : it->second;
    if (std::find(e->clients.begin(), e->clients.end(), client) == e->clients.end())
      return "reservation '" + name + "' is held for " + joined(e->clients) +
             "; this task's client is " + (client.empty() ? "not named" : "'" + client + "'");
  }
  if (ended(*e, now)) return "reservation '" + name + "' has ended";
  return {};
}

const reservation_book::entry* reservation_book::held_for_good(size_t w) const {
  if (w >= holder_.size() || holder_[w] < 0) return nullptr;
  auto& e = entries_[size_t(holder_[w])];
  return e.until ? nullptr : &e;
}

}  // namespace troupe
