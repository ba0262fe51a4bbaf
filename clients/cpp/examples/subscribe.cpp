// subscribe ENDPOINT DENOISED TRACES TRIGGERS
//
// Subscribes to denoised, traces, trigger and status. Prints "ready" after the first
// status message (the subscription is live then), then one JSON line per denoised,
// traces or trigger message: {"topic": ..., "header": {...}, "sum": <pixel sum>}
// ("sum" and "values" only with a payload). Exits 0 once it has seen the given
// counts, 1 after 60 s. With DEEPDENOISE_CLIENT_KEY and DEEPDENOISE_SERVER_KEY set, it
// connects with CURVE (only one of them, or a wrong key file: exit 2).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <deepdenoise/client.hpp>

#include "curve_env.hpp"

namespace dd = deepdenoise;

namespace {

// The sum of the pixels in double, whatever their type: a checksum for the test.
template <class T> double sum(const dd::Message& message) {
    double total = 0;
    for (T pixel : message.pixels<T>()) total += static_cast<double>(pixel);
    return total;
}

double pixel_sum(const dd::Message& message) {
    switch (message.dtype()) {
        case dd::Dtype::u1: return sum<std::uint8_t>(message);
        case dd::Dtype::u2: return sum<std::uint16_t>(message);
        case dd::Dtype::i2: return sum<std::int16_t>(message);
        case dd::Dtype::f4: return sum<float>(message);
    }
    return 0;
}

std::string line_of(const dd::Message& message) {
    dd::Map record{{"topic", message.topic}, {"header", message.header}};
    if (message.has_payload()) {
        record.push_back("sum", pixel_sum(message));
    }
    if (message.topic == "traces") {
        // Every value, row by row (ROI labels[r]), as the closed loop would read them.
        dd::Traces traces = dd::traces_of(message);
        dd::Array values;
        for (float v : traces.values) values.push_back(static_cast<double>(v));
        record.push_back("values", std::move(values));
    }
    return dd::to_json(record);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: subscribe ENDPOINT DENOISED TRACES TRIGGERS\n";
        return 2;
    }
    std::optional<dd::CurveKeys> curve;
    try {
        curve = curve_from_env();
    } catch (const CurveUsageError& e) {
        std::cerr << "subscribe: " << e.what() << "\n";
        return 2;
    }
    std::map<std::string, long> wanted{{"denoised", std::atol(argv[2])},
                                       {"traces", std::atol(argv[3])},
                                       {"trigger", std::atol(argv[4])}};
    std::map<std::string, long> seen;
    auto done = [&] {
        for (const auto& [topic, count] : wanted) {
            if (seen[topic] < count) return false;
        }
        return true;
    };

    try {
        const std::vector<std::string> topics{"denoised", "traces", "trigger", "status"};
        dd::Subscriber subscriber = curve ? dd::Subscriber(argv[1], topics, *curve)
                                          : dd::Subscriber(argv[1], topics);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        bool ready = false;
        while (!(ready && done())) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                std::cerr << "subscribe: timed out after 60 s\n";
                return 1;
            }
            std::optional<dd::Message> message;
            try {
                message = subscriber.recv(left);
            } catch (const dd::ProtocolError& e) {
                std::cerr << "subscribe: skipped a malformed message (" << e.reason()
                          << "): " << e.what() << "\n";
                continue;
            }
            if (!message) continue;
            if (message->topic == "status") {
                if (!ready) std::cout << "ready" << std::endl;
                ready = true;
                continue;
            }
            if (!ready) continue;  // counted only after "ready", as the caller expects
            ++seen[message->topic];
            std::cout << line_of(*message) << std::endl;
        }
    } catch (const std::exception& e) {
        std::cerr << "subscribe: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
