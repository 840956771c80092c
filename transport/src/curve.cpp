#include "troupe/transport/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <zmq.hpp>

#include "troupe/model/log.hpp"
#include "troupe/model/log_limiter.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace troupe::transport {

namespace {

constexpr size_t z85_key_chars = 40;
constexpr size_t binary_key_bytes = 32;

std::string z85_of(const void* key32) {
  char text[z85_key_chars + 1];
  if (!zmq_z85_encode(text, static_cast<const uint8_t*>(key32), binary_key_bytes)) return {};
  return std::string(text, z85_key_chars);
}

toml::table parse_key_file(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw key_error(path + ":" + std::to_string(e.source().begin.line) +
                    ": not a key file: " + std::string{e.description()});
  }
}

std::string key_field(const toml::table& t, const std::string& path, const char* field) {
  auto v = t[field].value<std::string>();
  if (!v) throw key_error(path + ": no " + field + " (a file written by `troupe keygen`?)");
  if (!is_z85_key(*v))
    throw key_error(path + ": " + field + " is not a 40-character Z85 curve key");
  return *v;
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw key_error(path + ": cannot create: " + std::strerror(errno) +
                    (errno == EEXIST ? " (remove it first to replace the key)" : ""));
  auto left = text.size();
  const char* at = text.data();
  while (left > 0) {
    auto n = ::write(fd, at, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto err = errno;
      ::close(fd);
      throw key_error(path + ": cannot write: " + std::strerror(err));
    }
    at += n, left -= size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    throw key_error(path + ": cannot write: " + std::strerror(errno));
}

}  // namespace

bool is_z85_key(const std::string& s) {
  if (s.size() != z85_key_chars) return false;
  uint8_t out[binary_key_bytes];
  return zmq_z85_decode(out, s.c_str()) != nullptr;
}

key_pair generate_key_pair() {
  char pub[z85_key_chars + 1], sec[z85_key_chars + 1];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw key_error(std::string{"cannot make a curve key pair: "} + zmq_strerror(zmq_errno()) +
                    " (libzmq without CURVE?)");
  return {std::string(pub, z85_key_chars), std::string(sec, z85_key_chars)};
}

void write_key_pair(const std::string& path, const key_pair& keys) {
  auto header = "# written by `troupe keygen`";
  write_file(path,
             std::string{header} + ": a secret key, keep it readable by its owner only\n" +
                 "public_key = \"" + keys.public_key + "\"\nsecret_key = \"" + keys.secret_key +
                 "\"\n",
             0600);
  write_file(path + ".pub",
             std::string{header} + ": the public key of " + path +
                 ", to list in the head's [security] allowlist\npublic_key = \"" + keys.public_key +
                 "\"\n",
             0644);
}

key_pair read_key_pair(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw key_error(path + ": cannot read the key pair: " + std::strerror(errno));
  if (st.st_mode & 077)
    throw key_error(path + ": a secret key file must be readable by its owner only (chmod 600 " +
                    path + ")");
  auto t = parse_key_file(path);
  key_pair keys{key_field(t, path, "public_key"), key_field(t, path, "secret_key")};
  char derived[z85_key_chars + 1];
  if (zmq_curve_public(derived, keys.secret_key.c_str()) != 0 ||
      keys.public_key != std::string(derived, z85_key_chars))
    throw key_error(path + ": public_key does not belong to secret_key");
  return keys;
}

std::string read_public_key(const std::string& text_or_path) {
  if (is_z85_key(text_or_path)) return text_or_path;
  if (::access(text_or_path.c_str(), R_OK) != 0)
    throw key_error(text_or_path +
                    ": neither a 40-character Z85 public key nor a readable key file");
  auto t = parse_key_file(text_or_path);
  return key_field(t, text_or_path, "public_key");
}

void use_keys(zmq::socket_t& sock, const curve_client& c) {
  if (!c.enabled()) return;
  sock.set(zmq::sockopt::curve_serverkey, c.server_key);
  sock.set(zmq::sockopt::curve_publickey, c.keys.public_key);
  sock.set(zmq::sockopt::curve_secretkey, c.keys.secret_key);
}

std::string user_id_of(zmq::message_t& frame) {
  // zmq_msg_gets fails (EINVAL) on a connection without ZAP: not authenticated.
  const char* v = zmq_msg_gets(frame.handle(), "User-Id");
  return v ? std::string{v} : std::string{};
}

struct zap_handler::impl {
  std::mutex mutex;  ///< guards by_key: allow() replaces it while requests are judged
  std::unordered_map<std::string, zap_peer> by_key;
  admit_fn admits;
  std::string name;
  std::unique_ptr<socket_thread> sock;
  std::atomic<uint64_t> admitted{0}, refused{0};
  // A peer retrying a bad key every 100 ms, or a flood of garbage handshakes, must not flood
  // the log: the lines are limited, the rest counted and summed up.
  log_limiter refusal_log;

  void log_refusal(const std::string& address, const std::string& key, const std::string& why) {
    refused.fetch_add(1, std::memory_order_relaxed);
    uint64_t unshown = 0;
    bool log = refusal_log.allow(unshown);
    if (unshown > 0)
      troupe::logger().warn("{}: {} more refused connection(s) not shown", name, unshown);
    if (!log) return;
    troupe::logger().warn("{}: refused a connection from {} (key {}): {}", name,
                          address.empty() ? "?" : address, key.empty() ? "none" : key, why);
  }

  // Request (through the ROUTER): routing id, empty, "1.0", request id, domain, address,
  // identity, mechanism, credentials...
  void on_request(multipart& m) {
    if (m.size() < 8 || m[1].size() != 0) return;  // not from libzmq's ZAP client
    auto text = [&](size_t i) {
      return std::string(static_cast<const char*>(m[i].data()), m[i].size());
    };
    auto version = text(2), request_id = text(3), domain = text(4), address = text(5),
         mechanism = text(7);
    std::string status = "400", status_text, user;
    std::string key;
    if (version != "1.0") {
      status = "500", status_text = "unsupported ZAP version";
    } else if (mechanism != "CURVE") {
      status_text = "mechanism " + mechanism + " is not accepted (CURVE only)";
      log_refusal(address, "", status_text);
    } else if (m.size() < 9 || m[8].size() != binary_key_bytes) {
      status_text = "no client key";
      log_refusal(address, "", status_text);
    } else {
      key = z85_of(m[8].data());
      std::optional<zap_peer> found;
      {
        std::lock_guard<std::mutex> guard{mutex};
        if (auto i = by_key.find(key); i != by_key.end()) found = i->second;
      }
      if (!found) {
        status_text = "key not in the allowlist";
        log_refusal(address, key, status_text);
      } else if (!admits(domain, *found)) {
        status_text = "the " + found->role + " key of '" + found->name + "' is not let in here (" +
                      domain + ")";
        log_refusal(address, key, status_text);
      } else {
        status = "200", status_text = "OK", user = found->user_id();
        admitted.fetch_add(1, std::memory_order_relaxed);
      }
    }
    multipart reply;
    reply.emplace_back(m[0].data(), m[0].size());
    reply.emplace_back();
    reply.emplace_back("1.0", 3);
    reply.emplace_back(request_id.data(), request_id.size());
    reply.emplace_back(status.data(), status.size());
    reply.emplace_back(status_text.data(), status_text.size());
    reply.emplace_back(user.data(), user.size());
    reply.emplace_back();  // no metadata
    sock->send(std::move(reply));
  }
};

zap_handler::zap_handler(zmq::context_t& ctx, std::unordered_map<std::string, zap_peer> by_key,
                         admit_fn admits, std::string name)
    : impl_(std::make_unique<impl>()) {
  impl_->by_key = std::move(by_key);
  impl_->admits = std::move(admits);
  impl_->name = std::move(name);
  socket_options so;
  so.type = zmq::socket_type::router;
  so.endpoint = "inproc://zeromq.zap.01";
  so.bind = true;
  so.name = impl_->name;
  so.max_message_bytes = 64 << 10;  // a request is a few short frames and a 32-byte key
  auto* self = impl_.get();
  impl_->sock =
      std::make_unique<socket_thread>(ctx, so, [self](multipart& m) { self->on_request(m); });
}

zap_handler::~zap_handler() = default;

void zap_handler::allow(std::unordered_map<std::string, zap_peer> by_public_key) {
  std::lock_guard<std::mutex> guard{impl_->mutex};
  impl_->by_key = std::move(by_public_key);
}

uint64_t zap_handler::admitted() const {
  return impl_->admitted.load();
}
uint64_t zap_handler::refused() const {
  return impl_->refused.load();
}

}  // namespace troupe::transport
