#pragma once
// CURVE keys and the ZAP handler that admits peers by key (docs/security.md).
//
// A key pair lives in a file written by `troupe keygen PATH`: PATH holds both keys and is
// readable by its owner only; PATH.pub holds the public key, to be copied to whoever must let
// the owner in. Both are TOML:  public_key = "<40 Z85 chars>"  secret_key = "<40 Z85 chars>".
// Keys are read from files, never from the command line (where `ps` would show them).
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace zmq {
class context_t;
class message_t;
class socket_t;
}  // namespace zmq

namespace troupe::transport {

/// A key file is missing, unreadable, malformed, or readable by others (secret keys only).
class key_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Z85 text, 40 characters each (zmq's curve keys).
struct key_pair {
  std::string public_key;
  std::string secret_key;
};

/// A fresh pair from libzmq (libsodium underneath).
key_pair generate_key_pair();
/// Writes PATH (both keys, mode 0600) and PATH.pub (the public key). Refuses to overwrite.
void write_key_pair(const std::string& path, const key_pair& keys);
/// Reads PATH written by write_key_pair; checks the public key matches the secret one and that
/// the file is not readable by group or others.
key_pair read_key_pair(const std::string& path);
/// A public key: 40 Z85 characters given as they are, or a file holding `public_key = "..."`
/// (a PATH.pub, or a key pair file).
std::string read_public_key(const std::string& text_or_path);
/// Whether s is 40 characters of the Z85 alphabet that decode to a 32-byte key.
bool is_z85_key(const std::string& s);

/// Client side of a CURVE connection: our pair and the server's public key.
struct curve_client {
  key_pair keys;
  std::string server_key;
  bool enabled() const { return !server_key.empty(); }
};

/// Sets a connecting socket's CURVE options (before it connects); nothing when not enabled.
void use_keys(zmq::socket_t& socket, const curve_client& keys);

/// Server side: our secret key and the ZAP domain the handler judges connections under.
struct curve_server {
  std::string secret_key;
  std::string zap_domain;
  bool enabled() const { return !secret_key.empty(); }
};

/// One key the handler lets in: its role (node, client, subscriber, admin) and name.
struct zap_peer {
  std::string role;
  std::string name;
  /// What the handler hands zmq as the connection's User-Id: "role:name". Every message from
  /// the connection carries it (zmq_msg_gets "User-Id").
  std::string user_id() const { return role + ':' + name; }
};

/// Answers libzmq's ZAP requests (RFC 27) for every CURVE server socket of one zmq context:
/// a connection is admitted when its key is in the allowlist and `admits(domain, peer)` says
/// yes; otherwise it is refused during the handshake (nothing it sends is ever delivered) and
/// the refusal is logged with the peer's address and key. Anything but CURVE is refused (fail
/// closed). Runs on its own thread, on a socket bound to inproc://zeromq.zap.01 of `ctx`; it
/// must exist before the server sockets bind.
class zap_handler {
 public:
  using admit_fn = std::function<bool(const std::string& domain, const zap_peer& peer)>;
  zap_handler(zmq::context_t& ctx, std::unordered_map<std::string, zap_peer> by_public_key,
              admit_fn admits, std::string name = "zap");
  ~zap_handler();
  zap_handler(const zap_handler&) = delete;
  zap_handler& operator=(const zap_handler&) = delete;

  /// Replaces the allowlist; thread-safe. A node learns its peers' keys from the head's welcome.
  void allow(std::unordered_map<std::string, zap_peer> by_public_key);

  uint64_t admitted() const;
  uint64_t refused() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The User-Id zmq attached to a received message (set by the ZAP handler), or "" when the
/// connection was not authenticated (no CURVE).
std::string user_id_of(zmq::message_t& frame);

}  // namespace troupe::transport
