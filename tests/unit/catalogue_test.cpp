// The catalogue: keys that sort by offset and carry what a listing needs,
// metadata objects that round-trip, and a 10,000-segment backup listed
// without reading a single segment.
#include "backup/catalogue.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

using namespace rpl;
using namespace rpl::backup;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
    const fs::path p =
        fs::temp_directory_path() / ("rpl-catalogue-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

segment_entry entry(const std::string& topic, int32_t p, int64_t start, int64_t end, int64_t min_ts,
                    int64_t max_ts, uint64_t records) {
    segment_entry e;
    e.topic = topic;
    e.partition = p;
    e.start_offset = start;
    e.end_offset = end;
    e.min_timestamp = min_ts;
    e.max_timestamp = max_ts;
    e.records = records;
    return e;
}

}  // namespace

TEST_CASE("segment keys round-trip, sort by offset and survive negative timestamps") {
    const auto a = entry("orders.eu", 3, 9, 100, -1, -1, 0);
    const auto b = entry("orders.eu", 3, 100, 1000, 1700000000000, 1700000009999, 900);
    const auto c = entry("orders.eu", 3, 1000, 12345678901, -5, 7, 2);
    const auto ka = segment_key("bk", a), kb = segment_key("bk", b), kc = segment_key("bk", c);
    CHECK(ka < kb);
    CHECK(kb < kc);
    CHECK(kb ==
          "bk/segments/orders.eu/000003/00000000000000000100-00000000000000001000_1700000000000_"
          "1700000009999_900.seg");
    for (const auto* e : {&a, &b, &c}) {
        const auto key = segment_key("bk", *e);
        auto p = parse_segment_key(key, 77);
        REQUIRE_MESSAGE(p, p.error().message);
        CHECK(p.value().key == key);
        CHECK(p.value().topic == e->topic);
        CHECK(p.value().partition == e->partition);
        CHECK(p.value().start_offset == e->start_offset);
        CHECK(p.value().end_offset == e->end_offset);
        CHECK(p.value().min_timestamp == e->min_timestamp);
        CHECK(p.value().max_timestamp == e->max_timestamp);
        CHECK(p.value().records == e->records);
        CHECK(p.value().size == 77);
    }
    for (const char* bad :
         {"bk/segments/t/000001/1-2_3_4.seg", "bk/segments/t/000001/1-2_3_4_5.dat",
          "bk/segments/t/x/1-2_3_4_5.seg", "bk/segments/t/000001/2-1_3_4_5.seg",
          "bk/topics/t/000001/1-2_3_4_5.seg", "bk/segments/t/000001/1-2_3_4_-5.seg",
          "bk/segments/t/000001/1-2_3_4_5x.seg", "segments/t/000001/1-2_3_4_5.seg"}) {
        CAPTURE(bad);
        auto p = parse_segment_key(bad, 0);
        REQUIRE(!p);
        CHECK(p.error().code == errc::corrupt);
        CHECK(p.error().message.find(bad) != std::string::npos);
    }
}

TEST_CASE("metadata objects round-trip and damage is named") {
    backup_meta m{"tap-1", "primary", "127.0.0.1:19092", 1700000000123, 5};
    auto dm = decode_backup_meta(encode(m), "k");
    REQUIRE(dm);
    CHECK(dm.value().id == m.id);
    CHECK(dm.value().source_cluster == m.source_cluster);
    CHECK(dm.value().source_bootstrap == m.source_bootstrap);
    CHECK(dm.value().created_ms == m.created_ms);
    CHECK(dm.value().compression_level == 5);

    topic_meta t{"orders", 6, {{"cleanup.policy", "compact"}, {"retention.ms", "-1"}}, 42};
    auto dt = decode_topic_meta(encode(t), "k");
    REQUIRE(dt);
    CHECK(dt.value().topic == "orders");
    CHECK(dt.value().partitions == 6);
    CHECK(dt.value().configs == t.configs);
    CHECK(dt.value().taken_ms == 42);

    group_snapshot g;
    g.taken_ms = 99;
    g.groups["billing"] = {{"orders", 0, 17}, {"orders", 5, 0}};
    g.groups["empty"] = {};
    auto dg = decode_group_snapshot(encode(g), "k");
    REQUIRE(dg);
    CHECK(dg.value().taken_ms == 99);
    CHECK(dg.value().groups == g.groups);

    auto bytes = encode(t);
    auto trunc = decode_topic_meta(std::string_view(bytes).substr(0, bytes.size() - 3), "x/t.meta");
    REQUIRE(!trunc);
    CHECK(trunc.error().code == errc::corrupt);
    CHECK(trunc.error().message.find("x/t.meta") != std::string::npos);
    bytes[0] = 9;
    auto ver = decode_topic_meta(bytes, "x/t.meta");
    REQUIRE(!ver);
    CHECK(ver.error().message.find("version 9") != std::string::npos);
    CHECK(!decode_group_snapshot(encode(g) + "x", "g"));
}

TEST_CASE("catalogue load: topics, sorted segments, snapshots by time") {
    const auto root = fresh_dir("load");
    auto s = open_store("file://" + root.string(), {}).value();
    auto missing = catalogue::load(*s, "bk");
    REQUIRE(!missing);
    CHECK(missing.error().code == errc::not_found);
    CHECK(missing.error().message.find("bk") != std::string::npos);

    REQUIRE(s->put(backup_meta_key("bk"), encode(backup_meta{"bk", "primary", "b:1", 1, 3})));
    REQUIRE(s->put(backup_meta_key("other"), encode(backup_meta{"other", "p", "b:1", 1, 3})));
    const topic_meta t1{"orders", 2, {}, 1000};
    const topic_meta t2{"orders", 4, {}, 5000};
    REQUIRE(s->put(topic_meta_key("bk", t1), encode(t1)));
    REQUIRE(s->put(topic_meta_key("bk", t2), encode(t2)));
    for (const auto& e : {entry("orders", 1, 50, 80, 5, 9, 30), entry("orders", 1, 0, 50, 1, 4, 48),
                          entry("orders", 0, 0, 10, -1, 3, 10)})
        REQUIRE(s->put(segment_key("bk", e), "seg"));
    group_snapshot g1{2000, {{"g", {{"orders", 0, 5}}}}};
    group_snapshot g2{6000, {{"g", {{"orders", 0, 9}}}}};
    REQUIRE(s->put(group_snapshot_key("bk", g1.taken_ms), encode(g1)));
    REQUIRE(s->put(group_snapshot_key("bk", g2.taken_ms), encode(g2)));

    auto backups = list_backups(*s);
    REQUIRE(backups);
    CHECK(backups.value() == std::vector<std::string>{"bk", "other"});

    auto c = catalogue::load(*s, "bk");
    REQUIRE_MESSAGE(c, c.error().message);
    const auto& cat = c.value();
    CHECK(cat.meta().source_cluster == "primary");
    CHECK(cat.topics() == std::vector<std::string>{"orders"});
    REQUIRE(cat.topic("orders") != nullptr);
    CHECK(cat.topic("orders")->partitions == 4);
    CHECK(cat.topic("orders", 3000)->partitions == 2);
    CHECK(cat.topic("orders", 10) == nullptr);
    CHECK(cat.topic("nope") == nullptr);
    CHECK(cat.partitions("orders") == std::vector<int32_t>{0, 1, 2, 3});
    const auto& p1 = cat.segments("orders", 1);
    REQUIRE(p1.size() == 2);
    CHECK(p1[0].start_offset == 0);
    CHECK(p1[1].start_offset == 50);
    CHECK(p1[1].size == 3);
    CHECK(cat.segments("orders", 0)[0].min_timestamp == -1);
    CHECK(cat.segments("orders", 7).empty());
    REQUIRE(cat.group_snapshots().size() == 2);

    auto at = cat.load_group_snapshot(*s, 5999);
    REQUIRE(at);
    REQUIRE(at.value());
    CHECK(at.value()->taken_ms == 2000);
    CHECK(at.value()->groups.at("g")[0].offset == 5);
    CHECK(cat.load_group_snapshot(*s, std::nullopt).value()->taken_ms == 6000);
    CHECK(!cat.load_group_snapshot(*s, 1999).value().has_value());
    fs::remove_all(root);
}

TEST_CASE("catalogue load of 10,000 segments reads no segment and takes little time") {
    const auto root = fresh_dir("big");
    auto s = open_store("file://" + root.string(), {}).value();
    REQUIRE(s->put(backup_meta_key("big"), encode(backup_meta{"big", "p", "b:1", 1, 3})));
    constexpr int topics = 4, partitions = 25, per_partition = 100;
    for (int t = 0; t < topics; ++t) {
        const topic_meta tm{"topic" + std::to_string(t), partitions, {}, 1};
        REQUIRE(s->put(topic_meta_key("big", tm), encode(tm)));
    }
    // Small fake objects written straight to disk: the catalogue never opens them.
    for (int t = 0; t < topics; ++t)
        for (int p = 0; p < partitions; ++p)
            for (int i = 0; i < per_partition; ++i) {
                const auto e =
                    entry("topic" + std::to_string(t), p, i * 1000, (i + 1) * 1000, i, i + 5, 1000);
                const auto path = root / segment_key("big", e);
                if (i == 0) fs::create_directories(path.parent_path());
                std::ofstream(path) << "x";
            }
    const auto t0 = std::chrono::steady_clock::now();
    auto c = catalogue::load(*s, "big");
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    REQUIRE_MESSAGE(c, c.error().message);
    std::size_t total = 0;
    for (const auto& topic : c.value().topics()) {
        for (auto p : c.value().partitions(topic)) {
            const auto& segs = c.value().segments(topic, p);
            REQUIRE(segs.size() == per_partition);
            for (std::size_t i = 1; i < segs.size(); ++i)
                CHECK(segs[i].start_offset == segs[i - 1].end_offset);
            total += segs.size();
        }
    }
    CHECK(total == 10000);
    MESSAGE("catalogue::load of 10,000 segments (file://): " << ms << " ms");
    fs::remove_all(root);
}
