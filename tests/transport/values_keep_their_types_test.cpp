// Values keep their types across the wire: a double stays a double (whole, huge, negative zero,
// NaN, infinities), integers at the edges of int64 stay exact, and a random mix of every kind of
// parameter survives a round trip in a submit and in a result.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "round_trip.hpp"
#include "troupe/transport/codec.hpp"

namespace troupe::wire {
namespace {

using testing::round_trip;

/// Equal as the same type and the same bits for doubles (NaN == NaN, -0.0 != 0.0).
bool same(const param_value& a, const param_value& b) {
  if (a.index() != b.index()) return false;
  auto bits = [](double d) {
    uint64_t u;
    std::memcpy(&u, &d, sizeof u);
    return u;
  };
  if (auto* x = std::get_if<double>(&a)) return bits(*x) == bits(std::get<double>(b));
  if (auto* x = std::get_if<std::vector<double>>(&a)) {
    auto& y = std::get<std::vector<double>>(b);
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i)
      if (bits((*x)[i]) != bits(y[i])) return false;
    return true;
  }
  return a == b;
}

void expect_same(const param_map& sent, const param_map& got) {
  ASSERT_EQ(sent.values().size(), got.values().size());
  for (auto& [k, v] : sent.values()) {
    auto* g = got.find(k);
    ASSERT_NE(g, nullptr) << k;
    EXPECT_TRUE(same(v, *g)) << "parameter '" << k << "' changed type or value (type index "
                             << v.index() << " sent, " << g->index() << " received)";
  }
}

const double edge_doubles[] = {4.0,
                               0.0,
                               -0.0,
                               1e19,
                               -1e19,
                               9007199254740993.0,
                               std::numeric_limits<double>::quiet_NaN(),
                               std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity(),
                               std::numeric_limits<double>::max(),
                               std::numeric_limits<double>::denorm_min(),
                               -1.0};
const int64_t edge_ints[] = {0,
                             -1,
                             1,
                             std::numeric_limits<int64_t>::min(),
                             std::numeric_limits<int64_t>::max(),
                             int64_t{1} << 53};

param_value random_value(std::mt19937_64& rng) {
  auto pick_double = [&]() -> double {
    if (rng() % 3 == 0) return edge_doubles[rng() % std::size(edge_doubles)];
    return std::ldexp(double(int64_t(rng())), int(rng() % 200) - 100);
  };
  auto pick_int = [&]() -> int64_t {
    if (rng() % 3 == 0) return edge_ints[rng() % std::size(edge_ints)];
    return int64_t(rng());
  };
  switch (rng() % 6) {
    case 0:
      return rng() % 2 == 0;
    case 1:
      return pick_int();
    case 2:
      return pick_double();
    case 3:
      return std::string(rng() % 40, char('a' + rng() % 26));
    case 4: {
      std::vector<int64_t> v(rng() % 5);
      for (auto& x : v) x = pick_int();
      return v;
    }
    default: {
      std::vector<double> v(1 + rng() % 5);  // an empty list travels as a list of ints
      for (auto& x : v) x = pick_double();
      return v;
    }
  }
}

param_map random_params(std::mt19937_64& rng) {
  param_map p;
  auto n = rng() % 8;
  for (size_t i = 0; i < n; ++i) p.set("k" + std::to_string(i), random_value(rng));
  return p;
}

TEST(WireValues, WholeAndSpecialDoublesStayDoubles) {
  for (double d : edge_doubles) {
    submit m;
    m.tasks.resize(1);
    m.tasks[0].kind = "noop";
    m.tasks[0].params = {{"x", d}, {"list", std::vector<double>{d, 1.0}}};
    auto b = round_trip(m);
    expect_same(m.tasks[0].params, b.tasks[0].params);
  }
}

TEST(WireValues, IntegersAtTheEdgesOfInt64StayExact) {
  for (int64_t i : edge_ints) {
    results m;
    m.records.resize(1);
    m.records[0].output.values = {
        {"n", i}, {"list", std::vector<int64_t>{i, i == INT64_MIN ? INT64_MAX : -i}}};
    auto b = round_trip(m);
    expect_same(m.records[0].output.values, b.records[0].output.values);
  }
}

TEST(WireValues, RandomParametersOfEveryTypeSurviveSubmitAndResult) {
  std::mt19937_64 rng{20261202};
  for (int round = 0; round < 2000; ++round) {
    submit s;
    s.tasks.resize(1 + rng() % 3);
    for (auto& t : s.tasks) t.kind = "k", t.params = random_params(rng);
    auto sb = round_trip(s);
    ASSERT_EQ(sb.tasks.size(), s.tasks.size());
    for (size_t i = 0; i < s.tasks.size(); ++i) expect_same(s.tasks[i].params, sb.tasks[i].params);

    results r;
    r.records.resize(1);
    r.records[0].output.values = random_params(rng);
    auto rb = round_trip(r);
    expect_same(r.records[0].output.values, rb.records[0].output.values);
    if (HasFailure()) FAIL() << "round " << round;
  }
}

}  // namespace
}  // namespace troupe::wire

namespace troupe::wire {
namespace {

// limits.max_payload_bytes counts a task's input and output at least as large as they encode,
// so that a frame filled up to the limit never exceeds the frame limit.
TEST(WireValues, WhatThePayloadLimitCountsIsNeverLessThanTheEncodedSize) {
  std::mt19937_64 rng{20261206};
  for (int round = 0; round < 500; ++round) {
    auto values = random_params(rng);
    std::vector<double> many(rng() % 5000);
    for (auto& d : many) d = double(rng()) * 1e-3;  // never a whole number: always float64
    values.set("many", many);
    values.set("big", std::vector<int64_t>(rng() % 100, std::numeric_limits<int64_t>::min()));

    results res;
    res.records.resize(1);
    res.records[0].output.values = values;
    res.records[0].output.bytes.assign(rng() % 3000, 0);
    EXPECT_LE(encode(res).size(), output_bytes(res.records[0].output) + 64);

    submit sub;
    sub.tasks.resize(1);
    sub.tasks[0].kind = std::string(rng() % 50, 'k');
    sub.tasks[0].params = values;
    sub.tasks[0].payload.assign(rng() % 3000, 0);
    sub.tasks[0].labels = {{"tenant", std::string(rng() % 30, 't')}};
    sub.tasks[0].idempotency_key = std::string(rng() % 30, 'i');
    sub.tasks[0].needs.memory_bytes = rng();
    sub.tasks[0].max_retries = 7;
    EXPECT_LE(encode(sub).size(), input_bytes(sub.tasks[0]) + 16);
  }
}

}  // namespace
}  // namespace troupe::wire
