#include "backup/segment.h"

#include "kafka/wire.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

namespace rpl::backup {

namespace {

// Layout (docs/backup-format.md):
//   header  "RPLS" + version byte
//   frames  zstd frames (or stored bytes when the codec is none), back to back
//   footer  summary, frame index, gaps, CRC-32C of the footer
//   trailer footer length (u32, including its CRC) + "RPLE"
constexpr std::string_view header_magic = "RPLS";
constexpr std::string_view trailer_magic = "RPLE";
constexpr std::size_t header_size = 5;
constexpr std::size_t trailer_size = 8;
constexpr std::uint8_t codec_none = 0;
constexpr std::uint8_t codec_zstd = 1;
// A frame never decompresses to more than this; a larger claim is corruption.
constexpr std::uint64_t max_frame_bytes = 1ull << 30;

using namespace kafka::wire;

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u32(std::string& out, std::uint32_t v) { put_int(out, v, 4); }
void put_bytes(std::string& out, const std::optional<std::string>& b) {
    if (!b) {
        put_i32(out, -1);
        return;
    }
    put_i32(out, static_cast<int32_t>(b->size()));
    out.append(*b);
}

std::string range(int64_t first, int64_t last) {
    return "offsets " + std::to_string(first) + "-" + std::to_string(last);
}

std::string hex(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int i = 7; i >= 0; --i) s.push_back(digits[(v >> (4 * i)) & 0xf]);
    return s;
}

// A cursor over bytes for the record and footer encodings: big-endian
// fixed-width integers and i32-length byte strings (-1: null).
class cursor {
public:
    explicit cursor(std::string_view data) : data_(data) {}

    bool u8(std::uint8_t& v) {
        if (left() < 1) return false;
        v = static_cast<std::uint8_t>(data_[pos_++]);
        return true;
    }
    template <class T>
    bool fixed(T& v) {
        if (left() < sizeof(T)) return false;
        std::uint64_t x = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            x = (x << 8) | static_cast<unsigned char>(data_[pos_ + i]);
        pos_ += sizeof(T);
        v = static_cast<T>(x);
        return true;
    }
    bool bytes(std::optional<std::string>& out) {
        int32_t len = 0;
        if (!fixed(len)) return false;
        if (len == -1) {
            out.reset();
            return true;
        }
        if (len < 0 || static_cast<std::size_t>(len) > left()) return false;
        out.emplace(data_.substr(pos_, static_cast<std::size_t>(len)));
        pos_ += static_cast<std::size_t>(len);
        return true;
    }
    bool string16(std::string& out) {
        int16_t len = 0;
        if (!fixed(len)) return false;
        if (len < 0 || static_cast<std::size_t>(len) > left()) return false;
        out.assign(data_.substr(pos_, static_cast<std::size_t>(len)));
        pos_ += static_cast<std::size_t>(len);
        return true;
    }
    [[nodiscard]] std::size_t left() const { return data_.size() - pos_; }
    [[nodiscard]] bool at_end() const { return pos_ == data_.size(); }

private:
    std::string_view data_;
    std::size_t pos_ = 0;
};

const std::array<std::uint32_t, 256>& crc_table() {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    return table;
}

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t crc) noexcept {
    const auto& t = crc_table();
    crc = ~crc;
    for (const char ch : data) crc = t[(crc ^ static_cast<unsigned char>(ch)) & 0xff] ^ (crc >> 8);
    return ~crc;
}

segment_writer::segment_writer(std::string topic, int32_t partition, int64_t start_offset,
                               int level, std::size_t frame_bytes)
    : level_(level),
      frame_bytes_(std::max<std::size_t>(frame_bytes, 1)),
      next_offset_(start_offset) {
    summary_.topic = std::move(topic);
    summary_.partition = partition;
    summary_.start_offset = start_offset;
    summary_.end_offset = start_offset;
    summary_.min_timestamp = -1;
    summary_.max_timestamp = -1;
    body_.append(header_magic);
    put_u8(body_, segment_format_version);
}

std::uint64_t segment_writer::memory_bytes() const noexcept { return body_.size() + frame_.size(); }

void segment_writer::add(const kafka::message& m, int64_t offset_shift) {
    archived_record r;
    r.offset = m.offset() + offset_shift;
    rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    r.timestamp = m.timestamp(&type);
    r.timestamp_type = static_cast<int8_t>(type);
    if (m.key() != nullptr) r.key.emplace(static_cast<const char*>(m.key()), m.key_size());
    if (m.value() != nullptr) r.value.emplace(static_cast<const char*>(m.value()), m.value_size());
    m.for_each_header([&](const kafka::record_header& h) {
        archived_header ah{std::string(h.name), std::nullopt};
        if (h.value != nullptr) ah.value.emplace(static_cast<const char*>(h.value), h.size);
        r.headers.push_back(std::move(ah));
    });
    add(r);
}

void segment_writer::add(const archived_record& r) {
    if (r.offset < next_offset_)
        throw std::invalid_argument("segment " + summary_.topic + "/" +
                                    std::to_string(summary_.partition) + ": record offset " +
                                    std::to_string(r.offset) + " below the next offset " +
                                    std::to_string(next_offset_));
    if (r.offset > next_offset_) gaps_.push_back({next_offset_, r.offset});

    const std::size_t before = frame_.size();
    put_i64(frame_, r.offset);
    put_i64(frame_, r.timestamp);
    put_u8(frame_, static_cast<std::uint8_t>(r.timestamp_type));
    put_bytes(frame_, r.key);
    put_bytes(frame_, r.value);
    put_i32(frame_, static_cast<int32_t>(r.headers.size()));
    for (const auto& h : r.headers) {
        put_bytes(frame_, std::optional<std::string>(h.name));
        put_bytes(frame_, h.value);
    }

    if (open_.records == 0) {
        open_.first_offset = r.offset;
        open_.min_timestamp = r.timestamp;
        open_.max_timestamp = r.timestamp;
    }
    open_.last_offset = r.offset;
    open_.min_timestamp = std::min(open_.min_timestamp, r.timestamp);
    open_.max_timestamp = std::max(open_.max_timestamp, r.timestamp);
    ++open_.records;

    if (summary_.records == 0) {
        summary_.min_timestamp = r.timestamp;
        summary_.max_timestamp = r.timestamp;
    }
    summary_.min_timestamp = std::min(summary_.min_timestamp, r.timestamp);
    summary_.max_timestamp = std::max(summary_.max_timestamp, r.timestamp);
    ++summary_.records;
    summary_.uncompressed_bytes += frame_.size() - before;
    next_offset_ = r.offset + 1;
    summary_.end_offset = next_offset_;

    if (frame_.size() >= frame_bytes_) flush_frame();
}

void segment_writer::flush_frame() {
    if (open_.records == 0) return;
    open_.position = body_.size();
    if (level_ > 0) {
        std::string out(ZSTD_compressBound(frame_.size()), '\0');
        const std::size_t n =
            ZSTD_compress(out.data(), out.size(), frame_.data(), frame_.size(), level_);
        if (ZSTD_isError(n))
            throw std::runtime_error(std::string("zstd compression failed: ") +
                                     ZSTD_getErrorName(n));
        out.resize(n);
        body_.append(out);
    } else {
        body_.append(frame_);
    }
    open_.compressed_size = body_.size() - open_.position;
    open_.crc32c = crc32c(std::string_view(body_).substr(open_.position));
    frames_.push_back(open_);
    open_ = frame_index{};
    frame_.clear();
    frame_.shrink_to_fit();
}

std::string segment_writer::finish(int64_t end_offset) {
    flush_frame();
    end_offset = std::max(end_offset, next_offset_);
    if (end_offset > next_offset_) gaps_.push_back({next_offset_, end_offset});
    next_offset_ = end_offset;
    summary_.end_offset = end_offset;

    std::string footer;
    put_u8(footer, segment_format_version);
    put_u8(footer, level_ > 0 ? codec_zstd : codec_none);
    put_string(footer, summary_.topic);
    put_i32(footer, summary_.partition);
    put_i64(footer, summary_.start_offset);
    put_i64(footer, summary_.end_offset);
    put_i64(footer, static_cast<int64_t>(summary_.records));
    put_i64(footer, summary_.min_timestamp);
    put_i64(footer, summary_.max_timestamp);
    put_i64(footer, static_cast<int64_t>(summary_.uncompressed_bytes));
    put_i32(footer, static_cast<int32_t>(frames_.size()));
    for (const auto& f : frames_) {
        put_i64(footer, f.first_offset);
        put_i64(footer, f.last_offset);
        put_i64(footer, f.min_timestamp);
        put_i64(footer, f.max_timestamp);
        put_u32(footer, f.records);
        put_i64(footer, static_cast<int64_t>(f.position));
        put_i64(footer, static_cast<int64_t>(f.compressed_size));
        put_u32(footer, f.crc32c);
    }
    put_i32(footer, static_cast<int32_t>(gaps_.size()));
    for (const auto& g : gaps_) {
        put_i64(footer, g.from);
        put_i64(footer, g.to);
    }
    put_u32(footer, crc32c(footer));

    std::string out = std::move(body_);
    body_.clear();
    out.append(footer);
    put_u32(out, static_cast<std::uint32_t>(footer.size()));
    out.append(trailer_magic);
    return out;
}

Result<segment_reader> segment_reader::open(std::string bytes, std::string name) {
    const auto bad = [&](const std::string& what) {
        return fail(errc::corrupt, "segment " + name + ": " + what);
    };
    if (bytes.size() < header_size + trailer_size)
        return bad("truncated: " + std::to_string(bytes.size()) + " bytes is too short");
    if (std::string_view(bytes).substr(0, 4) != header_magic)
        return bad("not a segment (bad magic)");
    const auto version = static_cast<std::uint8_t>(bytes[4]);
    if (version != segment_format_version)
        return bad("unsupported format version " + std::to_string(version) + " (this build reads " +
                   std::to_string(segment_format_version) + ")");
    const std::string_view all(bytes);
    if (all.substr(all.size() - 4) != trailer_magic)
        return bad("bad trailer magic (truncated or damaged end of object)");
    std::uint32_t footer_len = 0;
    {
        cursor c(all.substr(all.size() - trailer_size, 4));
        (void)c.fixed(footer_len);
    }
    if (footer_len < 4 || footer_len > bytes.size() - header_size - trailer_size)
        return bad("footer length " + std::to_string(footer_len) + " does not fit in " +
                   std::to_string(bytes.size()) + " bytes (truncated or damaged trailer)");
    const std::size_t footer_pos = bytes.size() - trailer_size - footer_len;
    const std::string_view footer = all.substr(footer_pos, footer_len - 4);
    std::uint32_t stored_crc = 0;
    {
        cursor c(all.substr(footer_pos + footer_len - 4, 4));
        (void)c.fixed(stored_crc);
    }
    if (const auto crc = crc32c(footer); crc != stored_crc)
        return bad("footer checksum mismatch (stored " + hex(stored_crc) + ", computed " +
                   hex(crc) + "): the index is damaged");

    segment_reader r;
    r.name_ = std::move(name);
    auto& s = r.summary_;
    cursor c(footer);
    std::uint8_t fversion = 0, codec = 0;
    int64_t records = 0, uncompressed = 0;
    int32_t nframes = 0, ngaps = 0;
    if (!c.u8(fversion) || !c.u8(codec) || !c.string16(s.topic) || !c.fixed(s.partition) ||
        !c.fixed(s.start_offset) || !c.fixed(s.end_offset) || !c.fixed(records) ||
        !c.fixed(s.min_timestamp) || !c.fixed(s.max_timestamp) || !c.fixed(uncompressed) ||
        !c.fixed(nframes))
        return bad("footer summary is truncated");
    if (fversion != version)
        return bad("footer version " + std::to_string(fversion) + " differs from header version " +
                   std::to_string(version));
    if (codec != codec_zstd && codec != codec_none)
        return bad("unknown codec " + std::to_string(codec));
    r.zstd_ = codec == codec_zstd;
    if (records < 0 || nframes < 0 || static_cast<std::size_t>(nframes) > c.left() / 56)
        return bad("footer counts are invalid (" + std::to_string(records) + " records, " +
                   std::to_string(nframes) + " frames)");
    s.records = static_cast<std::uint64_t>(records);
    s.uncompressed_bytes = static_cast<std::uint64_t>(uncompressed);
    r.frames_.resize(static_cast<std::size_t>(nframes));
    for (auto& f : r.frames_) {
        int64_t pos = 0, size = 0;
        if (!c.fixed(f.first_offset) || !c.fixed(f.last_offset) || !c.fixed(f.min_timestamp) ||
            !c.fixed(f.max_timestamp) || !c.fixed(f.records) || !c.fixed(pos) || !c.fixed(size) ||
            !c.fixed(f.crc32c))
            return bad("frame index is truncated");
        f.position = static_cast<std::uint64_t>(pos);
        f.compressed_size = static_cast<std::uint64_t>(size);
    }
    if (!c.fixed(ngaps) || ngaps < 0 || static_cast<std::size_t>(ngaps) * 16 != c.left())
        return bad("gap list is truncated or has trailing bytes");
    r.gaps_.resize(static_cast<std::size_t>(ngaps));
    for (auto& g : r.gaps_) (void)(c.fixed(g.from) && c.fixed(g.to));

    // The index must describe the body exactly and tile [start, end).
    if (s.start_offset < 0 || s.end_offset < s.start_offset)
        return bad("offset range " + std::to_string(s.start_offset) + "-" +
                   std::to_string(s.end_offset) + " is invalid");
    std::uint64_t expect_pos = header_size;
    std::uint64_t frame_records = 0;
    int64_t prev_last = s.start_offset - 1;
    for (std::size_t i = 0; i < r.frames_.size(); ++i) {
        const auto& f = r.frames_[i];
        const std::string where =
            "frame " + std::to_string(i) + " (" + range(f.first_offset, f.last_offset) + ")";
        if (f.position != expect_pos || f.compressed_size == 0 ||
            f.compressed_size > footer_pos - f.position)
            return bad(where + ": position " + std::to_string(f.position) + " size " +
                       std::to_string(f.compressed_size) + " do not fit the object");
        if (f.records == 0 || f.first_offset <= prev_last || f.last_offset < f.first_offset ||
            f.last_offset >= s.end_offset ||
            static_cast<uint64_t>(f.last_offset - f.first_offset) + 1 < f.records ||
            f.min_timestamp > f.max_timestamp)
            return bad(where + ": index entry is inconsistent");
        expect_pos += f.compressed_size;
        frame_records += f.records;
        prev_last = f.last_offset;
    }
    if (expect_pos != footer_pos)
        return bad("frames end at byte " + std::to_string(expect_pos) +
                   " but the footer starts at " + std::to_string(footer_pos));
    if (frame_records != s.records)
        return bad("frame index counts " + std::to_string(frame_records) +
                   " records, the summary " + std::to_string(s.records));
    uint64_t gap_total = 0;
    int64_t prev_to = s.start_offset;
    for (const auto& g : r.gaps_) {
        if (g.from < prev_to || g.to <= g.from || g.to > s.end_offset)
            return bad("gap " + std::to_string(g.from) + "-" + std::to_string(g.to) +
                       " is outside the segment or out of order");
        gap_total += static_cast<uint64_t>(g.to - g.from);
        prev_to = g.to;
    }
    if (gap_total + s.records != static_cast<uint64_t>(s.end_offset - s.start_offset))
        return bad(std::to_string(s.records) + " records and " + std::to_string(gap_total) +
                   " gap offsets do not cover offsets " + std::to_string(s.start_offset) + "-" +
                   std::to_string(s.end_offset) + " exactly");
    r.bytes_ = std::move(bytes);
    return r;
}

Result<std::vector<archived_record>> segment_reader::read_frame(std::size_t i) const {
    if (i >= frames_.size())
        return fail(errc::internal, "segment " + name_ + ": no frame " + std::to_string(i));
    const auto& f = frames_[i];
    const auto bad = [&](const std::string& what) {
        return fail(errc::corrupt, "segment " + name_ + " (" + summary_.topic + "/" +
                                       std::to_string(summary_.partition) + "): frame " +
                                       std::to_string(i) + " (" +
                                       range(f.first_offset, f.last_offset) + "): " + what);
    };
    const std::string_view raw = std::string_view(bytes_).substr(f.position, f.compressed_size);
    if (const auto crc = crc32c(raw); crc != f.crc32c)
        return bad("checksum mismatch (stored " + hex(f.crc32c) + ", computed " + hex(crc) + ")");
    std::string plain;
    if (zstd_) {
        const auto size = ZSTD_getFrameContentSize(raw.data(), raw.size());
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
            size > max_frame_bytes)
            return bad("not a valid zstd frame");
        plain.resize(size);
        const std::size_t n = ZSTD_decompress(plain.data(), plain.size(), raw.data(), raw.size());
        if (ZSTD_isError(n) || n != size)
            return bad(std::string("zstd: ") + (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short"));
    } else {
        plain.assign(raw);
    }

    std::vector<archived_record> out;
    out.reserve(f.records);
    cursor c(plain);
    int64_t min_ts = std::numeric_limits<int64_t>::max();
    int64_t max_ts = std::numeric_limits<int64_t>::min();
    while (!c.at_end()) {
        archived_record r;
        std::uint8_t type = 0;
        int32_t nheaders = 0;
        if (!c.fixed(r.offset) || !c.fixed(r.timestamp) || !c.u8(type) || !c.bytes(r.key) ||
            !c.bytes(r.value) || !c.fixed(nheaders) || nheaders < 0)
            return bad("record " + std::to_string(out.size()) + " is truncated");
        r.timestamp_type = static_cast<int8_t>(type);
        for (int32_t h = 0; h < nheaders; ++h) {
            std::optional<std::string> name;
            archived_header ah;
            if (!c.bytes(name) || !name || !c.bytes(ah.value))
                return bad("record " + std::to_string(out.size()) + ": header is truncated");
            ah.name = std::move(*name);
            r.headers.push_back(std::move(ah));
        }
        const int64_t prev = out.empty() ? f.first_offset - 1 : out.back().offset;
        if (r.offset <= prev || r.offset > f.last_offset)
            return bad("record offset " + std::to_string(r.offset) + " is out of order");
        min_ts = std::min(min_ts, r.timestamp);
        max_ts = std::max(max_ts, r.timestamp);
        out.push_back(std::move(r));
    }
    if (out.size() != f.records || out.front().offset != f.first_offset ||
        out.back().offset != f.last_offset || min_ts != f.min_timestamp ||
        max_ts != f.max_timestamp)
        return bad("contents do not match the index (" + std::to_string(out.size()) +
                   " records decoded, " + std::to_string(f.records) + " indexed)");
    // Records between frames fall in the recorded gaps; the index check in
    // open() made records + gaps cover the segment.
    return out;
}

}  // namespace rpl::backup
