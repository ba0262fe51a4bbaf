// What the C++ client's test programs share: named checks that count failures, and a
// ROUTER "service" that answers every control request while one runs.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <deepdenoise/client.hpp>
#include <zmq_addon.hpp>

namespace checks {

inline int failures = 0;

inline void check(const std::string& name, const std::function<void()>& body) {
    try {
        body();
        std::cout << "ok   " << name << "\n";
    } catch (const std::exception& e) {
        ++failures;
        std::cout << "FAIL " << name << ": " << e.what() << "\n";
    }
}

inline void require(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

/// Run `request` while `service` (a bound ROUTER) answers every request it receives
/// with {"ok": true, "paused": true}; the request's reply.
inline deepdenoise::Map answered(zmq::socket_t& service,
                                 const std::function<deepdenoise::Map()>& request) {
    using namespace std::chrono_literals;
    std::atomic<bool> stop{false};
    std::thread replier([&] {
        while (!stop) {
            zmq_pollitem_t item{service.handle(), 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, 20ms) == 0) continue;
            std::vector<zmq::message_t> parts;
            (void)zmq::recv_multipart(service, std::back_inserter(parts));
            std::string reply =
                deepdenoise::encode_value(deepdenoise::Map{{"ok", true}, {"paused", true}});
            service.send(parts[0], zmq::send_flags::sndmore);
            service.send(zmq::message_t(), zmq::send_flags::sndmore);
            service.send(zmq::buffer(reply), zmq::send_flags::none);
        }
    });
    try {
        deepdenoise::Map reply = request();
        stop = true;
        replier.join();
        return reply;
    } catch (...) {
        stop = true;
        replier.join();
        throw;
    }
}

}  // namespace checks
