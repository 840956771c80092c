#include "troupe/model/params.hpp"

#include <nlohmann/json.hpp>

#include "troupe/model/errors.hpp"

namespace troupe {

namespace {
[[noreturn]] void bad(const std::string& key, const char* expected, const param_value* v) {
  throw task_failure{errc::invalid_params,
                     v ? "parameter '" + key + "' must be " + expected + ", got " + type_name(*v)
                       : "parameter '" + key + "' is required (" + expected + ")"};
}
}  // namespace

size_t wire_size(const param_map& p) {
  // MessagePack's largest forms: 9 bytes for a number, 5 of header for a string or a list.
  size_t n = 5;
  for (auto& [key, v] : p.values()) {
    n += key.size() + 5;
    if (auto* s = std::get_if<std::string>(&v))
      n += s->size() + 5;
    else if (auto* l = std::get_if<std::vector<int64_t>>(&v))
      n += l->size() * 9 + 5;
    else if (auto* d = std::get_if<std::vector<double>>(&v))
      n += d->size() * 9 + 5;
    else
      n += 9;
  }
  return n;
}

const char* type_name(const param_value& v) {
  switch (v.index()) {
    case 0:
      return "bool";
    case 1:
      return "int";
    case 2:
      return "float";
    case 3:
      return "string";
    case 4:
      return "list<int>";
    default:
      return "list<float>";
  }
}

const param_value* param_map::find(const std::string& key) const {
  auto i = values_.find(key);
  return i == values_.end() ? nullptr : &i->second;
}

int64_t param_map::get_int(const std::string& key) const {
  auto* v = find(key);
  if (v)
    if (auto* i = std::get_if<int64_t>(v)) return *i;
  bad(key, "an integer", v);
}

int64_t param_map::get_int(const std::string& key, int64_t fallback) const {
  return contains(key) ? get_int(key) : fallback;
}

double param_map::get_double(const std::string& key, double fallback) const {
  auto* v = find(key);
  if (!v) return fallback;
  if (auto* d = std::get_if<double>(v)) return *d;
  if (auto* i = std::get_if<int64_t>(v)) return double(*i);
  bad(key, "a number", v);
}

std::string param_map::get_string(const std::string& key, const std::string& fallback) const {
  auto* v = find(key);
  if (!v) return fallback;
  if (auto* s = std::get_if<std::string>(v)) return *s;
  bad(key, "a string", v);
}

std::vector<int64_t> param_map::get_int_list(const std::string& key) const {
  auto* v = find(key);
  if (v)
    if (auto* l = std::get_if<std::vector<int64_t>>(v)) return *l;
  bad(key, "a list of integers", v);
}

std::string to_json(const param_map& p) {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : p.values()) std::visit([&, k = k](auto& x) { j[k] = x; }, v);
  return j.dump();
}

}  // namespace troupe
