#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "troupe/kernels/builtins.hpp"

using namespace troupe;

namespace {

struct fixture {
  task_registry registry;
  fixture() { kernels::register_builtins(registry); }
  // Validates like submit does, then runs the CPU implementation.
  task_output run(task_spec spec, uint32_t attempt = 1) {
    auto* k = registry.find(spec.kind);
    if (k->def.validate) k->def.validate(spec);
    task_context ctx{spec, attempt, 0, device_class::cpu, nullptr};
    return k->def.cpu(ctx);
  }
};

std::vector<double> naive_gemm(const std::vector<float>& a, const std::vector<float>& b, int64_t m,
                               int64_t n, int64_t k) {
  std::vector<double> c(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j)
        c[size_t(i * n + j)] += double(a[size_t(i * k + p)]) * b[size_t(p * n + j)];
  return c;
}

double get_double(const param_map& p, const char* key) {
  return std::get<double>(*p.find(key));
}

}  // namespace

TEST(GemmKernel, MatchesANaiveReference) {
  fixture f;
  const int64_t m = 37, n = 53, k = 29;
  task_spec s;
  s.kind = "gemm";
  s.params = {
      {"m", m}, {"n", n}, {"k", k}, {"seed", int64_t{9}}, {"output", std::string{"matrix"}}};
  auto out = f.run(s);
  std::vector<float> a, b;
  kernels::gemm_inputs(m, n, k, 9, a, b);
  auto ref = naive_gemm(a, b, m, n, k);
  ASSERT_EQ(out.bytes.size(), size_t(m * n) * sizeof(float));
  std::vector<float> c(size_t(m * n));
  std::memcpy(c.data(), out.bytes.data(), out.bytes.size());
  double ref_sum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_NEAR(c[i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << "element " << i;
    ref_sum += ref[i];
  }
  EXPECT_NEAR(get_double(out.values, "checksum"), ref_sum, 1e-3 * (1 + std::abs(ref_sum)));
}

TEST(GemmKernel, UsesThePayloadWhenGiven) {
  fixture f;
  std::vector<float> ab = {1, 2, 3, 4, /* B */ 5, 6, 7, 8};  // 2x2 times 2x2
  task_spec s;
  s.kind = "gemm";
  s.params = {{"size", int64_t{2}}};
  auto* bytes = reinterpret_cast<const uint8_t*>(ab.data());
  s.payload.assign(bytes, bytes + ab.size() * 4);
  // [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50] -> 134
  EXPECT_DOUBLE_EQ(get_double(f.run(s).values, "checksum"), 134.0);
}

TEST(GemmKernel, RejectsBadSizesAndPayloadsNamingTheProblem) {
  fixture f;
  auto* k = f.registry.find("gemm");
  task_spec s;
  s.kind = "gemm";
  s.params = {{"size", int64_t{0}}};
  try {
    k->def.validate(s);
    FAIL() << "size 0 accepted";
  } catch (const task_failure& e) {
    EXPECT_EQ(e.code, errc::invalid_params);
    EXPECT_NE(e.message.find("'size'"), std::string::npos) << e.message;
  }
  s.params = {{"size", std::string{"big"}}};
  EXPECT_THROW(k->def.validate(s), task_failure);
  s.params = {{"size", int64_t{4}}};
  s.payload.assign(7, 0);
  try {
    k->def.validate(s);
    FAIL() << "a 7-byte payload accepted";
  } catch (const task_failure& e) {
    EXPECT_NE(e.message.find("payload"), std::string::npos) << e.message;
  }
}

TEST(GemmKernel, ValidationDerivesMemoryNeedsAndCost) {
  fixture f;
  task_spec s;
  s.kind = "gemm";
  s.params = {{"m", int64_t{10}}, {"n", int64_t{20}}, {"k", int64_t{30}}};
  auto cost = f.registry.find("gemm")->def.validate(s);
  EXPECT_DOUBLE_EQ(cost, 2.0 * 10 * 20 * 30);
  EXPECT_EQ(s.needs.memory_bytes, 4u * (10 * 30 + 30 * 20 + 10 * 20));
  // On a GPU: A, B, C and the checksum; bf16 adds half-precision copies of A and B.
  EXPECT_EQ(s.needs.gpu_memory_bytes, 4u * (10 * 30 + 30 * 20 + 10 * 20) + 8);
  task_spec half = s;
  half.needs = {};
  half.params.set("precision", std::string{"bf16"});
  f.registry.find("gemm")->def.validate(half);
  EXPECT_EQ(half.needs.gpu_memory_bytes, s.needs.gpu_memory_bytes + 2u * (10 * 30 + 30 * 20));
  task_spec bad = s;
  bad.params.set("precision", std::string{"fp8"});
  try {
    f.registry.find("gemm")->def.validate(bad);
    FAIL() << "accepted precision fp8";
  } catch (const task_failure& e) {
    EXPECT_EQ(e.code, errc::invalid_params);
    EXPECT_NE(e.message.find("precision"), std::string::npos) << e.message;
  }
}

TEST(GemmKernel, HalfPrecisionRoundsTheInputsToNearestEven) {
  // 1 + 2^-8 lies halfway between two bf16 values (1 and 1 + 2^-7): ties go to even, i.e. 1.
  float x[] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 3.14159265f, -2.0f};
  kernels::round_inputs(x, 4, kernels::gemm_precision::bf16);
  EXPECT_EQ(x[0], 1.0f);
  EXPECT_EQ(x[1], 1.0f + 4.0f / 256);
  EXPECT_EQ(x[2], 3.140625f);
  EXPECT_EQ(x[3], -2.0f);
  float h[] = {1.0f + 1.0f / 2048, 65504.0f, 0.1f};
  kernels::round_inputs(h, 3, kernels::gemm_precision::fp16);
  EXPECT_EQ(h[0], 1.0f);  // halfway between 1 and 1 + 2^-10: to even
  EXPECT_EQ(h[1], 65504.0f);
  EXPECT_EQ(h[2], 0.0999755859375f);
}

TEST(GemmKernel, HalfPrecisionResultIsTheProductOfTheRoundedInputs) {
  fixture f;
  const int64_t m = 8, n = 6, k = 5;
  std::vector<float> a, b;
  kernels::gemm_inputs(m, n, k, 3, a, b);
  kernels::round_inputs(a.data(), a.size(), kernels::gemm_precision::bf16);
  kernels::round_inputs(b.data(), b.size(), kernels::gemm_precision::bf16);
  auto want = naive_gemm(a, b, m, n, k);
  task_spec s;
  s.kind = "gemm";
  s.params = {{"m", m},
              {"n", n},
              {"k", k},
              {"seed", int64_t{3}},
              {"precision", std::string{"bf16"}},
              {"output", std::string{"matrix"}}};
  auto out = f.run(s);
  ASSERT_EQ(out.bytes.size(), size_t(m * n) * 4);
  std::vector<float> c(size_t(m * n));
  std::memcpy(c.data(), out.bytes.data(), out.bytes.size());
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], want[i], 1e-5 * (1 + std::abs(want[i])));
}

TEST(MlpKernel, MatchesANaiveForwardPass) {
  fixture f;
  std::vector<int64_t> widths{16, 32, 8, 5};
  const int64_t batch = 6;
  task_spec s;
  s.kind = "mlp";
  s.params = {{"layers", widths}, {"batch", batch}, {"seed", int64_t{4}}};
  auto out = f.run(s);

  auto model = kernels::make_mlp_model(widths, 4);
  std::vector<float> x(size_t(batch * widths[0]));
  kernels::fill_uniform(x.data(), x.size(), 4 ^ 0x5eedull, 1.0f);
  std::vector<double> act(x.begin(), x.end());
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    auto rows = widths[l], cols = widths[l + 1];
    std::vector<double> next(size_t(batch * cols));
    for (int64_t r = 0; r < batch; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        double v = model.biases[l][size_t(j)];
        for (int64_t i = 0; i < rows; ++i)
          v += act[size_t(r * rows + i)] * model.weights[l][size_t(i * cols + j)];
        next[size_t(r * cols + j)] = l + 2 < widths.size() ? std::max(v, 0.0) : v;
      }
    act.swap(next);
  }
  auto classes = widths.back();
  auto& argmax = std::get<std::vector<int64_t>>(*out.values.find("argmax"));
  ASSERT_EQ(argmax.size(), size_t(batch));
  double checksum = 0;
  for (int64_t r = 0; r < batch; ++r) {
    auto row = act.begin() + r * classes;
    EXPECT_EQ(argmax[size_t(r)], std::max_element(row, row + classes) - row) << "row " << r;
    double mx = *std::max_element(row, row + classes), sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(row[j] - mx);
    for (int64_t j = 0; j < classes; ++j) checksum += std::exp(row[j] - mx) / sum * double(j + 1);
  }
  EXPECT_NEAR(get_double(out.values, "checksum"), checksum, 1e-4 * checksum);
}

TEST(MlpKernel, RejectsMalformedLayers) {
  fixture f;
  auto* k = f.registry.find("mlp");
  task_spec s;
  s.kind = "mlp";
  s.params = {{"layers", std::vector<int64_t>{16}}};
  EXPECT_THROW(k->def.validate(s), task_failure);
  s.params = {{"layers", std::vector<int64_t>{16, 0, 4}}};
  EXPECT_THROW(k->def.validate(s), task_failure);
  s.params = {};
  EXPECT_THROW(k->def.validate(s), task_failure);
}

TEST(FailKernel, FailsOnlyOnItsFirstAttemptsWhenAsked) {
  fixture f;
  task_spec s;
  s.kind = "fail";
  s.params = {{"first_attempts", int64_t{2}}};
  EXPECT_THROW(f.run(s, 1), task_failure);
  EXPECT_THROW(f.run(s, 2), task_failure);
  EXPECT_NO_THROW(f.run(s, 3));
}

TEST(FailKernel, CrashModeThrowsSomethingOtherThanATaskFailure) {
  fixture f;
  task_spec s;
  s.kind = "fail";
  s.params = {{"error", std::string{"crash"}}};
  EXPECT_THROW(f.run(s), std::runtime_error);
  s.params = {{"error", std::string{"bogus"}}};
  EXPECT_THROW(f.registry.find("fail")->def.validate(s), task_failure);
}

TEST(MlpKernel, ValidationCountsInputAndActivationsNotTheSharedWeights) {
  fixture f;
  task_spec s;
  s.kind = "mlp";
  s.params = {{"layers", std::vector<int64_t>{1024, 4096, 10}}, {"batch", int64_t{2}}};
  f.registry.find("mlp")->def.validate(s);
  // Weights (~17 MB) are cached once per model; per task: 2 x 1024 inputs, 2 x 2 x 4096
  // activations.
  EXPECT_EQ(s.needs.memory_bytes, 4u * (2 * 1024 + 2 * 2 * 4096));
  EXPECT_EQ(s.needs.gpu_memory_bytes, 4u * 2 * 2 * 4096);
}

TEST(BuiltinKinds, AreAllRegisteredAndRunOnCpu) {
  task_registry r;
  kernels::register_builtins(r);
  for (auto* k : {"noop", "echo", "sleep", "fail", "gemm", "mlp"}) {
    auto* e = r.find(k);
    ASSERT_NE(e, nullptr) << k;
    EXPECT_TRUE(e->runs_on(device_class::cpu));
  }
  EXPECT_EQ(r.find("nope"), nullptr);
}
