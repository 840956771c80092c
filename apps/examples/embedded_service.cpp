// A small service that embeds troupe: it registers its own task kind beside the built-in ones,
// submits a batch of work, and reacts to results and worker events.
#include <cstdio>

#include "troupe/runtime.hpp"

int main() {
  troupe::runtime_config cfg;
  cfg.cpu_workers = 2;
  troupe::runtime rt{cfg};

  // A service-specific kind: tokenise a payload (here: count its words).
  rt.registry().add({"word_count", nullptr,
                     [](const troupe::task_context& ctx) {
                       troupe::task_output out;
                       int64_t words = 0;
                       bool in_word = false;
                       for (auto ch : ctx.spec.payload) {
                         bool space = ch == ' ' || ch == '\n';
                         words += !space && !in_word;
                         in_word = !space;
                       }
                       out.values.set("words", words);
                       return out;
                     },
                     nullptr});
  rt.subscribe("worker.", [](const troupe::event& e) {
    std::printf("event %s worker %d %s\n", e.topic.c_str(), e.worker, e.detail.c_str());
  });

  troupe::task_spec count;
  count.kind = "word_count";
  std::string text = "actors place work where it runs best";
  count.payload.assign(text.begin(), text.end());
  troupe::task_spec gemm;
  gemm.kind = "gemm";
  gemm.params = {{"size", int64_t{128}}, {"seed", int64_t{3}}};
  troupe::task_spec bad;
  bad.kind = "gemm";
  bad.params = {{"size", int64_t{-1}}};

  auto handles = rt.submit_batch({count, gemm, bad});
  for (auto& h : handles) {
    auto& r = h.get();
    std::printf("task %llu %-10s %-9s", static_cast<unsigned long long>(r.id), r.kind.c_str(),
                troupe::to_string(r.status));
    if (r.ok())
      std::printf(" %s\n", troupe::to_json(r.output.values).c_str());
    else
      std::printf(" %s: %s\n", troupe::to_string(r.error.code), r.error.message.c_str());
  }
  auto ok = handles[0].get().ok() && handles[1].get().ok() &&
            handles[2].get().status == troupe::outcome::rejected;
  return ok ? 0 : 1;
}
