// The socket classes without a service, over inproc: the XPUB publisher waits for its
// subscriber, a subscriber reads the frame in place, a PUSH send without a peer
// times out (also a PUSH that connects, over loopback TCP: frames are queued only on a
// live connection), and a Control that timed out replaces its REQ socket and works again.
// Also: output is decoded against the output bounds (PROTOCOL.md, section 7).
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

// A loopback port that nothing listens on (bound, read, closed at once).
int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    if (fd >= 0) ::close(fd);
    if (port < 0) throw std::runtime_error("no free loopback port");
    return port;
}

}  // namespace

int main() {
    check("pub mode waits for a subscriber, then the frame arrives whole", [] {
        dd::Publisher pub("inproc://pub-test");  // XPUB, bound
        require(pub.subscribers() == 0, "no subscriber yet");
        dd::Subscriber sub("inproc://pub-test", {"frame"});
        pub.wait_for_subscriber(5s);
        const std::int16_t pixels[6] = {-3, -2, -1, 0, 1, 32767};
        dd::FrameOptions options;
        options.t_ns = 1'700'000'000'000'000'123ull;
        options.meta = dd::Map{{"exposure_ms", 12.5}, {"note", nullptr}};
        pub.send_frame(pixels, dd::Shape{2, 3}, "cam-1", 42, options);
        std::optional<dd::Message> msg = sub.recv(5s);
        require(msg.has_value(), "no message within 5 s");
        require(msg->topic == "frame" && msg->kind() == "frame", "topic and kind");
        require(msg->header.at("index").as_uint64() == 42, "index");
        require(msg->header.at("t_ns").as_uint64() == *options.t_ns, "t_ns");
        require(msg->header.at("meta").as_map() == *options.meta, "meta");
        dd::PixelView<std::int16_t> view = msg->pixels<std::int16_t>();
        require(view.rows() == 2 && view.cols() == 3 && view(0, 0) == -3 && view(1, 2) == 32767,
                "pixels");
        require(!sub.recv(50ms).has_value(), "a timeout gives no message");
    });

    check("zero-copy send of a moved vector", [] {
        dd::Publisher pub("inproc://zero-copy");
        dd::Subscriber sub("inproc://zero-copy", {"frame"});
        pub.wait_for_subscriber(5s);
        pub.send_frame(std::vector<float>{0.5f, -1.25f}, dd::Shape{1, 2}, "s", 0);
        std::optional<dd::Message> msg = sub.recv(5s);
        require(msg && msg->pixels<float>()[1] == -1.25f, "pixels");
    });

    check("a bind or connect that fails names the endpoint", [] {
        zmq::socket_t taken(dd::default_context(), zmq::socket_type::pull);
        taken.set(zmq::sockopt::linger, 0);
        taken.bind("tcp://127.0.0.1:*");
        std::string endpoint = taken.get(zmq::sockopt::last_endpoint);
        try {
            dd::Publisher pub(endpoint);
            throw std::runtime_error("bound a port in use");
        } catch (const dd::EndpointError& e) {
            require(std::string(e.what()).find("cannot bind " + endpoint) != std::string::npos,
                    std::string("names the endpoint: ") + e.what());
        }
        try {
            dd::Control control("127.0.0.1:5557");
            throw std::runtime_error("connected to an endpoint without a scheme");
        } catch (const dd::EndpointError& e) {
            require(std::string(e.what()).find("expected an endpoint like tcp://") !=
                        std::string::npos,
                    std::string("says the form: ") + e.what());
        }
    });

    check("a TCP port libzmq would take modulo 65536 is refused", [] {
        // libzmq binds tcp://127.0.0.1:99999 on port 34463, or waits there for a connect
        for (const std::string endpoint :
             {"tcp://127.0.0.1:99999", "tcp://127.0.0.1:65536", "tcp://127.0.0.1"}) {
            const std::string says = "expected a TCP endpoint tcp://host:port with a port of";
            try {
                dd::Control control(endpoint);
                throw std::runtime_error("connected to " + endpoint);
            } catch (const dd::EndpointError& e) {
                require(std::string(e.what()).find("cannot connect to " + endpoint + ": " +
                                                   says) != std::string::npos,
                        std::string("names it: ") + e.what());
            }
            try {
                dd::Publisher pub(endpoint);
                throw std::runtime_error("bound " + endpoint);
            } catch (const dd::EndpointError& e) {
                require(std::string(e.what()).find(says) != std::string::npos,
                        std::string("bind: ") + e.what());
            }
        }
        dd::Publisher any("tcp://127.0.0.1:*");  // a free port: taken as written
    });

    check("a subscriber needs a topic", [] {
        try {
            dd::Subscriber sub("inproc://output", {});
        } catch (const std::invalid_argument& e) {
            require(std::string(e.what()).find("at least one topic") != std::string::npos,
                    "says what is missing");
            return;
        }
        throw std::runtime_error("no invalid_argument");
    });

    check("wait_for_subscriber times out without one", [] {
        dd::Publisher pub("inproc://lonely");
        try {
            pub.wait_for_subscriber(50ms);
        } catch (const dd::TimeoutError&) {
            return;
        }
        throw std::runtime_error("no TimeoutError");
    });

    check("a push send without a peer times out", [] {
        // Bound, with no PULL peer: there is no pipe to queue on, so the send blocks.
        // (A connecting PUSH queues up to its high-water mark before that happens.)
        dd::PublisherOptions options;
        options.mode = dd::PublisherOptions::Mode::push;
        options.send_timeout = 50ms;
        options.linger = 0ms;
        dd::Publisher pub("inproc://no-puller", options);
        try {
            pub.start("s");
        } catch (const dd::TimeoutError&) {
            return;
        }
        throw std::runtime_error("no TimeoutError");
    });

    check("a push that connects to no service times out, and goes through once one binds", [] {
        std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
        dd::PublisherOptions options;
        options.mode = dd::PublisherOptions::Mode::push;
        options.bind = false;
        options.send_timeout = 100ms;
        options.linger = 0ms;
        bool timed_out = false;
        {
            dd::Publisher pub(endpoint, options);
            try {
                pub.start("s");
            } catch (const dd::TimeoutError&) {
                timed_out = true;
            }
        }
        require(timed_out, "no TimeoutError with no service there");
        zmq::socket_t pull(dd::default_context(), zmq::socket_type::pull);
        pull.set(zmq::sockopt::linger, 0);
        pull.set(zmq::sockopt::rcvtimeo, 5000);
        pull.bind(endpoint);
        options.send_timeout = 5000ms;
        dd::Publisher pub(endpoint, options);
        pub.start("s");
        zmq::message_t topic;
        require(pull.recv(topic).has_value(), "the start mark arrives");
    });

    check("control: a timeout replaces the REQ socket, and the next request works", [] {
        zmq::socket_t service(dd::default_context(), zmq::socket_type::router);
        service.set(zmq::sockopt::linger, 0);
        service.bind("inproc://control-test");
        dd::Control control("inproc://control-test", 100ms);
        for (int attempt = 0; attempt < 2; ++attempt) {  // a REQ socket kept would fail EFSM
            try {
                control.status();
                throw std::runtime_error("a silent service gave a reply");
            } catch (const dd::TimeoutError&) {
            }
        }
        // Now answer: every request queued so far (those of the closed sockets go nowhere).
        dd::Map reply = answered(service, [&] { return control.pause(); });
        require(reply.at("paused").as_bool(), "reply");
    });

    check("control: ok false is a ControlError carrying the reply", [] {
        zmq::socket_t service(dd::default_context(), zmq::socket_type::rep);
        service.set(zmq::sockopt::linger, 0);
        service.bind("inproc://control-refuses");
        std::thread replier([&] {
            zmq::message_t request;
            (void)service.recv(request);
            std::string reply = dd::encode_value(dd::Map{{"ok", false}, {"error", "no"}});
            service.send(zmq::buffer(reply), zmq::send_flags::none);
        });
        dd::Control control("inproc://control-refuses", 5000ms);
        try {
            control.load_model("missing.onnx");
        } catch (const dd::ControlError& e) {
            replier.join();
            require(e.reply().at("error").as_string() == "no", "error text");
            return;
        }
        replier.join();
        throw std::runtime_error("no ControlError");
    });

    check("output is decoded against the output bounds, input against the input limits", [] {
        // A traces message with 20,000 ROIs: a row per ROI and a 100 KB header of labels.
        auto traces = [](std::uint32_t rois, std::uint32_t labels) {
            dd::Array label_values;
            for (std::uint32_t i = 0; i < labels; ++i) label_values.emplace_back(70000u + i);
            dd::Map header{{"v", 1}, {"dtype", "<f4"}, {"shape", dd::Array{rois, 3u}},
                           {"labels", std::move(label_values)}};
            std::vector<float> values(std::size_t{rois} * 3);
            return dd::encode_message("traces", header, values.data(), values.size() * 4);
        };
        auto reason = [](dd::Parts parts, dd::Check check, const dd::Limits& limits) {
            try {
                dd::decode_message(std::move(parts), check, limits);
                return std::string("ok");
            } catch (const dd::ProtocolError& e) {
                return e.reason();
            }
        };
        dd::Limits small;
        small.max_header_bytes = 1024;
        small.max_payload_bytes = 4096;
        require(reason(traces(20000, 20000), dd::Check::output, {}) == "ok", "20,000 ROIs");
        require(reason(traces(20000, 20000), dd::Check::input, {}) == "header_size",
                "input limit");
        require(reason(traces(1, 3300), dd::Check::output, small) == "header_size",
                "16 x 1 KiB");
        require(reason(traces(1, 1600), dd::Check::output, small) == "ok", "under 16 KiB");
        require(reason(traces(1365, 0), dd::Check::output, small) == "ok", "4 x 4096 bytes");
        require(reason(traces(1366, 0), dd::Check::output, small) == "payload_size",
                "over 4 x 4096 bytes");
    });

    std::cout << (failures == 0 ? "all socket checks passed" : "socket checks failed") << "\n";
    return failures == 0 ? 0 : 1;
}
