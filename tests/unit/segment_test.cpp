// The segment format: what the tap writes is what restore reads, byte for
// byte, and any damage is found and named with the object and offset range.
#include "backup/segment.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace rpl;
using namespace rpl::backup;

namespace {

archived_record rec(int64_t offset, int64_t ts, std::optional<std::string> key,
                    std::optional<std::string> value, std::vector<archived_header> headers = {}) {
    archived_record r;
    r.offset = offset;
    r.timestamp = ts;
    r.timestamp_type = 1;
    r.key = std::move(key);
    r.value = std::move(value);
    r.headers = std::move(headers);
    return r;
}

std::vector<archived_record> read_all(const segment_reader& r) {
    std::vector<archived_record> out;
    for (std::size_t i = 0; i < r.frames().size(); ++i) {
        auto f = r.read_frame(i);
        REQUIRE_MESSAGE(f, f.error().message);
        out.insert(out.end(), f.value().begin(), f.value().end());
    }
    return out;
}

// A segment with several frames: offsets 100..~, gaps at start, middle, end.
struct sample {
    std::vector<archived_record> records;
    std::string bytes;
};

sample make_sample(int level = 3) {
    sample s;
    segment_writer w("orders.eu", 4, 100, level, 4096);
    std::string binary;
    for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
    int64_t offset = 103;  // gap 100-103 at the start
    for (int i = 0; i < 500; ++i) {
        if (i == 250) offset += 7;  // gap in the middle (compaction)
        // Out-of-order timestamps: the true min and max are not first/last.
        const int64_t ts = 1'700'000'000'000 + ((i * 7919) % 1000) - (i == 300 ? 5000 : 0);
        auto r =
            rec(offset, ts,
                i % 5 == 0 ? std::nullopt : std::optional<std::string>("k" + std::to_string(i)),
                i % 11 == 0 ? std::nullopt
                            : std::optional<std::string>("v" + std::to_string(i) + binary),
                {});
        if (i % 3 == 0) r.headers.push_back({"trace", std::string("\0\x01\xff", 3)});
        if (i % 4 == 0) r.headers.push_back({"nullhdr", std::nullopt});
        if (i % 4 == 0) r.headers.push_back({"trace", std::string("dup")});
        s.records.push_back(r);
        w.add(r);
        ++offset;
    }
    s.bytes = w.finish(offset + 2);  // two trailing transaction markers: gap at the end
    return s;
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value") {
    CHECK(crc32c("123456789") == 0xE3069283u);
    CHECK(crc32c("") == 0u);
    // Chaining equals one pass.
    CHECK(crc32c("6789", crc32c("12345")) == 0xE3069283u);
}

TEST_CASE("segment round trip keeps every field, nulls, binary bytes and gaps") {
    for (int level : {3, 0}) {
        CAPTURE(level);
        const auto s = make_sample(level);
        auto r = segment_reader::open(s.bytes, "b/segments/orders.eu/000004/x.seg");
        REQUIRE_MESSAGE(r, r.error().message);
        const auto& sum = r.value().summary();
        CHECK(sum.topic == "orders.eu");
        CHECK(sum.partition == 4);
        CHECK(sum.start_offset == 100);
        CHECK(sum.end_offset == 100 + 3 + 500 + 7 + 2);
        CHECK(sum.records == 500);
        int64_t mn = s.records[0].timestamp, mx = s.records[0].timestamp;
        for (const auto& x : s.records) {
            mn = std::min(mn, x.timestamp);
            mx = std::max(mx, x.timestamp);
        }
        CHECK(sum.min_timestamp == mn);
        CHECK(sum.max_timestamp == mx);
        CHECK(sum.min_timestamp != s.records.front().timestamp);
        CHECK(r.value().frames().size() > 5);
        const std::vector<offset_gap> gaps{{100, 103}, {353, 360}, {610, 612}};
        CHECK(r.value().gaps() == gaps);
        CHECK(read_all(r.value()) == s.records);
        if (level > 0) CHECK(s.bytes.size() < sum.uncompressed_bytes);
    }
}

TEST_CASE("an empty segment holds only its gap") {
    segment_writer w("t", 0, 10, 3);
    const auto bytes = w.finish(12);
    auto r = segment_reader::open(bytes, "empty");
    REQUIRE_MESSAGE(r, r.error().message);
    CHECK(r.value().summary().records == 0);
    CHECK(r.value().frames().empty());
    CHECK(r.value().gaps() == std::vector<offset_gap>{{10, 12}});
}

TEST_CASE("a record below the next offset is refused") {
    segment_writer w("t", 0, 10, 3);
    w.add(rec(10, 1, "k", "v"));
    CHECK_THROWS_AS(w.add(rec(10, 1, "k", "v")), std::invalid_argument);
}

TEST_CASE("a flipped byte in a frame is named with the frame's offset range") {
    const auto s = make_sample();
    auto clean = segment_reader::open(s.bytes, "x");
    REQUIRE(clean);
    const auto f = clean.value().frames()[2];
    std::string damaged = s.bytes;
    damaged[f.position + f.compressed_size / 2] ^= 0x20;
    auto r = segment_reader::open(damaged, "bk/segments/orders.eu/000004/seg");
    REQUIRE_MESSAGE(r, r.error().message);  // the index is intact
    for (std::size_t i = 0; i < r.value().frames().size(); ++i) {
        auto fr = r.value().read_frame(i);
        if (i != 2) {
            CHECK(fr);
            continue;
        }
        REQUIRE(!fr);
        CHECK(fr.error().code == errc::corrupt);
        const auto& m = fr.error().message;
        CHECK(m.find("bk/segments/orders.eu/000004/seg") != std::string::npos);
        CHECK(m.find("frame 2") != std::string::npos);
        CHECK(m.find("offsets " + std::to_string(f.first_offset) + "-" +
                     std::to_string(f.last_offset)) != std::string::npos);
    }
}

TEST_CASE("a flipped byte anywhere in the footer or trailer is detected") {
    const auto s = make_sample();
    auto clean = segment_reader::open(s.bytes, "x");
    REQUIRE(clean);
    const auto& last = clean.value().frames().back();
    const std::size_t footer_start = last.position + last.compressed_size;
    for (std::size_t pos = footer_start; pos < s.bytes.size(); ++pos) {
        std::string damaged = s.bytes;
        damaged[pos] ^= 0x01;
        auto r = segment_reader::open(damaged, "seg-name");
        CAPTURE(pos);
        REQUIRE(!r);
        CHECK(r.error().code == errc::corrupt);
        CHECK(r.error().message.find("seg-name") != std::string::npos);
    }
    // And the header.
    for (std::size_t pos = 0; pos < 5; ++pos) {
        std::string damaged = s.bytes;
        damaged[pos] ^= 0x01;
        CHECK(!segment_reader::open(damaged, "h"));
    }
}

TEST_CASE("a truncated object is detected") {
    const auto s = make_sample();
    for (std::size_t cut : {std::size_t{0}, std::size_t{4}, std::size_t{12}, s.bytes.size() / 2,
                            s.bytes.size() - 1, s.bytes.size() - 9}) {
        CAPTURE(cut);
        auto r = segment_reader::open(s.bytes.substr(0, cut), "trunc");
        REQUIRE(!r);
        CHECK(r.error().code == errc::corrupt);
        CHECK(r.error().message.find("trunc") != std::string::npos);
    }
}
