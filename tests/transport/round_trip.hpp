#pragma once
// A message encoded and decoded again, with the default limits: what the wire tests compare.
#include "troupe/transport/codec.hpp"

namespace troupe::wire::testing {

template <class T>
T round_trip(const T& m) {
  auto bytes = encode(m);
  return decode<T>(bytes.data(), bytes.size(), limits{});
}

}  // namespace troupe::wire::testing
