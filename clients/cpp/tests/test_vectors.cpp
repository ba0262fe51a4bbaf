// The golden vectors (clients/vectors, PROTOCOL.md section 10) against this client:
// every valid message decodes to its listed header and pixels, every canonical one
// re-encodes byte for byte (all parts), every invalid one is rejected with its
// reason code. Plus a few checks of the API around them (unaligned pixel reads,
// validation before sending). Usage: test_vectors VECTORS_DIR
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <deepdenoise/client.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

namespace dd = deepdenoise;

namespace {

int failures = 0;
int passes = 0;

/// Run one named check: an exception or a false `ok` is a failure, reported by name.
void check(const std::string& name, const std::function<void()>& body) {
    try {
        body();
        ++passes;
    } catch (const std::exception& e) {
        ++failures;
        std::cout << "FAIL " << name << ": " << e.what() << "\n";
    }
}

void require(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A .bin file's parts: each a uint32 little-endian length, then that many bytes.
std::vector<std::string> read_parts(const std::string& path) {
    std::string blob = read_file(path);
    std::vector<std::string> parts;
    std::size_t pos = 0;
    while (pos < blob.size()) {
        require(pos + 4 <= blob.size(), "truncated length in " + path);
        std::uint32_t n;
        std::memcpy(&n, blob.data() + pos, 4);  // little-endian host (checked by the client)
        require(pos + 4 + n <= blob.size(), "truncated part in " + path);
        parts.push_back(blob.substr(pos + 4, n));
        pos += 4 + n;
    }
    return parts;
}

dd::Parts to_messages(const std::vector<std::string>& parts) {
    dd::Parts out;
    for (const std::string& p : parts) out.emplace_back(p.data(), p.size());
    return out;
}

std::string as_string(const zmq::message_t& m) { return m.to_string(); }

/// A JSON document (nlohmann, objects in file order: the vectors' headers are in wire
/// order) as a deepdenoise::Value. Integers stay exact: nlohmann keeps non-negative ones
/// as uint64 (t_ns exceeds 2^53; invalid_t_ns_2_63 holds 2^63) and negative ones as int64;
/// only numbers written with '.', 'e' or 'E' are float64 (the vectors never write an
/// integral float, PROTOCOL.md 10.2).
dd::Value from_json(const nlohmann::ordered_json& j) {
    using Kind = nlohmann::ordered_json::value_t;
    switch (j.type()) {
        case Kind::null: return dd::Value();
        case Kind::boolean: return dd::Value(j.get<bool>());
        case Kind::number_unsigned: return dd::Value(j.get<std::uint64_t>());
        case Kind::number_integer: return dd::Value(static_cast<long long>(j.get<std::int64_t>()));
        case Kind::number_float: return dd::Value(j.get<double>());
        case Kind::string: return dd::Value(j.get<std::string>());
        case Kind::array: {
            dd::Array items;
            for (const auto& item : j) items.push_back(from_json(item));
            return dd::Value(std::move(items));
        }
        case Kind::object: {
            dd::Map map;
            for (const auto& [key, value] : j.items()) map.push_back(key, from_json(value));
            return dd::Value(std::move(map));
        }
        default: throw std::runtime_error("JSON: unexpected value " + j.dump());
    }
}

/// SHA-256 of the bytes as lowercase hex, by OpenSSL's EVP interface.
std::string sha256_hex(const void* data, std::size_t size) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(data, size, digest, &length, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("EVP_Digest(SHA-256) failed");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0xf];
    }
    return out;
}

/// The vectors' pixels as the bytes of `dtype` (|u1 <u2 <i2 <u4 <i4 <i8 <f4), C order.
std::string pixel_bytes(const dd::Array& pixels, const std::string& dtype) {
    std::string out;
    auto put = [&out](const auto& v) {
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
    };
    for (const dd::Value& p : pixels) {
        if (dtype == "<f4") {
            float f;
            if (p.is_string()) {
                const std::string& s = p.as_string();
                f = s == "NaN" ? NAN : s == "Infinity" ? INFINITY : -INFINITY;
            } else {
                f = static_cast<float>(p.as_double());
            }
            put(f);
        } else if (dtype == "|u1") {
            put(static_cast<std::uint8_t>(p.as_uint64()));
        } else if (dtype == "<u2") {
            put(static_cast<std::uint16_t>(p.as_uint64()));
        } else if (dtype == "<i2") {
            put(static_cast<std::int16_t>(p.as_int64()));
        } else if (dtype == "<u4") {
            put(static_cast<std::uint32_t>(p.as_uint64()));
        } else if (dtype == "<i4") {
            put(static_cast<std::int32_t>(p.as_int64()));
        } else {
            put(static_cast<std::int64_t>(p.as_int64()));
        }
    }
    return out;
}

/// Pixels equal value for value (NaN equal to NaN, -0.0 apart from 0.0: compared as bits).
template <class T> void compare_pixels(const dd::Message& msg, const std::string& expected) {
    dd::PixelView<T> view = msg.pixels<T>();
    require(view.size() * sizeof(T) == expected.size(), "pixel count differs");
    for (std::size_t i = 0; i < view.size(); ++i) {
        T got = view[i];
        T want;
        std::memcpy(&want, expected.data() + i * sizeof(T), sizeof(T));
        bool same = std::memcmp(&got, &want, sizeof(T)) == 0;
        if constexpr (std::is_floating_point_v<T>) same = same || (std::isnan(got) && std::isnan(want));
        require(same, "pixel " + std::to_string(i) + " differs");
    }
}

void compare_parts(const dd::Parts& encoded, const std::vector<std::string>& parts,
                   const std::string& how) {
    require(encoded.size() == parts.size(), how + ": " + std::to_string(encoded.size()) +
                                                " parts instead of " + std::to_string(parts.size()));
    for (std::size_t i = 0; i < parts.size(); ++i) {
        require(as_string(encoded[i]) == parts[i], how + ": part " + std::to_string(i) +
                                                       " differs from the file");
    }
}

dd::Shape shape_of(const dd::Value& shape) {
    const dd::Array& sides = shape.as_array();
    return dd::Shape{static_cast<std::uint32_t>(sides.at(0).as_uint64()),
                     static_cast<std::uint32_t>(sides.at(1).as_uint64())};
}

/// The listed header of a control vector with the placeholder "<bin: pixels>" replaced
/// by the bin it stands for.
dd::Map expected_request(const dd::Map& entry) {
    dd::Map header = entry.at("header").as_map();
    if (dd::Value* labels = header.find("labels"); labels != nullptr && labels->is_string()) {
        std::string bytes = pixel_bytes(entry.at("pixels").as_array(),
                                        entry.at("dtype").as_string());
        *labels = dd::Bytes{std::vector<std::uint8_t>(bytes.begin(), bytes.end())};
    }
    return header;
}

void control_vector(const dd::Map& entry, const std::vector<std::string>& parts) {
    require(parts.size() == 1, "a control request has one part");
    dd::Map request = dd::decode_header(parts[0].data(), parts[0].size());
    dd::Map expected = expected_request(entry);
    require(request == expected, "decoded " + dd::to_json(request) + " != listed " +
                                     dd::to_json(expected));
    // Generic: cmd first, then the arguments in the listed order.
    dd::Map arguments;
    for (const auto& [key, value] : expected) {
        if (key != "cmd") arguments.push_back(key, value);
    }
    const std::string& cmd = expected.at("cmd").as_string();
    require(dd::encode_request(cmd, arguments) == parts[0], "encode_request differs");
    // Typed: what Control sends for this command.
    std::string typed;
    std::optional<std::string> series;
    if (const dd::Value* s = expected.find("series")) series = s->as_string();
    if (cmd == "set_rois" && expected.at("labels").is_nil()) {
        typed = dd::encode_clear_rois(series);
    } else if (cmd == "set_rois") {
        const auto& bytes = expected.at("labels").as_bytes().data;
        dd::LabelImage labels{expected.at("dtype").as_string(), shape_of(expected.at("shape")),
                              bytes.data(), bytes.size()};
        dd::SetRoisOptions options;
        if (const dd::Value* fit = expected.find("fit")) options.fit = fit->as_bool();
        if (const dd::Value* source = expected.find("source")) options.source = source->as_string();
        typed = dd::encode_set_rois(labels, series, options);
    } else if (cmd == "load_model") {
        typed = dd::encode_request("load_model", {{"path", expected.at("path")}});
    } else if (cmd == "end_series") {
        typed = dd::encode_end_series(expected.at("series").as_string());
    } else {
        typed = dd::encode_request(cmd);
    }
    require(typed == parts[0], "the typed encoder differs for " + cmd);
}

/// True when a frame header holds only what frame_header() can write, with kind given.
bool typed_frame(const dd::Map& header) {
    if (!header.contains("kind")) return false;
    for (const auto& [key, value] : header) {
        if (key != "v" && key != "kind" && key != "series" && key != "index" && key != "dtype" &&
            key != "shape" && key != "t_ns" && key != "meta" && key != "resend") {
            return false;
        }
    }
    return true;
}

void message_vector(const dd::Map& entry, const std::vector<std::string>& parts) {
    bool input = entry.at("direction").as_string() == "input";
    dd::Message msg = dd::decode_message(to_messages(parts),
                                         input ? dd::Check::input : dd::Check::output);
    require(msg.topic == entry.at("topic").as_string(), "topic " + msg.topic);
    const dd::Map& expected = entry.at("header").as_map();
    require(msg.header == expected, "decoded " + dd::to_json(msg.header) + " != listed " +
                                        dd::to_json(expected));
    bool payload = !entry.at("payload_bytes").is_nil();
    require(msg.has_payload() == payload, "payload presence differs");
    if (payload) {
        require(dd::dtype_name(msg.dtype()) == entry.at("dtype").as_string(), "dtype differs");
        require(msg.shape() == shape_of(entry.at("shape")), "shape differs");
        const zmq::message_t& p = msg.payload();
        require(p.size() == entry.at("payload_bytes").as_uint64(), "payload size differs");
        require(sha256_hex(p.data(), p.size()) == entry.at("payload_sha256").as_string(),
                "payload sha256 differs");
        if (const dd::Value* pixels = entry.find("pixels"); pixels && !pixels->is_nil()) {
            std::string want = pixel_bytes(pixels->as_array(), entry.at("dtype").as_string());
            switch (msg.dtype()) {
                case dd::Dtype::u1: compare_pixels<std::uint8_t>(msg, want); break;
                case dd::Dtype::u2: compare_pixels<std::uint16_t>(msg, want); break;
                case dd::Dtype::i2: compare_pixels<std::int16_t>(msg, want); break;
                case dd::Dtype::f4: compare_pixels<float>(msg, want); break;
            }
        }
        if (msg.topic == "traces") {
            dd::Traces traces = dd::traces_of(msg);
            require(traces.labels.size() == traces.values.rows(), "traces rows");
        }
    }
    if (!entry.at("canonical").as_bool()) return;

    const std::string payload_bytes = payload ? parts.at(2) : std::string();
    dd::Parts generic = dd::encode_message(msg.topic, expected,
                                           payload ? payload_bytes.data() : nullptr,
                                           payload_bytes.size());
    compare_parts(generic, parts, "encode_message");

    if (!input || !typed_frame(expected)) return;
    // The typed encoders, as Publisher uses them.
    std::optional<std::uint64_t> t_ns;
    if (const dd::Value* t = expected.find("t_ns")) t_ns = t->as_uint64();
    const std::string& kind = expected.at("kind").as_string();
    const std::string& series = expected.at("series").as_string();
    dd::Parts typed;
    if (kind == "frame") {
        dd::FrameOptions options;
        options.t_ns = t_ns;
        if (const dd::Value* meta = expected.find("meta")) options.meta = meta->as_map();
        if (const dd::Value* resend = expected.find("resend")) options.resend = resend->as_bool();
        dd::FrameRef frame{msg.dtype(), msg.shape(), payload_bytes.data()};
        typed = dd::encode_frame(frame, series, expected.at("index").as_uint64(), options,
                                 msg.topic);
    } else if (kind == "start") {
        typed = dd::encode_start(series, t_ns, msg.topic);
    } else {
        typed = dd::encode_end(series, t_ns, msg.topic);
    }
    compare_parts(typed, parts, "typed encoder");
}

void invalid_vector(const dd::Map& entry, const std::vector<std::string>& parts) {
    const std::string& reason = entry.at("reject_reason").as_string();
    try {
        dd::decode_message(to_messages(parts), dd::Check::input);
    } catch (const dd::ProtocolError& e) {
        require(e.reason() == reason, "rejected as " + e.reason() + " (" + e.what() +
                                          "), expected " + reason);
        return;
    }
    throw std::runtime_error("accepted, expected a rejection as " + reason);
}

template <class F> void expect_reason(const std::string& reason, F&& body) {
    try {
        body();
    } catch (const dd::ProtocolError& e) {
        require(e.reason() == reason, "rejected as " + e.reason() + ", expected " + reason);
        return;
    }
    throw std::runtime_error("accepted, expected a rejection as " + reason);
}

void api_checks() {
    check("api: PixelView reads unaligned payloads", [] {
        const float values[3] = {0.5f, -1.25f, 1024.0f};
        char buffer[1 + sizeof values];
        std::memcpy(buffer + 1, values, sizeof values);  // deliberately misaligned
        dd::PixelView<float> view(buffer + 1, dd::Shape{1, 3});
        require(view[0] == 0.5f && view(0, 1) == -1.25f && view.at(0, 2) == 1024.0f, "values");
        std::vector<float> copy = view.to_vector();
        require(copy.size() == 3 && copy[2] == 1024.0f, "to_vector");
    });
    check("api: validation before sending", [] {
        const std::uint16_t px[1] = {0};
        dd::FrameRef one = dd::frame_ref(px, dd::Shape{1, 1});
        expect_reason("series", [&] { dd::encode_frame(one, ".hidden", 0); });
        expect_reason("series", [&] { dd::encode_frame(one, std::string(65, 'a'), 0); });
        expect_reason("index", [&] { dd::encode_frame(one, "s", dd::max_index + 1); });
        expect_reason("shape", [&] {
            dd::encode_frame(dd::FrameRef{dd::Dtype::u1, dd::Shape{16385, 1}, px}, "s", 0);
        });
        expect_reason("shape", [&] {
            dd::encode_frame(dd::FrameRef{dd::Dtype::u1, dd::Shape{0, 5}, px}, "s", 0);
        });
        dd::FrameOptions late;
        late.t_ns = dd::max_t_ns + 1;
        expect_reason("t_ns", [&] { dd::encode_frame(one, "s", 0, late); });
        dd::FrameOptions big;
        big.meta = dd::Map{{"text", std::string(8200, 'm')}};
        expect_reason("meta", [&] { dd::encode_frame(one, "s", 0, big); });
        auto nested = [](int lists) {  // {"a": [[...[0]...]]}
            dd::Value value = std::int64_t{0};
            for (int i = 0; i < lists; ++i) value = dd::Value(dd::Array{value});
            return dd::Map{{"a", value}};
        };
        dd::FrameOptions deep;
        deep.meta = nested(14);  // header, meta, 14 arrays: 16 levels
        dd::encode_frame(one, "s", 0, deep);
        deep.meta = nested(15);  // 17: the service would reject it
        expect_reason("header_decode", [&] { dd::encode_frame(one, "s", 0, deep); });
        require(!dd::parse_dtype(">u2") && !dd::parse_dtype("u2") && !dd::parse_dtype("<f8"),
                "only the four dtypes parse");
    });
    check("api: set_rois' source is 1 to 1024 characters of UTF-8, no control character", [] {
        const std::uint16_t px[2] = {0, 1};
        const dd::LabelImage labels = dd::label_image(px, dd::Shape{1, 2});
        auto refused = [&](const std::string& source, const std::string& why) {
            dd::SetRoisOptions options;
            options.source = source;
            try {
                dd::encode_set_rois(labels, std::nullopt, options);
            } catch (const std::invalid_argument& e) {
                const std::string message = e.what();
                require(message.find("1 to 1024") != std::string::npos &&
                            message.find(why) != std::string::npos,
                        "the message says " + message);
                return;
            }
            throw std::runtime_error("source of " + std::to_string(source.size()) +
                                     " bytes accepted");
        };
        refused("", "got 0 characters");
        refused(std::string(1025, 'a'), "got 1025 characters");
        refused("rois\tcells", "a control character");
        refused("rois\xc2\x85", "a control character");  // U+0085
        refused("rois\xc3", "invalid UTF-8");
        dd::SetRoisOptions options;
        options.source = std::string(1024, 'a');
        dd::encode_set_rois(labels, std::nullopt, options);
        std::string accents;
        for (int i = 0; i < 1024; ++i) accents += "\xc3\xa9";  // characters, not bytes
        options.source = accents;
        dd::encode_set_rois(labels, std::nullopt, options);
    });
    check("api: t_ns above 2^53 stays exact", [] {
        const std::uint8_t px[1] = {7};
        dd::FrameOptions options;
        options.t_ns = 1'700'000'000'000'000'001ull;
        dd::Message msg = dd::decode_message(
            dd::encode_frame(dd::frame_ref(px, dd::Shape{1, 1}), "s", 3, options),
            dd::Check::input);
        require(msg.header.at("t_ns").as_uint64() == 1'700'000'000'000'000'001ull, "t_ns");
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: test_vectors VECTORS_DIR\n";
        return 2;
    }
    const std::string dir = argv[1];
    dd::Value doc;
    try {
        doc = from_json(nlohmann::ordered_json::parse(read_file(dir + "/vectors.json")));
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
    const dd::Array& vectors = doc.as_map().at("vectors").as_array();
    for (const dd::Value& v : vectors) {
        const dd::Map& entry = v.as_map();
        const std::string name = entry.at("name").as_string();
        check(name, [&] {
            std::vector<std::string> parts = read_parts(dir + "/" + entry.at("file").as_string());
            require(parts.size() == entry.at("parts").as_uint64(), "part count");
            if (!entry.at("valid").as_bool()) {
                invalid_vector(entry, parts);
            } else if (entry.at("direction").as_string() == "control") {
                control_vector(entry, parts);
            } else {
                message_vector(entry, parts);
            }
        });
    }
    api_checks();
    check("json: 2^63 (invalid_t_ns_2_63) read exactly, as on the wire", [&] {
        for (const dd::Value& v : vectors) {
            const dd::Map& entry = v.as_map();
            if (entry.at("name").as_string() != "invalid_t_ns_2_63") continue;
            const dd::Value& listed = entry.at("header").as_map().at("t_ns");
            require(!listed.is_negative() && listed.as_uint64() == 9223372036854775808ull,
                    "listed t_ns " + dd::to_json(listed));
            std::vector<std::string> parts = read_parts(dir + "/" + entry.at("file").as_string());
            dd::Map wire = dd::decode_header(parts.at(1).data(), parts.at(1).size());
            require(wire == entry.at("header").as_map(), "decoded " + dd::to_json(wire) +
                                                             " != listed");
            return;
        }
        throw std::runtime_error("no vector invalid_t_ns_2_63");
    });
    std::cout << vectors.size() << " vectors; " << passes << " checks passed, " << failures
              << " failed\n";
    return failures == 0 ? 0 : 1;
}
