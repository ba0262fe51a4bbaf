// CURVE keys for a service with [security]: its sockets are CURVE servers (encrypted)
// that let in only the clients whose public key it allows. `deepdenoise keys NAME`
// writes NAME.key (public) and NAME.key_secret (the pair); the service's public key is
// service.key. A refused key gets no reply at all (ZeroMQ drops the handshake), so it
// looks like a timeout.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include <zmq.hpp>

namespace deepdenoise {

/// A key file that is missing or not one (the message names it), a key that is not
/// 40 Z85 characters, connecting without the service's key, or a libzmq without CURVE.
class CurveError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// This end's key pair and, when it connects, the service's public key (all Z85).
struct CurveKeys {
    std::string public_key;
    std::string secret_key;
    std::string server_key;  ///< empty when this end binds (a CURVE server)
    /// Set by from_files: other users may read the NAME.key_secret file (its mode has
    /// group or other bits, as pyzmq writes it). The library prints nothing.
    bool secret_shared = false;

    /// Whether a program should warn that the secret key file wants `chmod 600`.
    bool secret_readable_by_others() const { return secret_shared; }

    /// Read NAME.key_secret (this end) and, to connect, service.key.
    static CurveKeys from_files(const std::string& secret_file,
                                const std::optional<std::string>& server_file = std::nullopt);

    /// Set the keys on `socket` before it binds (a CURVE server: the service connects
    /// with its security.input_server_key) or connects (a client of server_key).
    void apply(zmq::socket_t& socket, bool bind) const;
};

}  // namespace deepdenoise
