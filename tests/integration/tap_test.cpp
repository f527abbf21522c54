// The archival tap on the real test bed: replicatord archives topics to a
// file:// or s3:// store; the archive is read back with the catalogue and
// the segment reader and compared, record for record, with what kcat reads
// from the source. Continuity: per partition the segments tile the offsets
// exactly, every offset being a record or inside a recorded gap.
#include "backup/catalogue.h"
#include "backup/segment.h"
#include "backup/store.h"
#include "kafka/consumer.h"
#include "support.h"

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

using namespace rpl;
using namespace rpl::test;
using namespace rpl::backup;

namespace {

namespace fs = std::filesystem;

struct tap_spec {
    std::string name;
    std::string topics;  // TOML array contents
    std::string storage;
    std::string extra;  // more [[tap]] keys
};

std::string tap_config(const tap_spec& t) {
    const auto& b = testbed();
    std::string c = "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("state") +
                    "\"\nadmin_listen = \"127.0.0.1:0\"\n\n";
    c += "[clusters.primary]\nbootstrap = \"" + b.primary + "\"\n\n";
    c += "[[tap]]\nname = \"" + t.name + "\"\nsource = \"primary\"\ntopics = [" + t.topics +
         "]\nstorage = \"" + t.storage + "\"\n" + t.extra + "\n";
    return c;
}

std::unique_ptr<daemon_process> start_daemon(const std::string& cfg_text, const std::string& tag) {
    const std::string path = write_file(unique(tag) + ".toml", cfg_text);
    return std::make_unique<daemon_process>(path, temp_dir() + "/" + unique(tag) + ".log");
}

// The value of one Prometheus sample line, or -1.
double metric(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

struct archived_partition {
    std::vector<archived_record> records;
    std::vector<offset_gap> gaps;
    int64_t start = -1;
    int64_t end = -1;
    std::size_t segments = 0;
    std::uint64_t stored_bytes = 0;
    std::uint64_t record_bytes = 0;
};
using archive = std::map<std::pair<std::string, int32_t>, archived_partition>;

// Records archived per topic-partition, from segment keys alone.
std::map<std::pair<std::string, int32_t>, std::uint64_t> archived_counts(object_store& s,
                                                                         const std::string& bk) {
    std::map<std::pair<std::string, int32_t>, std::uint64_t> out;
    auto c = catalogue::load(s, bk);
    if (!c) return out;
    for (const auto& t : c.value().topics())
        for (auto p : c.value().partitions(t))
            for (const auto& e : c.value().segments(t, p)) out[{t, p}] += e.records;
    return out;
}

// Reads the whole backup, checking every checksum and that each partition's
// segments tile their offsets: no hole, no overlap, gaps recorded.
archive read_archive(object_store& s, const std::string& bk) {
    auto c = catalogue::load(s, bk);
    REQUIRE_MESSAGE(c, c.error().message);
    archive out;
    for (const auto& topic : c.value().topics()) {
        for (auto p : c.value().partitions(topic)) {
            auto& ap = out[{topic, p}];
            for (const auto& e : c.value().segments(topic, p)) {
                CAPTURE(e.key);
                if (ap.end >= 0) REQUIRE(e.start_offset == ap.end);  // no hole, no overlap
                if (ap.start < 0) ap.start = e.start_offset;
                ap.end = e.end_offset;
                ++ap.segments;
                ap.stored_bytes += e.size;
                auto bytes = s.get(e.key);
                REQUIRE_MESSAGE(bytes, bytes.error().message);
                auto r = segment_reader::open(std::move(bytes).value(), e.key);
                REQUIRE_MESSAGE(r, r.error().message);
                const auto& sum = r.value().summary();
                // The key tells the truth about the object.
                CHECK(sum.topic == topic);
                CHECK(sum.partition == p);
                CHECK(sum.start_offset == e.start_offset);
                CHECK(sum.end_offset == e.end_offset);
                CHECK(sum.records == e.records);
                CHECK(sum.min_timestamp == e.min_timestamp);
                CHECK(sum.max_timestamp == e.max_timestamp);
                CHECK(e.records > 0);  // a quiet partition makes no empty objects
                ap.record_bytes += sum.uncompressed_bytes;
                std::vector<archived_record> recs;
                for (std::size_t i = 0; i < r.value().frames().size(); ++i) {
                    auto f = r.value().read_frame(i);
                    REQUIRE_MESSAGE(f, f.error().message);
                    recs.insert(recs.end(), f.value().begin(), f.value().end());
                }
                // Every offset of [start, end) is a record or in a gap, once.
                int64_t cursor = e.start_offset;
                std::size_t ri = 0, gi = 0;
                const auto& gaps = r.value().gaps();
                int64_t min_ts = INT64_MAX, max_ts = INT64_MIN;
                while (cursor < e.end_offset) {
                    if (ri < recs.size() && recs[ri].offset == cursor) {
                        min_ts = std::min(min_ts, recs[ri].timestamp);
                        max_ts = std::max(max_ts, recs[ri].timestamp);
                        ++ri;
                        ++cursor;
                    } else if (gi < gaps.size() && gaps[gi].from == cursor) {
                        cursor = gaps[gi++].to;
                    } else {
                        FAIL("offset " << cursor << " of " << e.key
                                       << " is neither a record nor a recorded gap");
                    }
                }
                CHECK(cursor == e.end_offset);
                CHECK(ri == recs.size());
                CHECK(gi == gaps.size());
                CHECK(min_ts == sum.min_timestamp);
                CHECK(max_ts == sum.max_timestamp);
                ap.gaps.insert(ap.gaps.end(), gaps.begin(), gaps.end());
                for (auto& x : recs) ap.records.push_back(std::move(x));
            }
        }
    }
    return out;
}

// The archive holds exactly what kcat reads from the source, per partition,
// in order: offset, timestamp, key, value and headers.
void compare_with_source(const archive& a, const std::string& topic, int partitions) {
    for (int p = 0; p < partitions; ++p) {
        CAPTURE(topic);
        CAPTURE(p);
        const auto src = kcat_read(testbed().primary, topic, p);
        const auto it = a.find({topic, p});
        if (src.empty()) {
            CHECK((it == a.end() || it->second.records.empty()));
            continue;
        }
        REQUIRE(it != a.end());
        const auto& got = it->second.records;
        REQUIRE(got.size() == src.size());
        for (std::size_t i = 0; i < src.size(); ++i) {
            const auto& s = src[i];
            const auto& g = got[i];
            CAPTURE(s.offset);
            REQUIRE(g.offset == s.offset);
            CHECK(g.timestamp == s.timestamp);
            CHECK(g.key == s.key);
            CHECK(g.value == s.value);
            std::vector<std::pair<std::string, std::string>> hs;
            for (const auto& h : g.headers) hs.emplace_back(h.name, h.value.value_or(""));
            CHECK(hs == s.headers);
        }
    }
}

std::string alnum(std::mt19937_64& rng, std::size_t n) {
    static const char a[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string s(n, 'x');
    for (auto& c : s) c = a[rng() % (sizeof a - 1)];
    return s;
}

// A producer thread that is always stopped and joined, even when a REQUIRE
// leaves the test early.
struct background {
    std::atomic<bool> done{false};
    std::thread thread;
    ~background() { stop(); }
    void stop() {
        done = true;
        if (thread.joinable()) thread.join();
    }
};

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// JSON-like values, keys sometimes null, 0-3 headers, timestamps out of order.
record plain_record(std::mt19937_64& rng, int64_t id, int partitions) {
    record r;
    r.partition = static_cast<int32_t>(rng() % static_cast<uint64_t>(partitions));
    if (rng() % 7 != 0) r.key = "key-" + std::to_string(rng() % 5000);
    r.value = "{\"id\":" + std::to_string(id) + ",\"customer\":\"" + alnum(rng, 8) +
              "\",\"amount\":" + std::to_string(rng() % 100000) + ",\"note\":\"" +
              alnum(rng, rng() % 120) + "\"}";
    const int nh = static_cast<int>(rng() % 4);
    for (int h = 0; h < nh; ++h)
        r.headers.emplace_back(h == 2 ? "trace" : "h" + std::to_string(h), alnum(rng, rng() % 12));
    r.timestamp = now_ms() - static_cast<int64_t>(rng() % 100000);
    return r;
}

void produce_plain(const std::string& topic, int partitions, int count, uint64_t seed) {
    std::mt19937_64 rng(seed);
    producer p(testbed().primary);
    for (int i = 0; i < count; ++i) p.produce(topic, plain_record(rng, i, partitions));
    p.flush();
}

// Five transactions; the third is aborted after its records were written, so
// the log holds aborted records and every transaction's markers.
void produce_transactions(const std::string& topic, int partitions, int per_txn) {
    producer p(testbed().primary, {{"transactional.id", unique("tap-txn")}});
    auto check = [](rd_kafka_error_t* e, const char* what) {
        if (e == nullptr) return;
        const std::string msg = std::string(what) + ": " + rd_kafka_error_string(e);
        rd_kafka_error_destroy(e);
        FAIL(msg);
    };
    check(rd_kafka_init_transactions(p.handle(), 30000), "init_transactions");
    std::mt19937_64 rng(7);
    for (int t = 0; t < 5; ++t) {
        check(rd_kafka_begin_transaction(p.handle()), "begin_transaction");
        for (int i = 0; i < per_txn; ++i) {
            record r;
            r.partition = i % partitions;
            r.key = "txn" + std::to_string(t) + "-" + std::to_string(i);
            r.value = (t == 2 ? "aborted-" : "committed-") + std::to_string(t) + "-" +
                      std::to_string(i) + "-" + alnum(rng, 30);
            r.timestamp = now_ms();
            p.produce(topic, r);
        }
        p.flush();
        if (t == 2)
            check(rd_kafka_abort_transaction(p.handle(), 30000), "abort_transaction");
        else
            check(rd_kafka_commit_transaction(p.handle(), 30000), "commit_transaction");
    }
}

// Commits offsets for a group on primary, as an application would.
void commit_group(const std::string& group, const std::string& topic,
                  const std::vector<std::pair<int32_t, int64_t>>& offsets) {
    kafka::endpoint ep{"primary", testbed().primary, {}};
    auto c = kafka::consumer::create(ep, group, {}, Logger("test"));
    REQUIRE_MESSAGE(c, c.error().message);
    kafka::partition_list pl;
    for (const auto& [p, o] : offsets) pl.push_back({topic, p, o});
    auto r = c.value().commit(pl, false);
    REQUIRE_MESSAGE(r, r.error().message);
}

store_options s3_options() {
    store_options o;
    o.access_key = testbed().s3_access_key;
    o.secret_key = testbed().s3_secret_key;
    return o;
}

std::string s3_url(const std::string& prefix) {
    const auto& b = testbed();
    return "s3://" + b.s3_bucket + "/" + prefix + "?region=us-east-1&endpoint=" + b.s3_endpoint +
           "&path_style=true";
}

std::string s3_tap_keys() {
    return "s3_access_key = \"" + testbed().s3_access_key + "\"\ns3_secret_key = \"" +
           testbed().s3_secret_key + "\"\n";
}

void print_numbers(const archive& a, const std::string& label) {
    std::size_t segments = 0, gaps = 0;
    std::uint64_t stored = 0, raw = 0, records = 0;
    for (const auto& [tp, ap] : a) {
        segments += ap.segments;
        stored += ap.stored_bytes;
        raw += ap.record_bytes;
        records += ap.records.size();
        gaps += ap.gaps.size();
    }
    std::cout << label << ": " << records << " records in " << segments << " segments, " << gaps
              << " gaps, " << raw << " record bytes -> " << stored << " stored bytes (ratio "
              << (stored ? static_cast<double>(raw) / static_cast<double>(stored) : 0)
              << ", mean segment " << (segments ? stored / segments : 0) << " bytes)\n";
}

// Scenario (a)/(b): three topics of six partitions, ~50,000 records: plain
// records with headers and null keys, a compacted topic, and transactions
// with one aborted. The archive must equal the source record for record.
void round_trip(const std::string& storage, object_store& store, const std::string& bk,
                const std::string& extra) {
    const auto& b = testbed();
    const std::string base = unique("tap-rt");
    const std::string plain = base + ".plain", compacted = base + ".compact", txn = base + ".txn";
    create_topic(b.primary, plain, 6);
    create_topic(b.primary, compacted, 6,
                 {{"cleanup.policy", "compact"},
                  {"segment.ms", "1000"},
                  {"min.cleanable.dirty.ratio", "0.01"}});
    create_topic(b.primary, txn, 6);

    produce_plain(plain, 6, 30000, 1);
    {
        // Two waves over 300 keys, a segment roll apart, so the cleaner has
        // something to remove.
        std::mt19937_64 rng(2);
        producer p(b.primary);
        for (int wave = 0; wave < 2; ++wave) {
            for (int i = 0; i < 5000; ++i) {
                record r;
                r.partition = static_cast<int32_t>(i % 6);
                r.key = "ck-" + std::to_string(rng() % 300);
                r.value = i % 50 == 0 ? std::optional<std::string>() : alnum(rng, 40);
                r.headers.emplace_back("wave", std::to_string(wave));
                r.timestamp = now_ms() - static_cast<int64_t>(rng() % 5000);
                p.produce(compacted, r);
            }
            p.flush();
            std::this_thread::sleep_for(1500ms);  // past segment.ms: the next append rolls
        }
        record last;
        last.partition = -1;
        last.key = "ck-roll";
        last.value = "x";
        for (int i = 0; i < 6; ++i) {
            last.partition = i;
            p.produce(compacted, last);
        }
        p.flush();
    }
    produce_transactions(txn, 6, 2000);
    // Let the cleaner compact once, so the source stops changing under the
    // comparison (nothing more is written to the compacted topic).
    std::size_t compacted_count = 10006;
    eventually(
        60s,
        [&] {
            const auto previous = compacted_count;
            compacted_count = kcat_read(b.primary, compacted).size();
            return compacted_count < 10006 && compacted_count == previous;
        },
        3000ms);
    std::cout << "compacted topic: " << compacted_count << " of 10006 records left\n";

    const std::string group = unique("tap-app");
    commit_group(group, plain, {{0, 5}, {3, 17}});

    auto d = start_daemon(tap_config({bk, "\"" + base + "\\\\..*\"", storage,
                                      "segment_max_bytes = \"256KiB\"\nsegment_max_interval = "
                                      "\"2s\"\ngroup_snapshot_interval = \"2s\"\n" +
                                          extra}),
                          "tap-rt");
    std::map<std::pair<std::string, int32_t>, std::uint64_t> want;
    for (const auto& t : {plain, compacted, txn})
        for (const auto& r : kcat_read(b.primary, t)) ++want[{t, r.partition}];
    REQUIRE_EVENTUALLY(180s, !d->running() || archived_counts(store, bk) == want);
    REQUIRE(d->running());

    // Group snapshot with the application's group, and the metrics.
    REQUIRE_EVENTUALLY(30s, [&] {
        auto c = catalogue::load(store, bk);
        if (!c) return false;
        auto s = c.value().load_group_snapshot(store, std::nullopt);
        if (!s || !s.value()) return false;
        const auto it = s.value()->groups.find(group);
        return it != s.value()->groups.end() &&
               it->second == std::vector<group_offset>{{plain, 0, 5}, {plain, 3, 17}};
    }());
    const int port = d->admin_port();
    REQUIRE(port > 0);
    // Every record of the archive was counted. (The cleaner may have
    // compacted further since compacted_count was taken: count from `want`,
    // which is what the source held when the tap read it.)
    std::uint64_t archived_total = 0;
    for (const auto& [_, n] : want) archived_total += n;
    REQUIRE_EVENTUALLY(10s, metric(http_get(port, "/metrics"),
                                   "replicatord_tap_records_archived_total{tap=\"" + bk + "\"}") >=
                                static_cast<double>(archived_total));
    const auto metrics = http_get(port, "/metrics");
    const double ratio = metric(metrics, "replicatord_tap_compression_ratio{tap=\"" + bk + "\"}");
    CHECK(ratio > 1.0);
    CHECK(metric(metrics, "replicatord_tap_segments_written_total{tap=\"" + bk + "\"}") > 18);
    CHECK(metrics.find("replicatord_tap_store_latency_seconds_count{op=\"put\",tap=\"" + bk +
                       "\"}") != std::string::npos);
    CHECK(http_get(port, "/status")
              .find("\"taps\":[{\"name\":\"" + bk + "\",\"state\":\"running\"") !=
          std::string::npos);
    CHECK(http_get(port, "/readyz") == "ready\n");
    std::cout << "compression ratio metric: " << ratio << "\n";

    d->signal(SIGTERM);
    const auto rc = d->wait(30s);
    REQUIRE(rc.has_value());
    CHECK(*rc == 0);

    const auto a = read_archive(store, bk);
    print_numbers(a, "round trip " + storage.substr(0, 5));
    compare_with_source(a, plain, 6);
    compare_with_source(a, compacted, 6);
    compare_with_source(a, txn, 6);
    // Aborted records and transaction markers are recorded gaps; no aborted
    // record is archived.
    std::uint64_t txn_gap_offsets = 0;
    for (int p = 0; p < 6; ++p) {
        const auto& ap = a.at({txn, p});
        for (const auto& g : ap.gaps) txn_gap_offsets += static_cast<uint64_t>(g.to - g.from);
        for (const auto& r : ap.records) CHECK(r.value->rfind("aborted-", 0) == std::string::npos);
    }
    // 2000 aborted records plus at least the markers of the aborted one.
    CHECK(txn_gap_offsets >= 2000 + 6);
    // Topic metadata with the partition count and the compacted topic's config.
    auto c = catalogue::load(store, bk);
    REQUIRE(c);
    REQUIRE(c.value().topic(compacted) != nullptr);
    CHECK(c.value().topic(compacted)->partitions == 6);
    CHECK(c.value().topic(compacted)->configs.at("cleanup.policy") == "compact");
    CHECK(c.value().meta().source_cluster == "primary");
}

fs::path archive_dir(const std::string& name) {
    const fs::path p = fs::path(temp_dir()) / unique(name);
    fs::create_directories(p);
    return p;
}

}  // namespace

TEST_SUITE("tap") {
    TEST_CASE("tap_archive_equals_the_source_file_store") {
        // Guards against lost, duplicated or altered records, holes between
        // segments, gaps that are not recorded (compaction, aborted
        // transactions, markers) and segment keys that lie about contents.
        const auto dir = archive_dir("tap-archive");
        auto store = open_store("file://" + dir.string(), {});
        REQUIRE(store);
        round_trip("file://" + dir.string(), *store.value(), unique("rt-file"), "");
    }

    TEST_CASE("tap_creates_its_file_root_and_names_a_missing_bucket_in_readyz_and_the_log") {
        // The embedded default needs no set-up; an S3 bucket that does not
        // exist must be named, not archived into nowhere. Since issue 16 one
        // failing store no longer stops the daemon: the tap is reported not
        // ready (and retried) while everything else runs.
        const auto root = fs::path(temp_dir()) / unique("new-root") / "archive";
        const std::string bk = unique("newroot");
        auto d =
            start_daemon(tap_config({bk, "\"x\"", "file://" + root.string(), ""}), "tap-newroot");
        REQUIRE_EVENTUALLY(30s, !d->running() || fs::exists(root / bk / "backup.meta"));
        CHECK(d->running());
        d->signal(SIGTERM);
        REQUIRE(d->wait(30s).has_value());

        const std::string bucket = unique("no-such-bucket");
        const std::string tap = unique("nobucket");
        const auto& b = testbed();
        const std::string url =
            "s3://" + bucket + "/x?region=us-east-1&endpoint=" + b.s3_endpoint + "&path_style=true";
        auto d2 = start_daemon(tap_config({tap, "\"x\"", url, s3_tap_keys()}), "tap-nobucket");
        REQUIRE_EVENTUALLY(30s, d2->admin_port() > 0);
        REQUIRE_EVENTUALLY(
            60s, http_get(d2->admin_port(), "/readyz").find("tap " + tap + " is failed") !=
                     std::string::npos);
        CHECK(d2->log().find(bucket) != std::string::npos);
        CHECK(http_get(d2->admin_port(), "/status").find(bucket) != std::string::npos);
        CHECK(d2->log().find(b.s3_secret_key) == std::string::npos);
        CHECK(http_get(d2->admin_port(), "/status").find(b.s3_secret_key) == std::string::npos);
        d2->signal(SIGTERM);
        CHECK(d2->wait(30s).has_value());
    }

    TEST_CASE("tap_archive_equals_the_source_s3_store") {
        auto store = open_store(s3_url("probe"), s3_options());
        REQUIRE_MESSAGE(store, store.error().message);
        const std::string prefix = unique("tap-s3");
        auto s = open_store(s3_url(prefix), s3_options());
        REQUIRE(s);
        round_trip(s3_url(prefix), *s.value(), unique("rt-s3"), s3_tap_keys());
    }

    TEST_CASE("tap_archive_is_continuous_after_three_sigkills") {
        // Guards against the kafka-backup bug: progress committed ahead of
        // stored data (a hole after a crash), and against re-archiving what
        // was stored but not committed (an overlap).
        const auto& b = testbed();
        const std::string topic = unique("tap-crash");
        create_topic(b.primary, topic, 6);
        const auto dir = archive_dir("tap-crash");
        auto store = open_store("file://" + dir.string(), {}).value();
        const std::string bk = unique("crash");
        const auto cfg = tap_config({bk, "\"" + topic + "\"", "file://" + dir.string(),
                                     "segment_max_bytes = \"64KiB\"\nsegment_max_interval = "
                                     "\"1s\"\n"});

        std::atomic<int> produced{0};
        background writer;
        writer.thread = std::thread([&] {
            std::mt19937_64 rng(3);
            producer p(b.primary);
            for (int i = 0; !writer.done; ++i) {
                for (int k = 0; k < 500; ++k) p.produce(topic, plain_record(rng, i * 500 + k, 6));
                p.flush();
                produced += 500;
                std::this_thread::sleep_for(300ms);
            }
        });
        auto total = [&] {
            std::uint64_t n = 0;
            for (const auto& [tp, c] : archived_counts(*store, bk)) n += c;
            return n;
        };
        auto d = start_daemon(cfg, "tap-crash");
        for (int kill = 0; kill < 3; ++kill) {
            const auto before = total();
            // Kill while it is archiving: after it stored more, mid-stream.
            REQUIRE_EVENTUALLY(90s, total() > before + 1000);
            d->signal(SIGKILL);
            REQUIRE(d->wait(10s).has_value());
            d = start_daemon(cfg, "tap-crash");
        }
        // Produce on while the last restart catches up, then stop.
        REQUIRE_EVENTUALLY(90s, total() > static_cast<std::uint64_t>(produced.load()) / 2);
        writer.stop();
        std::cout << "crash test: produced " << produced.load() << " records\n";
        std::map<std::pair<std::string, int32_t>, std::uint64_t> want;
        for (const auto& r : kcat_read(b.primary, topic)) ++want[{topic, r.partition}];
        REQUIRE_EVENTUALLY(120s, !d->running() || archived_counts(*store, bk) == want);
        d->signal(SIGTERM);
        REQUIRE(d->wait(30s).has_value());
        const auto a = read_archive(*store, bk);
        print_numbers(a, "after 3 SIGKILLs");
        compare_with_source(a, topic, 6);

        // The operator's view of the same archive: replicatorctl's deep
        // check, then a restore into dr that equals the source record by
        // record (plus the header naming each record's source offset).
        const std::string bin(REPLICATORD_BIN);
        const std::string ctl = bin.substr(0, bin.rfind('/')) + "/replicatorctl";
        const std::string url = "file://" + dir.string();
        const auto verify =
            run({ctl, "backup", "verify", "--store", url, "--backup", bk, "--deep"});
        CHECK_MESSAGE(verify.exit_code == 0, verify.out << verify.err);
        const std::string restored = unique("tap-crash-restored");
        const std::string rcfg =
            write_file(unique("restore") + ".toml",
                       "store = \"" + url + "\"\nbackup = \"" + bk + "\"\ntopics = [\"" + topic +
                           "\"]\nrestore_groups = false\n[rename]\n\"" + topic + "\" = \"" +
                           restored + "\"\n[target]\nbootstrap = \"" + b.dr + "\"\n");
        const auto res = run({ctl, "restore", "--config", rcfg}, 300s);
        REQUIRE_MESSAGE(res.exit_code == 0, res.out << res.err);
        int64_t compared = 0;
        for (int32_t p = 0; p < 6; ++p) {
            const auto src = kcat_read(b.primary, topic, p);
            auto dst = kcat_read(b.dr, restored, p);
            REQUIRE(src.size() == dst.size());
            for (size_t i = 0; i < src.size(); ++i) {
                auto& h = dst[i].headers;
                REQUIRE(!h.empty());
                CHECK(h.back() == std::pair<std::string, std::string>{
                                      "replicatord.source.offset", std::to_string(src[i].offset)});
                h.pop_back();
                CHECK(dst[i] == src[i]);
                ++compared;
            }
        }
        std::cout << "crash test: backup verify --deep clean; restore equals the source ("
                  << compared << " records)\n";
    }

    TEST_CASE("tap_survives_a_30s_store_outage_and_rpo_rises_then_falls") {
        // Guards against skipping segments whose put failed and against an
        // RPO estimate that does not see a store outage.
        const auto& b = testbed();
        const std::string topic = unique("tap-outage");
        create_topic(b.primary, topic, 3);
        const std::string prefix = unique("tap-outage");
        auto store = open_store(s3_url(prefix), s3_options());
        REQUIRE_MESSAGE(store, store.error().message);
        const std::string bk = unique("outage");
        auto d = start_daemon(tap_config({bk, "\"" + topic + "\"", s3_url(prefix),
                                          "segment_max_interval = \"1s\"\n" + s3_tap_keys()}),
                              "tap-outage");
        background writer;
        writer.thread = std::thread([&] {
            std::mt19937_64 rng(4);
            producer p(b.primary);
            while (!writer.done) {
                for (int k = 0; k < 100; ++k) p.produce(topic, plain_record(rng, k, 3));
                p.flush();
                std::this_thread::sleep_for(200ms);
            }
        });
        const std::string rpo_series = "replicatord_tap_rpo_seconds{tap=\"" + bk + "\"}";
        REQUIRE_EVENTUALLY(60s, d->admin_port() > 0);
        const int port = d->admin_port();
        REQUIRE_EVENTUALLY(60s, !archived_counts(*store.value(), bk).empty());
        const double rpo_before = metric(http_get(port, "/metrics"), rpo_series);
        const auto stop = run({std::string(RPL_SOURCE_DIR) + "/scripts/testbed", "stop-s3"}, 60s);
        REQUIRE_MESSAGE(stop.exit_code == 0, stop.err);
        const auto stopped_at = std::chrono::steady_clock::now();
        double rpo_peak = 0;
        eventually(
            40s,
            [&] {
                rpo_peak = std::max(rpo_peak, metric(http_get(port, "/metrics"), rpo_series));
                return std::chrono::steady_clock::now() - stopped_at >= 30s;
            },
            1000ms);
        const auto start =
            run({std::string(RPL_SOURCE_DIR) + "/scripts/testbed", "start-s3"}, 120s);
        REQUIRE_MESSAGE(start.exit_code == 0, start.err);
        // Rose during the outage...
        std::cout << "RPO before " << rpo_before << " s, peak during outage " << rpo_peak << " s\n";
        CHECK(rpo_peak >= 20);
        CHECK(metric(http_get(port, "/metrics"),
                     "replicatord_tap_store_errors_total{op=\"put\",tap=\"" + bk + "\"}") > 0);
        // ... and falls once the store is back.
        double rpo_after = -1;
        REQUIRE_EVENTUALLY(
            120s,
            (rpo_after = metric(http_get(port, "/metrics"), rpo_series)) >= 0 && rpo_after < 10);
        std::cout << "RPO after the outage " << rpo_after << " s\n";
        writer.stop();
        std::map<std::pair<std::string, int32_t>, std::uint64_t> want;
        for (const auto& r : kcat_read(b.primary, topic)) ++want[{topic, r.partition}];
        REQUIRE_EVENTUALLY(120s, archived_counts(*store.value(), bk) == want);
        d->signal(SIGTERM);
        REQUIRE(d->wait(30s).has_value());
        const auto a = read_archive(*store.value(), bk);
        print_numbers(a, "after the outage");
        compare_with_source(a, topic, 3);
    }
}
