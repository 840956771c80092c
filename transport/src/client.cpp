#include "troupe/client.hpp"

#include <future>
#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "troupe/model/frame_split.hpp"
#include "troupe/model/log.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/framer.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace troupe {

struct client::impl {
  struct submit_wait {
    std::promise<std::vector<task_handle>> handles;
    std::shared_ptr<const result_callback> callback;
    transport::multipart frame;  ///< a copy, sent again until answered
    std::chrono::steady_clock::time_point sent;
  };
  struct live_task {
    std::shared_ptr<completion> done;
    std::shared_ptr<const result_callback> callback;
    /// Other handles of the same id (an idempotency key named a task this client already
    /// waits for): one result completes them all.
    std::vector<live_task> same;
  };

  client_options opts;
  wire::limits lim;
  wire::framer framer;
  zmq::context_t ctx{1};
  std::unique_ptr<transport::socket_thread> sock;

  std::mutex mutex;  // the maps below: caller threads insert, the socket thread completes
  std::unordered_map<uint64_t, std::shared_ptr<submit_wait>> submits;
  std::unordered_map<uint64_t, std::shared_ptr<std::promise<wire::status>>> statuses;
  /// fetch() calls waiting: their ids, and the records gathered so far.
  struct fetch_wait {
    std::unordered_set<task_id> ids;
    fetch_reply reply;
    std::promise<fetch_reply> done;
  };
  std::unordered_map<uint64_t, std::shared_ptr<fetch_wait>> fetches;
  std::unordered_map<task_id, live_task> live;
  std::unordered_map<task_id, task_result> unclaimed;  // results that beat their ids here
  std::atomic<uint64_t> error_count{0};
  std::atomic<uint64_t> duplicate_count{0};
  /// Why the head refused this client's handshake (its key); "" while it has not. Under mutex;
  /// `is_refused` lets the socket thread skip the lock on every message.
  std::string refused;
  std::atomic<bool> is_refused{false};

  /// With no submit waiting for ids, results kept for one are results nobody will claim (their
  /// submit was given up, or they came twice). Under mutex.
  void forget_unclaimed_if_idle() {
    if (!submits.empty() || unclaimed.empty()) return;
    duplicate_count.fetch_add(unclaimed.size(), std::memory_order_relaxed);
    unclaimed.clear();
  }
  uint64_t token_base = 0;  ///< a submit's token: this plus its message id (never 0)

  // The head's liveness, on the socket thread only.
  using steady = std::chrono::steady_clock;
  steady::time_point last_heard = steady::now(), last_fetch{}, next_check{};
  uint64_t head_epoch = 0;  ///< the head's incarnation, from its headers
  bool resync_now = false;  ///< a new incarnation: ask at once

  static std::string random_identity() {
    std::random_device rd;
    std::mt19937_64 gen{(uint64_t(rd()) << 32) ^ rd()};
    static const char* hex = "0123456789abcdef";
    std::string id = "client-";
    auto bits = gen();
    for (int i = 0; i < 16; ++i) id += hex[(bits >> (4 * i)) & 15];
    return id;
  }

  impl(const std::string& endpoint, client_options o) : opts(std::move(o)), framer(opts.name) {
    if (opts.identity.empty()) opts.identity = random_identity();
    if (opts.identity.size() > 255 || opts.identity[0] == '\0')
      throw client_error("client_options::identity: 1-255 bytes, not starting with a zero byte");
    {
      std::random_device rd;
      token_base = ((uint64_t(rd()) << 32) ^ rd()) & ~(uint64_t(1) << 63);
    }
    // What it receives comes from the head it chose: results of whatever limit that head has
    // (at most the largest a config allows). What it sends is split by its own limit.
    lim = wire::limits::for_payload(std::max(opts.max_payload_bytes, max_config_payload_bytes));
    transport::socket_options so;
    so.type = zmq::socket_type::dealer;
    so.endpoint = endpoint;
    so.name = "troupe-client";
    so.max_message_bytes = int64_t(lim.max_frame_bytes) * 2;
    so.routing_id = opts.identity;
    so.tick = std::max(std::chrono::milliseconds{10}, opts.resync_interval / 4);
    so.client_keys = opts.curve;
    so.on_handshake_failed = [this](const std::string& why) { on_refused(why); };
    try {
      sock = std::make_unique<transport::socket_thread>(
          ctx, so, [this](transport::multipart& m) { on_message(m); }, [this] { on_tick(); });
    } catch (const transport::transport_error& e) {
      throw client_error(e.what());
    }
  }

  ~impl() {
    sock.reset();
    ctx.close();
  }

  /// The head refused the handshake: what waits fails now, and so does every call until a
  /// handshake succeeds (zmq keeps trying; a head restarted with this key in its allowlist
  /// lets it in). On the socket thread.
  void on_refused(const std::string& why) {
    auto message = "the head refused this client: " + why +
                   (opts.curve.enabled() ? std::string{}
                                         : " (it wants a key: client_options::curve, or "
                                           "--key and --head-key)");
    std::vector<uint64_t> waiting;
    std::vector<task_id> ids;
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (refused.empty()) troupe::logger().warn("client: {}", message);
      refused = message;
      is_refused.store(true);
      for (auto& [corr, w] : submits) waiting.push_back(corr);
      for (auto& [corr, w] : statuses) waiting.push_back(corr);
      for (auto& [corr, w] : fetches) waiting.push_back(corr);
      for (auto& [id, t] : live) ids.push_back(id);
    }
    for (auto corr : waiting) fail_waiter(corr, message);
    for (auto id : ids) fail_live(id, errc::not_authorized, message);
  }

  /// Under mutex, before a call waits for the head: a refused client fails at once.
  void check_not_refused() const {
    if (!refused.empty()) throw client_error(refused);
  }

  void fail_waiter(uint64_t corr, const std::string& why) {
    std::lock_guard<std::mutex> guard{mutex};
    if (auto i = submits.find(corr); i != submits.end()) {
      i->second->handles.set_exception(std::make_exception_ptr(client_error(why)));
      submits.erase(i);
      forget_unclaimed_if_idle();
    }
    if (auto i = statuses.find(corr); i != statuses.end()) {
      i->second->set_exception(std::make_exception_ptr(client_error(why)));
      statuses.erase(i);
    }
    if (auto i = fetches.find(corr); i != fetches.end()) {
      i->second->done.set_exception(std::make_exception_ptr(client_error(why)));
      fetches.erase(i);
    }
  }

  /// The callback runs before the handle is ready: whoever waits on handles sees every
  /// callback done.
  void complete(task_result&& r, const live_task& t) {
    for (auto& other : t.same) complete(task_result{r}, other);
    if (t.callback && *t.callback) (*t.callback)(r);
    t.done->set(std::move(r));
  }

  void on_message(transport::multipart& m) {
    if (m.size() != 2) {
      error_count.fetch_add(1);
      troupe::logger().warn("client: a message of {} frames from the head, expected 2", m.size());
      return;
    }
    if (is_refused.load(std::memory_order_relaxed)) {  // a handshake went through since
      std::lock_guard<std::mutex> guard{mutex};
      refused.clear();
      is_refused.store(false);
    }
    wire::header h;
    try {
      h = wire::decode_header(m[0].data(), m[0].size(), lim);
      last_heard = steady::now();
      if (h.epoch != head_epoch) {
        if (head_epoch != 0) {
          troupe::logger().info(
              "client: the head is a new incarnation ({}, was {}): asking it "
              "about outstanding tasks",
              h.epoch, head_epoch);
          resync_now = true;
        }
        head_epoch = h.epoch;
      }
      switch (h.type) {
        case wire::msg_type::fetched:
          return on_fetched(h, m[1]);
        case wire::msg_type::submitted:
          return on_submitted(h, m[1]);
        case wire::msg_type::result:
          return on_result(m[1]);
        case wire::msg_type::status: {
          auto s = wire::decode<wire::status>(m[1].data(), m[1].size(), lim);
          std::lock_guard<std::mutex> guard{mutex};
          if (auto i = statuses.find(h.corr); i != statuses.end()) {
            i->second->set_value(std::move(s));
            statuses.erase(i);
          }
          return;
        }
        case wire::msg_type::error: {
          auto e = wire::decode<wire::error>(m[1].data(), m[1].size(), lim);
          error_count.fetch_add(1);
          troupe::logger().warn("client: the head refused message {}: {}: {}", h.corr,
                                to_string(e.code), e.message);
          fail_waiter(h.corr, std::string{"head: "} + to_string(e.code) + ": " + e.message);
          return;
        }
        default:
          error_count.fetch_add(1);
          troupe::logger().warn("client: unexpected '{}' message from the head", to_string(h.type));
      }
    } catch (const wire::decode_error& e) {
      error_count.fetch_add(1);
      troupe::logger().warn("client: undecodable message from the head: {}", e.what());
      if (h.corr) fail_waiter(h.corr, std::string{"undecodable reply: "} + e.what());
    }
  }

  /// The head does not know some tasks (it restarted without a journal, or compacted them
  /// away): their handles end here, or they would wait forever.
  void on_fetched(const wire::header& h, const zmq::message_t& body) {
    auto f = wire::decode<wire::fetched>(body.data(), body.size(), lim);
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (auto i = fetches.find(h.corr); i != fetches.end()) {  // a fetch() call's answer
        auto w = i->second;
        fetches.erase(i);
        w->reply.pending = f.pending;
        w->reply.unknown = f.unknown;
        w->done.set_value(std::move(w->reply));
      }
    }
    for (auto id : f.unknown)
      fail_live(id, errc::result_lost,
                "the head (incarnation " + std::to_string(head_epoch) + ") does not know task " +
                    std::to_string(id) +
                    ": it restarted without a journal, or dropped the result "
                    "(cluster.journal_keep_results, journal_keep_s)");
  }

  void fail_live(task_id id, errc code, const std::string& why) {
    live_task t;
    {
      std::lock_guard<std::mutex> guard{mutex};
      auto i = live.find(id);
      if (i == live.end()) return;
      t = std::move(i->second);
      live.erase(i);
    }
    task_result r;
    r.id = id;
    r.status = outcome::failed;
    r.error = {code, why};
    r.timings.finished = clock::now();
    complete(std::move(r), t);
  }

  /// On the socket thread, between messages: sends again what the head did not answer, asks
  /// about tasks when the head has been quiet, gives up after head_timeout.
  void on_tick() {
    auto now = steady::now();
    if (now < next_check && !resync_now) return;
    next_check = now + std::max(std::chrono::milliseconds{10}, opts.resync_interval / 4);
    std::vector<transport::multipart> again;
    std::vector<task_id> ask;
    std::vector<task_id> give_up;
    bool force = resync_now;
    resync_now = false;
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (submits.empty() && live.empty()) {
        last_heard = now;  // nothing outstanding: silence is fine
        return;
      }
      if (now - last_heard >= opts.head_timeout) {
        for (auto& [id, t] : live) give_up.push_back(id);
      } else {
        for (auto& [corr, w] : submits) {
          if (!force && now - w->sent < opts.resync_interval) continue;
          w->sent = now;
          transport::multipart copy;
          for (auto& f : w->frame) copy.emplace_back(f.data(), f.size());
          again.push_back(std::move(copy));
        }
        if (!live.empty() && (force || (now - last_heard >= opts.resync_interval &&
                                        now - last_fetch >= opts.resync_interval))) {
          last_fetch = now;
          ask.reserve(live.size());
          for (auto& [id, t] : live) ask.push_back(id);
        }
      }
    }
    for (auto id : give_up)
      fail_live(id, errc::head_unreachable,
                "no message from the head at " + sock->endpoint() + " for " +
                    std::to_string(opts.head_timeout.count()) +
                    " ms (client_options::head_timeout)");
    for (auto& m : again) sock->send(std::move(m));
    constexpr size_t per_fetch = 65536;
    for (size_t at = 0; at < ask.size(); at += per_fetch) {
      wire::fetch f;
      f.ids.assign(ask.begin() + long(at),
                   ask.begin() + long(std::min(ask.size(), at + per_fetch)));
      sock->send(framer.make(nullptr, wire::msg_type::fetch, f));
    }
  }

  void on_submitted(const wire::header& h, const zmq::message_t& body) {
    auto ids = wire::decode<wire::submitted>(body.data(), body.size(), lim);
    std::vector<std::pair<task_result, live_task>> ready;
    std::shared_ptr<submit_wait> w;
    std::vector<task_handle> handles;
    {
      std::lock_guard<std::mutex> guard{mutex};
      auto i = submits.find(h.corr);
      if (i == submits.end()) return;  // the caller gave up waiting
      w = i->second;
      submits.erase(i);
      handles.reserve(ids.ids.size());
      std::unordered_map<task_id, size_t> ready_at;  // ids of this reply already claimed
      for (auto id : ids.ids) {
        live_task t{std::make_shared<completion>(), w->callback, {}};
        handles.emplace_back(id, t.done);
        if (auto r = ready_at.find(id); r != ready_at.end()) {  // twice in one reply
          ready[r->second].second.same.push_back(std::move(t));
        } else if (auto u = unclaimed.find(id); u != unclaimed.end()) {
          ready_at[id] = ready.size();
          ready.emplace_back(std::move(u->second), std::move(t));
          unclaimed.erase(u);
        } else if (auto l = live.find(id); l != live.end()) {  // a key named a task we await
          l->second.same.push_back(std::move(t));
        } else {
          live.emplace(id, std::move(t));
        }
      }
      forget_unclaimed_if_idle();
    }
    w->handles.set_value(std::move(handles));
    for (auto& [r, t] : ready) complete(std::move(r), t);
  }

  void on_result(const zmq::message_t& body) {
    auto res = wire::decode<wire::result>(body.data(), body.size(), lim);
    // On this process's clock: the record is made now, the task was submitted its latency
    // (measured by the head) before; the run's times came relative to the message.
    auto now = clock::now();
    for (size_t i = 0; i < res.tasks.size(); ++i) {
      auto& tm = res.tasks[i].timings;
      tm.finished = now;
      // (a year at most: a head's odd value must not overflow the clock)
      if (i < res.latency_ms.size() && res.latency_ms[i] >= 0 && res.latency_ms[i] < 3.2e10)
        tm.submitted = now - std::chrono::duration_cast<duration>(
                                 std::chrono::duration<double, std::milli>(res.latency_ms[i]));
    }
    for (auto& r : res.tasks) {
      live_task t;
      {
        std::lock_guard<std::mutex> guard{mutex};
        for (auto& [corr, w] : fetches)  // a fetch() call asked for it: it gets a copy
          if (w->ids.count(r.id)) w->reply.finished.push_back(r);
        auto i = live.find(r.id);
        if (i == live.end()) {
          // Only a submit still waiting for its ids can own it; else it came twice (a fetch
          // after a restart re-sends what may also arrive live): the handle has its result.
          if (submits.empty()) {
            duplicate_count.fetch_add(1, std::memory_order_relaxed);
          } else if (unclaimed.size() < opts.max_unclaimed_results)
            unclaimed.emplace(r.id, std::move(r));
          else
            troupe::logger().warn("client: result of unknown task {} dropped ({} unclaimed)", r.id,
                                  unclaimed.size());
          continue;
        }
        t = std::move(i->second);
        live.erase(i);
      }
      complete(std::move(r), t);
    }
  }
};

client::client(const std::string& endpoint, client_options opts)
    : impl_(std::make_unique<impl>(endpoint, std::move(opts))) {}

client::~client() = default;

std::vector<task_handle> client::submit_frame(std::vector<task_spec> specs,
                                              std::shared_ptr<const result_callback> callback,
                                              std::optional<failure_policy> on_failure, bool gang) {
  auto w = std::make_shared<impl::submit_wait>();
  w->callback = std::move(callback);
  auto done = w->handles.get_future();
  auto id = impl_->framer.reserve_id();
  wire::submit msg;
  msg.tasks = std::move(specs);
  msg.token = impl_->token_base + id;
  msg.on_failure = on_failure;
  msg.gang = gang;
  auto frames = impl_->framer.make_with_id(id, wire::msg_type::submit, msg);
  for (auto& f : frames) w->frame.emplace_back(f.data(), f.size());
  w->sent = impl::steady::now();
  {
    std::lock_guard<std::mutex> guard{impl_->mutex};
    impl_->check_not_refused();
    impl_->submits.emplace(id, w);
  }
  if (!impl_->sock->send(std::move(frames))) {
    impl_->fail_waiter(id, "the client's outbound queue is full");
  }
  if (done.wait_for(impl_->opts.timeout) != std::future_status::ready) {
    impl_->fail_waiter(id, "");
    throw client_error("no answer from the head within " +
                       std::to_string(impl_->opts.timeout.count()) + " ms");
  }
  return done.get();
}

std::vector<task_handle> client::submit_batch(std::vector<task_spec> specs,
                                              result_callback on_done) {
  std::shared_ptr<const result_callback> callback;
  if (on_done) callback = std::make_shared<const result_callback>(std::move(on_done));
  auto cap = std::max<size_t>(1, impl_->opts.max_tasks_per_submit);
  auto budget = impl_->opts.max_payload_bytes;
  std::vector<size_t> sizes(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    sizes[i] = input_bytes(specs[i]);
    if (sizes[i] > budget)
      throw client_error("task " + std::to_string(i) + " of the batch: its input (payload and " +
                         "parameters) is " + std::to_string(sizes[i]) +
                         " bytes, over max_payload_bytes (" + std::to_string(budget) +
                         "); nothing was sent");
  }
  auto frame_of = [&](size_t first) {
    return frame_end(first, specs.size(), cap, budget, [&](size_t i) { return sizes[i]; });
  };
  if (has_links(specs))
    throw client_error("tasks with after or inputs are a graph: submit them with submit_graph");
  if (frame_of(0) == specs.size()) return submit_frame(std::move(specs), std::move(callback));
  // A head refuses larger submits (cluster.max_tasks_per_submit, and frames over its limit):
  // send several, each of at most cap tasks and max_payload_bytes of inputs.
  std::vector<task_handle> all;
  all.reserve(specs.size());
  for (size_t i = 0, end = 0; i < specs.size(); i = end) {
    end = frame_of(i);
    std::vector<task_spec> part(std::make_move_iterator(specs.begin() + long(i)),
                                std::make_move_iterator(specs.begin() + long(end)));
    try {
      auto hs = submit_frame(std::move(part), callback);
      all.insert(all.end(), hs.begin(), hs.end());
    } catch (const client_error& e) {
      if (all.empty()) throw;
      throw client_error(std::string{e.what()} + " (the first " + std::to_string(all.size()) +
                         " tasks of this batch were accepted)");
    }
  }
  return all;
}

void client::fits_one_submit(const std::vector<task_spec>& specs, const char* what) const {
  auto n = specs.size();
  auto a = std::string{what};
  if (n > impl_->opts.max_tasks_per_submit)
    throw client_error("the " + a + " has " + std::to_string(n) + " tasks; a " + a +
                       " travels in one submit of at most " +
                       std::to_string(impl_->opts.max_tasks_per_submit) +
                       " (max_tasks_per_submit, the head's cluster.max_tasks_per_submit); "
                       "nothing was sent");
  uint64_t bytes = 0;
  for (auto& s : specs) bytes += input_bytes(s);
  if (bytes > impl_->opts.max_payload_bytes)
    throw client_error("the " + a + "'s inputs are " + std::to_string(bytes) + " bytes; a " + a +
                       " travels in one submit of at most max_payload_bytes (" +
                       std::to_string(impl_->opts.max_payload_bytes) + "); nothing was sent");
}

graph_handle client::submit_graph(graph_spec graph, result_callback on_done) {
  linked_graph linked;
  if (auto why = link_graph(std::move(graph), linked))
    throw client_error("the graph was refused: " + why.message + "; nothing was sent");
  fits_one_submit(linked.specs, "graph");
  std::shared_ptr<const result_callback> callback;
  if (on_done) callback = std::make_shared<const result_callback>(std::move(on_done));
  auto handles = submit_frame(std::move(linked.specs), std::move(callback), linked.on_failure);
  return graph_handle{std::move(linked.names), std::move(handles)};
}

std::vector<task_handle> client::submit_gang(std::vector<task_spec> specs,
                                             result_callback on_done) {
  fits_one_submit(specs, "gang");
  std::shared_ptr<const result_callback> callback;
  if (on_done) callback = std::make_shared<const result_callback>(std::move(on_done));
  return submit_frame(std::move(specs), std::move(callback), failure_policy::cancel_graph, true);
}

void client::cancel(const graph_handle& graph) {
  wire::cancel msg;
  for (auto& t : graph.tasks())
    if (!t.ready()) msg.ids.push_back(t.id());
  if (!msg.ids.empty()) impl_->sock->send(impl_->framer.make(nullptr, wire::msg_type::cancel, msg));
}

task_handle client::submit(task_spec spec, result_callback on_done) {
  std::vector<task_spec> one;
  one.push_back(std::move(spec));
  return submit_batch(std::move(one), std::move(on_done)).front();
}

void client::cancel(task_id id) {
  impl_->sock->send(impl_->framer.make(nullptr, wire::msg_type::cancel, wire::cancel{{id}}));
}

wire::status client::status() {
  auto p = std::make_shared<std::promise<wire::status>>();
  auto done = p->get_future();
  auto id = impl_->framer.reserve_id();
  {
    std::lock_guard<std::mutex> guard{impl_->mutex};
    impl_->check_not_refused();
    impl_->statuses.emplace(id, p);
  }
  impl_->sock->send(
      impl_->framer.make_with_id(id, wire::msg_type::status_request, wire::status_request{}));
  if (done.wait_for(impl_->opts.timeout) != std::future_status::ready) {
    impl_->fail_waiter(id, "");
    throw client_error("no status from the head within " +
                       std::to_string(impl_->opts.timeout.count()) + " ms");
  }
  return done.get();
}

fetch_reply client::fetch(const std::vector<task_id>& ids) {
  auto w = std::make_shared<impl::fetch_wait>();
  w->ids.insert(ids.begin(), ids.end());
  auto done = w->done.get_future();
  auto id = impl_->framer.reserve_id();
  {
    std::lock_guard<std::mutex> guard{impl_->mutex};
    impl_->check_not_refused();
    impl_->fetches.emplace(id, w);
  }
  impl_->sock->send(impl_->framer.make_with_id(id, wire::msg_type::fetch, wire::fetch{ids}));
  if (done.wait_for(impl_->opts.timeout) != std::future_status::ready) {
    impl_->fail_waiter(id, "");
    throw client_error("no answer to a fetch from the head within " +
                       std::to_string(impl_->opts.timeout.count()) + " ms");
  }
  return done.get();
}

uint64_t client::errors() const {
  return impl_->error_count.load();
}

uint64_t client::duplicates() const {
  return impl_->duplicate_count.load();
}

}  // namespace troupe
