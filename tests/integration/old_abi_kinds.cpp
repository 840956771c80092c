// A plugin as built against a troupe before plugin ABI stamps: its entry point, but no
// troupe_plugin_abi. The node must refuse it at load rather than run its kernels.
extern "C" __attribute__((visibility("default"))) void troupe_register_kinds(void*) {}
