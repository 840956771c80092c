// CURVE keys in files, and the ZAP handler that lets peers in by key (docs/security.md).
#include "troupe/transport/curve.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

#include "troupe/transport/socket_thread.hpp"

namespace troupe::transport {
namespace {

using namespace std::chrono_literals;

std::string fresh_path(const std::string& name) {
  auto path = ::testing::TempDir() + "troupe_curve_" + std::to_string(getpid()) + "_" + name;
  std::remove(path.c_str());
  std::remove((path + ".pub").c_str());
  return path;
}

std::string text(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const key_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(KeyFiles, AWrittenPairReadsBackAndItsSecretFileIsTheOwnersOnly) {
  auto path = fresh_path("pair");
  auto keys = generate_key_pair();
  write_key_pair(path, keys);
  auto back = read_key_pair(path);
  EXPECT_EQ(back.public_key, keys.public_key);
  EXPECT_EQ(back.secret_key, keys.secret_key);
  EXPECT_EQ(read_public_key(path + ".pub"), keys.public_key);
  EXPECT_EQ(read_public_key(keys.public_key), keys.public_key);  // the key itself, as text
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The public file holds no secret.
  std::ifstream pub{path + ".pub"};
  std::string all((std::istreambuf_iterator<char>(pub)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all.find(keys.secret_key), std::string::npos);
}

TEST(KeyFiles, AnExistingPairIsNotOverwritten) {
  auto path = fresh_path("twice");
  write_key_pair(path, generate_key_pair());
  auto first = read_key_pair(path);
  auto why = error_of([&] { write_key_pair(path, generate_key_pair()); });
  EXPECT_NE(why.find(path), std::string::npos) << why;
  EXPECT_EQ(read_key_pair(path).secret_key, first.secret_key);
}

TEST(KeyFiles, ASecretKeyOthersCanReadIsRefusedNamingTheFix) {
  auto path = fresh_path("open");
  write_key_pair(path, generate_key_pair());
  chmod(path.c_str(), 0644);
  auto why = error_of([&] { read_key_pair(path); });
  EXPECT_NE(why.find("chmod 600 " + path), std::string::npos) << why;
}

TEST(KeyFiles, BadFilesAreRefusedNamingTheFile) {
  auto path = fresh_path("bad");
  { std::ofstream{path} << "public_key = \"not a key\"\n"; }
  chmod(path.c_str(), 0600);
  auto why = error_of([&] { read_public_key(path); });
  EXPECT_NE(why.find(path), std::string::npos) << why;
  EXPECT_NE(why.find("Z85"), std::string::npos) << why;
  // A pair whose halves do not belong together.
  auto a = generate_key_pair(), b = generate_key_pair();
  auto mixed = fresh_path("mixed");
  write_key_pair(mixed, {a.public_key, b.secret_key});
  why = error_of([&] { read_key_pair(mixed); });
  EXPECT_NE(why.find("does not belong"), std::string::npos) << why;
  why = error_of([&] { read_public_key(fresh_path("missing")); });
  EXPECT_NE(why.find("missing"), std::string::npos) << why;
}

/// A CURVE server socket behind a ZAP handler that lets in one client key, and what arrives.
struct guarded_server {
  zmq::context_t ctx;
  key_pair server = generate_key_pair(), allowed = generate_key_pair();
  zap_handler zap{ctx,
                  {{allowed.public_key, zap_peer{"client", "alice"}}},
                  [](const std::string& domain, const zap_peer&) { return domain == "test"; }};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::string>> got;  // payload, User-Id
  std::unique_ptr<socket_thread> router;

  explicit guarded_server(const std::string& domain = "test") {
    socket_options so;
    so.type = zmq::socket_type::router;
    so.endpoint = "tcp://127.0.0.1:*";
    so.bind = true;
    so.server_keys = {server.secret_key, domain};
    router = std::make_unique<socket_thread>(ctx, so, [this](multipart& m) {
      std::lock_guard<std::mutex> g{mu};
      got.emplace_back(text(m.back()), user_id_of(m.back()));
      cv.notify_all();
    });
  }
};

/// A DEALER that sends `payload` and reports a failed handshake.
struct dealer_client {
  std::mutex mu;
  std::condition_variable cv;
  std::string refused;
  std::unique_ptr<socket_thread> sock;

  dealer_client(zmq::context_t& ctx, const std::string& endpoint, curve_client keys) {
    socket_options so;
    so.endpoint = endpoint;
    so.client_keys = std::move(keys);
    so.on_handshake_failed = [this](const std::string& why) {
      std::lock_guard<std::mutex> g{mu};
      if (refused.empty()) refused = why;
      cv.notify_all();
    };
    sock = std::make_unique<socket_thread>(ctx, so, [](multipart&) {});
  }
  std::string wait_refused() {
    std::unique_lock<std::mutex> lock{mu};
    cv.wait_for(lock, 10s, [&] { return !refused.empty(); });
    return refused;
  }
};

TEST(ZapHandler, AnAllowedKeyGetsInAndItsMessagesCarryItsIdentity) {
  guarded_server s;
  zmq::context_t ctx;
  dealer_client c{ctx, s.router->endpoint(), {s.allowed, s.server.public_key}};
  c.sock->send({"hello"});
  std::unique_lock<std::mutex> lock{s.mu};
  ASSERT_TRUE(s.cv.wait_for(lock, 10s, [&] { return !s.got.empty(); }));
  EXPECT_EQ(s.got[0].first, "hello");
  EXPECT_EQ(s.got[0].second, "client:alice");
  EXPECT_EQ(s.zap.admitted(), 1u);
}

TEST(ZapHandler, AnUnknownKeyIsRefusedDuringTheHandshakeAndNothingItSendsArrives) {
  guarded_server s;
  zmq::context_t ctx;
  dealer_client stranger{ctx, s.router->endpoint(), {generate_key_pair(), s.server.public_key}};
  stranger.sock->send({"let me in"});
  auto why = stranger.wait_refused();
  EXPECT_NE(why.find("refused this connection's key"), std::string::npos) << why;
  // The allowed client's message arrives after the stranger's would have: none of its came.
  dealer_client friendly{ctx, s.router->endpoint(), {s.allowed, s.server.public_key}};
  friendly.sock->send({"me"});
  std::unique_lock<std::mutex> lock{s.mu};
  ASSERT_TRUE(s.cv.wait_for(lock, 10s, [&] { return !s.got.empty(); }));
  for (auto& [payload, user] : s.got) EXPECT_EQ(payload, "me");
  EXPECT_GE(s.zap.refused(), 1u);
}

TEST(ZapHandler, APeerWithoutKeysIsRefused) {
  guarded_server s;
  zmq::context_t ctx;
  dealer_client plain{ctx, s.router->endpoint(), {}};
  plain.sock->send({"plain"});
  auto why = plain.wait_refused();
  // zmq names the mismatch, or the server just hangs up (a run of those says the same).
  EXPECT_TRUE(why.find("another security mechanism") != std::string::npos ||
              why.find("it may want CURVE keys") != std::string::npos)
      << why;
  std::lock_guard<std::mutex> g{s.mu};
  EXPECT_TRUE(s.got.empty());
}

TEST(ZapHandler, AClientWithTheWrongServerKeyIsToldSo) {
  guarded_server s;
  zmq::context_t ctx;
  dealer_client lost{ctx, s.router->endpoint(), {s.allowed, generate_key_pair().public_key}};
  lost.sock->send({"hello"});
  auto why = lost.wait_refused();
  EXPECT_NE(why.find("is this its public key"), std::string::npos) << why;
  std::lock_guard<std::mutex> g{s.mu};
  EXPECT_TRUE(s.got.empty());
}

TEST(ZapHandler, AKeyIsRefusedInADomainItsRoleIsNotLetInto) {
  guarded_server s{"elsewhere"};  // the handler admits domain "test" only
  zmq::context_t ctx;
  dealer_client c{ctx, s.router->endpoint(), {s.allowed, s.server.public_key}};
  c.sock->send({"hello"});
  auto why = c.wait_refused();
  EXPECT_NE(why.find("refused"), std::string::npos) << why;
  std::lock_guard<std::mutex> g{s.mu};
  EXPECT_TRUE(s.got.empty());
}

}  // namespace
}  // namespace troupe::transport
