#include "troupe/model/registry.hpp"

#include <stdexcept>

namespace troupe {

void task_registry::add(kind_definition def) {
  if (def.name.empty()) throw std::invalid_argument("task kind name must not be empty");
  if (!def.cpu && !def.cuda)
    throw std::invalid_argument("task kind '" + def.name + "' has no implementation");
  std::lock_guard<std::mutex> guard{mutex_};
  if (by_name_.count(def.name))
    throw std::invalid_argument("task kind '" + def.name + "' is already registered");
  auto entry = std::make_unique<kind_entry>();
  entry->index = static_cast<uint32_t>(entries_.size());
  entry->def = std::move(def);
  by_name_.emplace(entry->def.name, entry.get());
  entries_.push_back(std::move(entry));
}

const kind_entry* task_registry::add_remote(const std::string& name, uint8_t devices) {
  if (name.empty()) throw std::invalid_argument("task kind name must not be empty");
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = by_name_.find(name);
  kind_entry* entry = nullptr;
  if (i != by_name_.end()) {
    entry = i->second;
  } else {
    auto fresh = std::make_unique<kind_entry>();
    fresh->index = static_cast<uint32_t>(entries_.size());
    fresh->def.name = name;
    entry = fresh.get();
    by_name_.emplace(name, entry);
    entries_.push_back(std::move(fresh));
  }
  entry->remote_devices.fetch_or(devices, std::memory_order_relaxed);
  return entry;
}

size_t task_registry::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return entries_.size();
}

const kind_entry* task_registry::find(std::string_view name) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = by_name_.find(std::string{name});
  return i == by_name_.end() ? nullptr : i->second;
}

std::vector<std::string> task_registry::kinds() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<std::string> out;
  for (auto& e : entries_) out.push_back(e->def.name);
  return out;
}

}  // namespace troupe
