// offsetsync against the real dr cluster: runs published to
// replicatord.offset-runs.internal rebuild, on a fresh host, a store that
// answers every translation exactly like the one that recorded them. This is
// what makes `replicatorctl translate/failover` work after the replicating
// host (and its RocksDB) is gone.
#include "offsetsync/offsetsync.h"
#include "tests/integration/support.h"
#include "tests/scratch_dir.h"

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <set>

using namespace rpl::test;
using namespace rpl::offsetsync;

namespace {

using rpl::test::scratch_dir;

rpl::kafka::endpoint dr_endpoint() { return {"dr", testbed().dr, {}}; }

std::unique_ptr<store> open_store(const std::filesystem::path& dir) {
    auto s = store::open(dir / "offsets");
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    return std::move(s.value());
}

size_t occurrences(const std::string& haystack, const std::string& needle) {
    size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos;
         pos = haystack.find(needle, pos + 1))
        ++n;
    return n;
}

// A flow's worth of history on three partitions: gap-free, compaction holes,
// and a restart that re-sends.
void record_history(store& s, const std::string& flow, int64_t from, int64_t to) {
    for (int64_t i = from; i < to; ++i) {
        REQUIRE(s.record(flow, "orders", 0, "primary.orders", i, i).has_value());
        if (i % 7 != 3)
            REQUIRE(s.record(flow, "orders", 1, "primary.orders", i, 5000 + i).has_value());
        REQUIRE(s.record(flow, "payments", 0, "primary.payments", i, 10000 + 2 * i).has_value());
    }
}

}  // namespace

TEST_CASE("runs_published_to_the_target_rebuild_identical_translations_on_a_fresh_host") {
    // Guards against a runs topic that loses runs, keeps a shorter version of
    // a run than the last one published, or decodes differently from what
    // was encoded: any of these makes a failover translation differ from the
    // one the replicating host would have given, i.e. skip or repeat records.
    const rpl::Logger log("offsetsync-test");
    const std::string flow = unique("os-flow");
    scratch_dir here;
    scratch_dir elsewhere;
    auto s = open_store(here.path);

    auto pub = publisher::create(dr_endpoint(), log);
    REQUIRE_MESSAGE(pub.has_value(), (pub ? "" : pub.error().message));
    std::set<std::string> keys;
    auto publish = [&] {
        auto flushed = s->flush(flow);
        REQUIRE(flushed.has_value());
        for (const auto& r : flushed.value()) keys.insert(encode_key(r.key()));
        REQUIRE(pub.value()->publish(flushed.value()).has_value());
    };
    record_history(*s, flow, 0, 200);
    publish();
    // The restart: the source goes back to 150 on partition 0 of payments.
    record_history(*s, flow, 200, 260);
    for (int64_t i = 150; i < 180; ++i)
        REQUIRE(s->record(flow, "payments", 0, "primary.payments", i, 20000 + i).has_value());
    publish();  // the last runs again, longer: compaction must keep these
    auto flushed = pub.value()->flush(std::chrono::seconds(30));
    REQUIRE_MESSAGE(flushed.has_value(), (flushed ? "" : flushed.error().message));
    CHECK(pub.value()->unacknowledged() == 0);

    auto fresh = open_store(elsewhere.path);
    auto stats = catch_up(dr_endpoint(), *fresh, std::chrono::seconds(60), log);
    REQUIRE_MESSAGE(stats.has_value(), (stats ? "" : stats.error().message));
    CHECK(stats.value().applied >= keys.size());
    CHECK(stats.value().corrupt == 0);

    CHECK(fresh->partitions(flow) == s->partitions(flow));
    REQUIRE(s->partitions(flow).size() == 3);
    for (const auto& p : s->partitions(flow)) {
        CAPTURE(p.source_topic);
        CAPTURE(p.partition);
        REQUIRE(fresh->runs(flow, p.source_topic, p.partition) ==
                s->runs(flow, p.source_topic, p.partition));
        for (int64_t o = 0; o <= 262; ++o) {
            CAPTURE(o);
            CHECK(fresh->translate(flow, p.source_topic, p.partition, o).value() ==
                  s->translate(flow, p.source_topic, p.partition, o).value());
        }
    }
    // The re-send shows up as it should: 160 was re-sent, 185 was not yet.
    CHECK(fresh->translate(flow, "payments", 0, 160).value() ==
          translation{10000 + 2 * 180, match_kind::resend_pending});
    CHECK(fresh->translate(flow, "payments", 0, 185).value() ==
          translation{10000 + 2 * 185, match_kind::exact});

    // kcat, an independent client, sees the records, and the topic is compacted.
    const auto out = rpl::test::run(
        {"kcat", "-C", "-b", testbed().dr, "-t", runs_topic, "-p", "0", "-e", "-q", "-f", "%k\n"});
    REQUIRE(out.exit_code == 0);
    CHECK(occurrences(out.out, flow) >= keys.size());
    CHECK(dynamic_topic_configs(testbed().dr, runs_topic)["cleanup.policy"] == "compact");
    CHECK(kcat_partitions(testbed().dr, runs_topic) == 1);
}

TEST_CASE("a_retracted_run_disappears_from_every_store_that_catches_up") {
    // Guards against pruned or forgotten runs coming back from the runs topic
    // on the next rebuild (they would translate offsets of deleted records,
    // or of a recreated topic's old incarnation).
    const rpl::Logger log("offsetsync-test");
    const std::string flow = unique("os-retract");
    scratch_dir here;
    scratch_dir elsewhere;
    auto s = open_store(here.path);
    auto pub = publisher::create(dr_endpoint(), log);
    REQUIRE(pub.has_value());
    // Three runs: the target skips 5 offsets every 10 records (a source hole
    // with the target contiguous would stay inside one run).
    for (int64_t i = 0; i < 30; ++i)
        REQUIRE(s->record(flow, "t", 0, "x.t", i, i + (i / 10) * 5).has_value());
    REQUIRE(pub.value()->publish(s->flush(flow).value()).has_value());
    REQUIRE(pub.value()->flush(std::chrono::seconds(30)).has_value());

    auto fresh = open_store(elsewhere.path);
    REQUIRE(catch_up(dr_endpoint(), *fresh, std::chrono::seconds(60), log).has_value());
    REQUIRE(fresh->runs(flow, "t", 0).size() == 3);

    auto dropped = s->prune(flow, "t", 0, 10);  // the run of source 0..9
    REQUIRE(dropped.has_value());
    REQUIRE(dropped.value().size() == 1);
    REQUIRE(pub.value()->retract(dropped.value()).has_value());
    REQUIRE(pub.value()->flush(std::chrono::seconds(30)).has_value());

    auto stats = catch_up(dr_endpoint(), *fresh, std::chrono::seconds(60), log);
    REQUIRE(stats.has_value());
    CHECK(stats.value().removed >= 1);
    CHECK(fresh->runs(flow, "t", 0) == s->runs(flow, "t", 0));
}

TEST_CASE("catching_up_from_a_missing_runs_topic_is_nothing_to_do") {
    // Guards against a first start on a new target cluster failing because
    // no host has published runs there yet.
    const rpl::Logger log("offsetsync-test");
    scratch_dir dir;
    auto s = open_store(dir.path);
    auto stats = catch_up(dr_endpoint(), *s, std::chrono::seconds(30), log, unique("no-such-runs"));
    REQUIRE_MESSAGE(stats.has_value(), (stats ? "" : stats.error().message));
    CHECK(stats.value().applied == 0);
    CHECK(stats.value().end_offset == 0);
}

TEST_CASE("corrupt_records_in_the_runs_topic_are_skipped_and_the_rest_applied") {
    // Guards against one bad record (another tool writing to the topic, a
    // future format) either stopping every rebuild or being applied as
    // offsets.
    const rpl::Logger log("offsetsync-test");
    const std::string topic = unique("os-runs-corrupt");
    const std::string flow = unique("os-corrupt");
    create_topic(testbed().dr, topic, 1, {{"cleanup.policy", "compact"}});
    {
        producer p(testbed().dr);
        // (A record without a key cannot be tested: compacted topics refuse it.)
        auto put = [&](std::optional<std::string> key, std::optional<std::string> value) {
            record r;
            r.partition = 0;
            r.key = std::move(key);
            r.value = std::move(value);
            p.produce(topic, r);
        };
        put(encode_key(flow, "t", 0, 0), encode_value({0, 0, 10}, "x.t"));
        put(std::string("not a run key"), std::string("junk"));
        put(encode_key(flow, "t", 0, 20), std::string("\x00\x07junk", 6));  // future version
        put(encode_key(flow, "t", 0, 10), encode_value({20, 10, 5}, "x.t"));
        put(encode_key(flow, "t", 0, 12), encode_value({40, 12, 5}, "x.t"));  // overlaps 10..14
        p.flush();
    }
    scratch_dir dir;
    auto s = open_store(dir.path);
    auto stats = catch_up(dr_endpoint(), *s, std::chrono::seconds(60), log, topic);
    REQUIRE_MESSAGE(stats.has_value(), (stats ? "" : stats.error().message));
    CHECK(stats.value().applied == 2);
    CHECK(stats.value().corrupt == 2);
    CHECK(stats.value().conflicts == 1);
    CHECK(s->runs(flow, "t", 0) == std::vector<rpl::offsetsync::run>{{0, 0, 10}, {20, 10, 5}});
    delete_topic(testbed().dr, topic);
}

TEST_CASE(
    "an_index_that_outlived_its_target_partition_is_dropped_and_translations_follow_the_new_one") {
    // state_dir kept from an earlier life of the clusters (a wiped test bed,
    // a DR cluster rebuilt from scratch): its runs say source i sits at
    // target 5000 + i, but the target partition the flow now writes is new
    // and starts at 0. The flow must drop those runs (and retract them from
    // the runs topic) rather than translate commits past the partition's end.
    const auto& b = testbed();
    scratch_dir state;
    const std::string flow = unique("stale-flow");
    const std::string topic = unique("stale");
    {
        auto s = open_store(state.path);
        for (int64_t i = 0; i < 1000; ++i)
            REQUIRE(s->record(flow, topic, 0, "primary." + topic, i, 5000 + i).has_value());
        REQUIRE(s->flush(flow).has_value());
    }
    create_topic(b.primary, topic, 1);
    {
        producer p(b.primary);
        for (int i = 0; i < 300; ++i) {
            record r;
            r.partition = 0;
            r.value = "fresh-" + std::to_string(i);
            p.produce(topic, r);
        }
        p.flush();
    }
    const std::string cfg =
        "[daemon]\nstate_dir = \"" + state.path.string() +
        "\"\nadmin_listen = \"127.0.0.1:0\"\n\n[clusters.primary]\nbootstrap = \"" + b.primary +
        "\"\n\n[clusters.dr]\nbootstrap = \"" + b.dr + "\"\n\n[[flow]]\nname = \"" + flow +
        "\"\nsource = \"primary\"\ntarget = \"dr\"\ntopics = [\"" + topic +
        "\"]\ncheckpoint_interval = \"1s\"\nheartbeats = false\n"
        "sync_group_offsets = false\n";
    const std::string path = write_file(unique("stale") + ".toml", cfg);
    daemon_process d(path, temp_dir() + "/" + unique("stale") + ".log");
    REQUIRE_EVENTUALLY(30s, kcat_partitions(b.dr, "primary." + topic) == 1 &&
                                kcat_read(b.dr, "primary." + topic).size() == 300);

    // A group commits 120 on primary (kcat, an independent client).
    const auto consumed =
        rpl::test::run({"kcat", "-C", "-b", b.primary, "-G", unique("stale-group"), topic, "-c",
                        "120", "-q", "-f", "%o\n", "-X", "auto.offset.reset=earliest"},
                       60s);
    REQUIRE(consumed.exit_code == 0);
    INFO(d.log());
    // The stale runs are dropped once, whichever check meets them first: the
    // flow's first record (the source log ends below what the runs cover) or
    // the store's conflict on the first delivery.
    CHECK(
        occurrences(d.log(), "stale run(s) of " + topic + "/0") +
            occurrences(d.log(), "source " + topic +
                                     "/0 ends at offset 300, below offset 1000 already mirrored") ==
        1);

    // The published runs, read back on a fresh host: source i is target i.
    scratch_dir fresh;
    auto rebuilt = open_store(fresh.path);
    REQUIRE_EVENTUALLY(30s, [&] {
        auto r = catch_up(dr_endpoint(), *rebuilt, std::chrono::seconds(30), rpl::Logger("test"));
        REQUIRE(r.has_value());
        auto t = rebuilt->translate(flow, topic, 0, 120);
        return t.has_value() && t.value().target_offset == 120;
    }());
    const auto runs = rebuilt->runs(flow, topic, 0);
    REQUIRE_FALSE(runs.empty());
    CHECK(runs.front().dst_start == 0);  // nothing left of the 5000.. runs
    auto end = rebuilt->end_offsets(flow, topic, 0);
    REQUIRE(end.has_value());
    CHECK(end.value().dst_end == 300);
    d.signal(SIGTERM);
    CHECK(d.wait(30s) == std::optional<int>(0));
    delete_topic(b.primary, topic);
    delete_topic(b.dr, "primary." + topic);
}

TEST_CASE("a_catch_up_cut_short_continues_where_it_stopped_instead_of_starting_over") {
    // Guards against the start-up catch-up reading the runs topic from the
    // beginning every time under a fixed deadline: with a large topic
    // (a compacted or transactional source) a start that was cut short
    // started over next time, and a daemon that could not read it all within
    // the deadline could never start.
    const rpl::Logger log("offsetsync-test");
    const std::string topic = unique("os-runs-resume");
    const std::string flow = unique("os-resume");
    create_topic(testbed().dr, topic, 1, {{"cleanup.policy", "compact"}});
    producer p(testbed().dr);
    auto put_runs = [&](int from, int to) {
        for (int i = from; i < to; ++i) {
            record r;
            r.partition = 0;
            rpl::offsetsync::run x{20 * i, 10 * i, 5};
            if (i % 2 == 1) {  // every other run has a compaction hole inside
                x.length = 2;
                x.add_hole(3);
                x.length = 5;
            }
            r.key = encode_key(flow, "t", 0, x.dst_start);
            r.value = encode_value(x, "x.t");
            p.produce(topic, r);
        }
        p.flush();
    };
    put_runs(0, 60);
    scratch_dir dir;
    resume_options opts;
    opts.topic = topic;
    opts.save_every = 7;
    {
        // Stopped before it read anything: nothing saved past what was applied.
        std::atomic<bool> stop{true};
        resume_options stopped = opts;
        stopped.stop = &stop;
        auto s = open_store(dir.path);
        auto r = resume_catch_up(dr_endpoint(), *s, log, stopped);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == rpl::errc::cancelled);
        CHECK(s->catch_up_position(catch_up_source(dr_endpoint(), topic)).value() == 0);
    }
    {
        auto s = open_store(dir.path);
        auto r = resume_catch_up(dr_endpoint(), *s, log, opts);
        REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
        CHECK(r.value().resumed_from == 0);
        CHECK(r.value().applied.applied == 60);
        CHECK(r.value().end_offset == 60);
    }
    put_runs(60, 100);
    // A restart: only what was added since is read.
    auto s = open_store(dir.path);
    auto r = resume_catch_up(dr_endpoint(), *s, log, opts);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    CHECK(r.value().resumed_from == 60);
    CHECK(r.value().applied.applied == 40);
    CHECK(r.value().applied.unchanged == 0);
    CHECK(s->runs(flow, "t", 0).size() == 100);
    // Every run, holes included, answers as written: source 20i+3 is the
    // hole of run i (odd i) and answers the record after it.
    CHECK(s->translate(flow, "t", 0, 20 * 51 + 6).value() ==
          translation{10 * 51 + 3, match_kind::exact});
    CHECK(s->translate(flow, "t", 0, 20 * 51 + 3).value() ==
          translation{10 * 51 + 2, match_kind::gap});
    CHECK(s->translate(flow, "t", 0, 20 * 50 + 3).value() ==
          translation{10 * 50 + 3, match_kind::exact});

    // A topic that now ends below the saved position was recreated: read
    // again from the start, not skipped.
    REQUIRE(s->save_catch_up_position(catch_up_source(dr_endpoint(), topic), 5000));
    auto again = resume_catch_up(dr_endpoint(), *s, log, opts);
    REQUIRE_MESSAGE(again.has_value(), (again ? "" : again.error().message));
    CHECK(again.value().applied.unchanged == 100);
    CHECK(s->catch_up_position(catch_up_source(dr_endpoint(), topic)).value() == 100);
    delete_topic(testbed().dr, topic);
}
