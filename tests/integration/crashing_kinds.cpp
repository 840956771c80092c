// A kind plugin for the process isolation tests: kinds that take their process down in each of
// the ways a kind's code can (a signal, abort(), exit()), one that ignores its cancellation token
// forever, and one that says which process it ran in.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <troupe/model/plugin.hpp>

namespace {

troupe::task_output pid_of_runner(const troupe::task_context&) {
  troupe::task_output out;
  out.values.set("pid", int64_t(getpid()));
  return out;
}

}  // namespace

TROUPE_PLUGIN void troupe_register_kinds(troupe::task_registry& registry) {
  registry.add({"segfault", nullptr, [](const troupe::task_context&) -> troupe::task_output {
                  raise(SIGSEGV);
                  return {};
                }});
  registry.add(
      {"abort", nullptr, [](const troupe::task_context&) -> troupe::task_output { std::abort(); }});
  registry.add(
      {"exit", nullptr, [](const troupe::task_context&) -> troupe::task_output { std::exit(3); }});
  registry.add({"crash_first", nullptr, [](const troupe::task_context& ctx) {
                  if (ctx.attempt == 1) raise(SIGSEGV);
                  return pid_of_runner(ctx);
                }});
  registry.add({"spin", nullptr, [](const troupe::task_context&) -> troupe::task_output {
                  for (volatile uint64_t i = 0;; i = i + 1) {
                  }
                }});
  registry.add({"pid", nullptr, pid_of_runner});
}
