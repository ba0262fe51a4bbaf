// Wire protocol v1 (clients/PROTOCOL.md) without sockets: pixel types, limits,
// validation, canonical header encoding and message decoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <zmq.hpp>

#include "deepdenoise/value.hpp"

// Payloads are little-endian; reading them with memcpy is only right on a
// little-endian host (PROTOCOL.md section 11: "swap bytes or refuse to run").
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "deepdenoise client: big-endian hosts are not supported (payloads are little-endian)"
#endif

namespace deepdenoise {

inline constexpr int protocol_version = 1;
inline constexpr std::uint64_t max_index = (std::uint64_t{1} << 40) - 1;
inline constexpr std::uint64_t max_t_ns = (std::uint64_t{1} << 63) - 1;
/// The most characters of a set_rois source.
inline constexpr std::size_t max_source = 1024;

/// The service's limits; these defaults are the reference service's. Checked before
/// sending so a frame the service would reject fails at the call site.
struct Limits {
    std::size_t max_header_bytes = 64 * 1024;
    std::size_t max_meta_bytes = 8 * 1024;
    std::uint32_t max_side = 16384;
    std::uint64_t max_payload_bytes = 256ull * 1024 * 1024;
};

/// The service's output may exceed its input limits by these factors (PROTOCOL.md,
/// section 7): a traces header lists every ROI's label, and a float32 output of the
/// largest |u1 frame is 4 times its size. Check::output applies them, with no max_side.
inline constexpr std::uint64_t output_header_factor = 16;
inline constexpr std::uint64_t output_payload_factor = 4;

/// A message the protocol rejects; `reason()` is the code of PROTOCOL.md section 6
/// ("series", "dtype", "header_decode", ...).
class ProtocolError : public std::invalid_argument {
public:
    ProtocolError(std::string reason, const std::string& message)
        : std::invalid_argument(message), reason_(std::move(reason)) {}
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string reason_;
};

// ------------------------------------------------------------------ pixel types

/// Frame pixel types: "|u1", "<u2", "<i2", "<f4".
enum class Dtype { u1, u2, i2, f4 };

std::string_view dtype_name(Dtype dtype);
std::size_t itemsize(Dtype dtype);
/// The Dtype of a type string, or nothing for any other string (">u2", "u2", "<f8"...).
std::optional<Dtype> parse_dtype(std::string_view name);

template <class T> struct dtype_of;  // only the four pixel types below have one
template <> struct dtype_of<std::uint8_t> { static constexpr Dtype value = Dtype::u1; };
template <> struct dtype_of<std::uint16_t> { static constexpr Dtype value = Dtype::u2; };
template <> struct dtype_of<std::int16_t> { static constexpr Dtype value = Dtype::i2; };
template <> struct dtype_of<float> { static constexpr Dtype value = Dtype::f4; };
template <class T> inline constexpr Dtype dtype_v = dtype_of<T>::value;

struct Shape {
    std::uint32_t height = 0;
    std::uint32_t width = 0;
    std::size_t pixels() const { return std::size_t{height} * width; }
    bool operator==(const Shape& o) const { return height == o.height && width == o.width; }
};

/// A read-only view of a C-order pixel buffer (the std::span of this client). Elements
/// are read with memcpy, because a received payload need not be aligned for T.
template <class T> class PixelView {
    static_assert(std::is_trivially_copyable_v<T>, "pixels are trivially copyable");

public:
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = T;
        iterator(const std::byte* p) : p_(p) {}
        T operator*() const { return load(p_); }
        iterator& operator++() { p_ += sizeof(T); return *this; }
        iterator operator++(int) { iterator old = *this; ++*this; return old; }
        bool operator==(const iterator& o) const { return p_ == o.p_; }
        bool operator!=(const iterator& o) const { return p_ != o.p_; }

    private:
        const std::byte* p_;
    };

    PixelView(const void* data, Shape shape)
        : data_(static_cast<const std::byte*>(data)), shape_(shape) {}

    Shape shape() const { return shape_; }
    std::size_t rows() const { return shape_.height; }
    std::size_t cols() const { return shape_.width; }
    std::size_t size() const { return shape_.pixels(); }
    std::size_t size_bytes() const { return size() * sizeof(T); }
    /// The raw bytes, for code that does its own (aligned) copies.
    const std::byte* bytes() const { return data_; }

    T operator[](std::size_t i) const { return load(data_ + i * sizeof(T)); }
    T operator()(std::size_t row, std::size_t col) const { return (*this)[row * cols() + col]; }
    /// Bounds-checked element access.
    T at(std::size_t row, std::size_t col) const {
        if (row >= rows() || col >= cols()) throw std::out_of_range("PixelView::at");
        return (*this)(row, col);
    }
    iterator begin() const { return iterator(data_); }
    iterator end() const { return iterator(data_ + size_bytes()); }
    /// Copy every pixel into `out` (size() elements), one memcpy.
    void copy_to(T* out) const { std::memcpy(out, data_, size_bytes()); }
    std::vector<T> to_vector() const {
        std::vector<T> out(size());
        copy_to(out.data());
        return out;
    }

private:
    static T load(const std::byte* p) {
        T v;
        std::memcpy(&v, p, sizeof(T));
        return v;
    }
    const std::byte* data_;
    Shape shape_;
};

/// Pixels to send: a pointer into the caller's buffer, its type and shape.
struct FrameRef {
    Dtype dtype;
    Shape shape;
    const void* data;
    std::size_t nbytes() const { return shape.pixels() * itemsize(dtype); }
};

template <class T> FrameRef frame_ref(const T* pixels, Shape shape) {
    return FrameRef{dtype_v<T>, shape, pixels};
}

/// A set_rois label image: "|u1", "<u2", "<i2", "<u4", "<i4" or "<i8", C order.
struct LabelImage {
    std::string dtype;
    Shape shape;
    const void* data;
    std::size_t nbytes;
};

template <class T> LabelImage label_image(const T* labels, Shape shape) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "integer labels");
    constexpr bool s = std::is_signed_v<T>;
    static_assert(!(s && sizeof(T) == 1) && !(!s && sizeof(T) == 8), "no <i1 or <u8 labels");
    const char* name = sizeof(T) == 1 ? "|u1"
                       : sizeof(T) == 2 ? (s ? "<i2" : "<u2")
                       : sizeof(T) == 4 ? (s ? "<i4" : "<u4")
                                        : "<i8";
    return LabelImage{name, shape, labels, shape.pixels() * sizeof(T)};
}

// ------------------------------------------------------------------ validation

/// Throws ProtocolError("series") unless `series` matches ^(?!\.)[A-Za-z0-9._-]{1,64}$.
void check_series(std::string_view series);
bool is_valid_series(std::string_view series);

// ------------------------------------------------------------------ encoding

/// Options of one frame beyond its pixels.
struct FrameOptions {
    std::optional<std::uint64_t> t_ns;  ///< Unix ns, 0..2^63-1
    std::optional<Map> meta;            ///< kept with the frame; <= 8192 bytes encoded
    bool resend = false;                ///< overwrite an index sent before
};

/// The header of an input frame, validated (series, index, dtype, shape, sizes, t_ns,
/// meta) in the spec's order; throws ProtocolError with the service's reason code.
Map frame_header(std::string_view series, std::uint64_t index, Dtype dtype, Shape shape,
                 const FrameOptions& options = {}, const Limits& limits = {});
/// The header of a `start` or `end` message.
Map mark_header(std::string_view kind, std::string_view series,
                std::optional<std::uint64_t> t_ns = std::nullopt);

/// `header` with its keys in canonical order (v, kind, series, index, dtype, shape, t_ns,
/// meta, resend, model, t_recv_ns, t_done_ns, then the rest as given).
Map canonical(const Map& header);
/// Canonical msgpack of a header: canonical key order, str never bin, smallest ints,
/// float64 floats. Throws ProtocolError("header_decode") for a non-map or a non-str key.
std::string encode_header(const Map& header);
/// Plain msgpack of any value (nested maps keep their order; smallest ints, float64).
std::string encode_value(const Value& value);

using Parts = std::vector<zmq::message_t>;

/// [topic, header] or [topic, header, payload] (payload copied), no protocol checks.
Parts encode_message(std::string_view topic, const Map& header,
                     const void* payload = nullptr, std::size_t payload_size = 0);
/// A validated input frame as [topic, header, payload]; the payload is copied.
Parts encode_frame(const FrameRef& frame, std::string_view series, std::uint64_t index,
                   const FrameOptions& options = {}, std::string_view topic = "frame",
                   const Limits& limits = {});
Parts encode_start(std::string_view series, std::optional<std::uint64_t> t_ns = std::nullopt,
                   std::string_view topic = "frame");
Parts encode_end(std::string_view series, std::optional<std::uint64_t> t_ns = std::nullopt,
                 std::string_view topic = "frame");

/// A control request {"cmd": cmd, ...arguments}: cmd first, arguments in the given order
/// (requests are not reordered like headers).
std::string encode_request(std::string_view cmd, const Map& arguments = {});
/// end_series: end an open series as its sender's `end` would (a sender that crashed).
/// Throws ProtocolError("series") for a bad series.
std::string encode_end_series(std::string_view series);
/// The optional arguments of set_rois (PROTOCOL.md section 8).
struct SetRoisOptions {
    /// The label image is the ROIs' extent from the frame's top-left corner, not the
    /// whole frame (ROIs known only by their pixels), so any frame that holds it fits.
    bool fit = false;
    /// Where the labels came from (a file's path, say): 1 to max_source characters of
    /// UTF-8, no control character. The service's status.traces.source and the stored
    /// traces' rois_source then name it.
    std::optional<std::string> source;
};

/// set_rois with a label image, for one series or (nullopt) every series; `options` go
/// after the labels ("fit" when true, "source" when given). Throws std::invalid_argument
/// for a bad label image or source, ProtocolError("series") for a bad series.
std::string encode_set_rois(const LabelImage& labels,
                            const std::optional<std::string>& series = std::nullopt,
                            const SetRoisOptions& options = {});
/// set_rois with nil labels: remove the ROIs.
std::string encode_clear_rois(const std::optional<std::string>& series = std::nullopt);

// ------------------------------------------------------------------ decoding

/// Exactly one msgpack map, str keys at every depth, valid UTF-8 in every str, no ext
/// types; throws ProtocolError("header_decode") otherwise.
Map decode_header(const void* data, std::size_t size);

/// How much of a message to check.
enum class Check {
    output,  ///< what reading needs: parts, header, v, and dtype/shape/length of a payload,
             ///< against the output bounds (output_header_factor, output_payload_factor)
    input,   ///< every rule for input messages, in the spec's order (the service's codes)
};

/// One received message. It owns the payload's ZeroMQ buffer: pixels() reads it in
/// place, without a copy. Move-only, like the buffer.
class Message {
public:
    std::string topic;
    Map header;

    bool has_payload() const { return payload_.has_value(); }
    /// Of the payload; only meaningful when has_payload().
    Dtype dtype() const { return dtype_; }
    Shape shape() const { return shape_; }
    const zmq::message_t& payload() const;
    /// The pixels as T; throws ProtocolError("dtype") when T is not the payload's type.
    template <class T> PixelView<T> pixels() const {
        if (dtype_v<T> != dtype_) {
            throw ProtocolError("dtype", "payload is " + std::string(dtype_name(dtype_)) +
                                             ", not " + std::string(dtype_name(dtype_v<T>)));
        }
        return PixelView<T>(payload().data(), shape_);
    }
    /// The header's "kind", "frame" when absent.
    std::string kind() const;

private:
    friend Message decode_message(Parts&& parts, Check check, const Limits& limits);
    std::optional<zmq::message_t> payload_;
    Dtype dtype_ = Dtype::u1;
    Shape shape_{};
};

/// Decode a received message; throws ProtocolError with the first reason that applies.
Message decode_message(Parts&& parts, Check check = Check::output, const Limits& limits = {});

/// The fields of a `traces` message; `values` views the message, which must outlive it.
struct Traces {
    std::string series;
    std::uint64_t index;
    std::vector<std::int64_t> labels;  ///< row r is the ROI labels[r]
    std::vector<std::string> columns;  ///< "raw", "denoised", "dff"[, "dff_denoised"]
    PixelView<float> values;           ///< rois x columns
    /// The column `name` of row `row`; throws std::out_of_range for an unknown column.
    float value(std::size_t row, std::string_view name) const;
};
/// Throws ProtocolError when `message` is not a well-formed traces message.
Traces traces_of(const Message& message);

}  // namespace deepdenoise
