// CURVE keys without a service: CurveKeys::from_files reads pyzmq's certificate files (as
// `deepdenoise keys` writes them) and refuses, naming the file, a missing one, a
// public-only one where the secret is needed and a key that is not 40 Z85 characters;
// connecting without the service's key is refused. Over loopback TCP: a bound publisher
// is a CURVE server its CURVE subscriber gets frames from, and a Control that timed out
// replaces its socket with the keys applied again.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <deepdenoise/client.hpp>
#include <zmq_addon.hpp>

#include "checks.hpp"

namespace dd = deepdenoise;
using namespace std::chrono_literals;
using checks::answered;
using checks::check;
using checks::failures;
using checks::require;

namespace {

// Two key pairs made once with pyzmq's zmq.curve_keypair().
const std::string client_public = "/Sl=s5Bi3.Citie]5yUoQX!jlR#5ml-0%cFIRrP9";
const std::string client_secret = "f67cQ>i0L$7sX/&h%MU1u]nID6:B3U1qJK}6?2bf";
const std::string server_public = "&2K9q<&hNX)sB46GB:7muENZx5M1:ti[8:^Bs(0B";
const std::string server_secret = "@C7.=KcjyIqRnD&jkj+/:xWo=29KknEZL]C2=PG2";

std::string dir;
std::vector<std::string> written;  // removed at the end

/// A certificate file as pyzmq writes it (no secret: a public NAME.key); its path.
std::string write_cert(const std::string& name, const std::string& public_key,
                       const std::string& secret_key = "") {
    std::string path = dir + "/" + name;
    std::ofstream out(path);
    out << "#   ****  Generated on 2026-01-01 00:00:00 by pyzmq  ****\n"
        << "#   ZeroMQ CURVE " << (secret_key.empty() ? "Public" : "**Secret**")
        << " Certificate\n#   Exchange securely, or use a secure mechanism to verify the "
           "contents\n\nmetadata\ncurve\n    public-key = \""
        << public_key << "\"\n";
    if (!secret_key.empty()) out << "    secret-key = \"" << secret_key << "\"\n";
    written.push_back(path);
    return path;
}

/// The CurveError message of `body`; fails when it throws none.
std::string curve_error(const std::function<void()>& body) {
    try {
        body();
    } catch (const dd::CurveError& e) {
        return e.what();
    }
    throw std::runtime_error("no CurveError");
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

int main() {
    if (!zmq_has("curve")) {
        check("without CURVE in libzmq the keys are refused", [] {
            require(has(curve_error([] { dd::CurveKeys::from_files("any"); }), "without CURVE"),
                    "message");
        });
        std::cout << (failures == 0 ? "all curve checks passed" : "curve checks failed") << "\n";
        return failures == 0 ? 0 : 1;
    }
    char pattern[] = "/tmp/dd_curve_test_XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    dir = pattern;
    const std::string secret = write_cert("rig.key_secret", client_public, client_secret);
    const std::string server = write_cert("service.key", server_public);

    check("a secret file and the service's public file", [&] {
        dd::CurveKeys keys = dd::CurveKeys::from_files(secret, server);
        require(keys.public_key == client_public && keys.secret_key == client_secret, "pair");
        require(keys.server_key == server_public, "server key");
        require(dd::CurveKeys::from_files(secret).server_key.empty(), "binding: no server key");
    });

    check("the public file where the secret one is needed", [&] {
        std::string message = curve_error([&] { dd::CurveKeys::from_files(server, server); });
        require(has(message, "service.key holds no secret key: give the NAME.key_secret file, "
                             "not the public NAME.key"),
                message);
    });

    check("a key that is not 40 Z85 characters", [&] {
        std::string short_key = write_cert("short.key_secret", client_public,
                                           client_secret.substr(0, 39));
        std::string message = curve_error([&] { dd::CurveKeys::from_files(short_key); });
        require(has(message, "short.key_secret: expected the secret-key as 40 Z85 characters, "
                             "got 39 characters"),
                message);
        std::string not_z85 = write_cert("bad.key", client_public.substr(0, 39) + "\\");
        message = curve_error([&] { dd::CurveKeys::from_files(secret, not_z85); });
        require(has(message, "bad.key: expected the public-key as 40 Z85 characters, got a "
                             "character outside Z85"),
                message);
        // 40 Z85 characters that decode to no key: '#' is 84, and 84 * 85^4 > 2^32 - 1
        std::string hashes = write_cert("hashes.key", std::string(40, '#'));
        message = curve_error([&] { dd::CurveKeys::from_files(secret, hashes); });
        require(has(message, "hashes.key: the public-key is not a valid Z85 key"), message);
    });

    check("an unquoted value runs to the end of the line ('#' is Z85)", [&] {
        std::string path = dir + "/unquoted.key_secret";
        std::ofstream(path) << "curve\n    public-key = " << client_public << "  \r\n"
                            << "    secret-key = " << client_secret << "\t\n";
        written.push_back(path);
        dd::CurveKeys keys = dd::CurveKeys::from_files(path);
        require(keys.public_key == client_public && keys.secret_key == client_secret,
                keys.public_key);
    });

    check("a secret file other users may read is said, not refused", [&] {
        std::string path = write_cert("shared.key_secret", client_public, client_secret);
        ::chmod(path.c_str(), 0644);  // as pyzmq's create_certificates writes it
        require(dd::CurveKeys::from_files(path).secret_readable_by_others(), "0644");
        ::chmod(path.c_str(), 0600);
        require(!dd::CurveKeys::from_files(path).secret_readable_by_others(), "0600");
    });

    check("~/ is the home folder", [&] {
        write_cert("home.key_secret", client_public, client_secret);
        const char* home = std::getenv("HOME");
        const std::string saved = home != nullptr ? home : "";
        ::setenv("HOME", dir.c_str(), 1);
        dd::CurveKeys keys = dd::CurveKeys::from_files("~/home.key_secret");
        if (home != nullptr) {
            ::setenv("HOME", saved.c_str(), 1);
        } else {
            ::unsetenv("HOME");
        }
        require(keys.secret_key == client_secret, "secret key");
    });

    check("a missing file is named", [&] {
        std::string missing = dir + "/missing.key_secret";
        std::string message = curve_error([&] { dd::CurveKeys::from_files(missing, server); });
        require(has(message, "cannot read the CURVE key file ") &&
                    has(message, "missing.key_secret: "),
                message);
        message = curve_error([&] { dd::CurveKeys::from_files(secret, missing); });
        require(has(message, "missing.key_secret"), message);
    });

    check("connecting needs the service's key", [&] {
        dd::CurveKeys keys = dd::CurveKeys::from_files(secret);
        std::string message = curve_error([&] {
            dd::Subscriber sub("tcp://127.0.0.1:5556", {"denoised"}, keys);
        });
        require(has(message, "service.key"), message);
        message = curve_error([&] { dd::Control control("tcp://127.0.0.1:5557", 1s, keys); });
        require(has(message, "service.key"), message);
    });

    check("a bound publisher is a CURVE server; its CURVE subscriber gets the frame", [&] {
        dd::PublisherOptions options;
        options.curve = dd::CurveKeys{server_public, server_secret, ""};
        dd::Publisher pub("tcp://127.0.0.1:*", options);
        dd::Subscriber sub(pub.endpoint(), {"frame"}, dd::CurveKeys::from_files(secret, server));
        pub.wait_for_subscriber(30s);  // the subscription comes through the handshake
        const std::uint16_t pixels[4] = {1, 2, 3, 65535};
        pub.send_frame(pixels, dd::Shape{2, 2}, "s", 3);
        std::optional<dd::Message> msg = sub.recv(30s);
        require(msg.has_value(), "no message");
        require(msg->pixels<std::uint16_t>()(1, 1) == 65535, "pixels");
    });

    check("with keys, a send timeout asks whether the key is allowed", [&] {
        dd::PublisherOptions options;
        options.mode = dd::PublisherOptions::Mode::push;
        options.bind = false;
        options.send_timeout = 50ms;
        options.linger = 0ms;
        options.curve = dd::CurveKeys::from_files(secret, server);
        dd::Publisher pub("tcp://127.0.0.1:9", options);  // nothing there: it times out
        try {
            pub.start("s");
            throw std::runtime_error("a send with no peer did not time out");
        } catch (const dd::TimeoutError& e) {
            require(has(e.what(), " Is this client's public key in the service's "
                                  "security.clients folder?"),
                    e.what());
        }
    });

    check("a Control that timed out reconnects with its keys", [&] {
        zmq::socket_t service(dd::default_context(), zmq::socket_type::router);
        service.set(zmq::sockopt::linger, 0);
        service.set(zmq::sockopt::curve_server, true);
        service.set(zmq::sockopt::curve_secretkey, zmq::buffer(server_secret.c_str(), 41));
        service.bind("tcp://127.0.0.1:*");
        const std::string endpoint = service.get(zmq::sockopt::last_endpoint);
        dd::Control control(endpoint, 2000ms, dd::CurveKeys::from_files(secret, server));
        try {
            control.status();  // the service is silent
            throw std::runtime_error("a silent service gave a reply");
        } catch (const dd::TimeoutError&) {
        }
        // Now answer every request (the first one's socket is closed: its reply is lost).
        // A replacement socket without the keys would fail the handshake: no reply.
        dd::Map reply = answered(service, [&] { return control.pause(); });
        require(reply.at("paused").as_bool(), "reply");
    });

    for (const std::string& path : written) std::remove(path.c_str());
    ::rmdir(dir.c_str());
    std::cout << (failures == 0 ? "all curve checks passed" : "curve checks failed") << "\n";
    return failures == 0 ? 0 : 1;
}
