#pragma once
// Loading kind plugins (troupe/model/plugin.hpp) into a node's registry.
#include <string>

#include "troupe/model/registry.hpp"

namespace troupe {

/// Opens the shared library at `path` and calls its troupe_register_kinds with `registry`.
/// Throws config_error naming `key` and the library when it cannot be opened, has no entry
/// point, or its registration throws.
void load_plugin(const std::string& path, task_registry& registry, const std::string& source,
                 int line, const std::string& key);

}  // namespace troupe
