#include "troupe/workload.hpp"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <type_traits>

namespace troupe::cli {

std::vector<task_spec> default_workload(uint64_t seed, size_t tasks) {
  std::mt19937_64 rng{seed};
  auto pick = [&](auto... xs) {
    int64_t v[] = {xs...};
    return v[rng() % sizeof...(xs)];
  };
  std::vector<task_spec> out;
  out.reserve(tasks);
  // Every task completes, so that `troupe run` exits 0: 2% fail once and succeed when retried.
  size_t fail_retry = tasks / 50;
  for (size_t i = 0; i < tasks; ++i) {
    task_spec s;
    s.priority = int32_t(rng() % 10);
    if (i % 50 == 25 && fail_retry > 0) {  // 2%: fail on the first attempt, then succeed
      --fail_retry;
      s.kind = "fail";
      s.params = {{"first_attempts", int64_t{1}}, {"message", std::string{"transient fault"}}};
    } else if (rng() % 100 < 46) {
      s.kind = "gemm";
      s.params = {{"size", pick(64, 128, 192, 256, 384, 512)}, {"seed", int64_t(i)}};
    } else {
      s.kind = "mlp";
      s.params = {{"layers", std::vector<int64_t>{256, 512, 512, 10}},
                  {"batch", pick(1, 2, 4, 8, 16, 32, 64)},
                  {"seed", int64_t{7}}};
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

param_value to_param(const nlohmann::json& v, const std::string& where) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) return v.get<double>();
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    bool ints = std::all_of(v.begin(), v.end(), [](auto& x) { return x.is_number_integer(); });
    bool nums = std::all_of(v.begin(), v.end(), [](auto& x) { return x.is_number(); });
    if (ints) return v.get<std::vector<int64_t>>();
    if (nums) return v.get<std::vector<double>>();
  }
  throw std::runtime_error(where + ": expected a number, string, bool or list of numbers");
}

/// Field `name` of object j, or the fallback when absent. An integer field takes an integer in
/// T's range: not 1.9 (truncated), not 1e300.
template <class T>
T json_field(const nlohmann::json& j, const std::string& where, const char* name, T fallback) {
  if (!j.contains(name)) return fallback;
  auto& v = j.at(name);
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean())
      throw std::runtime_error(where + ": field '" + name + "' must be true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer())
      throw std::runtime_error(where + ": field '" + name + "' must be an integer");
    bool fits = v.is_number_unsigned()
                    ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
                    : v.get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                          (v.get<int64_t>() < 0 ||
                           uint64_t(v.get<int64_t>()) <= uint64_t(std::numeric_limits<T>::max()));
    if (!fits)
      throw std::runtime_error(where + ": field '" + name + "' is out of range [" +
                               std::to_string(std::numeric_limits<T>::min()) + ", " +
                               std::to_string(std::numeric_limits<T>::max()) + "]");
    return T(v.is_number_unsigned() ? T(v.get<uint64_t>()) : T(v.get<int64_t>()));
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      throw std::runtime_error(where + ": field '" + name + "' has the wrong type");
    }
  }
}

/// The fields of one task object (docs/workload.md); `extra` names the other fields the caller
/// reads itself. Throws std::runtime_error naming `where` and the field.
task_spec spec_from_object(const nlohmann::json& j, const std::string& where,
                           std::initializer_list<const char*> extra) {
  if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object");
  static const char* known[] = {"kind",        "params",           "priority",
                                "deadline_ms", "max_retries",      "retry_backoff_ms",
                                "cpu_slots",   "memory_bytes",     "labels",
                                "gpu_count",   "gpu_memory_bytes", "timeout_ms",
                                "preemptible"};
  for (auto& [k, v] : j.items())
    if (std::find(std::begin(known), std::end(known), k) == std::end(known) &&
        std::find(extra.begin(), extra.end(), k) == extra.end())
      throw std::runtime_error(where + ": unknown field '" + k + "'");
  auto field = [&](const char* name, auto fallback) {
    return json_field(j, where, name, fallback);
  };
  // Durations in milliseconds: at most a year (the wire takes +-2^40 ms; a larger one would
  // overflow the clock's nanoseconds).
  auto millis = [&](const char* name) {
    auto ms = field(name, int64_t{0});
    constexpr int64_t year_ms = int64_t(365) * 86400 * 1000;
    if (ms < 0 || ms > year_ms)
      throw std::runtime_error(where + ": field '" + name + "' must be in [0, " +
                               std::to_string(year_ms) + "] ms");
    return std::chrono::milliseconds(ms);
  };
  task_spec s;
  s.kind = field("kind", std::string{});
  if (s.kind.empty()) throw std::runtime_error(where + ": field 'kind' is required");
  if (j.contains("params")) {
    if (!j["params"].is_object()) throw std::runtime_error(where + ": 'params' must be an object");
    for (auto& [k, v] : j["params"].items()) s.params.set(k, to_param(v, where + ": params." + k));
  }
  s.priority = field("priority", int32_t{0});
  if (j.contains("deadline_ms")) s.deadline = clock::now() + millis("deadline_ms");
  if (j.contains("max_retries")) s.max_retries = field("max_retries", uint32_t{0});
  if (j.contains("retry_backoff_ms")) s.retry_backoff = millis("retry_backoff_ms");
  if (j.contains("timeout_ms"))
    s.timeout = std::chrono::milliseconds(field("timeout_ms", uint32_t{0}));
  s.needs.cpu_slots = field("cpu_slots", uint32_t{1});
  s.needs.memory_bytes = field("memory_bytes", uint64_t{0});
  s.needs.gpu_count = field("gpu_count", uint32_t{0});
  s.needs.gpu_memory_bytes = field("gpu_memory_bytes", uint64_t{0});
  s.labels = field("labels", std::map<std::string, std::string>{});
  s.preemptible = field("preemptible", false);
  return s;
}

}  // namespace

workload parse_workload(std::istream& in, const std::string& source) {
  workload out;
  std::string line;
  constexpr size_t max_count = 10'000'000;  // per line: a typo must not allocate the machine away
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto where = source + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // syntax, or a number out of range
      throw std::runtime_error(where + ": not valid JSON: " + e.what());
    }
    auto s = spec_from_object(j, where, {"count", "key", "gang"});
    s.idempotency_key = json_field(j, where, "key", std::string{});
    auto count = json_field(j, where, "count", int64_t{1});
    if (count < 1 || size_t(count) > max_count)
      throw std::runtime_error(where + ": field 'count' must be in [1, 10000000]");
    if (json_field(j, where, "gang", false)) {
      if (!s.idempotency_key.empty())
        throw std::runtime_error(where + ": a gang takes no 'key' (its tasks run together, once)");
      out.gangs.push_back({out.tasks.size(), size_t(count)});
    }
    for (int64_t c = 0; c < count; ++c) out.tasks.push_back(s);
  }
  return out;
}

graph_spec parse_graph(std::istream& in, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("tasks") || !j["tasks"].is_array())
    throw std::runtime_error(source + ": expected an object with an array 'tasks'");
  for (auto& [k, v] : j.items())
    if (k != "tasks" && k != "on_failure")
      throw std::runtime_error(source + ": unknown field '" + k + "' (known: tasks, on_failure)");
  graph_spec g;
  if (j.contains("on_failure")) {
    auto text = json_field(j, source, "on_failure", std::string{});
    auto p = parse_failure_policy(text);
    if (!p)
      throw std::runtime_error(source + ": on_failure is '" + text +
                               "'; expected cancel_dependents, run_what_can or cancel_graph");
    g.on_failure = *p;
  }
  size_t i = 0;
  for (auto& t : j["tasks"]) {
    auto where = source + ": tasks[" + std::to_string(i++) + "]";
    graph_task task;
    task.spec = spec_from_object(t, where, {"name", "after", "inputs", "payload"});
    task.name = json_field(t, where, "name", std::string{});
    if (task.name.empty()) throw std::runtime_error(where + ": field 'name' is required");
    where += " ('" + task.name + "')";
    task.after = json_field(t, where, "after", std::vector<std::string>{});
    task.inputs = json_field(t, where, "inputs", std::map<std::string, std::string>{});
    auto payload = json_field(t, where, "payload", std::string{});
    task.spec.payload.assign(payload.begin(), payload.end());
    g.tasks.push_back(std::move(task));
  }
  return g;
}

graph_spec load_graph(const std::string& path) {
  std::ifstream in{path};
  if (!in) throw std::runtime_error(path + ": cannot open the graph file");
  return parse_graph(in, path);
}

workload load_workload(const std::string& path) {
  std::ifstream in{path};
  if (!in) throw std::runtime_error(path + ": cannot open the workload file");
  return parse_workload(in, path);
}

}  // namespace troupe::cli
