#include "deepdenoise/curve.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace deepdenoise {

namespace {

constexpr std::size_t key_chars = 40;
constexpr std::string_view z85_chars =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

void require_curve() {
    if (!zmq_has("curve")) {
        throw CurveError(
            "this libzmq is built without CURVE (zmq_has(\"curve\") is false): rebuild it "
            "with libsodium");
    }
}

/// `what` (of `where`) must be 40 Z85 characters.
void check_key(const std::string& key, const std::string& what, const std::string& where) {
    if (key.size() != key_chars) {
        throw CurveError(where + ": " + what + " is " + std::to_string(key.size()) +
                         " characters, expected 40 Z85 characters");
    }
    for (char c : key) {
        if (z85_chars.find(c) == std::string_view::npos) {
            throw CurveError(where + ": " + what + " holds '" + std::string(1, c) +
                             "', not a Z85 character");
        }
    }
    std::uint8_t binary[32];
    if (zmq_z85_decode(binary, key.c_str()) == nullptr) {  // a group above 2^32
        throw CurveError(where + ": " + what + " is not valid Z85");
    }
}

/// The value of `name` (public-key, secret-key) in ZPL text: a line `name = "value"`,
/// quotes optional, at any indentation.
std::optional<std::string> zpl_value(const std::string& text, const std::string& name) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::size_t p = line.find_first_not_of(" \t");
        if (p == std::string::npos || line.compare(p, name.size(), name) != 0) continue;
        p = line.find_first_not_of(" \t", p + name.size());
        if (p == std::string::npos || line[p] != '=') continue;
        p = line.find_first_not_of(" \t", p + 1);
        if (p == std::string::npos) return std::string();
        if (line[p] == '"' || line[p] == '\'') {
            std::size_t end = line.find(line[p], p + 1);
            return line.substr(p + 1, end == std::string::npos ? end : end - p - 1);
        }
        return line.substr(p, line.find_first_of(" \t\r#", p) - p);
    }
    return std::nullopt;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw CurveError(path + ": cannot read the CURVE key file (" + std::strerror(errno) +
                         ")");
    }
    // A certificate is a few hundred bytes; anything much bigger is not one.
    std::string text(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) throw CurveError(path + ": cannot read the CURVE key file");
    if (text.size() > 65536 || text.find('\0') != std::string::npos) {
        throw CurveError(path + ": not a CURVE key file (expected a small text certificate "
                                "made by `deepdenoise keys NAME`)");
    }
    return text;
}

/// The named key of the certificate at `path`.
std::string load_key(const std::string& path, const std::string& text, const std::string& name) {
    std::optional<std::string> key = zpl_value(text, name);
    if (!key) {
        throw CurveError(path + " holds no " + name +
                         (name == "secret-key"
                              ? ": give the NAME.key_secret file, not the public NAME.key"
                              : ": expected a CURVE certificate made by `deepdenoise keys NAME`"));
    }
    check_key(*key, name, path);
    return *key;
}

}  // namespace

CurveKeys CurveKeys::from_files(const std::string& secret_file,
                                const std::optional<std::string>& server_file) {
    require_curve();
    CurveKeys keys;
    std::string text = read_text(secret_file);
    keys.public_key = load_key(secret_file, text, "public-key");
    keys.secret_key = load_key(secret_file, text, "secret-key");
    if (server_file) {  // a secret file works here too: only its public key is read
        keys.server_key = load_key(*server_file, read_text(*server_file), "public-key");
    }
    return keys;
}

void CurveKeys::apply(zmq::socket_t& socket, bool bind) const {
    require_curve();
    // The keys may have been filled by hand: check them as from_files does.
    check_key(public_key, "public_key", "CURVE keys");
    check_key(secret_key, "secret_key", "CURVE keys");
    if (!bind && server_key.empty()) {
        throw CurveError(
            "expected the service's public key (service.key) to connect: "
            "CurveKeys::from_files(secret_file, server_file)");
    }
    if (!bind) check_key(server_key, "server_key", "CURVE keys");
    // Z85 keys go in as 41 bytes, NUL included (zmq_setsockopt's documented form).
    auto z85 = [](const std::string& key) { return zmq::buffer(key.c_str(), key_chars + 1); };
    socket.set(zmq::sockopt::curve_publickey, z85(public_key));
    socket.set(zmq::sockopt::curve_secretkey, z85(secret_key));
    if (bind) {
        socket.set(zmq::sockopt::curve_server, true);
    } else {
        socket.set(zmq::sockopt::curve_serverkey, z85(server_key));
    }
}

}  // namespace deepdenoise
