// The test programs' CURVE keys, from the environment (as the Python CLI reads them):
// DEEPDENOISE_CLIENT_KEY, this client's NAME.key_secret, and DEEPDENOISE_SERVER_KEY, the
// service's service.key. Both set: CURVE; neither: plain; only one: bad usage.
#pragma once

#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

#include <deepdenoise/client.hpp>

/// Bad usage (exit 2): only one of the variables, or a key file that is not one.
class CurveUsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The keys, or nothing for plain connections. Throws CurveUsageError.
inline std::optional<deepdenoise::CurveKeys> curve_from_env() {
    auto get = [](const char* name) {
        const char* value = std::getenv(name);
        return std::string(value != nullptr ? value : "");
    };
    const std::string client = get("DEEPDENOISE_CLIENT_KEY");
    const std::string server = get("DEEPDENOISE_SERVER_KEY");
    if (client.empty() && server.empty()) return std::nullopt;
    if (client.empty() || server.empty()) {
        const char* missing = client.empty() ? "DEEPDENOISE_CLIENT_KEY" : "DEEPDENOISE_SERVER_KEY";
        throw CurveUsageError(std::string(missing) +
                              " is not set: expected both DEEPDENOISE_CLIENT_KEY (this client's "
                              "NAME.key_secret) and DEEPDENOISE_SERVER_KEY (the service's "
                              "service.key), or neither");
    }
    try {
        deepdenoise::CurveKeys keys = deepdenoise::CurveKeys::from_files(client, server);
        if (keys.secret_readable_by_others()) {  // the library says it; a program tells
            std::cerr << "warning: the secret key file " << client
                      << " is readable by other users: chmod 600 it\n";
        }
        return keys;
    } catch (const deepdenoise::CurveError& e) {
        throw CurveUsageError(e.what());
    }
}
