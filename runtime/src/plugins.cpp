#include "plugins.hpp"

#include <dlfcn.h>

#include "troupe/model/config.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/plugin.hpp"

namespace troupe {

void load_plugin(const std::string& path, task_registry& registry, const std::string& source,
                 int line, const std::string& key) {
  auto fail = [&](const std::string& why) {
    throw config_error(source, line, key, "plugin '" + path + "': " + why);
  };
  // RTLD_LOCAL: two plugins may bring their own copies of the same helpers. Never closed: the
  // registry holds its kernels until the process ends.
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    fail(why ? why : "cannot be opened");
  }
  dlerror();
  auto entry = reinterpret_cast<register_kinds_fn>(dlsym(lib, register_kinds_symbol));
  if (!entry)
    fail(std::string{"has no "} + register_kinds_symbol +
         " (declare it with TROUPE_PLUGIN, see docs/plugins.md)");
  // The stamp must be the plugin's own: dlsym also searches the libraries it links.
  auto* abi = static_cast<const unsigned*>(dlsym(lib, plugin_abi_symbol));
  Dl_info entry_info{}, abi_info{};
  if (abi && (!dladdr(reinterpret_cast<void*>(entry), &entry_info) || !dladdr(abi, &abi_info) ||
              entry_info.dli_fbase != abi_info.dli_fbase))
    abi = nullptr;
  if (!abi || *abi != TROUPE_PLUGIN_ABI)
    fail("was built against " +
         (abi ? "troupe plugin ABI " + std::to_string(*abi)
              : std::string{"a troupe older than plugin ABI stamps (no troupe_plugin_abi)"}) +
         "; this troupe is ABI " + std::to_string(TROUPE_PLUGIN_ABI) +
         ": rebuild it against this troupe's headers (docs/plugins.md)");
  auto before = registry.kinds();
  try {
    entry(registry);
  } catch (const std::exception& e) {
    fail(std::string{"troupe_register_kinds threw: "} + e.what());
  }
  auto after = registry.kinds();
  std::string added;
  for (size_t i = before.size(); i < after.size(); ++i)
    added += (added.empty() ? "" : ", ") + after[i];
  troupe::logger().info("troupe: plugin '{}' registered: {}", path,
                        added.empty() ? std::string{"no kinds"} : added);
}

}  // namespace troupe
