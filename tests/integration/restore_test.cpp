// Point-in-time restore on the real test bed (issue 6): `replicatorctl
// restore` and `backup verify/describe/list` against archives in a file://
// store and in the S3 server, restoring into the dr cluster. Everything
// restored is checked with kcat, the independent client, against the source
// topics on primary: same key, value, headers, timestamp, per partition, in
// order, plus the replicatord.source.offset header.
//
// The archive is built here from the source partitions (read_committed, so
// aborted records and transaction markers become recorded gaps) with
// segment_writer and the catalogue's keys: the same objects the tap writes,
// so these tests hold the restore side whatever the tap's state.
#include "backup/restore.h"
#include "backup/catalogue.h"
#include "backup/segment.h"
#include "backup/store.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "kafka/reader.h"
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

using namespace rpl::test;
namespace bk = rpl::backup;
namespace fs = std::filesystem;

namespace {

command_result ctl(std::vector<std::string> args, std::chrono::milliseconds deadline = 300s) {
    args.insert(args.begin(), ctl_bin());
    return run(args, deadline);
}

bool has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// The S3 credentials for child processes and for open_store here.
void s3_env() {
    ::setenv("AWS_ACCESS_KEY_ID", testbed().s3_access_key.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", testbed().s3_secret_key.c_str(), 1);
}

std::string file_url(const std::string& name) {
    const std::string dir = temp_dir() + "/" + name;
    fs::create_directories(dir);
    return "file://" + dir;
}

std::string s3_url(const std::string& prefix) {
    s3_env();
    return "s3://" + testbed().s3_bucket + "/" + prefix + "?endpoint=" + testbed().s3_endpoint +
           "&region=us-east-1&path_style=true";
}

std::unique_ptr<bk::object_store> open(const std::string& url) {
    auto s = bk::open_store(url, bk::store_options{});
    if (!s) FAIL("open_store: " << s.error().message);
    return std::move(s.value());
}

// Archives the topics as the tap would: one backup.meta, a topic_meta per
// topic, segments of at most `per_segment` records covering each partition
// from its start to its end (aborted records and markers become gaps).
void archive(bk::object_store& store, const std::string& backup,
             const std::vector<std::string>& topics, std::size_t per_segment,
             const std::map<std::string, std::map<std::string, std::string>>& configs = {}) {
    bk::backup_meta m;
    m.id = backup;
    m.source_cluster = "primary";
    m.source_bootstrap = testbed().primary;
    m.created_ms = 1;
    REQUIRE(store.put(bk::backup_meta_key(backup), bk::encode(m)));
    const rpl::Logger log("test-archive");
    const rpl::kafka::endpoint ep{"primary", testbed().primary, {}};
    for (const auto& t : topics) {
        const int parts = kcat_partitions(testbed().primary, t);
        REQUIRE(parts > 0);
        bk::topic_meta tm;
        tm.topic = t;
        tm.partitions = parts;
        tm.taken_ms = 1;
        if (configs.count(t)) tm.configs = configs.at(t);
        REQUIRE(store.put(bk::topic_meta_key(backup, tm), bk::encode(tm)));
        for (int32_t p = 0; p < parts; ++p) {
            std::optional<bk::segment_writer> w;
            int64_t next = 0;
            std::size_t in_segment = 0;
            auto roll = [&](int64_t end) {
                const std::string bytes = w->finish(end);
                const auto& s = w->summary();
                bk::segment_entry e;
                e.topic = t;
                e.partition = p;
                e.start_offset = s.start_offset;
                e.end_offset = s.end_offset;
                e.min_timestamp = s.min_timestamp;
                e.max_timestamp = s.max_timestamp;
                e.records = s.records;
                e.key = bk::segment_key(backup, e);
                REQUIRE(store.put(e.key, bytes));
                w.reset();
                next = end;
            };
            auto end = rpl::kafka::read_to_end(
                ep, t, p, 120s, log, [&](const rpl::kafka::message& msg) -> rpl::Result<void> {
                    if (!w) {
                        w.emplace(t, p, next, 3, 64 * 1024);
                        in_segment = 0;
                    }
                    w->add(msg);
                    if (++in_segment >= per_segment) roll(msg.offset() + 1);
                    return rpl::ok();
                });
            REQUIRE_MESSAGE(end, (end ? "" : end.error().message));
            if (w) {
                roll(end.value());
            } else if (end.value() > next) {
                // Only markers or aborted records after the last segment.
                w.emplace(t, p, next, 3, 64 * 1024);
                roll(end.value());
            }
        }
    }
}

void put_group_snapshot(bk::object_store& store, const std::string& backup, int64_t taken_ms,
                        const std::string& group, const std::vector<bk::group_offset>& offsets) {
    bk::group_snapshot s;
    s.taken_ms = taken_ms;
    s.groups[group] = offsets;
    REQUIRE(store.put(bk::group_snapshot_key(backup, taken_ms), bk::encode(s)));
}

// Record timestamps for a test: two hours ago, whole seconds. Recent on
// purpose: the brokers' time retention (7 days) deletes older records right
// away, on the source and on the restored topics alike.
int64_t base_ts() {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return (now - 7200) * 1000;
}

// Records with keys, values, headers (some null keys), and timestamps that
// go back and forth when `jitter` is set.
void produce_records(const std::string& topic, int partitions, int per_partition, int64_t base_ts,
                     int jitter, int start = 0, bool null_keys = true) {
    producer prod(testbed().primary);
    for (int p = 0; p < partitions; ++p) {
        for (int i = start; i < start + per_partition; ++i) {
            record r;
            r.partition = p;
            if (i % 17 != 0 || !null_keys) r.key = "k" + std::to_string(i % 500);
            r.value = "value-" + topic + "-" + std::to_string(p) + "-" + std::to_string(i) +
                      std::string(static_cast<std::size_t>(i % 50), 'x');
            r.headers = {{"trace", "t" + std::to_string(i)}, {"n", std::to_string(p)}};
            r.timestamp = base_ts + i * 10 + (jitter ? ((i * 7919) % jitter) - jitter / 2 : 0);
            prod.produce(topic, r);
        }
    }
    prod.flush();
}

// A transaction that aborts and one that commits on each partition: the
// aborted records and the markers are offsets the archive records as gaps.
void produce_transactions(const std::string& topic, int partitions, int64_t base_ts) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", testbed().primary.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "transactional.id", unique("restore-txn").c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    REQUIRE(rk != nullptr);
    auto check = [&](rd_kafka_error_t* e) {
        if (e) {
            const std::string s = rd_kafka_error_string(e);
            rd_kafka_error_destroy(e);
            FAIL("transaction: " << s);
        }
    };
    check(rd_kafka_init_transactions(rk, 30000));
    for (const bool commit : {false, true}) {
        check(rd_kafka_begin_transaction(rk));
        for (int p = 0; p < partitions; ++p)
            for (int i = 0; i < 5; ++i) {
                const std::string v = std::string(commit ? "committed" : "ABORTED") + "-" +
                                      std::to_string(p) + "-" + std::to_string(i);
                const std::string k = "txn" + std::to_string(i);
                REQUIRE(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()),
                                          RD_KAFKA_V_PARTITION(p),
                                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                          RD_KAFKA_V_KEY(k.data(), k.size()),
                                          RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                                          RD_KAFKA_V_TIMESTAMP(base_ts + i),
                                          RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
            }
        if (commit)
            check(rd_kafka_commit_transaction(rk, 30000));
        else
            check(rd_kafka_abort_transaction(rk, 30000));
    }
    rd_kafka_destroy(rk);
}

// What the target must hold for source records: the same records with the
// source-offset header appended.
std::vector<record> expected_of(const std::vector<record>& src) {
    std::vector<record> out = src;
    for (auto& r : out)
        r.headers.emplace_back("replicatord.source.offset", std::to_string(r.offset));
    return out;
}

// Compares one restored partition with its expected records, first
// difference named.
void check_same(const std::vector<record>& want, const std::vector<record>& got,
                const std::string& what) {
    REQUIRE_MESSAGE(want.size() == got.size(), what << ": " << got.size() << " records restored, "
                                                    << want.size() << " expected");
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (!(want[i] == got[i])) {
            FAIL(what << ": record " << i << " differs: want value "
                      << want[i].value.value_or("<null>") << " ts " << want[i].timestamp
                      << ", got value " << got[i].value.value_or("<null>") << " ts "
                      << got[i].timestamp);
        }
    }
}

std::string restore_file(const std::string& store, const std::string& backup,
                         const std::string& extra, const std::string& bootstrap = "") {
    return "store = \"" + store + "\"\nbackup = \"" + backup + "\"\n" + extra +
           "\n[target]\nbootstrap = \"" + (bootstrap.empty() ? testbed().dr : bootstrap) + "\"\n";
}

// A consumer in `group` on `bootstrap`: the first record it reads on each
// of the partitions, starting from the group's committed offsets.
std::map<int32_t, record> first_read_by_group(const std::string& bootstrap,
                                              const std::string& group, const std::string& topic,
                                              int partitions) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "auto.offset.reset", "error", err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    REQUIRE(rk != nullptr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(tpl, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_STORED;
    REQUIRE(rd_kafka_assign(rk, tpl) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tpl);
    std::map<int32_t, record> first;
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (static_cast<int>(first.size()) < partitions &&
           std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 500);
        if (!m) continue;
        if (!m->err && !first.count(m->partition)) {
            record r;
            r.partition = m->partition;
            r.offset = m->offset;
            if (m->payload) r.value = std::string(static_cast<const char*>(m->payload), m->len);
            first[m->partition] = r;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return first;
}

void commit_group(const std::string& bootstrap, const std::string& group,
                  const rpl::kafka::partition_list& offsets) {
    const rpl::Logger log("test");
    auto c = rpl::kafka::Client::create(rpl::kafka::client_kind::producer,
                                        {"primary", bootstrap, {}}, {}, log);
    REQUIRE(c);
    rpl::kafka::admin adm(c.value(), 30s);
    auto r = adm.alter_group_offsets(group, offsets);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
}

// A restore round trip of three topics (one compacted, all with an aborted
// and a committed transaction) into renamed topics on dr.
void round_trip(const std::string& store_url, int per_partition) {
    const int64_t base = base_ts();
    std::vector<std::string> topics;
    std::map<std::string, std::map<std::string, std::string>> configs;
    for (int i = 0; i < 3; ++i) {
        const std::string t = unique("rt" + std::to_string(i));
        if (i == 0) {
            create_topic(testbed().primary, t, 6, {{"cleanup.policy", "compact"}});
            configs[t] = {{"cleanup.policy", "compact"}};
        } else {
            create_topic(testbed().primary, t, 6);
        }
        topics.push_back(t);
        // A compacted topic takes no null keys.
        produce_records(t, 6, per_partition / 2, base, 0, 0, i != 0);
        produce_transactions(t, 6, base);
        produce_records(t, 6, per_partition - per_partition / 2, base, 0, per_partition / 2,
                        i != 0);
    }
    auto store = open(store_url);
    const std::string backup = unique("bk-rt");
    archive(*store, backup, topics, 4000, configs);

    const std::string prefix = unique("restored") + ".";
    const std::string cfg =
        write_file(unique("r") + ".toml",
                   restore_file(store_url, backup, "topic_prefix = \"" + prefix + "\"\n"));
    const auto dry = ctl({"restore", "--config", cfg, "--dry-run"});
    REQUIRE_MESSAGE(dry.exit_code == 0, show(dry));
    CHECK(has(dry.out, "dry run: nothing was written"));
    CHECK(has(dry.out, "total: " + std::to_string(3 * 6 * (per_partition + 5)) +
                           " records in 18 partitions of 3 topics"));
    for (const auto& t : topics) CHECK(kcat_partitions(testbed().dr, prefix + t) == 0);

    const auto t0 = std::chrono::steady_clock::now();
    const auto r = ctl({"restore", "--config", cfg});
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE_MESSAGE(r.exit_code == 0, show(r));
    MESSAGE("restore of " << 3 * 6 * (per_partition + 5) << " records from "
                          << store_url.substr(0, 5) << " took " << secs
                          << " s; replicatorctl says: " << r.out.substr(r.out.find("restored ")));
    for (const auto& t : topics) {
        CHECK(kcat_partitions(testbed().dr, prefix + t) == 6);
        for (int p = 0; p < 6; ++p) {
            const auto src = kcat_read(testbed().primary, t, p);
            REQUIRE(src.size() == static_cast<std::size_t>(per_partition + 5));
            check_same(expected_of(src), kcat_read(testbed().dr, prefix + t, p),
                       t + "/" + std::to_string(p));
        }
    }
    CHECK(dynamic_topic_configs(testbed().dr, prefix + topics[0]).at("cleanup.policy") ==
          "compact");
    // A second run finds everything restored and writes nothing more.
    const auto again = ctl({"restore", "--config", cfg});
    REQUIRE_MESSAGE(again.exit_code == 0, show(again));
    CHECK(has(again.out, "restored 0 records"));
    CHECK(end_offsets(testbed().dr, prefix + topics[1]) == 6 * (per_partition + 5));
}

}  // namespace

TEST_CASE("restore round trip from file:// keeps key, value, headers and timestamp per partition") {
    round_trip(file_url(unique("store")), 200'000 / 18);
}

TEST_CASE("restore round trip from the S3 server keeps every record") {
    round_trip(s3_url(unique("restore-rt")), 2000);
}

TEST_CASE("a time window restores exactly the records with timestamp <= T, out of order") {
    const int64_t base = base_ts();
    const std::string t = unique("pit");
    create_topic(testbed().primary, t, 3);
    produce_records(t, 3, 3000, base, 4000);  // timestamps jump back and forth by up to 2 s
    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-pit");
    archive(*store, backup, {t}, 700);

    const int64_t T = base + 15'000;
    const std::string target = unique("pit-restored");
    const std::string cfg = write_file(
        unique("r") + ".toml", restore_file(url, backup,
                                            "[rename]\n\"" + t + "\" = \"" + target +
                                                "\"\n[window]\nto = " + std::to_string(T) + "\n"));
    std::size_t want_total = 0;
    std::map<int, std::vector<record>> want;
    for (int p = 0; p < 3; ++p) {
        for (const auto& r : kcat_read(testbed().primary, t, p))
            if (r.timestamp <= T) want[p].push_back(r);
        want_total += want[p].size();
        // Out of order for real: some record after the first one past T is <= T again.
        const auto all = kcat_read(testbed().primary, t, p);
        bool seen_later = false, back_in = false;
        for (const auto& r : all) {
            if (r.timestamp > T)
                seen_later = true;
            else if (seen_later)
                back_in = true;
        }
        REQUIRE(back_in);
    }
    const auto dry = ctl({"restore", "--config", cfg, "--dry-run"});
    REQUIRE_MESSAGE(dry.exit_code == 0, show(dry));
    CHECK_MESSAGE(has(dry.out, "total: " + std::to_string(want_total) + " records"), dry.out);

    const auto r = ctl({"restore", "--config", cfg});
    REQUIRE_MESSAGE(r.exit_code == 0, show(r));
    for (int p = 0; p < 3; ++p)
        check_same(expected_of(want[p]), kcat_read(testbed().dr, target, p),
                   "to=T partition " + std::to_string(p));

    // The same for an offset window.
    const std::string target2 = unique("pit-offsets");
    const std::string cfg2 =
        write_file(unique("r") + ".toml",
                   restore_file(url, backup,
                                "[rename]\n\"" + t + "\" = \"" + target2 +
                                    "\"\n[window]\nfrom_offset = 650\nto_offset = 2101\n"));
    const auto r2 = ctl({"restore", "--config", cfg2});
    REQUIRE_MESSAGE(r2.exit_code == 0, show(r2));
    for (int p = 0; p < 3; ++p) {
        std::vector<record> w;
        for (const auto& x : kcat_read(testbed().primary, t, p))
            if (x.offset >= 650 && x.offset <= 2101) w.push_back(x);
        REQUIRE(w.size() == 2101 - 650 + 1);
        check_same(expected_of(w), kcat_read(testbed().dr, target2, p),
                   "offset window partition " + std::to_string(p));
    }
}

TEST_CASE("a group committed before T reads first, on dr, exactly the record after its last") {
    const int64_t base = base_ts();
    const std::string t = unique("grp");
    create_topic(testbed().primary, t, 3);
    produce_records(t, 3, 400, base, 0);
    produce_transactions(t, 3, base + 400 * 10);  // gaps after the committed offsets
    produce_records(t, 3, 400, base, 0, 400);
    const std::string group = unique("restore-group");
    const std::map<int32_t, int64_t> committed = {{0, 100}, {1, 399}, {2, 0}};
    rpl::kafka::partition_list offs;
    std::vector<bk::group_offset> snap;
    for (const auto& [p, o] : committed) {
        offs.push_back({t, p, o});
        snap.push_back({t, p, o});
    }
    commit_group(testbed().primary, group, offs);

    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-grp");
    archive(*store, backup, {t}, 150);
    const int64_t T = base + 600 * 10;  // after every committed record, before the end
    put_group_snapshot(*store, backup, base + 50, "too-early", {});
    put_group_snapshot(*store, backup, T - 1, group, snap);
    put_group_snapshot(*store, backup, T + 1000, group + "-late", snap);

    const std::string target = unique("grp-restored");
    const std::string cfg = write_file(
        unique("r") + ".toml", restore_file(url, backup,
                                            "[rename]\n\"" + t + "\" = \"" + target +
                                                "\"\n[window]\nto = " + std::to_string(T) + "\n"));
    const auto dry = ctl({"restore", "--config", cfg, "--dry-run"});
    REQUIRE_MESSAGE(dry.exit_code == 0, show(dry));
    CHECK(has(dry.out, "  " + group + "\n"));
    CHECK(!has(dry.out, group + "-late"));
    const auto r = ctl({"restore", "--config", cfg});
    REQUIRE_MESSAGE(r.exit_code == 0, show(r));
    CHECK(has(r.out, "group " + group + " set on the target"));

    const auto first = first_read_by_group(testbed().dr, group, target, 3);
    for (const auto& [p, o] : committed) {
        const auto src = kcat_read(testbed().primary, t, p);
        const auto it =
            std::find_if(src.begin(), src.end(), [&](const record& x) { return x.offset >= o; });
        REQUIRE(it != src.end());
        REQUIRE_MESSAGE(first.count(p), "nothing read on partition " << p);
        CHECK_MESSAGE(first.at(p).value == it->value,
                      "partition " << p << ": read first " << first.at(p).value.value_or("<null>")
                                   << ", the record after the last committed one is "
                                   << it->value.value_or("<null>"));
    }
}

TEST_CASE(
    "a flipped byte: verify names the segment and range; restore stops there unless told to skip") {
    const int64_t base = base_ts();
    const std::string t = unique("corrupt");
    create_topic(testbed().primary, t, 2);
    produce_records(t, 2, 3000, base, 0);
    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-corrupt");
    archive(*store, backup, {t}, 1000);

    // Flip one byte in the middle of partition 1's second segment's data.
    auto cat = bk::catalogue::load(*store, backup);
    REQUIRE(cat);
    const auto segs = cat.value().segments(t, 1);
    REQUIRE(segs.size() == 3);
    const bk::segment_entry& bad = segs[1];
    std::string bytes = store->get(bad.key).value();
    auto seg = bk::segment_reader::open(bytes, bad.key);
    REQUIRE(seg);
    const bk::frame_index f = seg.value().frames()[0];
    bytes[f.position + f.compressed_size / 2] ^= 0x10;
    REQUIRE(store->put(bad.key, bytes));
    const std::string range = "offsets [" + std::to_string(f.first_offset) + ", " +
                              std::to_string(f.last_offset + 1) + ")";

    const auto shallow = ctl({"backup", "verify", "--store", url, "--backup", backup});
    INFO(show(shallow));
    const auto deep = ctl({"backup", "verify", "--store", url, "--backup", backup, "--deep"});
    REQUIRE_MESSAGE(deep.exit_code == 5, show(deep));
    CHECK_MESSAGE(has(deep.out, bad.key + ": " + range + " of " + t + "/1"), deep.out);

    const std::string target = unique("corrupt-restored");
    const std::string cfg =
        write_file(unique("r") + ".toml",
                   restore_file(url, backup, "[rename]\n\"" + t + "\" = \"" + target + "\"\n"));
    const auto r = ctl({"restore", "--config", cfg});
    REQUIRE_MESSAGE(r.exit_code == 5, show(r));
    CHECK_MESSAGE(has(r.err, bad.key + ": " + range + " of " + t + "/1"), r.err);
    // Nothing at or after the damaged range was written to that partition.
    const auto got1 = kcat_read(testbed().dr, target, 1);
    CHECK(static_cast<int64_t>(got1.size()) == f.first_offset);
    for (const auto& x : got1) CHECK(x.headers.back().second != std::to_string(f.first_offset));

    // Again with --skip-damaged: resumes, skips only the damaged range, lists it.
    const auto s = ctl({"restore", "--config", cfg, "--skip-damaged"});
    REQUIRE_MESSAGE(s.exit_code == 5, show(s));
    CHECK_MESSAGE(has(s.out, "skipped damaged ranges (1):\n  " + bad.key + ": " + range), s.out);
    std::vector<record> want;
    for (const auto& x : kcat_read(testbed().primary, t, 1))
        if (x.offset < f.first_offset || x.offset > f.last_offset) want.push_back(x);
    check_same(expected_of(want), kcat_read(testbed().dr, target, 1), "partition 1 after skip");
    check_same(expected_of(kcat_read(testbed().primary, t, 0)), kcat_read(testbed().dr, target, 0),
               "partition 0");
}

TEST_CASE(
    "dry-run reports bad config, unreachable store and target, missing backup and too few "
    "partitions, writing nothing") {
    const std::string t = unique("dry");
    create_topic(testbed().primary, t, 6);
    produce_records(t, 6, 50, base_ts(), 0);
    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-dry");
    archive(*store, backup, {t}, 100);
    const std::string target = unique("dry-target");
    const std::string rename = "[rename]\n\"" + t + "\" = \"" + target + "\"\n";

    // A bad file: every mistake, with its position.
    const auto bad_cfg = write_file(
        unique("r") + ".toml", "store = \"" + url + "\"\nbackup = \"" + backup +
                                   "\"\npartition_mapping = \"hash\"\n[target]\nbootstrap = \"" +
                                   testbed().dr + "\"\n[window]\nto = \"yesterday\"\n");
    auto r = ctl({"restore", "--config", bad_cfg, "--dry-run"});
    CHECK_MESSAGE(r.exit_code == 2, show(r));
    CHECK(has(
        r.err,
        bad_cfg + ":3:21: partition_mapping: expected \"preserve\" or \"murmur2\", got 'hash'"));
    CHECK(has(r.err, bad_cfg + ":7:6: window.to: invalid timestamp \"yesterday\""));

    // An unreachable store (nothing listens on port 1).
    s3_env();
    const auto unreachable = write_file(
        unique("r") + ".toml",
        restore_file("s3://" + testbed().s3_bucket +
                         "/x?endpoint=http://127.0.0.1:1&region=us-east-1&path_style=true",
                     backup, rename));
    r = ctl({"restore", "--config", unreachable, "--dry-run"});
    CHECK_MESSAGE(r.exit_code == 3, show(r));
    CHECK_MESSAGE(has(r.err, "127.0.0.1:1"), r.err);

    // A missing backup id: the ids present are listed.
    const auto missing =
        write_file(unique("r") + ".toml", restore_file(url, "no-such-backup", rename));
    r = ctl({"restore", "--config", missing, "--dry-run"});
    CHECK_MESSAGE(r.exit_code == 1, show(r));
    CHECK_MESSAGE(has(r.err, "no backup 'no-such-backup' in file://"), r.err);
    CHECK_MESSAGE(has(r.err, backup), r.err);

    // An unreachable target.
    const auto no_target =
        write_file(unique("r") + ".toml", restore_file(url, backup, rename, "127.0.0.1:1"));
    r = ctl({"restore", "--config", no_target, "--dry-run"}, 120s);
    CHECK_MESSAGE(r.exit_code == 3, show(r));
    CHECK_MESSAGE(has(r.err, "127.0.0.1:1"), r.err);

    CHECK(kcat_partitions(testbed().dr, target) == 0);  // nothing was created

    // A target topic with fewer partitions and no mapping.
    create_topic(testbed().dr, target, 2);
    const auto fewer = write_file(unique("r") + ".toml", restore_file(url, backup, rename));
    r = ctl({"restore", "--config", fewer, "--dry-run"});
    CHECK_MESSAGE(r.exit_code == 1, show(r));
    CHECK_MESSAGE(has(r.err, "target topic '" + target + "' on target (" + testbed().dr +
                                 ") has 2 partitions, but topic '" + t + "' in backup '" + backup +
                                 "' has 6"),
                  r.err);
    CHECK(end_offsets(testbed().dr, target) == 0);  // nothing written
    r = ctl({"restore", "--config", fewer});
    CHECK_MESSAGE(r.exit_code == 1, show(r));
    CHECK(end_offsets(testbed().dr, target) == 0);

    // With murmur2 mapping the same restore is accepted and spreads by key.
    const auto mm = write_file(unique("r") + ".toml", "partition_mapping = \"murmur2\"\n" +
                                                          restore_file(url, backup, rename));
    r = ctl({"restore", "--config", mm});
    REQUIRE_MESSAGE(r.exit_code == 0, show(r));
    CHECK(end_offsets(testbed().dr, target) == 6 * 50);
    for (int p = 0; p < 2; ++p)
        for (const auto& x : kcat_read(testbed().dr, target, p))
            if (x.key) CHECK(rpl::backup::murmur2_partition(*x.key, 2) == p);
}

TEST_CASE("a restore killed mid-way resumes without duplicates") {
    const std::string t = unique("resume");
    create_topic(testbed().primary, t, 2);
    produce_records(t, 2, 20000, base_ts(), 0);
    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-resume");
    archive(*store, backup, {t}, 3000);
    const std::string target = unique("resume-restored");
    const std::string rename = "[rename]\n\"" + t + "\" = \"" + target + "\"\n";
    // Slow enough to be killed mid-way: ~3 MB at 256 KiB/s.
    const auto slow = write_file(unique("r") + ".toml",
                                 "rate_limit = \"256KiB\"\n" + restore_file(url, backup, rename));
    const std::string child_log = temp_dir() + "/" + unique("restore-child") + ".log";
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const int null = ::open("/dev/null", O_RDWR);
        const int log = ::open(child_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(null, 1);
        ::dup2(log, 2);
        ::execl(ctl_bin().c_str(), ctl_bin().c_str(), "restore", "--config", slow.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // kcat first: end_offsets() asks with a librdkafka producer handle, whose
    // metadata request would auto-create a missing topic (with 1 partition).
    const bool started = eventually(60s, [&] {
        return kcat_partitions(testbed().dr, target) == 2 &&
               end_offsets(testbed().dr, target) > 5000;
    });
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!started) {
        std::ifstream in(child_log);
        std::stringstream text;
        text << in.rdbuf();
        FAIL("the slow restore did not get going; its stderr:\n" << text.str());
    }
    const int64_t before = end_offsets(testbed().dr, target);
    REQUIRE(before < 40000);  // really interrupted

    const auto fast = write_file(unique("r") + ".toml", restore_file(url, backup, rename));
    const auto r = ctl({"restore", "--config", fast});
    REQUIRE_MESSAGE(r.exit_code == 0, show(r));
    CHECK_MESSAGE(has(r.out, "were already restored by an earlier run"), r.out);
    for (int p = 0; p < 2; ++p)
        check_same(expected_of(kcat_read(testbed().primary, t, p)),
                   kcat_read(testbed().dr, target, p), "partition " + std::to_string(p));
}

TEST_CASE("backup list and describe show the archive's topics, ranges and counts") {
    const std::string t = unique("desc");
    create_topic(testbed().primary, t, 2);
    produce_records(t, 2, 300, base_ts(), 0);
    produce_transactions(t, 2, base_ts());
    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-desc");
    archive(*store, backup, {t}, 100);
    const auto l = ctl({"backup", "list", "--store", url});
    REQUIRE_MESSAGE(l.exit_code == 0, show(l));
    CHECK_MESSAGE(has(l.out, backup), l.out);
    CHECK_MESSAGE(
        has(l.out, "0=[0, " + std::to_string(end_offsets(testbed().primary, t) / 2) + ")"), l.out);
    const auto d = ctl({"backup", "describe", "--store", url, "--backup", backup, "--json"});
    REQUIRE_MESSAGE(d.exit_code == 0, show(d));
    CHECK_MESSAGE(has(d.out, "\"records\":305"), d.out);
    CHECK_MESSAGE(has(d.out, "\"holes\":0"), d.out);
    const auto v = ctl({"backup", "verify", "--store", url, "--backup", backup, "--deep"});
    CHECK_MESSAGE(v.exit_code == 0, show(v));
}

// Restore throughput for the benchmark figure: 1 KiB JSON-like
// records, 3 partitions (kafka-backup's published setup), file:// store.
// Asserts only completeness; the MB/s is reported as a message.
TEST_CASE("restore throughput with 1 KiB records (reported)") {
    const std::string t = unique("tput");
    create_topic(testbed().primary, t, 3);
    {
        producer prod(testbed().primary, {{"linger.ms", "50"}, {"batch.size", "1000000"}});
        const int64_t base = base_ts();
        for (int i = 0; i < 60000; ++i) {
            record r;
            r.partition = i % 3;
            r.key = "user-" + std::to_string(i % 10007);
            std::string v = "{\"id\":" + std::to_string(i) + ",\"type\":\"order\",\"items\":[";
            while (v.size() < 1000)
                v += "{\"sku\":\"SKU-" + std::to_string((i * 31 + v.size()) % 99991) +
                     "\",\"qty\":3},";
            v += "{}]}";
            r.value = v;
            r.timestamp = base + i;
            prod.produce(t, r);
        }
        prod.flush();
    }
    auto url = file_url(unique("store"));
    auto store = open(url);
    const std::string backup = unique("bk-tput");
    archive(*store, backup, {t}, 20000);
    const std::string target = unique("tput-restored");
    const auto cfg =
        write_file(unique("r") + ".toml",
                   restore_file(url, backup, "[rename]\n\"" + t + "\" = \"" + target + "\"\n"));
    const auto r = ctl({"restore", "--config", cfg});
    REQUIRE_MESSAGE(r.exit_code == 0, show(r));
    CHECK(end_offsets(testbed().dr, target) == 60000);
    MESSAGE("1 KiB records: " << r.out.substr(r.out.find("restored ")));
}
