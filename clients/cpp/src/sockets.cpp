#include "deepdenoise/sockets.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include <zmq_addon.hpp>

namespace deepdenoise {

namespace {

/// Whether `socket` has something to read within `timeout` (forever: -1).
bool readable(zmq::socket_t& socket, Milliseconds timeout) {
    zmq_pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, timeout) > 0;
}

int to_int_ms(Milliseconds ms) { return ms.count() < 0 ? -1 : static_cast<int>(ms.count()); }

enum class Attach { bind, connect };

/// Whether a tcp endpoint ends in a port libzmq takes as written: 0-65535 or `*` (it
/// reads tcp://127.0.0.1:99999 as port 34463, 99999 mod 65536). Other schemes: true.
bool port_as_written(const std::string& endpoint) {
    if (endpoint.rfind("tcp://", 0) != 0) return true;
    const auto colon = endpoint.rfind(':');
    if (colon <= 6) return false;  // the scheme's colon only, or no host before the port
    const std::string port = endpoint.substr(colon + 1);
    if (port == "*") return true;
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
    }
    return std::stoul(port) <= 65535;
}

/// Bind or connect, with an error that names the endpoint (ZeroMQ's says only what).
void attach(zmq::socket_t& socket, const std::string& endpoint, Attach how) {
    if (!port_as_written(endpoint)) {
        throw EndpointError(std::string("cannot ") +
                                (how == Attach::bind ? "bind " : "connect to ") + endpoint +
                                ": expected a TCP endpoint tcp://host:port with a port of "
                                "0-65535 (or *)",
                            EINVAL);
    }
    try {
        if (endpoint.rfind("tcp://", 0) == 0 && endpoint.find('[') != std::string::npos) {
            // an IPv6 address (tcp://[::1]:5555): libzmq takes one only with IPV6 set
            socket.set(zmq::sockopt::ipv6, 1);
        }
        if (how == Attach::bind) {
            socket.bind(endpoint);
        } else {
            socket.connect(endpoint);
        }
    } catch (const zmq::error_t& e) {
        bool malformed = e.num() == EINVAL || e.num() == EPROTONOSUPPORT;
        throw EndpointError(std::string("cannot ") +
                                (how == Attach::bind ? "bind " : "connect to ") + endpoint +
                                ": " + e.what() +
                                (malformed ? " (expected an endpoint like tcp://127.0.0.1:5555)"
                                           : ""),
                            e.num());
    }
}

/// Added to a timeout's message with CURVE keys (a refused key gets no reply).
constexpr const char* curve_client_hint =
    " Is this client's public key in the service's security.clients folder?";
/// The same for an end that binds: the service is a CURVE client of its key.
constexpr const char* curve_server_hint =
    " Is this end's public key the service's security.input_server_key?";

}  // namespace

zmq::context_t& default_context() {
    static zmq::context_t context;
    return context;
}

// ------------------------------------------------------------------ Publisher

Publisher::Publisher(const std::string& endpoint, const PublisherOptions& options,
                     zmq::context_t& context)
    : options_(options) {
    bool pub = options.mode == PublisherOptions::Mode::pub;
    socket_ = zmq::socket_t(context, pub ? zmq::socket_type::xpub : zmq::socket_type::push);
    // If anything below throws, socket_'s destructor closes it; linger 0 so that a
    // failed constructor never waits.
    socket_.set(zmq::sockopt::linger, 0);
    if (pub) {
        // Report every (un)subscription, not only the first per prefix, so the count of
        // subscribers stays right with several services attached.
        socket_.set(zmq::sockopt::xpub_verboser, 1);
    } else {
        socket_.set(zmq::sockopt::sndtimeo, to_int_ms(options.send_timeout));
        // Queue only on a live connection: a connecting PUSH with no service there
        // times out instead of queueing frames that close would discard unsaid.
        socket_.set(zmq::sockopt::immediate, 1);
        // A few frames queued here, not libzmq's 1000: a send that returned is a frame
        // the service is about to read, and back-pressure comes as it falls behind.
        socket_.set(zmq::sockopt::sndhwm, 8);
    }
    if (options.curve) options.curve->apply(socket_, options.bind);
    // The socket holds the keys now: keep no copy of the secret key for this object's
    // lifetime (as the C client), only that keys are in use, for a timeout's message.
    curve_ = options_.curve.has_value();
    options_.curve.reset();
    if (options.bind) {
        attach(socket_, endpoint, Attach::bind);
        endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    } else {
        attach(socket_, endpoint, Attach::connect);
        endpoint_ = endpoint;
    }
    socket_.set(zmq::sockopt::linger, to_int_ms(options.linger));
}

void Publisher::require_pub(const char* what) const {
    if (options_.mode != PublisherOptions::Mode::pub) {
        throw std::logic_error(std::string(what) + " needs a publisher in pub mode");
    }
}

void Publisher::drain_subscriptions() {
    // XPUB delivers (un)subscriptions as one-part messages: 0x01 or 0x00, then the prefix.
    zmq::message_t msg;
    while (socket_.recv(msg, zmq::recv_flags::dontwait)) {
        if (msg.size() == 0) continue;
        std::string_view prefix(msg.data<char>() + 1, msg.size() - 1);
        if (options_.topic.compare(0, prefix.size(), prefix) != 0) continue;
        std::uint8_t flag = *msg.data<std::uint8_t>();
        if (flag == 1) ++subscriptions_;
        if (flag == 0 && subscriptions_ > 0) --subscriptions_;
    }
}

int Publisher::subscribers() {
    require_pub("subscribers()");
    drain_subscriptions();
    return subscriptions_;
}

void Publisher::wait_for_subscriber(Milliseconds timeout) {
    require_pub("wait_for_subscriber()");
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        drain_subscriptions();
        if (subscriptions_ > 0) return;
        auto left = std::chrono::duration_cast<Milliseconds>(deadline -
                                                             std::chrono::steady_clock::now());
        if (timeout != forever && left.count() <= 0) {
            throw TimeoutError("no subscriber to topic \"" + options_.topic + "\" on " +
                               endpoint_ + " within " + std::to_string(timeout.count()) +
                               " ms: is the service running and connected to this endpoint?" +
                               curve_hint());
        }
        readable(socket_, timeout == forever ? forever : std::max(left, Milliseconds{1}));
    }
}

void Publisher::start(std::string_view series, std::optional<std::uint64_t> t_ns) {
    send_parts(mark_header("start", series, t_ns), std::nullopt);
}

void Publisher::end(std::string_view series, std::optional<std::uint64_t> t_ns) {
    send_parts(mark_header("end", series, t_ns), std::nullopt);
}

void Publisher::send_frame(const FrameRef& frame, std::string_view series, std::uint64_t index,
                           const FrameOptions& options) {
    Map header = frame_header(series, index, frame.dtype, frame.shape, options, options_.limits);
    send_parts(header, zmq::message_t(frame.data, frame.nbytes()));
}

void Publisher::send_parts(const Map& header, std::optional<zmq::message_t> payload) {
    std::string encoded = encode_header(header);
    if (encoded.size() > options_.limits.max_header_bytes) {
        throw ProtocolError("header_size", "header is " + std::to_string(encoded.size()) +
                                               " bytes, over the limit");
    }
    // Only the first part can block (push mode): once it is queued ZeroMQ takes the
    // rest of the message, so a message is never half sent.
    if (!socket_.send(zmq::buffer(options_.topic), zmq::send_flags::sndmore)) {
        throw TimeoutError("could not queue a message on " + endpoint_ +
                           " within the send timeout: no peer, or the service is not keeping "
                           "up." + curve_hint());
    }
    socket_.send(zmq::buffer(encoded), payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (payload) socket_.send(*payload, zmq::send_flags::none);
}

std::string Publisher::curve_hint() const {
    // a refused CURVE handshake is dropped without a word: it looks like a timeout
    if (!curve_) return "";
    return options_.bind ? curve_server_hint : curve_client_hint;
}

void Publisher::close() {
    if (socket_) socket_.close();
}

// ------------------------------------------------------------------ Subscriber

Subscriber::Subscriber(const std::string& endpoint, const std::vector<std::string>& topics,
                       zmq::context_t& context, Limits limits)
    : Subscriber(endpoint, topics, nullptr, context, limits) {}

Subscriber::Subscriber(const std::string& endpoint, const std::vector<std::string>& topics,
                       const CurveKeys& curve, zmq::context_t& context, Limits limits)
    : Subscriber(endpoint, topics, &curve, context, limits) {}

Subscriber::Subscriber(const std::string& endpoint, const std::vector<std::string>& topics,
                       const CurveKeys* curve, zmq::context_t& context, Limits limits)
    : socket_(context, zmq::socket_type::sub), limits_(limits) {
    if (topics.empty()) {  // a SUB socket with no subscription receives nothing, silently
        throw std::invalid_argument("expected at least one topic (\"\" for every topic), got none");
    }
    socket_.set(zmq::sockopt::linger, 0);
    if (curve) curve->apply(socket_, false);
    for (const std::string& topic : topics) socket_.set(zmq::sockopt::subscribe, topic);
    attach(socket_, endpoint, Attach::connect);
}

std::optional<Message> Subscriber::recv(Milliseconds timeout) {
    if (!readable(socket_, timeout)) return std::nullopt;
    Parts parts;
    // ZeroMQ delivers all parts of a message or none, so this never blocks.
    (void)zmq::recv_multipart(socket_, std::back_inserter(parts));
    return decode_message(std::move(parts), Check::output, limits_);
}

void Subscriber::close() {
    if (socket_) socket_.close();
}

// ------------------------------------------------------------------ Control

Control::Control(std::string endpoint, Milliseconds timeout, zmq::context_t& context)
    : context_(&context), endpoint_(std::move(endpoint)), timeout_(timeout), socket_(connect()) {}

Control::Control(std::string endpoint, Milliseconds timeout, CurveKeys curve,
                 zmq::context_t& context)
    : context_(&context),
      endpoint_(std::move(endpoint)),
      timeout_(timeout),
      curve_(std::move(curve)),
      socket_(connect()) {}

zmq::socket_t Control::connect() {
    zmq::socket_t socket(*context_, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndtimeo, to_int_ms(timeout_));
    if (curve_) curve_->apply(socket, false);  // also on the socket that replaces one
    attach(socket, endpoint_, Attach::connect);
    return socket;
}

Map Control::request(std::string_view cmd, const Map& arguments) {
    return request_encoded(cmd, encode_request(cmd, arguments));
}

Map Control::request_encoded(std::string_view cmd, const std::string& request) {
    if (!socket_) throw std::logic_error("this Control is closed");
    auto timed_out = [&] {
        // A REQ socket that misses its reply can never send again: replace it.
        socket_.close();
        socket_ = connect();
        return TimeoutError("no reply to \"" + std::string(cmd) + "\" from " + endpoint_ +
                            " within " + std::to_string(timeout_.count()) +
                            " ms: is the service running with its control socket there?" +
                            // a refused CURVE client is dropped without a word
                            (curve_ ? curve_client_hint : ""));
    };
    if (!socket_.send(zmq::buffer(request), zmq::send_flags::none)) throw timed_out();
    if (!readable(socket_, timeout_)) throw timed_out();
    zmq::message_t raw;
    (void)socket_.recv(raw, zmq::recv_flags::none);
    Map reply;
    try {
        reply = decode_header(raw.data(), raw.size());
    } catch (const ProtocolError& e) {
        throw ControlError("reply to \"" + std::string(cmd) + "\" is not a msgpack map: " +
                               e.what(), Map{});
    }
    const Value* ok = reply.find("ok");
    if (ok == nullptr || !ok->is_bool()) {
        throw ControlError("reply to \"" + std::string(cmd) + "\" has no bool \"ok\"", reply);
    }
    if (!ok->as_bool()) {
        const Value* error = reply.find("error");
        std::string text = error != nullptr && error->is_string() ? error->as_string()
                                                                  : "no error message given";
        throw ControlError("service refused \"" + std::string(cmd) + "\": " + text, reply);
    }
    return reply;
}

void Control::close() {
    if (socket_) socket_.close();
}

}  // namespace deepdenoise
