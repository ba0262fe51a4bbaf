#include "deepdenoise/curve.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#ifndef _WIN32
#include <sys/stat.h>
#endif

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

/// `what` (of `where`) must be 40 Z85 characters that decode to a key.
void check_key(const std::string& key, const std::string& what, const std::string& where) {
    const std::string expected =
        where + ": expected the " + what + " as 40 Z85 characters, got ";
    if (key.size() != key_chars) {
        throw CurveError(expected + std::to_string(key.size()) + " characters");
    }
    for (char c : key) {
        if (z85_chars.find(c) == std::string_view::npos) {
            throw CurveError(expected + "a character outside Z85");
        }
    }
    // Each group of 5 is a base-85 number that must fit 32 bits (40 '#' do not);
    // checked here, not left to zmq_setsockopt's bare "Invalid argument".
    for (std::size_t g = 0; g < key_chars; g += 5) {
        std::uint64_t value = 0;
        for (std::size_t i = g; i < g + 5; ++i) value = value * 85 + z85_chars.find(key[i]);
        if (value > UINT32_MAX) {
            throw CurveError(where + ": the " + what + " is not a valid Z85 key");
        }
    }
}

/// The value of `name` (public-key, secret-key) in ZPL text: a line `name = "value"`
/// at any indentation. Unquoted, it runs to the end of the line less trailing blanks:
/// '#' is a Z85 character there, not a comment (as pyzmq reads it).
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
        return line.substr(p, line.find_last_not_of(" \t\r") + 1 - p);
    }
    return std::nullopt;
}

/// `path` with a leading `~` replaced by $HOME, as a shell would.
std::string expand_home(const std::string& path) {
    const char* home = std::getenv("HOME");
    if (home == nullptr || path.empty() || path[0] != '~' || (path.size() > 1 && path[1] != '/')) {
        return path;
    }
    return home + path.substr(1);
}

/// Whether the file's mode lets other users at it (the service warns of its own).
bool shared_file(const std::string& path) {
#ifdef _WIN32
    (void)path;  // no POSIX modes to check
    return false;
#else
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
#endif
}

std::string read_text(const std::string& path) {
    std::ifstream in(expand_home(path), std::ios::binary);
    if (!in) {
        throw CurveError("cannot read the CURVE key file " + path + ": " + std::strerror(errno));
    }
    // A certificate is a few hundred bytes; anything much bigger is not one.
    std::string text(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) throw CurveError("cannot read the CURVE key file " + path + ": read error");
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
        throw CurveError(path + (name == "secret-key"
                                     ? " holds no secret key: give the NAME.key_secret file, "
                                       "not the public NAME.key"
                                     : " holds no public-key: expected a CURVE certificate "
                                       "made by `deepdenoise keys NAME`"));
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
    keys.secret_shared = shared_file(expand_home(secret_file));
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
