// RAII clients of the three channels: Publisher (input), Subscriber (output) and
// Control. Each owns one ZeroMQ socket, closed by its destructor. None is thread-safe
// (ZeroMQ sockets are not): use one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "deepdenoise/curve.hpp"
#include "deepdenoise/protocol.hpp"
#include "deepdenoise/value.hpp"

namespace deepdenoise {

inline constexpr const char* default_input = "tcp://127.0.0.1:5555";
inline constexpr const char* default_output = "tcp://127.0.0.1:5556";
inline constexpr const char* default_control = "tcp://127.0.0.1:5557";

/// A bind or connect failed; the message names the endpoint (a port in use, a malformed
/// endpoint), code() is ZeroMQ's errno.
class EndpointError : public std::runtime_error {
public:
    EndpointError(const std::string& message, int code)
        : std::runtime_error(message), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

/// No peer in time: a send that could not be queued, or no reply, or no subscriber.
class TimeoutError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The service replied {"ok": false, "error": ...}; reply() is the whole reply map.
class ControlError : public std::runtime_error {
public:
    ControlError(const std::string& message, Map reply)
        : std::runtime_error(message), reply_(std::move(reply)) {}
    const Map& reply() const noexcept { return reply_; }

private:
    Map reply_;
};

/// The process-wide context the clients use unless given one. It outlives main();
/// close every client before main() returns (RAII does) or its destructor waits.
zmq::context_t& default_context();

using Milliseconds = std::chrono::milliseconds;
/// A timeout that never expires.
inline constexpr Milliseconds forever{-1};

// ------------------------------------------------------------------ Publisher

struct PublisherOptions {
    enum class Mode {
        pub,   ///< XPUB: the service's SUB connects; wait_for_subscriber() before sending
        push,  ///< PUSH: the service PULLs; a send blocks (back-pressure) up to send_timeout
    };
    Mode mode = Mode::pub;
    bool bind = true;             ///< bind (the service connects) or connect
    std::string topic = "frame";  ///< the service subscribes to the prefix "frame"
    Milliseconds send_timeout = forever;  ///< push mode: longest a send may block
    Milliseconds linger{1000};    ///< how long the destructor tries to deliver queued frames
    Limits limits{};
    /// A service with [security]. Bound: a CURVE server with this key pair (the service
    /// connects with its security.input_server_key); connecting: a client of server_key.
    std::optional<CurveKeys> curve;
};

/// Sends frames to the service, as an acquisition program does.
class Publisher {
public:
    explicit Publisher(const std::string& endpoint = default_input,
                       const PublisherOptions& options = {},
                       zmq::context_t& context = default_context());
    Publisher(Publisher&&) = default;
    Publisher& operator=(Publisher&&) = default;

    /// The endpoint in use (after bind to port 0 or "*": the one chosen).
    const std::string& endpoint() const { return endpoint_; }

    /// pub mode: block until a subscription to a prefix of the topic arrives. Frames
    /// sent before it would be dropped by the PUB socket (the "slow joiner").
    /// Throws TimeoutError.
    void wait_for_subscriber(Milliseconds timeout);
    /// pub mode: active subscriptions matching the topic.
    int subscribers();

    void start(std::string_view series, std::optional<std::uint64_t> t_ns = std::nullopt);
    void end(std::string_view series, std::optional<std::uint64_t> t_ns = std::nullopt);

    /// Validate and send one frame; the pixels are copied into the message, so the
    /// buffer is free again when this returns. Throws ProtocolError (with the service's
    /// reason code) before sending anything the service would reject, TimeoutError
    /// when a push send cannot be queued in time.
    void send_frame(const FrameRef& frame, std::string_view series, std::uint64_t index,
                    const FrameOptions& options = {});
    template <class T>
    void send_frame(const T* pixels, Shape shape, std::string_view series, std::uint64_t index,
                    const FrameOptions& options = {}) {
        send_frame(frame_ref(pixels, shape), series, index, options);
    }
    /// Zero-copy: the vector is moved into the message and freed by ZeroMQ once sent.
    template <class T>
    void send_frame(std::vector<T>&& pixels, Shape shape, std::string_view series,
                    std::uint64_t index, const FrameOptions& options = {}) {
        if (pixels.size() != shape.pixels()) {
            throw ProtocolError("payload_length", "pixel count does not match the shape");
        }
        auto* owned = new std::vector<T>(std::move(pixels));
        zmq::message_t payload(owned->data(), owned->size() * sizeof(T), &free_vector<T>, owned);
        send_parts(frame_header(series, index, dtype_v<T>, shape, options, options_.limits),
                   std::move(payload));
    }

    /// Close now (linger as configured); the destructor does the same.
    void close();

private:
    template <class T> static void free_vector(void*, void* hint) {
        delete static_cast<std::vector<T>*>(hint);
    }
    void send_parts(const Map& header, std::optional<zmq::message_t> payload);
    void drain_subscriptions();
    void require_pub(const char* what) const;
    std::string curve_hint() const;

    zmq::socket_t socket_;
    PublisherOptions options_;  ///< without the keys: the socket holds them
    bool curve_ = false;        ///< CURVE keys in use
    std::string endpoint_;
    int subscriptions_ = 0;
};

// ------------------------------------------------------------------ Subscriber

/// Receives the service's output: "denoised", "traces", "trigger", "status", "event",
/// and "raw" when the service publishes it.
/// A SUB socket misses what is published before its connection is up.
class Subscriber {
public:
    explicit Subscriber(const std::string& endpoint = default_output,
                        const std::vector<std::string>& topics = {"denoised"},
                        zmq::context_t& context = default_context(), Limits limits = {});
    /// The same as a CURVE client of a service with [security] (keys with server_key).
    Subscriber(const std::string& endpoint, const std::vector<std::string>& topics,
               const CurveKeys& curve, zmq::context_t& context = default_context(),
               Limits limits = {});
    Subscriber(Subscriber&&) = default;
    Subscriber& operator=(Subscriber&&) = default;

    /// The next message, or nothing after `timeout`. Throws ProtocolError for a
    /// malformed message (the next recv() goes on with the one after it).
    std::optional<Message> recv(Milliseconds timeout = forever);

    void close();

private:
    Subscriber(const std::string& endpoint, const std::vector<std::string>& topics,
               const CurveKeys* curve, zmq::context_t& context, Limits limits);

    zmq::socket_t socket_;
    Limits limits_;
};

// ------------------------------------------------------------------ Control

/// Commands to the service over REQ/REP. After a timeout the REQ socket is closed
/// with linger 0 and replaced (a REQ socket without its reply cannot send again), so
/// the client stays usable.
class Control {
public:
    explicit Control(std::string endpoint = default_control, Milliseconds timeout = Milliseconds{5000},
                     zmq::context_t& context = default_context());
    /// The same as a CURVE client of a service with [security] (keys with server_key);
    /// the keys are kept for the socket that replaces one after a timeout.
    Control(std::string endpoint, Milliseconds timeout, CurveKeys curve,
            zmq::context_t& context = default_context());
    Control(Control&&) = default;
    Control& operator=(Control&&) = default;

    /// Send {"cmd": cmd, ...arguments}; the reply map (ok is true). Throws
    /// ControlError for ok: false, TimeoutError when no reply came in time.
    Map request(std::string_view cmd, const Map& arguments = {});
    /// Send an already encoded request (see encode_request); same replies and errors.
    Map request_encoded(std::string_view cmd, const std::string& request);

    Map status() { return request("status"); }
    Map pause() { return request("pause"); }
    Map resume() { return request("resume"); }
    Map flush() { return request("flush"); }
    Map stop() { return request("stop"); }
    /// A path on the service's machine, relative to its working directory.
    Map load_model(const std::string& path) { return request("load_model", {{"path", path}}); }
    /// End an open series as its sender's `end` would (a sender that crashed with it
    /// open); the reply's "last_index" is the last frame received (-1: none).
    Map end_series(std::string_view series) {
        return request_encoded("end_series", encode_end_series(series));
    }
    /// Replace the ROIs (0 is background); the reply's "rois" is their count. `options`:
    /// set_rois' fit and source (see SetRoisOptions).
    Map set_rois(const LabelImage& labels, const std::optional<std::string>& series = {},
                 const SetRoisOptions& options = {}) {
        return request_encoded("set_rois", encode_set_rois(labels, series, options));
    }
    template <class T>
    Map set_rois(const T* labels, Shape shape, const std::optional<std::string>& series = {},
                 const SetRoisOptions& options = {}) {
        return set_rois(label_image(labels, shape), series, options);
    }
    /// Remove the ROIs (set_rois with nil labels).
    Map clear_rois(const std::optional<std::string>& series = {}) {
        return request_encoded("set_rois", encode_clear_rois(series));
    }

    void close();

private:
    zmq::socket_t connect();

    zmq::context_t* context_;
    std::string endpoint_;
    Milliseconds timeout_;
    std::optional<CurveKeys> curve_;
    zmq::socket_t socket_;
};

}  // namespace deepdenoise
