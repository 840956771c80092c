#pragma once
// The entry point of a kind plugin: a shared library that `troupe node` (or any troupe::node)
// loads at start when the cluster file names it under [nodes.NAME] plugins = ["..."], and whose
// troupe_register_kinds it calls once with the node's registry, before the node says hello (so
// the head learns the kinds with the node's first hello). docs/plugins.md shows how to build
// one against the installed package:
//
//   #include <troupe/model/plugin.hpp>
//   TROUPE_PLUGIN void troupe_register_kinds(troupe::task_registry& registry) {
//     registry.add({"word_count", nullptr, [](const troupe::task_context& ctx) { ... }});
//   }
//
// The library stays loaded for the life of the process (its kernels live in the registry).
// Throwing from troupe_register_kinds stops the node with the message.
#include "troupe/model/registry.hpp"

#define TROUPE_PLUGIN extern "C" __attribute__((visibility("default")))

/// The layout of what a plugin and troupe share (task_spec, task_output, the registry), raised
/// whenever it changes, so that a plugin built against another troupe is refused at load with a
/// message rather than crashing at its first task. 2: payloads and output bytes became
/// troupe::shared_bytes.
#define TROUPE_PLUGIN_ABI 2u

TROUPE_PLUGIN void troupe_register_kinds(troupe::task_registry& registry);

/// What a plugin was built for: every library that includes this header exports it (weak: one
/// definition however many of its files include it).
TROUPE_PLUGIN __attribute__((weak)) const unsigned troupe_plugin_abi = TROUPE_PLUGIN_ABI;

namespace troupe {
/// The type of troupe_register_kinds, as a loader finds it.
using register_kinds_fn = void (*)(task_registry&);
/// The symbols a loader looks for.
inline constexpr const char* register_kinds_symbol = "troupe_register_kinds";
inline constexpr const char* plugin_abi_symbol = "troupe_plugin_abi";
}  // namespace troupe
