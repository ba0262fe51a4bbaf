// Encoding and decoding with msgpack-cxx. msgpack is an implementation detail: the
// public headers speak deepdenoise::Value only, so users need not include it.
#include "deepdenoise/protocol.hpp"

#include <algorithm>
#include <array>
#include <msgpack.hpp>

namespace deepdenoise {

namespace {

constexpr std::array<const char*, 12> canonical_keys = {
    "v", "kind", "series", "index", "dtype", "shape",
    "t_ns", "meta", "resend", "model", "t_recv_ns", "t_done_ns"};
constexpr std::array<const char*, 6> label_dtypes = {"|u1", "<u2", "<i2", "<u4", "<i4", "<i8"};
// Nesting deeper than this is refused on decode: meta is "shallow" in practice, and
// the limit bounds the recursion of the converter below.
constexpr std::size_t max_depth = 64;

[[noreturn]] void fail(const std::string& reason, const std::string& message) {
    throw ProtocolError(reason, message);
}

/// Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF),
/// the same rule as Python's strict decoder.
bool valid_utf8(const char* data, std::size_t size) {
    const auto* s = reinterpret_cast<const unsigned char*>(data);
    std::size_t i = 0;
    while (i < size) {
        unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n;
        std::uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= size) return false;  // truncated sequence
        for (std::size_t k = 1; k <= n; ++k) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

/// set_rois' source: 1 to max_source characters of UTF-8, none of them a control
/// character (U+0000-U+001F, U+007F-U+009F).
void check_source(const std::string& source) {
    const char* why = valid_utf8(source.data(), source.size()) ? nullptr : "invalid UTF-8";
    const auto* s = reinterpret_cast<const unsigned char*>(source.c_str());
    std::size_t chars = 0;
    for (std::size_t i = 0; why == nullptr && i < source.size(); ++i) {
        // in valid UTF-8, U+0080-U+009F are 0xc2 0x80-0x9f
        if (s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] < 0xa0)) {
            why = "a control character";
        }
        chars += (s[i] & 0xc0) != 0x80;  // a character's first byte
    }
    if (why == nullptr && chars >= 1 && chars <= max_source) return;
    throw std::invalid_argument(
        "set_rois: expected source (where the labels came from) as 1 to " +
        std::to_string(max_source) + " characters of UTF-8, none a control character, got " +
        (why != nullptr ? std::string(why) : std::to_string(chars) + " characters"));
}

// Levels of maps and arrays a header may nest, its own map the first (PROTOCOL.md):
// a deeper one the service rejects (header_decode), so it is refused before sending.
constexpr std::size_t max_header_levels = 16;

/// Levels of maps and arrays in `value` (a scalar: 0); meta's depth is bounded by the
/// decoder's max_depth when it came off the wire, and by the caller's stack otherwise.
std::size_t nesting_levels(const Value& value) {
    std::size_t deepest = 0;
    if (value.is_array()) {
        for (const Value& item : value.as_array()) {
            deepest = std::max(deepest, nesting_levels(item));
        }
    } else if (value.is_map()) {
        for (const auto& [key, item] : value.as_map()) {
            deepest = std::max(deepest, nesting_levels(item));
        }
    } else {
        return 0;
    }
    return deepest + 1;
}

void check_strings(const Value& value, const std::string& reason) {
    switch (value.type()) {
        case Value::Type::string: {
            const std::string& s = value.as_string();
            if (!valid_utf8(s.data(), s.size())) fail(reason, "a string is not valid UTF-8");
            break;
        }
        case Value::Type::array:
            for (const Value& item : value.as_array()) check_strings(item, reason);
            break;
        case Value::Type::map:
            for (const auto& [key, item] : value.as_map()) {
                if (!valid_utf8(key.data(), key.size())) fail(reason, "a key is not valid UTF-8");
                check_strings(item, reason);
            }
            break;
        default: break;
    }
}

// ------------------------------------------------------------------ msgpack out

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_str(Packer& pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// pack_uint64 / pack_int64 choose the smallest form themselves (fixint, then 8, 16,
// 32, 64 bits; unsigned forms for non-negative values), as the canonical rule says.
void pack(Packer& pk, const Value& value) {
    switch (value.type()) {
        case Value::Type::nil: pk.pack_nil(); break;
        case Value::Type::boolean: value.as_bool() ? pk.pack_true() : pk.pack_false(); break;
        case Value::Type::integer:
            if (value.is_negative()) {
                pk.pack_int64(value.as_int64());
            } else {
                pk.pack_uint64(value.as_uint64());
            }
            break;
        case Value::Type::floating: pk.pack_double(value.as_double()); break;
        case Value::Type::string: pack_str(pk, value.as_string()); break;
        case Value::Type::binary: {
            const auto& bytes = value.as_bytes().data;
            pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
            pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                             static_cast<std::uint32_t>(bytes.size()));
            break;
        }
        case Value::Type::array:
            pk.pack_array(static_cast<std::uint32_t>(value.as_array().size()));
            for (const Value& item : value.as_array()) pack(pk, item);
            break;
        case Value::Type::map:
            pk.pack_map(static_cast<std::uint32_t>(value.as_map().size()));
            for (const auto& [key, item] : value.as_map()) {
                pack_str(pk, key);
                pack(pk, item);
            }
            break;
    }
}

std::string packed(const Value& value) {
    msgpack::sbuffer buffer;
    Packer pk(buffer);
    pack(pk, value);
    return std::string(buffer.data(), buffer.size());
}

// ------------------------------------------------------------------ msgpack in

Value from_object(const msgpack::object& o) {
    switch (o.type) {
        case msgpack::type::NIL: return Value();
        case msgpack::type::BOOLEAN: return Value(o.via.boolean);
        case msgpack::type::POSITIVE_INTEGER: return Value(static_cast<std::uint64_t>(o.via.u64));
        case msgpack::type::NEGATIVE_INTEGER: return Value(static_cast<long long>(o.via.i64));
        case msgpack::type::FLOAT32:  // accepted on input, re-encoded as float64
        case msgpack::type::FLOAT64: return Value(o.via.f64);
        case msgpack::type::STR:
            if (!valid_utf8(o.via.str.ptr, o.via.str.size)) {
                fail("header_decode", "a str is not valid UTF-8");
            }
            return Value(std::string(o.via.str.ptr, o.via.str.size));
        case msgpack::type::BIN: {
            const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
            return Value(Bytes{std::vector<std::uint8_t>(p, p + o.via.bin.size)});
        }
        case msgpack::type::ARRAY: {
            Array items;
            items.reserve(o.via.array.size);
            for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
                items.push_back(from_object(o.via.array.ptr[i]));
            }
            return Value(std::move(items));
        }
        case msgpack::type::MAP: {
            Map map;
            for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
                const msgpack::object& key = o.via.map.ptr[i].key;
                if (key.type != msgpack::type::STR) {
                    fail("header_decode", "a map key is not a msgpack str");
                }
                if (!valid_utf8(key.via.str.ptr, key.via.str.size)) {
                    fail("header_decode", "a map key is not valid UTF-8");
                }
                // A key given twice keeps its first place and its last value, as the
                // reference service (a Python dict) does.
                map.set(std::string(key.via.str.ptr, key.via.str.size),
                        from_object(o.via.map.ptr[i].val));
            }
            return Value(std::move(map));
        }
        default: fail("header_decode", "ext types are not allowed in a header");
    }
}

bool is_uint_at_most(const Value* v, std::uint64_t max) {
    return v != nullptr && v->is_int() && !v->is_negative() && v->as_uint64() <= max;
}

std::string describe(const Value* v) { return v == nullptr ? "nothing" : to_json(*v); }

/// value * factor, or the largest uint64 when that overflows (a user's huge limit).
std::uint64_t saturated_times(std::uint64_t value, std::uint64_t factor) {
    return value > UINT64_MAX / factor ? UINT64_MAX : value * factor;
}

}  // namespace

// ------------------------------------------------------------------ pixel types

std::string_view dtype_name(Dtype dtype) {
    switch (dtype) {
        case Dtype::u1: return "|u1";
        case Dtype::u2: return "<u2";
        case Dtype::i2: return "<i2";
        case Dtype::f4: return "<f4";
    }
    return "?";
}

std::size_t itemsize(Dtype dtype) {
    switch (dtype) {
        case Dtype::u1: return 1;
        case Dtype::u2:
        case Dtype::i2: return 2;
        case Dtype::f4: return 4;
    }
    return 0;
}

std::optional<Dtype> parse_dtype(std::string_view name) {
    for (Dtype d : {Dtype::u1, Dtype::u2, Dtype::i2, Dtype::f4}) {
        if (dtype_name(d) == name) return d;
    }
    return std::nullopt;
}

// ------------------------------------------------------------------ validation

bool is_valid_series(std::string_view series) {
    if (series.empty() || series.size() > 64 || series.front() == '.') return false;
    for (char c : series) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

void check_series(std::string_view series) {
    if (!is_valid_series(series)) {
        fail("series",
             "expected a series id of 1-64 characters from [A-Za-z0-9._-], not starting with "
             "'.', got \"" + std::string(series) + "\"");
    }
}

// ------------------------------------------------------------------ encoding

Map canonical(const Map& header) {
    Map out;
    for (const char* key : canonical_keys) {
        if (const Value* v = header.find(key)) out.push_back(key, *v);
    }
    for (const auto& [key, value] : header) {
        if (!out.contains(key)) out.push_back(key, value);
    }
    return out;
}

std::string encode_value(const Value& value) {
    check_strings(value, "header_decode");
    return packed(value);
}

std::string encode_header(const Map& header) { return encode_value(Value(canonical(header))); }

Map frame_header(std::string_view series, std::uint64_t index, Dtype dtype, Shape shape,
                 const FrameOptions& options, const Limits& limits) {
    check_series(series);
    if (index > max_index) {
        fail("index", "expected index 0..2^40-1, got " + std::to_string(index));
    }
    if (shape.height < 1 || shape.width < 1 || shape.height > limits.max_side ||
        shape.width > limits.max_side) {
        fail("shape", "expected a 2-D frame, each side 1.." + std::to_string(limits.max_side) +
                          ", got [" + std::to_string(shape.height) + ", " +
                          std::to_string(shape.width) + "]");
    }
    Map header{{"v", protocol_version},
               {"kind", "frame"},
               {"series", series},
               {"index", index},
               {"dtype", dtype_name(dtype)},
               {"shape", Array{shape.height, shape.width}}};
    if (options.t_ns) {
        if (*options.t_ns > max_t_ns) {
            fail("t_ns", "expected t_ns 0..2^63-1, got " + std::to_string(*options.t_ns));
        }
        header.push_back("t_ns", *options.t_ns);
    }
    if (options.meta) {
        check_strings(Value(*options.meta), "meta");
        std::size_t size = packed(Value(*options.meta)).size();
        if (size > limits.max_meta_bytes) {
            fail("meta", "meta is " + std::to_string(size) + " bytes encoded, limit " +
                             std::to_string(limits.max_meta_bytes));
        }
        std::size_t levels = 1 + nesting_levels(Value(*options.meta));  // the header's map
        if (levels > max_header_levels) {
            fail("header_decode", "expected a header nested at most " +
                                      std::to_string(max_header_levels) +
                                      " levels deep, meta makes it " + std::to_string(levels));
        }
        header.push_back("meta", *options.meta);
    }
    if (options.resend) header.push_back("resend", true);
    std::uint64_t nbytes = std::uint64_t{shape.height} * shape.width * itemsize(dtype);
    if (nbytes > limits.max_payload_bytes) {
        fail("payload_size", "a frame of " + std::to_string(nbytes) +
                                 " bytes exceeds the payload limit " +
                                 std::to_string(limits.max_payload_bytes));
    }
    return header;
}

Map mark_header(std::string_view kind, std::string_view series,
                std::optional<std::uint64_t> t_ns) {
    if (kind != "start" && kind != "end") fail("kind", "expected kind start or end");
    check_series(series);
    Map header{{"v", protocol_version}, {"kind", kind}, {"series", series}};
    if (t_ns) {
        if (*t_ns > max_t_ns) fail("t_ns", "expected t_ns 0..2^63-1");
        header.push_back("t_ns", *t_ns);
    }
    return header;
}

Parts encode_message(std::string_view topic, const Map& header, const void* payload,
                     std::size_t payload_size) {
    Parts parts;
    parts.emplace_back(topic.data(), topic.size());
    std::string encoded = encode_header(header);
    parts.emplace_back(encoded.data(), encoded.size());
    if (payload != nullptr) parts.emplace_back(payload, payload_size);
    return parts;
}

Parts encode_frame(const FrameRef& frame, std::string_view series, std::uint64_t index,
                   const FrameOptions& options, std::string_view topic, const Limits& limits) {
    Map header = frame_header(series, index, frame.dtype, frame.shape, options, limits);
    Parts parts = encode_message(topic, header, frame.data, frame.nbytes());
    if (parts[1].size() > limits.max_header_bytes) {
        fail("header_size", "header is " + std::to_string(parts[1].size()) + " bytes, limit " +
                                std::to_string(limits.max_header_bytes));
    }
    return parts;
}

Parts encode_start(std::string_view series, std::optional<std::uint64_t> t_ns,
                   std::string_view topic) {
    return encode_message(topic, mark_header("start", series, t_ns));
}

Parts encode_end(std::string_view series, std::optional<std::uint64_t> t_ns,
                 std::string_view topic) {
    return encode_message(topic, mark_header("end", series, t_ns));
}

std::string encode_request(std::string_view cmd, const Map& arguments) {
    Map request{{"cmd", cmd}};
    for (const auto& [key, value] : arguments) request.set(key, value);
    return encode_value(Value(std::move(request)));
}

std::string encode_end_series(std::string_view series) {
    check_series(series);
    return encode_request("end_series", {{"series", series}});
}

std::string encode_set_rois(const LabelImage& labels, const std::optional<std::string>& series,
                            const SetRoisOptions& options) {
    std::size_t item = 0;
    for (const char* name : label_dtypes) {
        if (labels.dtype == name) item = static_cast<std::size_t>(name[2] - '0');
    }
    if (item == 0) {
        throw std::invalid_argument("set_rois: expected a label dtype |u1, <u2, <i2, <u4, <i4 "
                                    "or <i8, got \"" + labels.dtype + "\"");
    }
    if (labels.nbytes != labels.shape.pixels() * item) {
        throw std::invalid_argument("set_rois: " + std::to_string(labels.nbytes) +
                                    " bytes of labels do not fit the shape and dtype");
    }
    Map arguments;
    if (series) {
        check_series(*series);
        arguments.push_back("series", *series);
    }
    if (options.source) check_source(*options.source);
    const auto* p = static_cast<const std::uint8_t*>(labels.data);
    arguments.push_back("dtype", labels.dtype);
    arguments.push_back("shape", Array{labels.shape.height, labels.shape.width});
    arguments.push_back("labels", Bytes{std::vector<std::uint8_t>(p, p + labels.nbytes)});
    if (options.fit) arguments.push_back("fit", true);
    if (options.source) arguments.push_back("source", *options.source);
    return encode_request("set_rois", arguments);
}

std::string encode_clear_rois(const std::optional<std::string>& series) {
    Map arguments;
    if (series) {
        check_series(*series);
        arguments.push_back("series", *series);
    }
    arguments.push_back("labels", nullptr);
    return encode_request("set_rois", arguments);
}

// ------------------------------------------------------------------ decoding

Map decode_header(const void* data, std::size_t size) {
    const char* bytes = static_cast<const char*>(data);
    msgpack::object_handle handle;
    std::size_t offset = 0;
    try {
        // Every element takes at least one byte, so no container can claim more
        // entries than the header has bytes: this stops a forged length from making
        // the unpacker allocate gigabytes.
        msgpack::unpack_limit limit(size, size, size, size, size, max_depth);
        handle = msgpack::unpack(bytes, size, offset, nullptr, nullptr, limit);
    } catch (const std::exception& e) {
        fail("header_decode", std::string("header is not valid msgpack: ") + e.what());
    }
    if (offset != size) {
        fail("header_decode", std::to_string(size - offset) + " bytes after the header map");
    }
    if (handle.get().type != msgpack::type::MAP) {
        fail("header_decode", "expected the header as a msgpack map");
    }
    Value header = from_object(handle.get());
    return std::move(header.as_map());
}

const zmq::message_t& Message::payload() const {
    if (!payload_) throw std::logic_error("this message has no payload");
    return *payload_;
}

std::string Message::kind() const {
    const Value* kind = header.find("kind");
    return kind != nullptr && kind->is_string() ? kind->as_string() : "frame";
}

Message decode_message(Parts&& parts, Check check, const Limits& limits) {
    if (parts.size() != 2 && parts.size() != 3) {
        fail("parts", "expected 2 or 3 message parts, got " + std::to_string(parts.size()));
    }
    bool input = check == Check::input;
    std::uint64_t max_header =
        input ? limits.max_header_bytes : saturated_times(limits.max_header_bytes,
                                                          output_header_factor);
    if (parts[1].size() > max_header) {
        fail("header_size", "header is " + std::to_string(parts[1].size()) + " bytes, limit " +
                                std::to_string(max_header));
    }
    Message message;
    message.topic = parts[0].to_string();
    message.header = decode_header(parts[1].data(), parts[1].size());
    const Map& h = message.header;
    const Value* version = h.find("v");
    if (!(version != nullptr && version->is_int() && !version->is_negative() &&
          version->as_uint64() == protocol_version)) {
        fail("version", "expected protocol version v=1, got v=" + describe(version));
    }
    bool has_payload = parts.size() == 3;

    if (check == Check::input) {
        const Value* kind = h.find("kind");
        std::string kind_name = "frame";
        if (kind != nullptr) {
            if (!kind->is_string()) fail("kind", "expected kind as a str, got " + describe(kind));
            kind_name = kind->as_string();
            if (kind_name != "frame" && kind_name != "start" && kind_name != "end") {
                fail("kind", "expected kind frame, start or end, got " + describe(kind));
            }
        }
        const Value* series = h.find("series");
        if (series == nullptr || !series->is_string() || !is_valid_series(series->as_string())) {
            fail("series", "expected series of 1-64 characters from [A-Za-z0-9._-], not "
                           "starting with '.', got " + describe(series));
        }
        const Value* t_ns = h.find("t_ns");
        if (t_ns != nullptr && !t_ns->is_nil() && !is_uint_at_most(t_ns, max_t_ns)) {
            fail("t_ns", "expected t_ns as an integer 0..2^63-1, got " + describe(t_ns));
        }
        if (const Value* meta = h.find("meta")) {
            if (!meta->is_map()) fail("meta", "expected meta as a map");
            // Measured re-encoded canonically: for a canonical sender that is exactly
            // the bytes meta takes on the wire.
            std::size_t size = packed(*meta).size();
            if (size > limits.max_meta_bytes) {
                fail("meta", "meta is " + std::to_string(size) + " bytes encoded, limit " +
                                 std::to_string(limits.max_meta_bytes));
            }
        }
        if (const Value* resend = h.find("resend"); resend != nullptr && !resend->is_bool()) {
            fail("resend", "expected resend as a bool, got " + describe(resend));
        }
        if (kind_name != "frame") {
            if (has_payload) fail("payload_unexpected", "a " + kind_name + " message has no payload");
            return message;
        }
        if (!has_payload) fail("parts", "a frame needs 3 parts [topic, header, payload], got 2");
        const Value* index = h.find("index");
        if (!is_uint_at_most(index, max_index)) {
            fail("index", "expected index as an integer 0..2^40-1, got " + describe(index));
        }
    }
    if (!has_payload) return message;

    const Value* dtype_value = h.find("dtype");
    std::optional<Dtype> dtype;
    if (dtype_value != nullptr && dtype_value->is_string()) {
        dtype = parse_dtype(dtype_value->as_string());
    }
    if (!dtype) fail("dtype", "expected dtype |u1, <u2, <i2 or <f4, got " + describe(dtype_value));
    // Output sides have no max_side: a traces payload has a row per ROI.
    std::uint64_t max_bytes =
        input ? limits.max_payload_bytes : saturated_times(limits.max_payload_bytes,
                                                           output_payload_factor);
    std::uint64_t max_side =
        input ? limits.max_side : std::min<std::uint64_t>(max_bytes, UINT32_MAX);
    const Value* shape_value = h.find("shape");
    bool shape_ok = shape_value != nullptr && shape_value->is_array() &&
                    shape_value->as_array().size() == 2;
    if (shape_ok) {
        for (const Value& side : shape_value->as_array()) {
            shape_ok = shape_ok && side.is_int() && !side.is_negative() && side.as_uint64() >= 1 &&
                       side.as_uint64() <= max_side;
        }
    }
    if (!shape_ok) {
        fail("shape", "expected shape [height, width], each 1.." + std::to_string(max_side) +
                          ", got " + describe(shape_value));
    }
    Shape shape{static_cast<std::uint32_t>(shape_value->as_array()[0].as_uint64()),
                static_cast<std::uint32_t>(shape_value->as_array()[1].as_uint64())};
    std::uint64_t pixels = std::uint64_t{shape.height} * shape.width;  // both < 2^32
    if (pixels > max_bytes / itemsize(*dtype)) {
        fail("payload_size", "a " + std::to_string(shape.height) + "x" +
                                 std::to_string(shape.width) + " array is over the limit of " +
                                 std::to_string(max_bytes) + " payload bytes");
    }
    std::uint64_t expected = pixels * itemsize(*dtype);
    if (parts[2].size() != expected) {
        fail("payload_length", "expected " + std::to_string(expected) + " payload bytes, got " +
                                   std::to_string(parts[2].size()));
    }
    message.dtype_ = *dtype;
    message.shape_ = shape;
    message.payload_ = std::move(parts[2]);
    return message;
}

float Traces::value(std::size_t row, std::string_view name) const {
    for (std::size_t col = 0; col < columns.size(); ++col) {
        if (columns[col] == name) return values.at(row, col);
    }
    throw std::out_of_range("no trace column \"" + std::string(name) + "\"");
}

Traces traces_of(const Message& message) {
    if (!message.has_payload() || message.dtype() != Dtype::f4) {
        fail("traces", "a traces message has a <f4 payload");
    }
    const Map& h = message.header;
    try {
        Traces traces{h.at("series").as_string(), h.at("index").as_uint64(), {}, {},
                      message.pixels<float>()};
        for (const Value& label : h.at("labels").as_array()) {
            traces.labels.push_back(label.as_int64());
        }
        for (const Value& column : h.at("columns").as_array()) {
            traces.columns.push_back(column.as_string());
        }
        if (traces.labels.size() != traces.values.rows() ||
            traces.columns.size() != traces.values.cols()) {
            fail("traces", "labels and columns do not match the payload's shape");
        }
        return traces;
    } catch (const std::out_of_range& e) {
        fail("traces", e.what());
    } catch (const TypeError& e) {
        fail("traces", e.what());
    }
}

}  // namespace deepdenoise
