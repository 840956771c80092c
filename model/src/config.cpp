#include "troupe/model/config.hpp"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "troupe/model/config_keys.hpp"

namespace troupe {

config_error::config_error(std::string source, int line, std::string key, const std::string& what)
    : std::runtime_error(source + (line > 0 ? ":" + std::to_string(line) : std::string{}) +
                         (key.empty() ? "" : ": key '" + key + "'") + ": " + what),
      source_(std::move(source)),
      line_(line),
      key_(std::move(key)) {}

namespace {

/// A relative path in a file is relative to the file's folder (when the source is a file).
std::string from_folder_of(const std::string& source, const std::string& path) {
  std::filesystem::path p{path};
  if (p.is_absolute()) return path;
  std::error_code ec;
  std::filesystem::path file{source};
  if (!std::filesystem::is_regular_file(file, ec)) return path;
  return (file.parent_path() / p).lexically_normal().string();
}

// Each key is declared once: where it lives, how it is read and checked, and how its value is
// written back as TOML text (config_keys(); the test that config/local.toml holds every key with
// its default compares these).
using setter = std::function<void(runtime_config&, const toml::node&)>;  // throws std::string
using getter = std::function<std::string(const runtime_config&)>;

struct key_def {
  const char* section;
  const char* name;
  setter set;
  getter get;
};

struct quoted_text {
  std::string s;
};
quoted_text quoted(std::string s) {
  return {std::move(s)};
}
std::string text(const quoted_text& q) {
  std::string out = "\"";
  for (char ch : q.s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}
std::string text(bool b) {
  return b ? "true" : "false";
}
std::string text(double d) {
  std::ostringstream o;
  o.precision(17);
  o << d;
  auto s = o.str();
  return s.find_first_of(".e") == std::string::npos ? s + ".0" : s;
}
template <class Int, std::enable_if_t<std::is_integral_v<Int>, int> = 0>
std::string text(Int v) {
  return std::to_string(v);
}
template <class Rep, class Period>
std::string text(std::chrono::duration<Rep, Period> d) {
  return std::to_string(d.count());
}
std::string cuda_text(const runtime_config& c) {
  if (c.cuda == cuda_selection::all) return "\"all\"";
  if (c.cuda == cuda_selection::none) return "\"none\"";
  std::string s = "[";
  for (size_t i = 0; i < c.cuda_devices.size(); ++i)
    s += (i ? ", " : "") + std::to_string(c.cuda_devices[i]);
  return s + "]";
}

int64_t int_in(const toml::node& n, int64_t lo, int64_t hi) {
  // Only an integer: toml++ converting a float out of int64's range is undefined behaviour.
  if (!n.is_integer()) throw std::string{"expected an integer"};
  auto v = std::optional<int64_t>{n.as_integer()->get()};
  if (*v < lo || *v > hi)
    throw "expected a value in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
        std::to_string(*v);
  return *v;
}

/// [queue.shares]: client = weight.
std::map<std::string, double> shares_of(const toml::node& n) {
  auto* t = n.as_table();
  if (!t) throw std::string{"expected a table of client = weight, such as { alice = 2 }"};
  std::map<std::string, double> out;
  for (auto& [client, weight] : *t) {
    auto w = weight.value<double>();
    if (!w || !weight.is_number() || !(*w > 0) || *w > 1e6)
      throw "the weight of '" + std::string{client.str()} + "': expected a number in (0, 1e6]";
    out[std::string{client.str()}] = *w;
  }
  return out;
}

bool boolean(const toml::node& n) {
  if (!n.is_boolean()) throw std::string{"expected true or false"};
  return *n.value<bool>();
}

template <class Enum>
Enum choice(const toml::node& n, std::initializer_list<std::pair<const char*, Enum>> options) {
  auto s = n.value<std::string>();
  std::string names;
  for (auto& [name, value] : options) {
    if (s && *s == name) return value;
    names += names.empty() ? std::string{"\""} + name + "\"" : std::string{", \""} + name + "\"";
  }
  throw "expected one of " + names + (s ? ", got \"" + *s + "\"" : std::string{});
}

/// A zmq endpoint: transport://address.
std::string endpoint(const toml::node& n) {
  auto s = n.value<std::string>();
  if (!s || !n.is_string())
    throw std::string{"expected an endpoint string like \"tcp://127.0.0.1:5555\""};
  auto sep = s->find("://");
  if (sep == std::string::npos || sep == 0 || sep + 3 >= s->size())
    throw "expected transport://address (tcp://host:port, ipc://path), got \"" + *s + "\"";
  auto transport = s->substr(0, sep);
  if (transport != "tcp" && transport != "ipc" && transport != "inproc")
    throw "unknown transport \"" + transport + "\" (tcp, ipc or inproc)";
  return *s;
}

/// A node's data endpoint: an address other nodes reach it at, which it can bind. A wildcard
/// host binds, but other nodes cannot connect to it.
std::string data_endpoint(const toml::node& n) {
  auto ep = endpoint(n);
  if (ep.rfind("tcp://*", 0) == 0 || ep.rfind("tcp://0.0.0.0", 0) == 0 ||
      ep.rfind("tcp://[::]", 0) == 0)
    throw "\"" + ep +
        "\" is no address other nodes can connect to: name this machine's address "
        "(tcp://10.0.0.2:7000), or \"off\"";
  return ep;
}

template <class Dur>
setter dur(Dur runtime_config::*field, int64_t lo, int64_t hi) {
  return [=](runtime_config& c, const toml::node& n) { c.*field = Dur{int_in(n, lo, hi)}; };
}

const std::vector<key_def>& keys() {
  using ms = std::chrono::milliseconds;
  static const std::vector<key_def> defs = {
      {"workers", "cpu", [](auto& c, auto& n) { c.cpu_workers = uint32_t(int_in(n, 0, 4096)); },
       [](const runtime_config& c) { return text(c.cpu_workers); }},
      {"workers", "memory_bytes",
       [](auto& c, auto& n) { c.worker_memory_bytes = uint64_t(int_in(n, 0, INT64_MAX)); },
       [](const runtime_config& c) { return text(c.worker_memory_bytes); }},
      {"workers", "prefetch",
       [](auto& c, auto& n) { c.worker_prefetch = uint32_t(int_in(n, 1, 65536)); },
       [](const runtime_config& c) { return text(c.worker_prefetch); }},
      {"workers", "backlog_us",
       [](auto& c, auto& n) {
         c.worker_backlog = std::chrono::microseconds{int_in(n, 1, 60'000'000)};
       },
       [](const runtime_config& c) { return text(c.worker_backlog); }},
      {"workers", "cuda",
       [](auto& c, auto& n) {
         if (auto* arr = n.as_array()) {
           c.cuda = cuda_selection::list;
           c.cuda_devices.clear();
           for (auto& e : *arr) c.cuda_devices.push_back(int32_t(int_in(e, 0, 1023)));
           return;
         }
         c.cuda = choice<cuda_selection>(
             n, {{"all", cuda_selection::all}, {"none", cuda_selection::none}});
       },
       [](const runtime_config& c) { return cuda_text(c); }},
      {"workers", "gpu_memory_headroom_bytes",
       [](auto& c, auto& n) { c.gpu_memory_headroom_bytes = uint64_t(int_in(n, 0, INT64_MAX)); },
       [](const runtime_config& c) { return text(c.gpu_memory_headroom_bytes); }},
      {"workers", "gpu_cache_bytes",
       [](auto& c, auto& n) { c.gpu_cache_bytes = uint64_t(int_in(n, 0, INT64_MAX)); },
       [](const runtime_config& c) { return text(c.gpu_cache_bytes); }},
      {"workers", "cuda_streams",
       [](auto& c, auto& n) { c.cuda_streams = uint32_t(int_in(n, 1, 64)); },
       [](const runtime_config& c) { return text(c.cuda_streams); }},
      {"workers", "timeout_grace_ms", dur<ms>(&runtime_config::timeout_grace, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.timeout_grace); }},
      {"workers", "detached", [](auto& c, auto& n) { c.detached_workers = boolean(n); },
       [](const runtime_config& c) { return text(c.detached_workers); }},
      {"batching", "enabled", [](auto& c, auto& n) { c.batching_enabled = boolean(n); },
       [](const runtime_config& c) { return text(c.batching_enabled); }},
      {"batching", "max_tasks",
       [](auto& c, auto& n) { c.batch_max_tasks = uint32_t(int_in(n, 1, 65536)); },
       [](const runtime_config& c) { return text(c.batch_max_tasks); }},
      {"batching", "max_delay_us",
       [](auto& c, auto& n) {
         c.batch_max_delay = std::chrono::microseconds{int_in(n, 0, 10'000'000)};
       },
       [](const runtime_config& c) { return text(c.batch_max_delay); }},
      {"queue", "bound",
       [](auto& c, auto& n) { c.queue_bound = uint64_t(int_in(n, 1, int64_t(1) << 40)); },
       [](const runtime_config& c) { return text(c.queue_bound); }},
      {"queue", "pressure_ratio",
       [](auto& c, auto& n) {
         auto v = n.template value<double>();
         if (!v || *v <= 0 || *v > 1) throw std::string{"expected a number in (0, 1]"};
         c.pressure_ratio = *v;
       },
       [](const runtime_config& c) { return text(c.pressure_ratio); }},
      {"queue", "overflow",
       [](auto& c, auto& n) {
         c.overflow = choice<overflow_policy>(
             n, {{"reject", overflow_policy::reject}, {"block", overflow_policy::block}});
       },
       [](const runtime_config& c) {
         return text(quoted(c.overflow == overflow_policy::block ? "block" : "reject"));
       }},
      {"queue", "block_timeout_ms", dur<ms>(&runtime_config::block_timeout, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.block_timeout); }},
      {"queue", "order",
       [](auto& c, auto& n) {
         c.order = choice<queue_order>(n, {{"fifo", queue_order::fifo},
                                           {"priority", queue_order::priority},
                                           {"deadline", queue_order::deadline},
                                           {"shortest", queue_order::shortest},
                                           {"fair", queue_order::fair}});
       },
       [](const runtime_config& c) { return text(quoted(to_string(c.order))); }},
      {"queue", "shares", [](auto& c, auto& n) { c.shares = shares_of(n); },
       [](const runtime_config& c) {
         std::string s = "{";
         for (auto& [client, w] : c.shares)
           s += (s.size() > 1 ? ", \"" : " \"") + client + "\" = " + text(w);
         return s + (c.shares.empty() ? "}" : " }");
       }},
      {"queue", "aging_ms", dur<ms>(&runtime_config::aging_interval, 1, 3'600'000),
       [](const runtime_config& c) { return text(c.aging_interval); }},
      {"queue", "dead_letter",
       [](auto& c, auto& n) { c.dead_letter_capacity = uint32_t(int_in(n, 0, 1'000'000)); },
       [](const runtime_config& c) { return text(c.dead_letter_capacity); }},
      {"queue", "max_preemptions",
       [](auto& c, auto& n) { c.max_preemptions = uint32_t(int_in(n, 0, 1000)); },
       [](const runtime_config& c) { return text(c.max_preemptions); }},
      {"limits", "max_payload_bytes",
       [](auto& c, auto& n) {
         c.max_payload_bytes = uint64_t(int_in(n, 1024, int64_t(max_config_payload_bytes)));
       },
       [](const runtime_config& c) { return text(c.max_payload_bytes); }},
      {"retry", "max",
       [](auto& c, auto& n) {
         c.max_retries = uint32_t(int_in(n, 0, runtime_config::max_retries_cap));
       },
       [](const runtime_config& c) { return text(c.max_retries); }},
      {"retry", "backoff_ms", dur<ms>(&runtime_config::retry_backoff, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.retry_backoff); }},
      {"retry", "backoff_max_ms", dur<ms>(&runtime_config::retry_backoff_max, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.retry_backoff_max); }},
      {"balancer", "policy",
       [](auto& c, auto& n) {
         c.placement =
             choice<placement_policy>(n, {{"round_robin", placement_policy::round_robin},
                                          {"least_loaded", placement_policy::least_loaded}});
       },
       [](const runtime_config& c) {
         return text(
             quoted(c.placement == placement_policy::round_robin ? "round_robin" : "least_loaded"));
       }},
      {"balancer", "link_bytes_per_s",
       [](auto& c, auto& n) {
         c.link_bytes_per_s = uint64_t(int_in(n, 1'000'000, int64_t(1'000'000'000'000)));
       },
       [](const runtime_config& c) { return text(c.link_bytes_per_s); }},
      {"supervision", "strategy",
       [](auto& c, auto& n) {
         c.strategy = choice<restart_strategy>(n, {{"one_for_one", restart_strategy::one_for_one}});
       },
       [](const runtime_config&) { return text(quoted("one_for_one")); }},
      {"supervision", "intensity",
       [](auto& c, auto& n) { c.restart_intensity = uint32_t(int_in(n, 0, 100000)); },
       [](const runtime_config& c) { return text(c.restart_intensity); }},
      {"supervision", "period_ms", dur<ms>(&runtime_config::restart_period, 1, 86'400'000),
       [](const runtime_config& c) { return text(c.restart_period); }},
      {"supervision", "backoff_ms", dur<ms>(&runtime_config::restart_backoff, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.restart_backoff); }},
      {"supervision", "backoff_max_ms", dur<ms>(&runtime_config::restart_backoff_max, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.restart_backoff_max); }},
      {"monitor", "heartbeat_ms", dur<ms>(&runtime_config::heartbeat_interval, 1, 3'600'000),
       [](const runtime_config& c) { return text(c.heartbeat_interval); }},
      {"monitor", "metrics_ms", dur<ms>(&runtime_config::metrics_interval, 0, 3'600'000),
       [](const runtime_config& c) { return text(c.metrics_interval); }},
      {"monitor", "subscriber_high_water",
       [](auto& c, auto& n) { c.subscriber_high_water = uint32_t(int_in(n, 1, 1 << 26)); },
       [](const runtime_config& c) { return text(c.subscriber_high_water); }},
      {"monitor", "heartbeat_timeout_ms",
       dur<ms>(&runtime_config::heartbeat_timeout, 1, 86'400'000),
       [](const runtime_config& c) { return text(c.heartbeat_timeout); }},
      {"cluster", "head", [](auto& c, auto& n) { c.cluster.head_endpoint = endpoint(n); },
       [](const runtime_config& c) { return text(quoted(c.cluster.head_endpoint)); }},
      {"cluster", "head_cpu",
       [](auto& c, auto& n) { c.cluster.head_cpu_workers = uint32_t(int_in(n, 0, 4096)); },
       [](const runtime_config& c) { return text(c.cluster.head_cpu_workers); }},
      {"cluster", "heartbeat_ms",
       [](auto& c, auto& n) {
         c.cluster.heartbeat_interval = std::chrono::milliseconds{int_in(n, 1, 600'000)};
       },
       [](const runtime_config& c) { return text(c.cluster.heartbeat_interval); }},
      {"cluster", "suspect_after_ms",
       [](auto& c, auto& n) {
         c.cluster.suspect_after = std::chrono::milliseconds{int_in(n, 1, 3'600'000)};
       },
       [](const runtime_config& c) { return text(c.cluster.suspect_after); }},
      {"cluster", "dead_after_ms",
       [](auto& c, auto& n) {
         c.cluster.dead_after = std::chrono::milliseconds{int_in(n, 1, 3'600'000)};
       },
       [](const runtime_config& c) { return text(c.cluster.dead_after); }},
      {"cluster", "max_tasks_per_submit",
       [](auto& c, auto& n) { c.cluster.max_tasks_per_submit = uint32_t(int_in(n, 1, 1 << 20)); },
       [](const runtime_config& c) { return text(c.cluster.max_tasks_per_submit); }},
      {"cluster", "client_max_in_flight",
       [](auto& c, auto& n) {
         c.cluster.client_max_in_flight = uint64_t(int_in(n, 0, 1'000'000'000));
       },
       [](const runtime_config& c) { return text(c.cluster.client_max_in_flight); }},
      {"cluster", "client_submit_rate",
       [](auto& c, auto& n) {
         c.cluster.client_submit_rate = uint64_t(int_in(n, 0, 1'000'000'000));
       },
       [](const runtime_config& c) { return text(c.cluster.client_submit_rate); }},
      {"cluster", "client_max_keys",
       [](auto& c, auto& n) { c.cluster.client_max_keys = uint64_t(int_in(n, 0, 1'000'000'000)); },
       [](const runtime_config& c) { return text(c.cluster.client_max_keys); }},
      {"cluster", "client_max_key_bytes",
       [](auto& c, auto& n) {
         c.cluster.client_max_key_bytes = uint64_t(int_in(n, 0, int64_t(1) << 40));
       },
       [](const runtime_config& c) { return text(c.cluster.client_max_key_bytes); }},
      {"cluster", "max_outbound",
       [](auto& c, auto& n) { c.cluster.max_outbound = uint32_t(int_in(n, 16, 1 << 24)); },
       [](const runtime_config& c) { return text(c.cluster.max_outbound); }},
      {"cluster", "restart_delay_ms",
       [](auto& c, auto& n) {
         c.cluster.restart_delay = std::chrono::milliseconds{int_in(n, 0, 600'000)};
       },
       [](const runtime_config& c) { return text(c.cluster.restart_delay); }},
      {"cluster", "events",
       [](auto& c, auto& n) {
         c.cluster.events_endpoint = n.is_string() && n.template value<std::string>()->empty()
                                         ? std::string{}
                                         : endpoint(n);
       },
       [](const runtime_config& c) { return text(quoted(c.cluster.events_endpoint)); }},
      {"cluster", "event_ring",
       [](auto& c, auto& n) { c.cluster.event_ring = uint32_t(int_in(n, 0, 1 << 26)); },
       [](const runtime_config& c) { return text(c.cluster.event_ring); }},
      {"cluster", "event_high_water",
       [](auto& c, auto& n) { c.cluster.event_high_water = uint32_t(int_in(n, 1, 1 << 26)); },
       [](const runtime_config& c) { return text(c.cluster.event_high_water); }},
      {"cluster", "journal",
       [](auto& c, auto& n) {
         auto s = n.template value<std::string>();
         if (!s || s->empty())
           throw std::string{"expected a file path (relative to this file's folder) or \"off\""};
         auto& src = n.source().path;
         c.cluster.journal = *s == "off" ? std::string{} : from_folder_of(src ? *src : "", *s);
         c.cluster.journal_set = true;
       },
       [](const runtime_config& c) {
         return text(quoted(c.cluster.journal.empty() ? "off" : c.cluster.journal));
       }},
      {"cluster", "journal_keep_results",
       [](auto& c, auto& n) {
         c.cluster.journal_keep_results = uint64_t(int_in(n, 0, 1'000'000'000));
       },
       [](const runtime_config& c) { return text(c.cluster.journal_keep_results); }},
      {"cluster", "journal_keep_s",
       [](auto& c, auto& n) {
         c.cluster.journal_keep = std::chrono::seconds{int_in(n, 0, 365 * 86400)};
       },
       [](const runtime_config& c) { return text(c.cluster.journal_keep.count()); }},
      {"cluster", "journal_sync",
       [](auto& c, auto& n) {
         c.cluster.journal_full_sync = choice<bool>(n, {{"normal", false}, {"full", true}});
       },
       [](const runtime_config& c) {
         return text(quoted(c.cluster.journal_full_sync ? "full" : "normal"));
       }},
      {"cluster", "kept_output_bytes",
       [](auto& c, auto& n) {
         c.cluster.kept_output_bytes = uint64_t(int_in(n, 0, int64_t(1) << 40));
       },
       [](const runtime_config& c) { return text(c.cluster.kept_output_bytes); }},
      {"cluster", "fetch_timeout_ms",
       [](auto& c, auto& n) {
         c.cluster.fetch_timeout = std::chrono::milliseconds{int_in(n, 1, 3'600'000)};
       },
       [](const runtime_config& c) { return text(c.cluster.fetch_timeout); }},
      {"security", "head_key",
       [](auto& c, auto& n) {
         auto s = n.template value<std::string>();
         if (!s)
           throw std::string{
               "expected the path of the head's key pair file (troupe keygen), or \"\" for none"};
         auto& src = n.source().path;
         c.cluster.security.head_key =
             s->empty() ? std::string{} : from_folder_of(src ? *src : "", *s);
       },
       [](const runtime_config& c) { return text(quoted(c.cluster.security.head_key)); }},
      {"security", "insecure",
       [](auto& c, auto& n) {
         auto v = n.template value<bool>();
         if (!v || !n.is_boolean()) throw std::string{"expected true or false"};
         c.cluster.security.insecure = *v;
       },
       [](const runtime_config& c) { return text(c.cluster.security.insecure); }},
      {"security", "handshake_ms",
       [](auto& c, auto& n) {
         c.cluster.security.handshake = std::chrono::milliseconds{int_in(n, 100, 600'000)};
       },
       [](const runtime_config& c) { return text(c.cluster.security.handshake); }},
      {"log", "level",
       [](auto& c, auto& n) {
         auto s = n.template value<std::string>();
         static const char* levels[] = {"trace", "debug",    "info", "warn",
                                        "error", "critical", "off"};
         if (!s || std::find(std::begin(levels), std::end(levels), *s) == std::end(levels))
           throw std::string{"expected one of trace, debug, info, warn, error, critical, off"};
         c.log_level = *s;
       },
       [](const runtime_config& c) { return text(quoted(c.log_level)); }},
      {"scheduler", "threads",
       [](auto& c, auto& n) { c.scheduler_threads = uint32_t(int_in(n, 0, 1024)); },
       [](const runtime_config& c) { return text(c.scheduler_threads); }},
      {"scheduler", "spin_polls",
       [](auto& c, auto& n) { c.scheduler_spin_polls = uint32_t(int_in(n, 0, 100000000)); },
       [](const runtime_config& c) { return text(c.scheduler_spin_polls); }},
  };
  return defs;
}

}  // namespace

std::vector<config_key> config_keys(const runtime_config& cfg) {
  std::vector<config_key> out;
  for (auto& k : keys()) out.push_back({k.section, k.name, k.get(cfg)});
  return out;
}

namespace {

const key_def* find_key(const std::string& section, const std::string& name) {
  for (auto& k : keys())
    if (section == k.section && name == k.name) return &k;
  return nullptr;
}

bool known_section(const std::string& section) {
  for (auto& k : keys())
    if (section == k.section) return true;
  return false;
}

int line_of(const toml::node& n) {
  return int(n.source().begin.line);
}

/// An array of non-empty strings (`what` names them in the error).
std::vector<std::string> names_in(const toml::node& value, const char* what) {
  auto* arr = value.as_array();
  if (!arr) throw std::string{"expected an array of "} + what;
  std::vector<std::string> out;
  for (auto& e : *arr) {
    auto s = e.value<std::string>();
    if (!s || s->empty() || !e.is_string())
      throw std::string{"expected an array of "} + what + " (non-empty strings)";
    out.push_back(*s);
  }
  return out;
}

/// [nodes.NAME] tables: cpu, cuda, memory_bytes, plugins, isolation. A name appears once.
void parse_nodes(runtime_config& cfg, const toml::node& nodes, const std::string& source) {
  auto* table = nodes.as_table();
  if (!table) throw config_error(source, line_of(nodes), "nodes", "expected [nodes.NAME] tables");
  for (auto& [name_key, node] : *table) {
    std::string name{name_key.str()};
    auto path = "nodes." + name;
    auto* t = node.as_table();
    if (!t) throw config_error(source, line_of(node), path, "expected a [" + path + "] table");
    if (name.empty() || name.size() > 64 ||
        name.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            std::string::npos)
      throw config_error(source, line_of(node), path,
                         "a node name is 1-64 letters, digits, '_' or '-'");
    node_config n;
    n.name = name;
    n.line = line_of(node);
    for (auto& [key, value] : *t) {
      std::string k{key.str()};
      try {
        if (k == "cpu") {
          n.cpu_workers = uint32_t(int_in(value, 0, 4096));
        } else if (k == "memory_bytes") {
          n.worker_memory_bytes = uint64_t(int_in(value, 0, INT64_MAX));
        } else if (k == "cuda") {
          if (auto* arr = value.as_array()) {
            n.cuda = cuda_selection::list;
            for (auto& e : *arr) n.cuda_devices.push_back(int32_t(int_in(e, 0, 1023)));
          } else {
            n.cuda = choice<cuda_selection>(
                value, {{"all", cuda_selection::all}, {"none", cuda_selection::none}});
            if (n.cuda == cuda_selection::all)
              throw std::string{
                  "a node's GPUs are laid out by the head before the node starts: list their "
                  "indices (cuda = [0, 1]) or say \"none\""};
          }
        } else if (k == "fake_gpus") {  // tests: GPU workers without a GPU (see fake_gpus)
          n.fake_gpus = uint32_t(int_in(value, 0, 16));
        } else if (k == "head") {
          n.head_endpoint = endpoint(value);
        } else if (k == "data_endpoint") {
          n.data_endpoint = value.value<std::string>().value_or("") == "off" ? std::string{"off"}
                                                                             : data_endpoint(value);
        } else if (k == "key") {
          auto path = value.value<std::string>();
          if (!path || path->empty())
            throw std::string{"expected the path of the node's key pair file (troupe keygen)"};
          n.key = from_folder_of(source, *path);
        } else if (k == "isolation") {
          n.process_isolation = choice<bool>(value, {{"process", true}, {"thread", false}});
        } else if (k == "plugins") {
          for (auto& path : names_in(value, "shared library paths"))
            n.plugins.push_back(from_folder_of(source, path));
        } else {
          throw std::string{
              "unknown key (cpu, cuda, memory_bytes, plugins, isolation, head, key, "
              "data_endpoint)"};
        }
      } catch (const std::string& what) {
        throw config_error(source, line_of(value), path + "." + k, what);
      }
    }
    if (n.cpu_workers == 0 && n.cuda_devices.empty() && n.fake_gpus == 0)
      throw config_error(source, n.line, path, "a node needs at least one worker (cpu or cuda)");
    for (auto& existing : cfg.cluster.nodes)
      if (existing.name == name) throw config_error(source, n.line, path, "node declared twice");
    cfg.cluster.nodes.push_back(std::move(n));
  }
}

/// A TOML offset date-time (2026-12-07T09:00:00Z) as a wall-clock time point.
std::chrono::system_clock::time_point wall_time(const toml::node& n) {
  auto* dt = n.as_date_time();
  if (!dt || !dt->get().offset)
    throw std::string{"expected a date and time with its offset, e.g. 2026-12-07T09:00:00Z"};
  auto& v = dt->get();
  // The clocks count nanoseconds in 64 bits: about 292 years either side of 1970.
  if (v.date.year < 1970 || v.date.year > 2200)
    throw std::string{"the year must be in [1970, 2200]"};
  // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
  int y = v.date.year - (v.date.month <= 2);
  int era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = unsigned(y - era * 400);
  unsigned doy = (153 * (v.date.month + (v.date.month > 2 ? -3 : 9)) + 2) / 5 + v.date.day - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = int64_t(era) * 146097 + int64_t(doe) - 719468;
  int64_t secs = days * 86400 + v.time.hour * 3600 + v.time.minute * 60 + v.time.second -
                 int64_t(v.offset->minutes) * 60;
  return std::chrono::system_clock::time_point{} + std::chrono::seconds(secs) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::nanoseconds(v.time.nanosecond));
}

/// [reservations.NAME] tables: workers, clients, from, until. Worker names are checked when
/// the runtime starts (reservations.hpp): only it knows its workers.
void parse_reservations(runtime_config& cfg, const toml::node& node, const std::string& source) {
  auto* table = node.as_table();
  if (!table)
    throw config_error(source, line_of(node), "reservations",
                       "expected [reservations.NAME] tables");
  for (auto& [name_key, value] : *table) {
    std::string name{name_key.str()};
    auto path = "reservations." + name;
    auto* t = value.as_table();
    if (!t) throw config_error(source, line_of(value), path, "expected a [" + path + "] table");
    reservation_config r;
    r.name = name;
    r.line = line_of(value);
    for (auto& [key, v] : *t) {
      std::string k{key.str()};
      try {
        if (k == "workers")
          r.workers = names_in(v, "worker names");
        else if (k == "clients")
          r.clients = names_in(v, "client names");
        else if (k == "from")
          r.from = wall_time(v);
        else if (k == "until")
          r.until = wall_time(v);
        else
          throw std::string{"unknown key (workers, clients, from, until)"};
      } catch (const std::string& what) {
        throw config_error(source, line_of(v), path + "." + k, what);
      }
    }
    if (r.workers.empty())
      throw config_error(source, r.line, path + ".workers",
                         "a reservation holds one worker or more");
    if (r.from && r.until && *r.until <= *r.from)
      throw config_error(source, r.line, path + ".until", "must be later than `from`");
    cfg.reservations.push_back(std::move(r));
  }
}

param_value toml_param(const toml::node& n) {
  if (auto v = n.value<bool>(); v && n.is_boolean()) return *v;
  if (n.is_integer()) return *n.value<int64_t>();
  if (n.is_floating_point()) return *n.value<double>();
  if (n.is_string()) return *n.value<std::string>();
  if (auto* arr = n.as_array()) {
    bool floats = false;
    for (auto& e : *arr) {
      if (!e.is_integer() && !e.is_floating_point())
        throw std::string{"a list parameter holds numbers only"};
      floats = floats || e.is_floating_point();
    }
    if (floats) {
      std::vector<double> v;
      for (auto& e : *arr) v.push_back(*e.value<double>());
      return v;
    }
    std::vector<int64_t> v;
    for (auto& e : *arr) v.push_back(*e.value<int64_t>());
    return v;
  }
  throw std::string{"expected a number, string, boolean or list of numbers"};
}

std::string text_of(const toml::node& n) {
  if (!n.is_string()) throw std::string{"expected a string"};
  return *n.value<std::string>();
}

/// [[triggers]]: name, topic, when = {kind, node, worker, detail}, action, submit = {kind,
/// params, priority}. Errors name triggers[i].key.
/// [[security.allow]] tables: role, name, key, topics (subscribers).
void parse_allow(runtime_config& cfg, const toml::node& node, const std::string& source) {
  auto* arr = node.as_array();
  if (!arr || !arr->is_array_of_tables())
    throw config_error(source, line_of(node), "security.allow",
                       "expected [[security.allow]] tables (role, name, key)");
  for (auto& entry : *arr) {
    auto& t = *entry.as_table();
    allowed_key a;
    a.line = line_of(entry);
    bool has_role = false;
    for (auto& [key, value] : t) {
      std::string k{key.str()};
      try {
        if (k == "role") {
          a.role = choice<peer_role>(value, {{"node", peer_role::node},
                                             {"client", peer_role::client},
                                             {"subscriber", peer_role::subscriber},
                                             {"admin", peer_role::admin}});
          has_role = true;
        } else if (k == "name") {
          auto v = value.value<std::string>();
          if (!v || v->empty() || v->size() > 64 ||
              v->find_first_of(":/\n\r\t ") != std::string::npos)
            throw std::string{"expected a name of 1-64 characters without ':', '/' or spaces"};
          a.name = *v;
        } else if (k == "key") {
          auto v = value.value<std::string>();
          if (!v || v->empty())
            throw std::string{"expected a public key file (KEY.pub of troupe keygen) or the key"};
          // 40 characters of Z85 that name no file: the key itself (checked when the head
          // starts); else the path of a key file.
          static const std::string z85 =
              "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/"
              "*?&<>()[]{}@%$#";
          auto path = from_folder_of(source, *v);
          std::error_code ec;
          bool key_text = v->size() == 40 && v->find_first_not_of(z85) == std::string::npos &&
                          !std::filesystem::exists(path, ec);
          a.key = key_text ? *v : path;
        } else if (k == "topics") {
          auto* list = value.as_array();
          if (!list || list->empty())
            throw std::string{
                "expected a list of topic prefixes, such as [\"node.\", \"worker.\"]"};
          for (auto& p : *list) {
            auto v = p.value<std::string>();
            if (!v || v->empty() || v->size() > 64)
              throw std::string{"expected topic prefixes of 1-64 characters"};
            a.topics.push_back(*v);
          }
        } else {
          throw std::string{"unknown key (role, name, key, topics)"};
        }
      } catch (const std::string& what) {
        throw config_error(source, line_of(value), "security.allow." + k, what);
      }
    }
    if (!has_role || a.name.empty() || a.key.empty())
      throw config_error(source, a.line, "security.allow", "each entry needs role, name and key");
    if (!a.topics.empty() && a.role != peer_role::subscriber)
      throw config_error(source, a.line, "security.allow.topics",
                         std::string{"topics limits subscriber keys; this one is "} +
                             to_string(a.role) + " (an admin sees every topic)");
    for (auto& other : cfg.cluster.security.allow)
      if (other.role == a.role && other.name == a.name)
        throw config_error(
            source, a.line, "security.allow.name",
            std::string{"two "} + to_string(a.role) + " keys named '" + a.name + "'");
    cfg.cluster.security.allow.push_back(std::move(a));
  }
}

void parse_triggers(runtime_config& cfg, const toml::node& node, const std::string& source) {
  auto* arr = node.as_array();
  if (!arr || !arr->is_array_of_tables())
    throw config_error(source, line_of(node), "triggers",
                       "expected [[triggers]] tables (an array of tables)");
  cfg.triggers.clear();
  for (size_t i = 0; i < arr->size(); ++i) {
    auto& t = *(*arr)[i].as_table();
    auto path = "triggers[" + std::to_string(i) + "]";
    trigger_rule r;
    bool has_action = false, has_topic = false;
    for (auto& [key, value] : t) {
      std::string k{key.str()};
      auto at = path + "." + k;
      try {
        if (k == "name") {
          r.name = text_of(value);
          if (r.name.empty() || r.name.find_first_not_of(
                                    "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != std::string::npos)
            throw std::string{"a trigger name is letters, digits, '_', '-' or '.'"};
        } else if (k == "topic") {
          r.topic = text_of(value);
          has_topic = true;
        } else if (k == "action") {
          r.action = choice<trigger_action>(value, {{"log", trigger_action::log},
                                                    {"alert", trigger_action::alert},
                                                    {"submit", trigger_action::submit}});
          has_action = true;
        } else if (k == "when") {
          auto* w = value.as_table();
          if (!w) throw std::string{"expected a table: when = { kind = \"mlp\" }"};
          for (auto& [ck, cv] : *w) {
            std::string c{ck.str()};
            try {
              if (c == "kind")
                r.kind = text_of(cv);
              else if (c == "node")
                r.node = text_of(cv);
              else if (c == "worker")
                r.worker = int32_t(int_in(cv, 0, 1 << 20));
              else if (c == "detail")
                r.detail_contains = text_of(cv);
              else
                throw std::string{"unknown condition (kind, node, worker, detail)"};
            } catch (const std::string& what) {
              throw config_error(source, line_of(cv), at + "." + c, what);
            }
          }
        } else if (k == "submit") {
          auto* s = value.as_table();
          if (!s) throw std::string{"expected a table: submit = { kind = \"noop\" }"};
          for (auto& [sk, sv] : *s) {
            std::string c{sk.str()};
            try {
              if (c == "kind") {
                r.follow_up.kind = text_of(sv);
              } else if (c == "priority") {
                r.follow_up.priority = int32_t(int_in(sv, -1000, 1000));
              } else if (c == "params") {
                auto* p = sv.as_table();
                if (!p) throw std::string{"expected a table of parameters"};
                for (auto& [pk, pv] : *p) {
                  try {
                    r.follow_up.params.set(std::string{pk.str()}, toml_param(pv));
                  } catch (const std::string& what) {
                    throw config_error(source, line_of(pv), at + ".params." + std::string{pk.str()},
                                       what);
                  }
                }
              } else {
                throw std::string{"unknown key (kind, params, priority)"};
              }
            } catch (const std::string& what) {
              throw config_error(source, line_of(sv), at + "." + c, what);
            }
          }
        } else {
          throw std::string{"unknown key (name, topic, when, action, submit)"};
        }
      } catch (const std::string& what) {
        throw config_error(source, line_of(value), at, what);
      }
    }
    auto line = line_of((*arr)[i]);
    if (r.name.empty()) throw config_error(source, line, path + ".name", "a trigger needs a name");
    if (!has_topic)
      throw config_error(source, line, path + ".topic",
                         "a trigger needs a topic prefix (\"\" matches every event)");
    if (!has_action)
      throw config_error(source, line, path + ".action",
                         "a trigger needs an action: log, alert or submit");
    if (r.action == trigger_action::submit && r.follow_up.kind.empty())
      throw config_error(source, line, path + ".submit.kind",
                         "action = \"submit\" needs submit = { kind = ... }");
    if (r.action != trigger_action::submit && !r.follow_up.kind.empty())
      throw config_error(source, line, path + ".submit", "only action = \"submit\" submits a task");
    for (auto& other : cfg.triggers)
      if (other.name == r.name)
        throw config_error(source, line, path + ".name",
                           "trigger '" + r.name + "' is declared twice");
    cfg.triggers.push_back(std::move(r));
  }
}

void check_cross_field(const runtime_config& c, const std::string& source) {
  if (c.cluster.security.enabled()) {
    for (auto& n : c.cluster.nodes)
      if (n.key.empty())
        throw config_error(source, n.line, "nodes." + n.name + ".key",
                           "security.head_key is set: every node needs its key pair file "
                           "(troupe keygen)");
  }
  for (auto& a : c.cluster.security.allow)
    if (a.role == peer_role::node && !c.cluster.find(a.name))
      throw config_error(
          source, a.line, "security.allow.name",
          "a node key for '" + a.name + "', which is not a [nodes.NAME] of this file");
  if (c.heartbeat_timeout <= c.heartbeat_interval)
    throw config_error(source, 0, "monitor.heartbeat_timeout_ms",
                       "must be greater than monitor.heartbeat_ms");
  if (c.cluster.dead_after <= c.cluster.suspect_after)
    throw config_error(source, 0, "cluster.dead_after_ms",
                       "must be greater than cluster.suspect_after_ms");
  if (c.cluster.suspect_after <= c.cluster.heartbeat_interval)
    throw config_error(source, 0, "cluster.suspect_after_ms",
                       "must be greater than cluster.heartbeat_ms");
  if (c.retry_backoff_max < c.retry_backoff)
    throw config_error(source, 0, "retry.backoff_max_ms", "must be at least retry.backoff_ms");
}

}  // namespace

const char* to_string(queue_order o) noexcept {
  switch (o) {
    case queue_order::fifo:
      return "fifo";
    case queue_order::priority:
      return "priority";
    case queue_order::deadline:
      return "deadline";
    case queue_order::shortest:
      return "shortest";
    case queue_order::fair:
      return "fair";
  }
  return "?";
}

const char* to_string(peer_role r) noexcept {
  switch (r) {
    case peer_role::node:
      return "node";
    case peer_role::client:
      return "client";
    case peer_role::subscriber:
      return "subscriber";
    case peer_role::admin:
      return "admin";
  }
  return "?";
}

runtime_config parse_config(std::string_view text, const std::string& source, runtime_config cfg) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw config_error(source, int(e.source().begin.line), "", std::string{e.description()});
  }
  for (auto& [section_key, section_node] : root) {
    std::string section{section_key.str()};
    if (section == "nodes") {
      parse_nodes(cfg, section_node, source);
      continue;
    }
    if (section == "triggers") {
      parse_triggers(cfg, section_node, source);
      continue;
    }
    if (section == "reservations") {
      parse_reservations(cfg, section_node, source);
      continue;
    }
    auto* table = section_node.as_table();
    if (!table || !known_section(section))
      throw config_error(source, line_of(section_node), section,
                         table ? "unknown section" : "expected a [section] table");
    for (auto& [key, node] : *table) {
      std::string name{key.str()};
      if (section == "security" && name == "allow") {
        parse_allow(cfg, node, source);
        continue;
      }
      auto* def = find_key(section, name);
      if (!def && section == "cluster" && name == "max_frame_bytes")
        throw config_error(source, line_of(node), section + "." + name,
                           "the frame limit follows limits.max_payload_bytes (a frame holds one "
                           "task or output of that size, plus 1 MiB): set that instead");
      if (!def) throw config_error(source, line_of(node), section + "." + name, "unknown key");
      try {
        def->set(cfg, node);
      } catch (const std::string& what) {
        throw config_error(source, line_of(node), section + "." + name, what);
      }
    }
  }
  check_cross_field(cfg, source);
  return cfg;
}

runtime_config load_config(const std::string& path, runtime_config base) {
  std::ifstream in{path};
  if (!in) throw config_error(path, 0, "", "cannot open the file");
  std::stringstream buf;
  buf << in.rdbuf();
  auto cfg = parse_config(buf.str(), path, std::move(base));
  // A cluster's head keeps its journal next to the file unless the file says otherwise.
  if (!cfg.cluster.journal_set)
    cfg.cluster.journal =
        std::filesystem::path{path}.replace_extension(".journal").lexically_normal().string();
  return cfg;
}

void apply_override(runtime_config& cfg, const std::string& assignment) {
  auto eq = assignment.find('=');
  auto dot = assignment.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq)
    throw config_error("--set", 0, assignment, "expected section.key=value");
  auto section = assignment.substr(0, dot), name = assignment.substr(dot + 1, eq - dot - 1);
  auto value = assignment.substr(eq + 1);
  // Bare words are strings: --set queue.order=fifo
  bool bare = !value.empty() &&
              std::all_of(value.begin(), value.end(),
                          [](char ch) {
                            return std::isalpha(static_cast<unsigned char>(ch)) || ch == '_';
                          }) &&
              value != "true" && value != "false";
  auto text = "[" + section + "]\n" + name + " = " + (bare ? "\"" + value + "\"" : value) + "\n";
  try {
    cfg = parse_config(text, "--set", cfg);
  } catch (const config_error& e) {
    throw config_error("--set", 0, e.key().empty() ? section + "." + name : e.key(),
                       std::string{e.what()}.substr(std::string{e.what()}.rfind(": ") + 2));
  }
}

bool local_only(const std::string& ep) {
  if (ep.rfind("ipc://", 0) == 0 || ep.rfind("inproc://", 0) == 0) return true;
  if (ep.rfind("tcp://", 0) != 0) return false;
  auto colon = ep.rfind(':');
  auto host = ep.substr(6, colon == std::string::npos || colon < 6 ? std::string::npos : colon - 6);
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]";
}

std::string data_endpoint_of(const runtime_config& cfg, const std::string& name) {
  auto* n = cfg.cluster.find(name);
  if (!n || cfg.cluster.kept_output_bytes == 0 || n->data_endpoint == "off") return {};
  if (n->data_endpoint.empty()) {
    auto& head = n->head_endpoint.empty() ? cfg.cluster.head_endpoint : n->head_endpoint;
    return local_only(head) ? "tcp://127.0.0.1:*" : std::string{};
  }
  auto& sec = cfg.cluster.security;
  if (!sec.enabled() && !sec.insecure && !local_only(n->data_endpoint))
    throw config_error("cluster file", n->line, "nodes." + name + ".data_endpoint",
                       "node " + name + " would serve its outputs on " + n->data_endpoint +
                           " without keys, open to anyone who reaches it: set security.head_key "
                           "(docs/security.md), bind loopback, or set security.insecure = true");
  return n->data_endpoint;
}

runtime_config node_view(const runtime_config& cfg, const std::string& name,
                         const std::string& source) {
  auto* n = cfg.cluster.find(name);
  if (!n) {
    std::string known;
    for (auto& k : cfg.cluster.nodes) known += (known.empty() ? "" : ", ") + k.name;
    throw config_error(source, 0, "nodes." + name,
                       "no such node in the cluster file (declared: " +
                           (known.empty() ? std::string{"none"} : known) + ")");
  }
  auto view = cfg;
  view.cpu_workers = n->cpu_workers;
  view.no_cpu_workers = n->cpu_workers == 0;
  view.cuda = n->cuda;
  view.cuda_devices = n->cuda_devices;
  view.fake_gpus = n->fake_gpus;
  if (n->worker_memory_bytes) view.worker_memory_bytes = n->worker_memory_bytes;
  if (!n->head_endpoint.empty()) view.cluster.head_endpoint = n->head_endpoint;
  return view;
}

runtime_config head_view(const runtime_config& cfg) {
  auto view = cfg;
  view.fake_gpus = 0;
  view.cpu_workers = cfg.cluster.head_cpu_workers;
  view.no_cpu_workers = cfg.cluster.head_cpu_workers == 0;
  view.cuda = cuda_selection::none;
  view.cuda_devices.clear();
  // Submits arrive on the head's socket thread, which also carries the results that free room:
  // waiting there for room would wait for itself. A full head answers with queue_full instead.
  view.overflow = overflow_policy::reject;
  return view;
}

runtime_config resolve(runtime_config cfg) {
  auto cores = std::max(1u, std::thread::hardware_concurrency());
  if (cfg.no_cpu_workers)
    cfg.cpu_workers = 0;
  else if (cfg.cpu_workers == 0)
    cfg.cpu_workers = cores;
  // The cooperative actors (queue, balancer, monitor) are few and light; workers are detached
  // threads of their own. More scheduler threads than that only steal cores from the workers
  // (measured: 2 threads on 2 cores cost 3x pipeline throughput against 1).
  if (cfg.scheduler_threads == 0) cfg.scheduler_threads = std::clamp(cores / 4, 1u, 4u);
  if (cfg.worker_memory_bytes == 0) {
    auto pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    uint64_t total = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : (uint64_t(4) << 30);
    cfg.worker_memory_bytes = total / std::max(1u, cfg.cpu_workers);
  }
  return cfg;
}

}  // namespace troupe
