#pragma once
// The config's keys, from the one table the loader reads them with (model/src/config.cpp): every
// key of the [section] tables (not [nodes.NAME] or [[triggers]]), with its value in a config
// written as TOML text. config_keys(runtime_config{}) lists the defaults; config/local.toml shows
// each of them (tested).
#include <string>
#include <vector>

#include "troupe/model/config.hpp"

namespace troupe {

struct config_key {
  std::string section;
  std::string name;
  std::string value;  ///< as TOML text: 42, 1.5, true, "fifo", [0, 2]
};

std::vector<config_key> config_keys(const runtime_config& cfg = {});

}  // namespace troupe
