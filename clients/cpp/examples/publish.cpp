// publish ENDPOINT SERIES FRAMES HEIGHT WIDTH
//
// Connects a PUSH socket to a service whose input PULLs (input_mode = "pull",
// input_bind = true), sends `start`, FRAMES uint16 frames and `end`. Frame i holds
// (1000 i + WIDTH r + c) mod 65536 at row r, column c and has t_ns = T0 + i. With
// DEEPDENOISE_CLIENT_KEY and DEEPDENOISE_SERVER_KEY set, it connects with CURVE (only
// one of them, or a wrong key file: exit 2).
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <deepdenoise/client.hpp>

#include "curve_env.hpp"

namespace dd = deepdenoise;

int main(int argc, char** argv) {
    if (argc != 6) {
        std::cerr << "usage: publish ENDPOINT SERIES FRAMES HEIGHT WIDTH\n";
        return 2;
    }
    const std::string endpoint = argv[1], series = argv[2];
    std::uint64_t numbers[3];
    for (int i = 0; i < 3; ++i) {  // strtoull alone reads "x" as 0 and "-1" as 2^64 - 1
        const char* text = argv[3 + i];
        char* end = nullptr;
        errno = 0;
        numbers[i] = std::strtoull(text, &end, 10);
        if (*text < '0' || *text > '9' || *end != '\0' || errno != 0 ||
            (i > 0 && (numbers[i] == 0 || numbers[i] > 0xFFFFFFFFull))) {
            std::cerr << "publish: expected "
                      << (i == 0 ? "FRAMES a whole number"
                                 : "HEIGHT and WIDTH whole numbers of 1 or more")
                      << ", got '" << text << "'\n"
                      << "usage: publish ENDPOINT SERIES FRAMES HEIGHT WIDTH\n";
            return 2;
        }
    }
    const std::uint64_t frames = numbers[0];
    const dd::Shape shape{static_cast<std::uint32_t>(numbers[1]),
                          static_cast<std::uint32_t>(numbers[2])};
    // Above 2^53: t_ns must stay an integer all the way (uint64 on the wire).
    const std::uint64_t t0_ns = 1'700'000'000'000'000'000ull;

    dd::PublisherOptions options;
    try {
        options.curve = curve_from_env();
    } catch (const CurveUsageError& e) {
        std::cerr << "publish: " << e.what() << "\n";
        return 2;
    }
    try {
        options.mode = dd::PublisherOptions::Mode::push;
        options.bind = false;
        options.linger = std::chrono::seconds(30);  // let every frame out before exiting
        // no service listening: give up after 30 s (as the C and Node examples do), not never
        options.send_timeout = std::chrono::seconds(30);
        dd::Publisher publisher(endpoint, options);

        publisher.start(series);
        std::vector<std::uint16_t> frame(shape.pixels());
        for (std::uint64_t i = 0; i < frames; ++i) {
            for (std::uint32_t r = 0; r < shape.height; ++r) {
                for (std::uint32_t c = 0; c < shape.width; ++c) {
                    frame[r * shape.width + c] =
                        static_cast<std::uint16_t>((1000 * i + shape.width * r + c) % 65536);
                }
            }
            dd::FrameOptions frame_options;
            frame_options.t_ns = t0_ns + i;
            publisher.send_frame(frame.data(), shape, series, i, frame_options);
        }
        publisher.end(series);
    } catch (const dd::ProtocolError& e) {
        std::cerr << "publish: rejected before sending (" << e.reason() << "): " << e.what()
                  << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "publish: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
