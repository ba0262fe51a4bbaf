// A msgpack value as the protocol uses it: what a header, a control request or a
// reply holds. Maps keep their key order, because the canonical encoding and the
// golden vectors depend on it (a std::map would sort the keys).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace deepdenoise {

class Value;

/// msgpack bin: raw bytes, kept apart from str (the protocol rejects strings sent as bin).
struct Bytes {
    std::vector<std::uint8_t> data;
    bool operator==(const Bytes& other) const { return data == other.data; }
};

using Array = std::vector<Value>;

/// A msgpack map with str keys, in insertion (wire) order.
class Map {
public:
    using Entry = std::pair<std::string, Value>;

    Map() = default;
    Map(std::initializer_list<Entry> entries);

    /// The value of `key`, or nullptr. With a key given twice the last one wins, as in
    /// the reference service.
    const Value* find(std::string_view key) const;
    Value* find(std::string_view key);
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    /// The value of `key`; throws std::out_of_range when it is absent.
    const Value& at(std::string_view key) const;
    /// Replace the value of `key`, or append it at the end.
    Map& set(std::string key, Value value);
    /// Append without looking for the key (decoders keep duplicates as they came).
    void push_back(std::string key, Value value);

    using const_iterator = std::vector<Entry>::const_iterator;
    std::size_t size() const;
    bool empty() const { return size() == 0; }
    const_iterator begin() const;
    const_iterator end() const;

    bool operator==(const Map& other) const;
    bool operator!=(const Map& other) const { return !(*this == other); }

private:
    std::vector<Entry> entries_;
};

/// Thrown by the `as_*` accessors when a value has another type.
class TypeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Value {
public:
    enum class Type { nil, boolean, integer, floating, string, binary, array, map };

    Value() = default;
    // Copies and moves are defined out of line: inlined std::variant moves trigger
    // GCC 12's false -Wmaybe-uninitialized in code that builds Values from temporaries.
    Value(const Value&);
    Value(Value&&) noexcept;
    Value& operator=(const Value&);
    Value& operator=(Value&&) noexcept;
    ~Value();
    Value(std::nullptr_t) {}
    Value(bool b) : v_(b) {}
    // Every integer type, normalised: non-negative values are stored as uint64 and
    // negative ones as int64, so 5 compares equal however it was written.
    Value(int i) : Value(static_cast<long long>(i)) {}
    Value(long i) : Value(static_cast<long long>(i)) {}
    Value(long long i);
    Value(unsigned i) : v_(static_cast<std::uint64_t>(i)) {}
    Value(unsigned long i) : v_(static_cast<std::uint64_t>(i)) {}
    Value(unsigned long long i) : v_(static_cast<std::uint64_t>(i)) {}
    Value(double d) : v_(d) {}
    Value(const char* s) : v_(std::string(s)) {}
    Value(std::string s) : v_(std::move(s)) {}
    Value(std::string_view s) : v_(std::string(s)) {}
    Value(Bytes b) : v_(std::move(b)) {}
    Value(Array a) : v_(std::move(a)) {}
    Value(Map m) : v_(std::move(m)) {}

    Type type() const;
    bool is_nil() const { return std::holds_alternative<std::monostate>(v_); }
    bool is_bool() const { return std::holds_alternative<bool>(v_); }
    bool is_int() const;
    bool is_float() const { return std::holds_alternative<double>(v_); }
    bool is_string() const { return std::holds_alternative<std::string>(v_); }
    bool is_bytes() const { return std::holds_alternative<Bytes>(v_); }
    bool is_array() const { return std::holds_alternative<Array>(v_); }
    bool is_map() const { return std::holds_alternative<Map>(v_); }
    /// An integer that fits in int64 (every negative one does).
    bool is_negative() const { return std::holds_alternative<std::int64_t>(v_); }

    bool as_bool() const;
    /// Throws TypeError for a non-integer or one outside the target range.
    std::int64_t as_int64() const;
    std::uint64_t as_uint64() const;
    /// A float, or an integer converted (for fields like `value` and `fps`).
    double as_double() const;
    const std::string& as_string() const;
    const Bytes& as_bytes() const;
    const Array& as_array() const;
    const Map& as_map() const;
    Map& as_map();

    bool operator==(const Value& other) const { return v_ == other.v_; }
    bool operator!=(const Value& other) const { return !(*this == other); }

private:
    std::variant<std::monostate, bool, std::int64_t, std::uint64_t, double, std::string, Bytes,
                 Array, Map>
        v_;
};

/// One line of JSON, for printing and logging: bin as "<bin N bytes>", non-finite
/// floats as the bare tokens NaN, Infinity, -Infinity (Python's json reads them).
std::string to_json(const Value& value);

}  // namespace deepdenoise
