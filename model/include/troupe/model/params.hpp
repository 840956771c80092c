#pragma once
// Task parameters: a small ordered map of named scalar and list values, typed so that a kind can
// validate them at submit time.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace troupe {

using param_value =
    std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

class param_map {
 public:
  param_map() = default;
  param_map(std::initializer_list<std::pair<const std::string, param_value>> init)
      : values_(init) {}

  void set(const std::string& key, param_value v) { values_[key] = std::move(v); }
  void erase(const std::string& key) { values_.erase(key); }
  bool contains(const std::string& key) const { return values_.count(key) != 0; }
  const param_value* find(const std::string& key) const;
  bool empty() const { return values_.empty(); }
  const std::map<std::string, param_value>& values() const { return values_; }

  // Typed accessors. They throw task_failure{invalid_params} naming the key and the expected type,
  // so that validation code reads straight.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;

  bool operator==(const param_map& o) const { return values_ == o.values_; }

 private:
  std::map<std::string, param_value> values_;
};

/// The most bytes the map can take on the wire (MessagePack's largest forms: 9 per number, 5 of
/// header per string or list): what limits.max_payload_bytes counts.
size_t wire_size(const param_map& p);

/// Human-readable type name of a value ("int", "list<int>").
const char* type_name(const param_value& v);

/// Renders the map as a JSON object (for logs and reports).
std::string to_json(const param_map& p);

}  // namespace troupe
