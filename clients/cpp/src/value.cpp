#include "deepdenoise/value.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace deepdenoise {

// ------------------------------------------------------------------ Map

Map::Map(std::initializer_list<Entry> entries) : entries_(entries) {}

const Value* Map::find(std::string_view key) const {
    // Backwards, so that of a key given twice the last value wins.
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
        if (it->first == key) return &it->second;
    }
    return nullptr;
}

Value* Map::find(std::string_view key) {
    return const_cast<Value*>(static_cast<const Map*>(this)->find(key));
}

const Value& Map::at(std::string_view key) const {
    if (const Value* v = find(key)) return *v;
    throw std::out_of_range("no key \"" + std::string(key) + "\" in the map");
}

Map& Map::set(std::string key, Value value) {
    if (Value* v = find(key)) {
        *v = std::move(value);
    } else {
        entries_.emplace_back(std::move(key), std::move(value));
    }
    return *this;
}

void Map::push_back(std::string key, Value value) {
    entries_.emplace_back(std::move(key), std::move(value));
}

std::size_t Map::size() const { return entries_.size(); }
Map::const_iterator Map::begin() const { return entries_.begin(); }
Map::const_iterator Map::end() const { return entries_.end(); }
bool Map::operator==(const Map& other) const { return entries_ == other.entries_; }

// ------------------------------------------------------------------ Value

Value::Value(const Value&) = default;
Value::Value(Value&&) noexcept = default;
Value& Value::operator=(const Value&) = default;
Value& Value::operator=(Value&&) noexcept = default;
Value::~Value() = default;

Value::Value(long long i) {
    if (i < 0) {
        v_ = static_cast<std::int64_t>(i);
    } else {
        v_ = static_cast<std::uint64_t>(i);
    }
}

Value::Type Value::type() const {
    switch (v_.index()) {
        case 0: return Type::nil;
        case 1: return Type::boolean;
        case 2:
        case 3: return Type::integer;
        case 4: return Type::floating;
        case 5: return Type::string;
        case 6: return Type::binary;
        case 7: return Type::array;
        default: return Type::map;
    }
}

bool Value::is_int() const {
    return std::holds_alternative<std::int64_t>(v_) || std::holds_alternative<std::uint64_t>(v_);
}

namespace {
[[noreturn]] void wrong_type(const char* wanted) {
    throw TypeError(std::string("expected ") + wanted);
}
}  // namespace

bool Value::as_bool() const {
    if (auto* b = std::get_if<bool>(&v_)) return *b;
    wrong_type("a bool");
}

std::int64_t Value::as_int64() const {
    if (auto* i = std::get_if<std::int64_t>(&v_)) return *i;
    if (auto* u = std::get_if<std::uint64_t>(&v_)) {
        if (*u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return static_cast<std::int64_t>(*u);
        }
    }
    wrong_type("an integer in the int64 range");
}

std::uint64_t Value::as_uint64() const {
    if (auto* u = std::get_if<std::uint64_t>(&v_)) return *u;
    wrong_type("a non-negative integer");
}

double Value::as_double() const {
    if (auto* d = std::get_if<double>(&v_)) return *d;
    if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
    if (auto* u = std::get_if<std::uint64_t>(&v_)) return static_cast<double>(*u);
    wrong_type("a number");
}

const std::string& Value::as_string() const {
    if (auto* s = std::get_if<std::string>(&v_)) return *s;
    wrong_type("a str");
}

const Bytes& Value::as_bytes() const {
    if (auto* b = std::get_if<Bytes>(&v_)) return *b;
    wrong_type("a bin");
}

const Array& Value::as_array() const {
    if (auto* a = std::get_if<Array>(&v_)) return *a;
    wrong_type("an array");
}

const Map& Value::as_map() const {
    if (auto* m = std::get_if<Map>(&v_)) return *m;
    wrong_type("a map");
}

Map& Value::as_map() {
    if (auto* m = std::get_if<Map>(&v_)) return *m;
    wrong_type("a map");
}

// ------------------------------------------------------------------ JSON

namespace {

void json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out += c;  // UTF-8 passes through: decoded strs are valid UTF-8
                }
        }
    }
    out += '"';
}

void json_value(std::string& out, const Value& v) {
    switch (v.type()) {
        case Value::Type::nil: out += "null"; break;
        case Value::Type::boolean: out += v.as_bool() ? "true" : "false"; break;
        case Value::Type::integer:
            out += v.is_negative() ? std::to_string(v.as_int64()) : std::to_string(v.as_uint64());
            break;
        case Value::Type::floating: {
            double d = v.as_double();
            if (std::isnan(d)) {
                out += "NaN";
            } else if (std::isinf(d)) {
                out += d > 0 ? "Infinity" : "-Infinity";
            } else {
                // The shortest of 15..17 significant digits that reads back as the
                // same double; keep a '.' so that a reader sees a float, not an integer.
                char buf[32];
                for (int precision = 15; precision <= 17; ++precision) {
                    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
                    if (std::strtod(buf, nullptr) == d) break;
                }
                std::string_view s(buf);
                out += s;
                if (s.find_first_of(".eE") == std::string_view::npos) out += ".0";
            }
            break;
        }
        case Value::Type::string: json_string(out, v.as_string()); break;
        case Value::Type::binary:
            out += "\"<bin " + std::to_string(v.as_bytes().data.size()) + " bytes>\"";
            break;
        case Value::Type::array: {
            out += '[';
            bool first = true;
            for (const Value& item : v.as_array()) {
                if (!first) out += ", ";
                first = false;
                json_value(out, item);
            }
            out += ']';
            break;
        }
        case Value::Type::map: {
            out += '{';
            bool first = true;
            for (const auto& [key, item] : v.as_map()) {
                if (!first) out += ", ";
                first = false;
                json_string(out, key);
                out += ": ";
                json_value(out, item);
            }
            out += '}';
            break;
        }
    }
}

}  // namespace

std::string to_json(const Value& value) {
    std::string out;
    json_value(out, value);
    return out;
}

}  // namespace deepdenoise
