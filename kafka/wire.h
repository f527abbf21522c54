// Kafka protocol primitives for the records other tools read: big-endian
// INT16/INT32/INT64 and STRING (INT16 length + UTF-8). Used for MirrorMaker
// 2's heartbeat and checkpoint records and for replicatord's own run records.
#pragma once

#include "kafka/result.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace rpl::kafka::wire {

inline void put_int(std::string& out, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_i16(std::string& out, int16_t v) { put_int(out, static_cast<uint16_t>(v), 2); }
inline void put_i32(std::string& out, int32_t v) { put_int(out, static_cast<uint32_t>(v), 4); }
inline void put_i64(std::string& out, int64_t v) { put_int(out, static_cast<uint64_t>(v), 8); }
// A Kafka STRING holds at most 32767 bytes; longer input is a caller bug.
inline void put_string(std::string& out, std::string_view s) {
    put_i16(out, static_cast<int16_t>(s.size()));
    out.append(s);
}

// Reads fields in order; the first short or malformed field fails the
// reader with errc::corrupt naming the field.
class reader {
public:
    explicit reader(std::string_view data) : data_(data) {}

    [[nodiscard]] Result<int16_t> i16(const char* field) { return fixed<int16_t>(field, 2); }
    [[nodiscard]] Result<int32_t> i32(const char* field) { return fixed<int32_t>(field, 4); }
    [[nodiscard]] Result<int64_t> i64(const char* field) { return fixed<int64_t>(field, 8); }
    [[nodiscard]] Result<std::string> string(const char* field) {
        const auto len = static_cast<int16_t>(take(field, 2));
        if (!error_.empty()) return fail(errc::corrupt, error_);
        if (len < 0 || static_cast<size_t>(len) > data_.size() - pos_)
            return fail(errc::corrupt, std::string(field) + ": string length " +
                                           std::to_string(len) + " exceeds the " +
                                           std::to_string(data_.size() - pos_) + " bytes left");
        std::string s(data_.substr(pos_, static_cast<size_t>(len)));
        pos_ += static_cast<size_t>(len);
        return s;
    }
    // Ok when every byte was consumed and no field failed.
    [[nodiscard]] Result<void> done() const {
        if (!error_.empty()) return fail(errc::corrupt, error_);
        if (pos_ != data_.size())
            return fail(errc::corrupt, std::to_string(data_.size() - pos_) + " trailing bytes");
        return ok();
    }
    [[nodiscard]] bool failed() const { return !error_.empty(); }
    [[nodiscard]] const std::string& error() const { return error_; }

private:
    template <class T>
    Result<T> fixed(const char* field, size_t n) {
        const uint64_t v = take(field, n);
        if (!error_.empty()) return fail(errc::corrupt, error_);
        return static_cast<T>(v);
    }

    uint64_t take(const char* field, size_t n) {
        if (!error_.empty()) return 0;
        if (data_.size() - pos_ < n) {
            error_ = std::string(field) + ": needs " + std::to_string(n) + " bytes, " +
                     std::to_string(data_.size() - pos_) + " left";
            return 0;
        }
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + i]);
        pos_ += n;
        return v;
    }

    std::string_view data_;
    size_t pos_ = 0;
    std::string error_;
};

}  // namespace rpl::kafka::wire
