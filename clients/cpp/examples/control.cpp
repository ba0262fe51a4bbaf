// control ENDPOINT CMD [ARGS...]
//
//   control ENDPOINT status | pause | resume | flush | stop
//   control ENDPOINT load_model PATH
//   control ENDPOINT end_series SERIES
//   control ENDPOINT set_rois [--fit] [--source TEXT] FILE DTYPE HEIGHT WIDTH [SERIES]
//       FILE holds the label image as raw bytes, C order, in DTYPE (|u1, <u2, <i2,
//       <u4, <i4 or <i8), e.g. numpy's labels.astype("<u2").tofile(FILE); --fit: it is
//       the ROIs' extent from the frame's top-left corner (any frame that holds it
//       fits); --source: where the labels came from, 1 to 1024 characters (the
//       service's status names it)
//   control ENDPOINT set_rois none [SERIES]      (nil labels: remove the ROIs)
//   control ENDPOINT CMD                         any other CMD goes out as {"cmd": CMD};
//                                                the service answers an unknown one ok: false
//
// Sends one request and prints the reply as one JSON line (bin values as
// "<bin N bytes>"). Exit status: 0 for ok: true; 1 for ok: false (the reply is still
// printed); 2 for bad usage (a wrong command line, a FILE that cannot be read or does
// not hold HEIGHT x WIDTH labels of DTYPE, a request the encoder refuses); 3 when no
// reply came within 10 s or another transport error. With DEEPDENOISE_CLIENT_KEY (this
// client's NAME.key_secret) and DEEPDENOISE_SERVER_KEY (the service's service.key) set,
// it connects with CURVE (only one of them, or a wrong key file: exit 2); a key the
// service does not allow gets no reply (exit 3).
#include <cerrno>
#include <chrono>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <deepdenoise/client.hpp>

#include "curve_env.hpp"

namespace dd = deepdenoise;

namespace {

int usage() {
    std::cerr << "usage: control ENDPOINT status|pause|resume|flush|stop|CMD\n"
                 "       control ENDPOINT load_model PATH\n"
                 "       control ENDPOINT end_series SERIES\n"
                 "       control ENDPOINT set_rois [--fit] [--source TEXT] FILE DTYPE HEIGHT "
                 "WIDTH [SERIES]\n"
                 "       control ENDPOINT set_rois none [SERIES]\n";
    return 2;
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

/// A side length: decimal digits only, 1 .. 2^32 - 1.
std::uint32_t parse_side(const std::string& text) {
    std::size_t end = 0;
    unsigned long long n = 0;
    if (!text.empty() && text[0] >= '0' && text[0] <= '9') n = std::stoull(text, &end);
    if (end != text.size() || n == 0 || n > 0xffffffffull) {
        throw std::invalid_argument("HEIGHT and WIDTH must be positive integers, not " + text);
    }
    return static_cast<std::uint32_t>(n);
}

std::optional<std::string> optional_arg(const std::vector<std::string>& args, std::size_t i) {
    if (args.size() > i) return args[i];
    return std::nullopt;
}

/// The encoded request the command line asks for; nullopt for a wrong command line.
std::optional<std::string> encode(const std::string& cmd, const std::vector<std::string>& args) {
    if (cmd == "load_model") {
        if (args.size() != 1) return std::nullopt;
        return dd::encode_request("load_model", {{"path", args[0]}});
    }
    if (cmd == "end_series") {
        if (args.size() != 1) return std::nullopt;
        return dd::encode_end_series(args[0]);
    }
    if (cmd == "set_rois") {
        if (!args.empty() && args[0] == "none") {
            if (args.size() > 2) return std::nullopt;
            return dd::encode_clear_rois(optional_arg(args, 1));
        }
        // the options, then FILE DTYPE HEIGHT WIDTH [SERIES]
        dd::SetRoisOptions options;
        std::size_t i = 0;
        for (; i < args.size() && args[i].rfind("--", 0) == 0; ++i) {
            if (args[i] == "--fit") {
                options.fit = true;
            } else if (args[i] == "--source" && i + 1 < args.size()) {
                options.source = args[++i];
            } else {
                return std::nullopt;
            }
        }
        const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i),
                                            args.end());
        if (rest.size() != 4 && rest.size() != 5) return std::nullopt;
        dd::Shape shape{parse_side(rest[2]), parse_side(rest[3])};
        std::vector<char> bytes = read_file(rest[0]);
        dd::LabelImage labels{rest[1], shape, bytes.data(), bytes.size()};
        return dd::encode_set_rois(labels, optional_arg(rest, 4), options);
    }
    // status, pause, resume, flush, stop, or any other command without arguments.
    if (!args.empty()) return std::nullopt;
    return dd::encode_request(cmd);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::vector<std::string> args(argv + 3, argv + argc);
    const std::string cmd = argv[2];

    // Everything wrong before sending is a usage error.
    std::optional<std::string> request;
    std::optional<dd::CurveKeys> curve;
    try {
        request = encode(cmd, args);
        if (request) curve = curve_from_env();
    } catch (const std::exception& e) {
        std::cerr << "control: " << e.what() << "\n";
        return 2;
    }
    if (!request) return usage();

    // One round trip.
    try {
        const auto timeout = std::chrono::seconds(10);
        dd::Control control = curve ? dd::Control(argv[1], timeout, *curve)
                                    : dd::Control(argv[1], timeout);
        std::cout << dd::to_json(control.request_encoded(cmd, *request)) << std::endl;
        return 0;
    } catch (const dd::ControlError& e) {
        const dd::Value* ok = e.reply().find("ok");
        if (ok != nullptr && ok->is_bool() && !ok->as_bool()) {
            std::cout << dd::to_json(e.reply()) << std::endl;
            std::cerr << "control: " << e.what() << "\n";
            return 1;
        }
        std::cerr << "control: " << e.what() << "\n";  // a reply that is not one
        return 3;
    } catch (const dd::EndpointError& e) {
        std::cerr << "control: " << e.what() << "\n";
        // a malformed ENDPOINT is bad usage (nothing sent); any other is the transport's
        return e.code() == EINVAL || e.code() == EPROTONOSUPPORT ? 2 : 3;
    } catch (const std::exception& e) {
        std::cerr << "control: " << e.what() << "\n";  // TimeoutError
        return 3;
    }
}
