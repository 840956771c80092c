#include "troupe/model/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace troupe {
namespace {

struct logger_slot {
  std::mutex mutex;
  // Every logger ever installed stays alive: a thread may still hold a reference it got from
  // logger() before a replacement. Replacements are rare (once per host, if at all).
  std::vector<std::shared_ptr<spdlog::logger>> kept;
  std::atomic<spdlog::logger*> current{nullptr};
  bool own = false;  // made by troupe: the config's log_level applies
};

logger_slot& slot() {
  static logger_slot s;
  return s;
}

spdlog::logger* install(logger_slot& s) {
  std::lock_guard<std::mutex> guard{s.mutex};
  if (auto* l = s.current.load(std::memory_order_acquire)) return l;
  auto l = spdlog::get("troupe");  // registered by the host
  s.own = !l;
  if (!l) {
    l = std::make_shared<spdlog::logger>("troupe",
                                         std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  }
  s.kept.push_back(l);
  s.current.store(l.get(), std::memory_order_release);
  return l.get();
}

}  // namespace

spdlog::logger& logger() {
  auto& s = slot();
  auto* l = s.current.load(std::memory_order_acquire);
  return *(l ? l : install(s));
}

void set_logger(std::shared_ptr<spdlog::logger> replacement) {
  if (!replacement) return;
  auto& s = slot();
  std::lock_guard<std::mutex> guard{s.mutex};
  s.own = false;
  s.kept.push_back(replacement);
  s.current.store(replacement.get(), std::memory_order_release);
}

void apply_log_level(const std::string& level) {
  auto& l = logger();
  auto& s = slot();
  std::lock_guard<std::mutex> guard{s.mutex};
  if (s.own) l.set_level(spdlog::level::from_str(level));
}

}  // namespace troupe
