// socket_thread: one thread owns each socket; other threads hand it messages.
#include "troupe/transport/socket_thread.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>

namespace troupe::transport {
namespace {

std::string text(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

TEST(SocketThread, RouterEchoesToTheDealerThatAsked) {
  zmq::context_t ctx;
  socket_thread* router_ptr = nullptr;
  socket_options ro;
  ro.type = zmq::socket_type::router;
  ro.endpoint = "tcp://127.0.0.1:*";
  ro.bind = true;
  socket_thread router{ctx, ro, [&](multipart& m) {
                         // [peer, payload] -> [peer, "echo:" payload]
                         router_ptr->send({text(m[0]), "echo:" + text(m[1])});
                       }};
  router_ptr = &router;
  ASSERT_NE(router.endpoint().find("tcp://127.0.0.1:"), std::string::npos);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> got;
  socket_options d;
  d.endpoint = router.endpoint();
  socket_thread dealer{ctx, d, [&](multipart& m) {
                         std::lock_guard<std::mutex> g{mu};
                         got.push_back(text(m[0]));
                         cv.notify_all();
                       }};
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(dealer.send({std::to_string(i)}));
  std::unique_lock<std::mutex> lock{mu};
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() == 100; }));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[size_t(i)], "echo:" + std::to_string(i));
}

TEST(SocketThread, AnEndpointThatCannotBeBoundIsAnError) {
  zmq::context_t ctx;
  socket_options ro;
  ro.type = zmq::socket_type::router;
  ro.endpoint = "tcp://127.0.0.1:*";
  ro.bind = true;
  socket_thread first{ctx, ro, [](multipart&) {}};
  ro.endpoint = first.endpoint();  // the same port again
  try {
    socket_thread second{ctx, ro, [](multipart&) {}};
    FAIL() << "bound twice";
  } catch (const transport_error& e) {
    EXPECT_NE(std::string{e.what()}.find(first.endpoint()), std::string::npos) << e.what();
  }
}

TEST(SocketThread, OutboundQueueIsBoundedWhenThePeerIsAway) {
  zmq::context_t ctx;
  socket_options d;
  d.endpoint = "tcp://127.0.0.1:1";  // nobody listens there
  d.max_outbound = 8;
  d.high_water_mark = 1;
  socket_thread dealer{ctx, d, [](multipart&) {}};
  int accepted = 0;
  for (int i = 0; i < 1000; ++i) accepted += dealer.send({"x"});
  // The bound here plus what zmq's own (minimal) queue took; everything else refused.
  EXPECT_LE(accepted, 8 + 32);
  EXPECT_EQ(dealer.dropped(), uint64_t(1000 - accepted));
}

}  // namespace
}  // namespace troupe::transport
