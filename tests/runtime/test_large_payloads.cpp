// Large data, bounded and said: limits.max_payload_bytes bounds a task's input (refused at
// submit) and its output (the task ends failed with output_too_large, not retried), and the
// runtime carries on with the tasks around it.
#include <gtest/gtest.h>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

runtime_config small_payloads() {
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.log_level = "off";
  cfg.max_payload_bytes = 64 << 10;
  return cfg;
}

/// A kind whose output is `bytes` long, whatever its input.
void add_blob_kind(runtime& rt) {
  rt.registry().add({"blob", nullptr, [](const task_context& ctx) {
                       task_output out;
                       out.bytes.assign(size_t(ctx.spec.params.get_int("bytes", 0)), 7);
                       return out;
                     }});
}

task_spec blob(int64_t bytes) {
  task_spec s;
  s.kind = "blob";
  s.params = {{"bytes", bytes}};
  return s;
}

}  // namespace

TEST(LargePayloads, AnOutputOverTheLimitEndsItsTaskOutputTooLargeWithoutARetry) {
  runtime rt{small_payloads()};
  add_blob_kind(rt);
  auto big = rt.submit(blob(65 << 10));
  auto fine = rt.submit(blob(60 << 10));
  auto r = big.wait_for(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::output_too_large);
  EXPECT_EQ(r->attempts, 1u) << "the same output would come again: no retry";
  EXPECT_NE(r->error.message.find("limits.max_payload_bytes (65536)"), std::string::npos)
      << r->error.message;
  EXPECT_TRUE(r->output.bytes.empty());
  auto f = fine.wait_for(10s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, outcome::completed) << f->error.message;
  EXPECT_EQ(f->output.bytes.size(), size_t(60) << 10);
}

TEST(LargePayloads, AnInputOverTheLimitIsRefusedAtSubmitNamingIt) {
  runtime rt{small_payloads()};
  task_spec echo;
  echo.kind = "echo";
  echo.payload.assign(size_t(65) << 10, 1);
  auto r = rt.submit(echo).wait_for(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::rejected);
  EXPECT_EQ(r->error.code, errc::invalid_params);
  EXPECT_NE(r->error.message.find("limits.max_payload_bytes"), std::string::npos)
      << r->error.message;
  // Parameters count too: a long string parameter is input as much as the payload.
  task_spec wordy;
  wordy.kind = "echo";
  wordy.params = {{"text", std::string(size_t(65) << 10, 'w')}};
  EXPECT_EQ(rt.submit(wordy).wait_for(10s)->error.code, errc::invalid_params);
  echo.payload.assign(size_t(60) << 10, 0);
  auto ok = rt.submit(echo).wait_for(10s);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, outcome::completed) << ok->error.message;
  EXPECT_EQ(ok->output.bytes, echo.payload);
}
