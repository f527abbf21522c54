// backup/verify: damage in an archive is found and named by object key and
// offset range, so an operator knows exactly what a restore would lose.
// Guards against a verify that says "ok" over a flipped byte or a missing
// segment (a hole in the archive), and against one that reports damage
// without saying where.
// Also: restore's murmur2 mapping matches Kafka's default partitioner.

#include "backup/verify.h"
#include "backup/catalogue.h"
#include "backup/restore.h"
#include "backup/segment.h"
#include "backup/store.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <limits>
#include <string>

namespace fs = std::filesystem;
using namespace rpl::backup;

namespace {

struct temp_store {
    fs::path dir;
    std::unique_ptr<object_store> store;

    temp_store() {
        static int n = 0;
        dir = fs::temp_directory_path() /
              ("rpl-verify-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(dir);
        fs::create_directories(dir);
        auto s = open_store("file://" + dir.string(), store_options{});
        REQUIRE_MESSAGE(s, (s ? "" : s.error().message));
        store = std::move(s.value());
    }
    ~temp_store() { fs::remove_all(dir); }
};

archived_record rec(int64_t offset, int64_t ts) {
    archived_record r;
    r.offset = offset;
    r.timestamp = ts;
    r.timestamp_type = 1;
    r.key = "key-" + std::to_string(offset);
    r.value = std::string(40, static_cast<char>('a' + offset % 26)) + std::to_string(offset);
    r.headers.push_back({"h", "v" + std::to_string(offset)});
    return r;
}

// Writes a segment of records [start, end) except `skip` offsets (gaps),
// with small frames so that one segment has several. Returns its entry.
segment_entry put_segment(object_store& store, const std::string& backup, const std::string& topic,
                          int32_t partition, int64_t start, int64_t end,
                          const std::vector<int64_t>& skip = {}) {
    segment_writer w(topic, partition, start, 3, 512);
    for (int64_t o = start; o < end; ++o) {
        if (std::find(skip.begin(), skip.end(), o) != skip.end()) continue;
        w.add(rec(o, 1'000'000 + (o % 7) * 10));  // out-of-order timestamps
    }
    const std::string bytes = w.finish(end);
    const segment_summary& s = w.summary();
    segment_entry e;
    e.topic = topic;
    e.partition = partition;
    e.start_offset = s.start_offset;
    e.end_offset = s.end_offset;
    e.min_timestamp = s.min_timestamp;
    e.max_timestamp = s.max_timestamp;
    e.records = s.records;
    e.size = bytes.size();
    e.key = segment_key(backup, e);
    REQUIRE(store.put(e.key, bytes));
    return e;
}

void put_meta(object_store& store, const std::string& backup, const std::string& topic,
              int32_t partitions) {
    backup_meta m;
    m.id = backup;
    m.source_cluster = "primary";
    m.source_bootstrap = "127.0.0.1:19092";
    m.created_ms = 1'000'000;
    REQUIRE(store.put(backup_meta_key(backup), encode(m)));
    topic_meta t;
    t.topic = topic;
    t.partitions = partitions;
    t.taken_ms = 1'000'000;
    REQUIRE(store.put(topic_meta_key(backup, t), encode(t)));
}

std::string all(const verify_report& r) {
    std::string out;
    for (const auto& d : r.problems) out += d.describe() + "\n";
    return out;
}

}  // namespace

TEST_CASE("a continuous archive with recorded gaps verifies clean, shallow and deep") {
    temp_store ts;
    put_meta(*ts.store, "b1", "orders", 2);
    put_segment(*ts.store, "b1", "orders", 0, 0, 100, {5, 6, 7, 99});
    put_segment(*ts.store, "b1", "orders", 0, 100, 180);
    put_segment(*ts.store, "b1", "orders", 1, 40, 90);
    for (const bool deep : {false, true}) {
        auto r = verify_backup(*ts.store, "b1", deep);
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        CHECK_MESSAGE(r.value().clean(), all(r.value()));
        CHECK(r.value().segments == 3);
        CHECK(r.value().partitions == 2);
        CHECK(r.value().records == 96 + 80 + 50);
        if (deep) CHECK(r.value().frames > 3);
    }
}

TEST_CASE("one flipped byte in a frame is named by object key and the frame's offset range") {
    temp_store ts;
    put_meta(*ts.store, "b1", "orders", 1);
    put_segment(*ts.store, "b1", "orders", 0, 0, 100);
    const segment_entry bad = put_segment(*ts.store, "b1", "orders", 0, 100, 200);
    put_segment(*ts.store, "b1", "orders", 0, 200, 300);

    std::string bytes = ts.store->get(bad.key).value();
    auto seg = segment_reader::open(bytes, bad.key);
    REQUIRE(seg);
    REQUIRE(seg.value().frames().size() >= 3);
    const frame_index f = seg.value().frames()[1];
    bytes[f.position + f.compressed_size / 2] ^= 0x01;
    REQUIRE(ts.store->put(bad.key, bytes));

    auto r = verify_backup(*ts.store, "b1", true);
    REQUIRE(r);
    REQUIRE_MESSAGE(r.value().problems.size() == 1, all(r.value()));
    const damage& d = r.value().problems[0];
    CHECK(d.key == bad.key);
    CHECK(d.topic == "orders");
    CHECK(d.partition == 0);
    CHECK(d.from == f.first_offset);
    CHECK(d.to == f.last_offset + 1);
    CHECK(d.describe().starts_with(bad.key + ": offsets [" + std::to_string(f.first_offset) + ", " +
                                   std::to_string(f.last_offset + 1) + ") of orders/0: "));
}

TEST_CASE("a flipped byte in a segment's index makes the whole segment's range damaged") {
    temp_store ts;
    put_meta(*ts.store, "b1", "orders", 1);
    const segment_entry bad = put_segment(*ts.store, "b1", "orders", 0, 0, 100);
    std::string bytes = ts.store->get(bad.key).value();
    bytes[bytes.size() - 20] ^= 0x40;  // inside the index / footer
    REQUIRE(ts.store->put(bad.key, bytes));

    // Shallow already catches it: open() checks the index's own checksum.
    auto r = verify_backup(*ts.store, "b1", false);
    REQUIRE(r);
    REQUIRE_MESSAGE(r.value().problems.size() == 1, all(r.value()));
    CHECK(r.value().problems[0].key == bad.key);
    CHECK(r.value().problems[0].from == 0);
    CHECK(r.value().problems[0].to == 100);
}

TEST_CASE("a missing segment is reported as a hole with the missing offset range") {
    temp_store ts;
    put_meta(*ts.store, "b1", "orders", 1);
    const segment_entry a = put_segment(*ts.store, "b1", "orders", 0, 0, 100);
    const segment_entry gone = put_segment(*ts.store, "b1", "orders", 0, 100, 150);
    const segment_entry c = put_segment(*ts.store, "b1", "orders", 0, 150, 200);
    REQUIRE(ts.store->remove(gone.key));

    auto r = verify_backup(*ts.store, "b1", false);
    REQUIRE(r);
    REQUIRE_MESSAGE(r.value().problems.size() == 1, all(r.value()));
    const damage& d = r.value().problems[0];
    CHECK(d.key.empty());
    CHECK(d.from == 100);
    CHECK(d.to == 150);
    CHECK(d.describe() ==
          "(missing object): offsets [100, 150) of orders/0: no segment holds "
          "these offsets (hole between " +
              a.key + " and " + c.key + ")");
}

TEST_CASE("a missing backup id is not_found and lists the ids present") {
    temp_store ts;
    put_meta(*ts.store, "primary-tap", "orders", 1);
    put_meta(*ts.store, "other-tap", "orders", 1);
    auto r = verify_backup(*ts.store, "nope", false);
    REQUIRE(!r);
    CHECK(r.error().code == rpl::errc::not_found);
    CHECK(r.error().message.find("no backup 'nope' in file://") != std::string::npos);
    CHECK(r.error().message.find("(backups there: other-tap, primary-tap)") != std::string::npos);
}

TEST_CASE("offsets lost to retention are reported by verify and the catalogue, not called ok") {
    // Guards against an archive whose retention-deleted offsets are an
    // ordinary gap that verify accepts as clean: the loss object marks them,
    // and verify lists them with the records they cost (overlaps once).
    temp_store ts;
    put_meta(*ts.store, "bl", "orders", 1);
    put_segment(*ts.store, "bl", "orders", 0, 0, 50);
    put_segment(*ts.store, "bl", "orders", 0, 50, 100, {50, 51, 52, 53, 54, 55, 56, 57, 58, 59});
    REQUIRE(ts.store->put(loss_key("bl", {{}, "orders", 0, 50, 60, 2'000'000}), ""));
    REQUIRE(ts.store->put(loss_key("bl", {{}, "orders", 0, 55, 60, 2'000'500}), ""));
    auto r = verify_backup(*ts.store, "bl", true);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    CHECK_MESSAGE(r.value().clean(), all(r.value()));
    REQUIRE(r.value().losses.size() == 2);
    CHECK(r.value().losses[0].from == 50);
    CHECK(r.value().losses[0].to == 60);
    CHECK(r.value().lost_records() == 10);

    auto cat = catalogue::load(*ts.store, "bl");
    REQUIRE_MESSAGE(cat, (cat ? "" : cat.error().message));
    CHECK(cat.value().losses("orders", 0).size() == 2);
    CHECK(cat.value().all_losses().size() == 2);
    CHECK(cat.value().losses("orders", 1).empty());
}

TEST_CASE("loss and epoch keys round-trip and a bad one is named") {
    const loss_entry l{{}, "orders.v2", 12, 15, 1500, 1'700'000'000'000};
    const auto lk = loss_key("bk", l);
    CHECK(lk ==
          "bk/losses/orders.v2/000012/00000000000000000015-00000000000000001500_"
          "1700000000000.lost");
    auto pl = parse_loss_key(lk);
    REQUIRE(pl);
    CHECK(pl.value().topic == "orders.v2");
    CHECK(pl.value().partition == 12);
    CHECK(pl.value().from == 15);
    CHECK(pl.value().to == 1500);
    CHECK(pl.value().noticed_ms == 1'700'000'000'000);
    const epoch_entry e{{}, "orders", 3, 4242, 1'700'000'000'001};
    auto pe = parse_epoch_key(epoch_key("bk", e));
    REQUIRE(pe);
    CHECK(pe.value().base == 4242);
    CHECK(pe.value().taken_ms == 1'700'000'000'001);
    auto bad = parse_loss_key("bk/losses/orders/000001/20-10_5.lost");
    REQUIRE(!bad);
    CHECK(bad.error().message.find("bk/losses/orders/000001/20-10_5.lost") != std::string::npos);
}

TEST_CASE("a recreated topic's epoch continues the archive's offsets and verifies clean") {
    // Guards against the new topic's records overlapping (or being dropped
    // as) the old topic's: after the epoch at archive offset 100 the new
    // topic's offset 0 is archive offset 100, so segments still tile, and
    // group offsets taken after the recreation translate by the base.
    temp_store ts;
    put_meta(*ts.store, "be", "orders", 1);
    put_segment(*ts.store, "be", "orders", 0, 0, 100);
    put_segment(*ts.store, "be", "orders", 0, 100, 130);
    REQUIRE(ts.store->put(epoch_key("be", {{}, "orders", 0, 100, 5'000'000}), ""));
    auto r = verify_backup(*ts.store, "be", true);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    CHECK_MESSAGE(r.value().clean(), all(r.value()));
    CHECK(r.value().losses.empty());
    REQUIRE(r.value().epochs.size() == 1);
    CHECK(r.value().epochs[0].base == 100);
    auto cat = catalogue::load(*ts.store, "be");
    REQUIRE(cat);
    CHECK(cat.value().base_at("orders", 0, 4'999'999) == 0);
    CHECK(cat.value().base_at("orders", 0, 5'000'000) == 100);
    CHECK(cat.value().base_at("orders", 1, 9'000'000) == 0);
}

TEST_CASE("murmur2 mapping matches Kafka's Utils.murmur2 made positive") {
    // Values of org.apache.kafka.common.utils.Utils.murmur2 (also in
    // librdkafka's rdmurmur2.c tests), & 0x7fffffff.
    constexpr int32_t max = std::numeric_limits<int32_t>::max();
    CHECK(murmur2_partition("21", max) == 1173551340);
    CHECK(murmur2_partition("foobar", max) == 1357151166);
    CHECK(murmur2_partition("abc", max) == 479470107);
    CHECK(murmur2_partition("kafka", max) == 1348980580);
    CHECK(murmur2_partition("abc", 6) == 479470107 % 6);
}

TEST_CASE("a_backup_id_that_could_leave_the_store_is_refused_before_it_reaches_a_key") {
    temp_store s;
    for (const std::string id : {"..", ".", "../orders", "a/b", "/etc", "x\n", ""}) {
        CAPTURE(id);
        auto cat = load_catalogue(*s.store, id);
        REQUIRE(!cat);
        CHECK(cat.error().code == rpl::errc::invalid_config);
        CHECK(cat.error().message.find("is not one") != std::string::npos);
        CHECK(cat.error().message.find('\n') == std::string::npos);
        auto rep = verify_backup(*s.store, id, true, {});
        REQUIRE(!rep);
        CHECK(rep.error().code == rpl::errc::invalid_config);
    }
    CHECK(check_backup_id("orders-archive_2.v1"));
}
