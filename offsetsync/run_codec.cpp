#include "offsetsync/run_codec.h"

#include <limits>
#include <stdexcept>

namespace rpl::offsetsync {

namespace {

void put_be(std::string& out, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_string(std::string& out, std::string_view s) {
    if (s.size() > max_name_bytes)
        throw std::length_error("offsetsync: string of " + std::to_string(s.size()) +
                                " bytes does not fit an INT16 length");
    put_be(out, s.size(), 2);
    out.append(s);
}

// A strict big-endian reader: every read names the field it wanted, and the
// first failure is kept as the error.
class reader {
public:
    reader(std::string_view bytes, const char* what) : b_(bytes), what_(what) {}

    bool i16(int16_t& v, const char* field) {
        uint64_t u = 0;
        if (!raw(u, 2, field)) return false;
        v = static_cast<int16_t>(static_cast<uint16_t>(u));
        return true;
    }
    bool i32(int32_t& v, const char* field) {
        uint64_t u = 0;
        if (!raw(u, 4, field)) return false;
        v = static_cast<int32_t>(static_cast<uint32_t>(u));
        return true;
    }
    bool i64(int64_t& v, const char* field) {
        uint64_t u = 0;
        if (!raw(u, 8, field)) return false;
        v = static_cast<int64_t>(u);
        return true;
    }
    bool str(std::string& v, const char* field) {
        const size_t at = pos_;
        int16_t len = 0;
        if (!i16(len, field)) return false;
        if (len < 0)
            return bad(std::string(field) + " has string length " + std::to_string(len) +
                       " at byte " + std::to_string(at) + " (null strings are not allowed)");
        if (len == 0) return bad(std::string(field) + " is empty at byte " + std::to_string(at));
        if (static_cast<size_t>(len) > b_.size() - pos_)
            return bad(std::string(field) + " has string length " + std::to_string(len) +
                       " at byte " + std::to_string(at) + " but only " +
                       std::to_string(b_.size() - pos_) + " bytes follow");
        v.assign(b_.substr(pos_, static_cast<size_t>(len)));
        pos_ += static_cast<size_t>(len);
        return true;
    }
    bool version(int16_t max_version = run_format_version) {
        int16_t v = 0;
        if (!i16(v, "version")) return false;
        if (v < run_format_version || v > max_version)
            return bad("unsupported version " + std::to_string(v) + " (this build reads versions " +
                       std::to_string(run_format_version) + " to " + std::to_string(max_version) +
                       ")");
        version_ = v;
        return true;
    }
    [[nodiscard]] int16_t read_version() const noexcept { return version_; }
    bool bytes(std::string& v, const char* field) {
        const size_t at = pos_;
        int32_t len = 0;
        if (!i32(len, field)) return false;
        if (len < 0 || static_cast<size_t>(len) > b_.size() - pos_)
            return bad(std::string(field) + " has byte length " + std::to_string(len) +
                       " at byte " + std::to_string(at) + " but " +
                       std::to_string(b_.size() - pos_) + " bytes follow");
        v.assign(b_.substr(pos_, static_cast<size_t>(len)));
        pos_ += static_cast<size_t>(len);
        return true;
    }
    bool end() {
        if (pos_ != b_.size())
            return bad(std::to_string(b_.size() - pos_) +
                       " unexpected trailing byte(s) after byte " + std::to_string(pos_));
        return true;
    }
    bool bad(std::string message) {
        if (error_.empty()) error_ = std::move(message);
        return false;
    }
    [[nodiscard]] Error error() const {
        return Error{errc::corrupt, std::string(what_) + ": " + error_};
    }

private:
    bool raw(uint64_t& v, size_t n, const char* field) {
        if (b_.size() - pos_ < n)
            return bad("truncated: " + std::string(field) + " needs " + std::to_string(n) +
                       " bytes at byte " + std::to_string(pos_) + ", " +
                       std::to_string(b_.size() - pos_) + " left (record is " +
                       std::to_string(b_.size()) + " bytes)");
        v = 0;
        for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b_[pos_ + i]);
        pos_ += n;
        return true;
    }

    std::string_view b_;
    const char* what_;
    size_t pos_ = 0;
    int16_t version_ = -1;
    std::string error_;
};

}  // namespace

Result<void> check_names(std::string_view flow, std::string_view source_topic, int32_t partition,
                         std::string_view target_topic) {
    auto check = [](std::string_view s, const char* what) -> Result<void> {
        if (s.empty()) return fail(errc::invalid_config, std::string("offsetsync: empty ") + what);
        if (s.size() > max_name_bytes)
            return fail(errc::invalid_config,
                        std::string("offsetsync: ") + what + " of " + std::to_string(s.size()) +
                            " bytes is too long (max " + std::to_string(max_name_bytes) + ")");
        return ok();
    };
    RPL_TRY(check(flow, "flow name"));
    RPL_TRY(check(source_topic, "source topic name"));
    RPL_TRY(check(target_topic, "target topic name"));
    if (partition < 0)
        return fail(errc::invalid_config, "offsetsync: negative partition " +
                                              std::to_string(partition) + " of " +
                                              std::string(source_topic));
    return ok();
}

std::string encode_key(std::string_view flow, std::string_view source_topic, int32_t partition,
                       int64_t dst_start) {
    std::string out;
    out.reserve(2 + 2 + flow.size() + 2 + source_topic.size() + 4 + 8);
    put_be(out, static_cast<uint16_t>(run_format_version), 2);
    put_string(out, flow);
    put_string(out, source_topic);
    put_be(out, static_cast<uint32_t>(partition), 4);
    put_be(out, static_cast<uint64_t>(dst_start), 8);
    return out;
}

std::string encode_value(const run& r, std::string_view target_topic) {
    const bool holes = r.hole_count > 0;
    std::string out;
    out.reserve(2 + 8 * 3 + 2 + target_topic.size() + (holes ? 8 + r.holes.size() : 0));
    put_be(out, static_cast<uint16_t>(holes ? run_format_version_holes : run_format_version), 2);
    put_be(out, static_cast<uint64_t>(r.src_start), 8);
    put_be(out, static_cast<uint64_t>(r.dst_start), 8);
    put_be(out, static_cast<uint64_t>(r.length), 8);
    put_string(out, target_topic);
    if (holes) {
        put_be(out, static_cast<uint32_t>(r.hole_count), 4);
        put_be(out, static_cast<uint32_t>(r.holes.size()), 4);
        out.append(r.holes);
    }
    return out;
}

Result<run_key> decode_key(std::string_view bytes) {
    reader in(bytes, "offset run key");
    run_key k;
    if (in.version() && in.str(k.flow, "flow") && in.str(k.source_topic, "source topic") &&
        in.i32(k.partition, "partition") && in.i64(k.dst_start, "dst_start") && in.end()) {
        if (k.partition < 0)
            in.bad("negative partition " + std::to_string(k.partition));
        else if (k.dst_start < 0)
            in.bad("negative dst_start " + std::to_string(k.dst_start));
        else
            return k;
    }
    return boost::outcome_v2::failure(in.error());
}

Result<run_value> decode_value(std::string_view bytes) {
    reader in(bytes, "offset run value");
    run_value v;
    int32_t hole_count = 0;
    std::string holes;
    if (in.version(run_format_version_holes) && in.i64(v.r.src_start, "src_start") &&
        in.i64(v.r.dst_start, "dst_start") && in.i64(v.r.length, "length") &&
        in.str(v.target_topic, "target topic") &&
        (in.read_version() == run_format_version ||
         (in.i32(hole_count, "hole count") && in.bytes(holes, "holes"))) &&
        in.end()) {
        constexpr int64_t max = std::numeric_limits<int64_t>::max();
        const bool with_holes = in.read_version() == run_format_version_holes;
        if (with_holes && (hole_count < 1 || hole_count > max_holes_per_run))
            in.bad("hole count " + std::to_string(hole_count) + " is not in 1.." +
                   std::to_string(max_holes_per_run));
        else if (v.r.src_start < 0)
            in.bad("negative src_start " + std::to_string(v.r.src_start));
        else if (v.r.dst_start < 0)
            in.bad("negative dst_start " + std::to_string(v.r.dst_start));
        else if (v.r.length <= 0)
            in.bad("length " + std::to_string(v.r.length) + " is not positive");
        else if (v.r.src_start > max - v.r.length || v.r.dst_start > max - v.r.length)
            in.bad("run end overflows INT64 (length " + std::to_string(v.r.length) + ")");
        else if (with_holes && !v.r.set_holes(std::move(holes), hole_count))
            in.bad("holes do not decode to " + std::to_string(hole_count) +
                   " hole(s) inside a run of " + std::to_string(v.r.length) +
                   " record(s) (each between two records, sizes >= 1, no trailing bytes)");
        else
            return v;
    }
    return boost::outcome_v2::failure(in.error());
}

Result<run_record> decode_record(std::string_view key, std::string_view value) {
    RPL_TRY(k, decode_key(key));
    RPL_TRY(v, decode_value(value));
    if (k.dst_start != v.r.dst_start)
        return fail(errc::corrupt, "offset run: key says dst_start " + std::to_string(k.dst_start) +
                                       ", value says " + std::to_string(v.r.dst_start) + " (flow " +
                                       k.flow + ", " + k.source_topic + "/" +
                                       std::to_string(k.partition) + ")");
    return run_record{std::move(k.flow), std::move(k.source_topic), k.partition,
                      std::move(v.target_topic), v.r};
}

}  // namespace rpl::offsetsync
