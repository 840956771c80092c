// Built against troupe::client alone. With no head listening, a status request must end in
// client_error after the timeout, not hang.
#include <chrono>
#include <cstdio>

#include "troupe/client.hpp"

int main() {
  troupe::client_options opts;
  opts.timeout = std::chrono::milliseconds(200);
  troupe::client c{"tcp://127.0.0.1:1", opts};
  try {
    c.status();
  } catch (const troupe::client_error& e) {
    std::printf("client without a head: %s\n", e.what());
    return 0;
  }
  std::printf("client got a status from nowhere\n");
  return 1;
}
