// troupe::client alone, against a head played by the test on a raw ROUTER socket: what the
// client sends is decoded and checked, what it gets back is scripted. Every wait is bounded.
#include <gtest/gtest.h>

#include <array>
#include <future>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "troupe/client.hpp"
#include "troupe/transport/codec.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct received {
  std::string peer;
  wire::header header;
  std::string body;
};

struct ScriptedHead : ::testing::Test {
  zmq::context_t ctx{1};
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string endpoint;
  uint64_t next_id = 1;

  void SetUp() override {
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    endpoint = router.get(zmq::sockopt::last_endpoint);
  }

  /// The next message from a client, within 10 s (fails the test otherwise).
  received receive() {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    received r;
    if (zmq::poll(&item, 1, 10s) <= 0) {
      ADD_FAILURE() << "the client sent nothing within 10 s";
      return r;
    }
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(router, std::back_inserter(frames));
    EXPECT_EQ(frames.size(), 3u);  // routing id, header, body
    r.peer = frames.at(0).to_string();
    r.header = wire::decode_header(frames.at(1).data(), frames.at(1).size(), wire::limits{});
    r.body = frames.at(2).to_string();
    return r;
  }

  /// Plays the head for submits until `tasks` tasks arrived, numbering them from `first`;
  /// checks they come in order (kinds k0, k1, ...) and each frame within `frame_limit` bytes.
  /// The number of tasks of each submit.
  std::vector<size_t> answer_submits(size_t tasks, task_id first, size_t frame_limit = SIZE_MAX) {
    std::vector<size_t> sizes;
    for (size_t sent = 0; sent < tasks;) {
      auto msg = receive();
      EXPECT_EQ(msg.header.type, wire::msg_type::submit);
      EXPECT_LE(msg.body.size(), frame_limit) << "the frame is within the limit";
      auto submit = wire::decode<wire::submit>(msg.body.data(), msg.body.size(), {});
      sizes.push_back(submit.tasks.size());
      if (submit.tasks.empty()) break;
      EXPECT_EQ(submit.tasks[0].kind, "k" + std::to_string(sent)) << "in order";
      wire::submitted ids;
      for (size_t i = 0; i < submit.tasks.size(); ++i) ids.ids.push_back(first++);
      sent += submit.tasks.size();
      reply(msg, wire::msg_type::submitted, ids);
    }
    return sizes;
  }

  template <class Body>
  void reply(const received& to, wire::msg_type type, const Body& body) {
    wire::header h;
    h.type = type;
    h.id = next_id++;
    h.corr = to.header.id;
    h.from = "head";
    auto head = wire::encode(h);
    auto b = wire::encode(body);
    std::array<zmq::const_buffer, 3> frames{zmq::buffer(to.peer), zmq::buffer(head),
                                            zmq::buffer(b)};
    (void)zmq::send_multipart(router, frames);
  }

  static task_result completed(task_id id, int64_t answer) {
    task_result r;
    r.id = id;
    r.kind = "noop";
    r.status = outcome::completed;
    r.attempts = 1;
    r.output.values.set("answer", answer);
    return r;
  }
};

}  // namespace

TEST_F(ScriptedHead, SubmitSendsTheTasksInOneMessageAndTheHeadsResultsCompleteTheHandles) {
  client c{endpoint};
  std::vector<task_spec> specs(2);
  specs[0].kind = "noop";
  specs[1].kind = "sleep";
  specs[1].priority = 3;
  auto handles = std::async(std::launch::async, [&] { return c.submit_batch(specs); });
  auto msg = receive();
  EXPECT_EQ(msg.header.type, wire::msg_type::submit);
  auto submit = wire::decode<wire::submit>(msg.body.data(), msg.body.size(), {});
  ASSERT_EQ(submit.tasks.size(), 2u);
  EXPECT_EQ(submit.tasks[0].kind, "noop");
  EXPECT_EQ(submit.tasks[1].kind, "sleep");
  EXPECT_EQ(submit.tasks[1].priority, 3);
  reply(msg, wire::msg_type::submitted, wire::submitted{{100, 101}});
  ASSERT_EQ(handles.wait_for(10s), std::future_status::ready);
  auto h = handles.get();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].id(), 100u);
  EXPECT_EQ(h[1].id(), 101u);
  EXPECT_FALSE(h[0].ready());
  wire::result results;
  results.tasks = {completed(101, 7), completed(100, 6)};  // in any order
  results.latency_ms = {1.5, 2.5};
  reply(msg, wire::msg_type::result, results);
  auto r100 = h[0].wait_for(10s), r101 = h[1].wait_for(10s);
  ASSERT_TRUE(r100 && r101);
  EXPECT_EQ(r100->status, outcome::completed);
  EXPECT_EQ(std::get<int64_t>(*r100->output.values.find("answer")), 6);
  EXPECT_EQ(std::get<int64_t>(*r101->output.values.find("answer")), 7);
}

// A batch larger than a head takes goes as several submits, in order; the handles come back in
// the order of the specs.
TEST_F(ScriptedHead, ABatchLargerThanTheSubmitLimitGoesAsSeveralSubmits) {
  client_options o;
  o.max_tasks_per_submit = 3;
  client c{endpoint, o};
  std::vector<task_spec> specs(7);
  for (size_t i = 0; i < specs.size(); ++i) specs[i].kind = "k" + std::to_string(i);
  auto handles = std::async(std::launch::async, [&] { return c.submit_batch(specs); });
  EXPECT_EQ(answer_submits(specs.size(), 500), (std::vector<size_t>{3, 3, 1}));
  ASSERT_EQ(handles.wait_for(10s), std::future_status::ready);
  auto h = handles.get();
  ASSERT_EQ(h.size(), 7u);
  for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(h[i].id(), 500 + i);
}

TEST_F(ScriptedHead, ABatchOfMoreBytesThanThePayloadLimitGoesAsSeveralSubmitsEachWithinIt) {
  client_options o;
  o.max_payload_bytes = 100 << 10;
  client c{endpoint, o};
  std::vector<task_spec> specs(5);
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].kind = "k" + std::to_string(i);
    specs[i].payload.assign(40 << 10, uint8_t(i));  // two fit in 100 KiB, three do not
  }
  auto handles = std::async(std::launch::async, [&] { return c.submit_batch(specs); });
  EXPECT_EQ(answer_submits(specs.size(), 700, size_t(100) << 10), (std::vector<size_t>{2, 2, 1}));
  ASSERT_EQ(handles.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(handles.get().size(), 5u);
}

TEST_F(ScriptedHead, AResultThatArrivesBeforeItsIdStillCompletesTheHandleAndRunsTheCallback) {
  client c{endpoint};
  std::promise<task_id> called;
  task_spec spec;
  spec.kind = "noop";
  auto handle = std::async(std::launch::async, [&] {
    return c.submit(spec, [&](const task_result& r) { called.set_value(r.id); });
  });
  auto msg = receive();
  wire::result early;
  early.tasks = {completed(9, 1)};
  early.latency_ms = {0.5};
  reply(msg, wire::msg_type::result, early);  // the result overtakes the ids
  reply(msg, wire::msg_type::submitted, wire::submitted{{9}});
  ASSERT_EQ(handle.wait_for(10s), std::future_status::ready);
  auto h = handle.get();
  auto r = h.wait_for(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 9u);
  auto f = called.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), 9u);
}

TEST_F(ScriptedHead, AnErrorReplyFailsTheSubmitWithTheHeadsReason) {
  client c{endpoint};
  task_spec spec;
  spec.kind = "noop";
  auto handle = std::async(std::launch::async, [&] { return c.submit(spec); });
  auto msg = receive();
  reply(msg, wire::msg_type::error, wire::error{wire::wire_errc::too_large, "frame of 99 bytes"});
  ASSERT_EQ(handle.wait_for(10s), std::future_status::ready);
  try {
    handle.get();
    FAIL() << "submit returned although the head refused it";
  } catch (const client_error& e) {
    EXPECT_NE(std::string{e.what()}.find("too_large"), std::string::npos) << e.what();
    EXPECT_NE(std::string{e.what()}.find("frame of 99 bytes"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c.errors(), 1u);
}

TEST_F(ScriptedHead, AHeadThatNeverAnswersMakesSubmitThrowAfterItsTimeout) {
  client_options o;
  o.timeout = 200ms;
  client c{endpoint, o};
  task_spec spec;
  spec.kind = "noop";
  EXPECT_THROW(c.submit(spec), client_error);
  // The message did reach the head; it just never answered.
  EXPECT_EQ(receive().header.type, wire::msg_type::submit);
}

TEST_F(ScriptedHead, StatusAsksTheHeadAndReturnsWhatItSays) {
  client c{endpoint};
  auto status = std::async(std::launch::async, [&] { return c.status(); });
  auto msg = receive();
  EXPECT_EQ(msg.header.type, wire::msg_type::status_request);
  wire::status s;
  s.stats.submitted = 12;
  s.events_endpoint = "tcp://127.0.0.1:5556";
  s.last_event_seq = 77;
  reply(msg, wire::msg_type::status, s);
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  auto got = status.get();
  EXPECT_EQ(got.stats.submitted, 12u);
  EXPECT_EQ(got.events_endpoint, "tcp://127.0.0.1:5556");
  EXPECT_EQ(got.last_event_seq, 77u);
}

// Two specs whose idempotency key names one task get the same id: both handles end with it.
TEST_F(ScriptedHead, TheSameIdTwiceInOneReplyCompletesBothHandles) {
  client c{endpoint};
  std::vector<task_spec> specs(2);
  for (auto& s : specs) s.kind = "noop", s.idempotency_key = "same";
  auto handles = std::async(std::launch::async, [&] { return c.submit_batch(specs); });
  auto msg = receive();
  reply(msg, wire::msg_type::submitted, wire::submitted{{5, 5}});
  ASSERT_EQ(handles.wait_for(10s), std::future_status::ready);
  auto h = handles.get();
  reply(msg, wire::msg_type::result, wire::result{{completed(5, 1)}, {1.0}});
  EXPECT_TRUE(h[0].wait_for(10s));
  EXPECT_TRUE(h[1].wait_for(10s)) << "the second handle of the same id ends too";
}

// A submit whose answer does not come is sent again, the same message with the same token, so
// that the head (which keeps the token) creates its tasks once.
TEST_F(ScriptedHead, AnUnansweredSubmitIsSentAgainWithTheSameToken) {
  client_options o;
  o.resync_interval = 100ms;
  client c{endpoint, o};
  task_spec spec;
  spec.kind = "noop";
  auto handle = std::async(std::launch::async, [&] { return c.submit(spec); });
  auto first = receive();
  auto again = receive();  // not answered: it comes again after resync_interval
  ASSERT_EQ(again.header.type, wire::msg_type::submit);
  EXPECT_EQ(again.header.id, first.header.id);
  auto t1 = wire::decode<wire::submit>(first.body.data(), first.body.size(), {}).token;
  auto t2 = wire::decode<wire::submit>(again.body.data(), again.body.size(), {}).token;
  EXPECT_NE(t1, 0u);
  EXPECT_EQ(t1, t2);
  reply(again, wire::msg_type::submitted, wire::submitted{{42}});
  ASSERT_EQ(handle.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(handle.get().id(), 42u);
}

// A quiet head is asked where the outstanding tasks are; one it does not know (it restarted
// without a journal) ends result_lost instead of waiting forever.
TEST_F(ScriptedHead, ATaskTheHeadDoesNotKnowEndsResultLost) {
  client_options o;
  o.resync_interval = 100ms;
  client c{endpoint, o};
  task_spec spec;
  spec.kind = "noop";
  auto handle = std::async(std::launch::async, [&] { return c.submit(spec); });
  auto msg = receive();
  reply(msg, wire::msg_type::submitted, wire::submitted{{9}});
  ASSERT_EQ(handle.wait_for(10s), std::future_status::ready);
  auto h = handle.get();
  auto fetch = receive();
  ASSERT_EQ(fetch.header.type, wire::msg_type::fetch);
  EXPECT_EQ(wire::decode<wire::fetch>(fetch.body.data(), fetch.body.size(), {}).ids,
            (std::vector<task_id>{9}));
  reply(fetch, wire::msg_type::fetched, wire::fetched{{}, {9}});
  auto r = h.wait_for(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, outcome::failed);
  EXPECT_EQ(r->error.code, errc::result_lost) << r->error.message;
}

// A head that says nothing at all for head_timeout: the outstanding handles end
// head_unreachable, naming the endpoint.
TEST_F(ScriptedHead, ASilentHeadEndsOutstandingHandlesHeadUnreachable) {
  client_options o;
  o.resync_interval = 50ms;
  o.head_timeout = 300ms;
  client c{endpoint, o};
  task_spec spec;
  spec.kind = "noop";
  auto handle = std::async(std::launch::async, [&] { return c.submit(spec); });
  auto msg = receive();
  reply(msg, wire::msg_type::submitted, wire::submitted{{3}});
  ASSERT_EQ(handle.wait_for(10s), std::future_status::ready);
  auto r = handle.get().wait_for(10s);  // the fetches it sends are never answered
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.code, errc::head_unreachable) << r->error.message;
  EXPECT_NE(r->error.message.find(endpoint), std::string::npos) << r->error.message;
}
