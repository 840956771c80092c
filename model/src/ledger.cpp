#include "troupe/model/ledger.hpp"

namespace troupe {

int32_t resource_ledger::add_worker(worker_capacity cap) {
  worker_entry w;
  w.cap = cap;
  workers_.push_back(std::move(w));
  return int32_t(workers_.size() - 1);
}

void resource_ledger::set_available(int32_t worker, bool available) {
  workers_.at(worker).available = available;
}

namespace {
/// GPU memory is what a task uses if it runs on a GPU: a worker without GPUs ignores it.
uint64_t gpu_memory_on(const worker_capacity& c, const resources& n) {
  return c.gpu_count > 0 ? n.gpu_memory_bytes : 0;
}
}  // namespace

bool resource_ledger::fits_capacity(int32_t worker, const resources& n) const {
  auto& c = workers_.at(worker).cap;
  return n.cpu_slots <= c.cpu_slots && n.memory_bytes <= c.memory_bytes &&
         n.gpu_count <= c.gpu_count && gpu_memory_on(c, n) <= c.gpu_memory_bytes &&
         (n.cpu_slots > 0 || n.gpu_count > 0);
}

bool resource_ledger::fits_some_worker(const resources& needs) const {
  for (size_t w = 0; w < workers_.size(); ++w)
    if (fits_capacity(int32_t(w), needs)) return true;
  return false;
}

bool resource_ledger::can_reserve(int32_t worker, const resources& n) const {
  auto& w = workers_.at(worker);
  return w.available && fits_capacity(worker, n) &&
         w.memory + n.memory_bytes <= w.cap.memory_bytes &&
         w.gpu_memory + gpu_memory_on(w.cap, n) <= w.cap.gpu_memory_bytes;
}

bool resource_ledger::reserve(int32_t worker, task_id id, const resources& n) {
  if (!can_reserve(worker, n)) return false;
  // Nothing to give back later: not recorded (the hot path of small tasks skips the map).
  auto& w = workers_[worker];
  auto held = n;
  held.gpu_memory_bytes = gpu_memory_on(w.cap, n);
  if (held.memory_bytes == 0 && held.gpu_memory_bytes == 0) return true;
  if (!w.held.emplace(id, held).second) return false;  // already held: never count twice
  w.memory += held.memory_bytes;
  w.gpu_memory += held.gpu_memory_bytes;
  return true;
}

bool resource_ledger::release(int32_t worker, task_id id) {
  auto& w = workers_.at(worker);
  auto i = w.held.find(id);
  if (i == w.held.end()) return false;
  w.memory -= i->second.memory_bytes;
  w.gpu_memory -= i->second.gpu_memory_bytes;
  w.held.erase(i);
  return true;
}

size_t resource_ledger::release_all(int32_t worker) {
  auto& w = workers_.at(worker);
  auto n = w.held.size();
  w.held.clear();
  w.memory = 0;
  w.gpu_memory = 0;
  return n;
}

}  // namespace troupe
