#pragma once
// troupe's logger: spdlog's logger named "troupe". troupe never touches spdlog's default logger
// or its global level, so a host service keeps its own logging as it set it up.
//
// A host that wants troupe's lines elsewhere registers its own logger named "troupe" with spdlog
// before it creates a runtime, head or node, or calls troupe::set_logger() at any time. Without
// that, troupe makes one that writes to stderr, at the level of the config's `log_level`.
#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace troupe {

/// The logger every troupe component writes to.
spdlog::logger& logger();
/// Replaces it (thread-safe; lines already being written finish on the old one). The host's
/// logger keeps the level the host gave it: a config's `log_level` no longer applies.
void set_logger(std::shared_ptr<spdlog::logger> replacement);
/// Applies a config's `log_level` ("trace" ... "off") to the logger troupe made itself; a logger
/// the host provided is left as it is.
void apply_log_level(const std::string& level);

}  // namespace troupe
