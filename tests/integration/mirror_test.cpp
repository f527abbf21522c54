// Active-passive mirroring on the real test bed: replicatord runs as a child
// process, data is written with librdkafka and checked with kcat.
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <random>
#include <set>

using namespace rpl::test;

namespace {

struct flow_spec {
    std::string name;
    std::string source = "primary";
    std::string target = "dr";
    std::string topics;  // TOML array body, e.g. R"("t1", "t2")"
    std::string extra;   // more keys for the [[flow]] table
};

// A config for the test bed with the given flows and a private state dir and
// admin port (0: the kernel picks one; the test reads it from the log).
std::string config(const std::vector<flow_spec>& flows, const std::string& daemon_extra = "") {
    const auto& b = testbed();
    std::string c = "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("state") +
                    "\"\nadmin_listen = \"127.0.0.1:0\"\n" + daemon_extra + "\n";
    c += "[clusters.primary]\nbootstrap = \"" + b.primary + "\"\n\n";
    c += "[clusters.dr]\nbootstrap = \"" + b.dr + "\"\n\n";
    for (const auto& f : flows) {
        c += "[[flow]]\nname = \"" + f.name + "\"\nsource = \"" + f.source + "\"\ntarget = \"" +
             f.target + "\"\ntopics = [" + f.topics + "]\nrefresh_interval = \"1s\"\n" + f.extra +
             "\n";
    }
    return c;
}

std::unique_ptr<daemon_process> start(const std::string& cfg_text, const std::string& tag) {
    const std::string path = write_file(unique(tag) + ".toml", cfg_text);
    auto d = std::make_unique<daemon_process>(path, temp_dir() + "/" + unique(tag) + ".log");
    return d;
}

// Records with random keys (some null), some null values, 0-5 headers with
// repeated names, and timestamps out of order. `id` makes each one unique.
record make_record(std::mt19937_64& rng, int64_t id, int partitions, bool keys_required) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    auto text = [&](size_t n) {
        std::string s(n, 'x');
        for (auto& c : s) c = alphabet[rng() % (sizeof alphabet - 1)];
        return s;
    };
    record r;
    r.partition = static_cast<int32_t>(rng() % static_cast<uint64_t>(partitions));
    // Within the last hour, so that retention never removes them mid-test.
    static const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
    r.timestamp = now_ms - static_cast<int64_t>(rng() % 3'600'000);
    if (keys_required || rng() % 10 != 0)
        r.key = "k" + std::to_string(id % 5000) + text(rng() % 12);
    if (rng() % 15 != 0) r.value = "v" + std::to_string(id) + ":" + text(20 + rng() % 180);
    const int nh = static_cast<int>(rng() % 6);
    for (int h = 0; h < nh; ++h)
        r.headers.emplace_back("h" + std::to_string(rng() % 3), text(rng() % 10));
    return r;
}

using by_partition = std::map<int32_t, std::vector<record>>;

by_partition group(const std::vector<record>& rs) {
    by_partition out;
    for (const auto& r : rs) out[r.partition].push_back(r);
    return out;
}

// Target minus re-sent records: a re-send repeats a run of records that the
// target already holds, so dropping any record equal to one already seen in
// that partition (records are unique by id) restores the source sequence.
std::vector<record> without_duplicates(const std::vector<record>& rs, size_t& duplicates) {
    std::vector<record> out;
    std::set<std::string> seen;
    for (const auto& r : rs) {
        std::string id = (r.key ? *r.key : "~") + "|" + (r.value ? *r.value : "~") + "|" +
                         std::to_string(r.timestamp);
        for (const auto& [k, v] : r.headers) id += "|" + k + "=" + v;
        if (!seen.insert(id).second) {
            ++duplicates;
            continue;
        }
        out.push_back(r);
    }
    return out;
}

// Every source record is on the target, in order, per partition. Returns
// the number of duplicates found.
size_t require_same_partitions(const std::string& source_topic, const std::string& target_topic) {
    const auto& b = testbed();
    const auto src = group(kcat_read(b.primary, source_topic));
    const auto dst = group(kcat_read(b.dr, target_topic));
    size_t duplicates = 0;
    for (const auto& [p, want] : src) {
        CAPTURE(source_topic);
        CAPTURE(p);
        const auto it = dst.find(p);
        REQUIRE(it != dst.end());
        const auto got = without_duplicates(it->second, duplicates);
        REQUIRE(got.size() == want.size());
        for (size_t i = 0; i < want.size(); ++i) {
            if (!(got[i] == want[i])) {
                CAPTURE(i);
                CHECK(got[i].key == want[i].key);
                CHECK(got[i].value == want[i].value);
                CHECK(got[i].headers == want[i].headers);
                CHECK(got[i].timestamp == want[i].timestamp);
                FAIL("record differs");
            }
        }
    }
    CHECK(dst.size() <= src.size());
    return duplicates;
}

bool caught_up(const std::string& source_topic, const std::string& target_topic,
               int64_t min_extra = 0) {
    const auto& b = testbed();
    return end_offsets(b.dr, target_topic) >= end_offsets(b.primary, source_topic) + min_extra;
}

void produce_records(const std::string& topic, int64_t first_id, int64_t count, int partitions,
                     bool keys_required, uint64_t seed) {
    std::mt19937_64 rng(seed);
    producer p(testbed().primary);
    for (int64_t i = 0; i < count; ++i)
        p.produce(topic, make_record(rng, first_id + i, partitions, keys_required));
    p.flush();
}

}  // namespace

TEST_CASE("mirror_copies_every_record_byte_for_byte_with_partition_key_value_headers_timestamp") {
    // Guards against any field being dropped or re-encoded on the way:
    // tombstones, null keys, repeated header names and out-of-order
    // CreateTime timestamps must all arrive unchanged, partition by partition.
    const auto& b = testbed();
    const std::string prefix = unique("exact");
    const std::vector<std::string> topics = {prefix + ".a", prefix + ".b", prefix + ".compact"};
    create_topic(b.primary, topics[0], 6,
                 {{"retention.ms", "86400000"}, {"min.insync.replicas", "1"}});
    create_topic(b.primary, topics[1], 6);
    create_topic(b.primary, topics[2], 6, {{"cleanup.policy", "compact"}});
    auto d = start(config({{.name = prefix, .topics = "\"" + prefix + "\\\\..*\""}}), "exact");

    const int64_t per_topic = 200'000 / 3;
    for (size_t t = 0; t < topics.size(); ++t)
        produce_records(topics[t], static_cast<int64_t>(t) * per_topic, per_topic, 6, t == 2,
                        42 + t);

    for (const auto& t : topics) REQUIRE_EVENTUALLY(180s, caught_up(t, "primary." + t));
    for (const auto& t : topics) {
        CHECK(kcat_partitions(b.dr, "primary." + t) == 6);
        CHECK(require_same_partitions(t, "primary." + t) == 0);
    }
    // Synced: cleanup.policy and retention.ms. Not synced: min.insync.replicas.
    const auto a_cfg = dynamic_topic_configs(b.dr, "primary." + topics[0]);
    CHECK(a_cfg.count("retention.ms") == 1);
    if (a_cfg.count("retention.ms")) CHECK(a_cfg.at("retention.ms") == "86400000");
    CHECK(a_cfg.count("min.insync.replicas") == 0);
    const auto c_cfg = dynamic_topic_configs(b.dr, "primary." + topics[2]);
    REQUIRE(c_cfg.count("cleanup.policy") == 1);
    CHECK(c_cfg.at("cleanup.policy") == "compact");
    // Metrics agree with what kcat saw: every record counted once, no lag.
    const int port = d->admin_port();
    REQUIRE(port > 0);
    const std::string metrics = http_get(port, "/metrics");
    for (const auto& t : topics) {
        CHECK(metrics.find("replicatord_records_replicated_total{flow=\"" + prefix + "\",topic=\"" +
                           t + "\"} " + std::to_string(per_topic) + "\n") != std::string::npos);
        CHECK(metrics.find("replicatord_lag_records{flow=\"" + prefix +
                           "\",partition=\"0\",topic=\"" + t + "\"} 0\n") != std::string::npos);
    }
    CHECK(metrics.find("replicatord_target_topics_created_total{flow=\"" + prefix + "\"} ") !=
          std::string::npos);
    CHECK(metrics.find("replicatord_replication_latency_seconds_count{flow=\"" + prefix + "\"}") !=
          std::string::npos);

    // Configs changed later at the source follow; the target's own
    // min.insync.replicas is left alone.
    set_topic_configs(b.primary, topics[0],
                      {{"retention.ms", "172800000"}, {"min.insync.replicas", "1"}});
    REQUIRE_EVENTUALLY(
        30s,
        dynamic_topic_configs(b.dr, "primary." + topics[0]).count("retention.ms") == 1 &&
            dynamic_topic_configs(b.dr, "primary." + topics[0]).at("retention.ms") == "172800000");
    CHECK(dynamic_topic_configs(b.dr, "primary." + topics[0]).count("min.insync.replicas") == 0);

    // Target names follow the naming policy: nothing else with the prefix.
    for (const auto& name : kcat_topics(b.dr))
        if (name.find(prefix) != std::string::npos) CHECK(name.rfind("primary." + prefix, 0) == 0);

    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}

TEST_CASE("mirror_loses_nothing_when_killed_three_times_and_resends_at_most_the_in_flight_bound") {
    // Guards against committing source offsets ahead of target acks: after
    // SIGKILL at random moments every record must still reach the target,
    // and each crash may re-send only what was read and not yet committed.
    const auto& b = testbed();
    const std::string prefix = unique("crash");
    const std::string topic = prefix + ".t";
    const int64_t bound = 5000;
    create_topic(b.primary, topic, 6);
    const std::string cfg =
        config({{.name = prefix,
                 .topics = "\"" + topic + "\"",
                 .extra = "max_in_flight_records = " + std::to_string(bound) + "\n"}});
    const int64_t total = 200'000;
    // A steady stream (about 5,000 records/s), so that every kill lands
    // while records are in flight.
    std::thread writer([&] {
        for (int chunk = 0; chunk < 200; ++chunk) {
            produce_records(topic, chunk * (total / 200), total / 200, 6, false, 1000 + chunk);
            std::this_thread::sleep_for(150ms);
        }
    });
    std::mt19937 rng(7);
    int kills = 0;
    for (; kills < 3; ++kills) {
        auto d = start(cfg, "crash");
        // Let it make progress, then kill it mid-stream.
        const int64_t before = end_offsets(b.dr, "primary." + topic);
        REQUIRE_EVENTUALLY(60s, end_offsets(b.dr, "primary." + topic) > before + 2000);
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 1500));
        d->signal(SIGKILL);
        REQUIRE(d->wait(10s).has_value());
    }
    writer.join();
    auto d = start(cfg, "crash");
    REQUIRE_EVENTUALLY(180s, caught_up(topic, "primary." + topic));
    // Let it settle so the last in-flight records are in.
    std::this_thread::sleep_for(2s);
    const size_t dups = require_same_partitions(topic, "primary." + topic);
    std::cout << "crash test: " << kills << " SIGKILLs, " << total << " records, " << dups
              << " duplicates on the target (bound " << bound << " per crash)\n";
    CHECK(dups <= static_cast<size_t>(kills * bound));
    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}

TEST_CASE("mirror_catches_up_by_itself_after_the_target_broker_is_down_for_30s") {
    // Guards against a target outage turning into skipped records or a
    // flow that gives up: librdkafka retries, the flow waits and resumes.
    const auto& b = testbed();
    const std::string prefix = unique("outage");
    const std::string topic = prefix + ".t";
    create_topic(b.primary, topic, 3);
    auto d = start(config({{.name = prefix, .topics = "\"" + topic + "\""}}), "outage");
    produce_records(topic, 0, 20'000, 3, false, 5);
    REQUIRE_EVENTUALLY(60s, caught_up(topic, "primary." + topic));

    const auto stop =
        run({std::string(RPL_SOURCE_DIR) + "/scripts/testbed", "stop-broker", "dr"}, 60s);
    REQUIRE_MESSAGE(stop.exit_code == 0, stop.err);
    produce_records(topic, 20'000, 20'000, 3, false, 6);
    std::this_thread::sleep_for(30s);
    const auto start_again =
        run({std::string(RPL_SOURCE_DIR) + "/scripts/testbed", "start-broker", "dr"}, 90s);
    REQUIRE_MESSAGE(start_again.exit_code == 0, start_again.err);
    produce_records(topic, 40'000, 5'000, 3, false, 7);

    REQUIRE_EVENTUALLY(120s, caught_up(topic, "primary." + topic));
    const size_t dups = require_same_partitions(topic, "primary." + topic);
    std::cout << "outage test: 45000 records, " << dups << " duplicates\n";
    CHECK(d->running());
    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}

TEST_CASE(
    "mirror_follows_topology_new_topics_new_partitions_deletions_and_never_copies_excluded_or_"
    "internal") {
    // Guards against MirrorMaker 2's 10-minute discovery gap and against
    // copying what must never travel (excluded, internal, cycles).
    const auto& b = testbed();
    const std::string prefix = unique("topo");
    create_topic(b.primary, prefix + ".first", 2);
    create_topic(b.primary, prefix + ".skip", 1);
    create_topic(b.primary, prefix + ".log-internal", 1);
    create_topic(b.dr, prefix + ".back", 1);
    const std::string topics = "\"" + prefix + "\\\\..*\"";
    auto d = start(
        config({{.name = prefix + "-fwd",
                 .topics = topics,
                 .extra = "exclude_topics = [\".*\\\\.skip\"]\n"},
                {.name = prefix + "-back", .source = "dr", .target = "primary", .topics = topics}}),
        "topo");
    produce_records(prefix + ".first", 0, 100, 2, false, 1);
    REQUIRE_EVENTUALLY(30s, caught_up(prefix + ".first", "primary." + prefix + ".first", 0) &&
                                end_offsets(b.dr, "primary." + prefix + ".first") == 100);

    // A new matching topic.
    const auto created_at = std::chrono::steady_clock::now();
    create_topic(b.primary, prefix + ".second", 3);
    produce_records(prefix + ".second", 0, 50, 3, false, 2);
    REQUIRE_EVENTUALLY(10s, end_offsets(b.dr, "primary." + prefix + ".second") == 50);
    std::cout << "topology test: new topic mirrored in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - created_at)
                     .count()
              << " ms\n";

    // New partitions at the source.
    const auto grown_at = std::chrono::steady_clock::now();
    add_partitions(b.primary, prefix + ".first", 4);
    REQUIRE_EVENTUALLY(10s, kcat_partitions(b.dr, "primary." + prefix + ".first") == 4);
    std::cout << "topology test: partitions added in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - grown_at)
                     .count()
              << " ms\n";
    {
        producer p(b.primary);
        for (int i = 0; i < 40; ++i) {
            record r;
            r.partition = 2 + i % 2;
            r.key = "new" + std::to_string(i);
            r.value = "grown" + std::to_string(i);
            p.produce(prefix + ".first", r);
        }
        p.flush();
    }
    REQUIRE_EVENTUALLY(30s, end_offsets(b.dr, "primary." + prefix + ".first") == 140);
    CHECK(require_same_partitions(prefix + ".first", "primary." + prefix + ".first") == 0);

    // Deleted at the source: the flow goes on, the target copy stays.
    delete_topic(b.primary, prefix + ".second");
    REQUIRE_EVENTUALLY(
        20s, d->log().find("source topic " + prefix + ".second was deleted") != std::string::npos);
    const int port = d->admin_port();
    REQUIRE(port > 0);
    CHECK(http_get(port, "/metrics")
              .find("replicatord_source_topics_deleted_total{flow=\"" + prefix + "-fwd\"} 1") !=
          std::string::npos);
    CHECK(kcat_partitions(b.dr, "primary." + prefix + ".second") == 3);
    produce_records(prefix + ".first", 1000, 10, 2, false, 3);
    REQUIRE_EVENTUALLY(30s, end_offsets(b.dr, "primary." + prefix + ".first") == 150);

    // Never copied: excluded, internal, and anything that went round a cycle.
    const auto dr_topics = kcat_topics(b.dr);
    const auto primary_topics = kcat_topics(b.primary);
    auto has = [](const std::vector<std::string>& v, const std::string& t) {
        return std::find(v.begin(), v.end(), t) != v.end();
    };
    CHECK_FALSE(has(dr_topics, "primary." + prefix + ".skip"));
    CHECK_FALSE(has(dr_topics, "primary." + prefix + ".log-internal"));
    CHECK(has(primary_topics, "dr." + prefix + ".back"));  // the reverse flow runs
    for (const auto& t : dr_topics) {
        CHECK(t.rfind("primary.__", 0) != 0);
        CHECK(t.rfind("primary.dr.", 0) != 0);
    }
    for (const auto& t : primary_topics) CHECK(t.rfind("dr.primary.", 0) != 0);
    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}

TEST_CASE("mirror_copies_only_committed_transactions") {
    // Guards against reading the source with read_uncommitted: aborted
    // records must never reach the target.
    const auto& b = testbed();
    const std::string prefix = unique("txn");
    const std::string topic = prefix + ".t";
    create_topic(b.primary, topic, 2);
    auto d = start(config({{.name = prefix, .topics = "\"" + topic + "\""}}), "txn");
    {
        producer p(b.primary, {{"transactional.id", prefix}});
        char err[512];
        int txn = -1;
        auto check = [&](rd_kafka_error_t* e) {
            if (e) {
                std::string m =
                    "transaction " + std::to_string(txn) + ": " + rd_kafka_error_string(e);
                rd_kafka_error_destroy(e);
                FAIL(m);
            }
        };
        check(rd_kafka_init_transactions(p.handle(), 30000));
        for (txn = 0; txn < 10; ++txn) {
            check(rd_kafka_begin_transaction(p.handle()));
            for (int i = 0; i < 10; ++i) {
                record r;
                r.partition = i % 2;
                r.key = "t" + std::to_string(txn);
                r.value = (txn % 3 == 1 ? "aborted-" : "committed-") + std::to_string(txn) + "-" +
                          std::to_string(i);
                p.produce(topic, r);
            }
            // Flushed first, so that aborted records really sit in the log
            // (an abort before sending would only purge them locally).
            REQUIRE(rd_kafka_flush(p.handle(), 30000) == RD_KAFKA_RESP_ERR_NO_ERROR);
            if (txn % 3 == 1)
                check(rd_kafka_abort_transaction(p.handle(), 30000));
            else
                check(rd_kafka_commit_transaction(p.handle(), 30000));
        }
        (void)err;
    }
    // 10 transactions, 3 aborted (1, 4, 7): 70 committed records.
    REQUIRE_EVENTUALLY(30s, end_offsets(b.dr, "primary." + topic) >= 70);
    std::this_thread::sleep_for(2s);
    const auto got = kcat_read(b.dr, "primary." + topic);
    CHECK(got.size() == 70);
    for (const auto& r : got) {
        REQUIRE(r.value.has_value());
        CHECK(r.value->rfind("committed-", 0) == 0);
    }
    // The flow's lag goes to zero past the transaction markers.
    const int port = d->admin_port();
    auto lag_zero = [&](int partition) {
        return http_get(port, "/metrics")
                   .find("replicatord_lag_records{flow=\"" + prefix + "\",partition=\"" +
                         std::to_string(partition) + "\",topic=\"" + topic + "\"} 0\n") !=
               std::string::npos;
    };
    REQUIRE_EVENTUALLY(15s, lag_zero(0) && lag_zero(1));
    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}

TEST_CASE("mirror_stops_cleanly_on_sigterm_and_resumes_without_duplicates") {
    // Guards against a shutdown that exits before draining and committing,
    // which would show up as re-sent records after the restart.
    const auto& b = testbed();
    const std::string prefix = unique("term");
    const std::string topic = prefix + ".t";
    create_topic(b.primary, topic, 4);
    const std::string cfg = config({{.name = prefix, .topics = "\"" + topic + "\""}});
    std::thread writer([&] { produce_records(topic, 0, 60'000, 4, false, 11); });
    {
        auto d = start(cfg, "term");
        REQUIRE_EVENTUALLY(60s, end_offsets(b.dr, "primary." + topic) > 5000);
        const auto t0 = std::chrono::steady_clock::now();
        d->signal(SIGTERM);
        const auto rc = d->wait(10s);
        std::cout << "shutdown test: exited in "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count()
                  << " ms\n";
        REQUIRE(rc == std::optional<int>(0));
        CHECK(d->log().find("stopped") != std::string::npos);
    }
    writer.join();
    auto d = start(cfg, "term");
    REQUIRE_EVENTUALLY(120s, caught_up(topic, "primary." + topic));
    std::this_thread::sleep_for(2s);
    CHECK(require_same_partitions(topic, "primary." + topic) == 0);
    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}

TEST_CASE("mirror_with_an_unreachable_target_is_not_ready_and_names_the_cluster_and_bootstrap") {
    // Guards against a daemon that starts "fine" and mirrors nothing: since
    // issue 16 the daemon runs whatever can run, and the flow that cannot is
    // named, with the cluster and address, in /readyz and /status.
    const auto& b = testbed();
    const std::string name = unique("unreach");
    std::string cfg = "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("unreach") +
                      "\"\nadmin_listen = \"127.0.0.1:0\"\n";
    cfg += "[clusters.primary]\nbootstrap = \"" + b.primary + "\"\n";
    cfg += "[clusters.dr]\nbootstrap = \"127.0.0.1:39998\"\n";
    cfg += "[[flow]]\nname = \"" + name + "\"\nsource = \"primary\"\ntarget = \"dr\"\n";
    auto d = start(cfg, "unreach");
    REQUIRE_EVENTUALLY(30s, d->admin_port() > 0);
    const int port = d->admin_port();
    REQUIRE_EVENTUALLY(
        60s, http_get(port, "/readyz").find("flow " + name + " is failed") != std::string::npos);
    const std::string why = http_get(port, "/readyz");
    CHECK(why.find("127.0.0.1:39998") != std::string::npos);
    CHECK(http_get(port, "/status").find("127.0.0.1:39998") != std::string::npos);
    CHECK(d->running());
    d->signal(SIGTERM);
    CHECK(d->wait(30s).has_value());
}

TEST_CASE("mirror_refuses_a_target_topic_with_fewer_partitions_and_other_flows_run") {
    // Guards against silently re-partitioning data: a partition-preserving
    // copy into fewer partitions is impossible, so that flow stops loudly.
    const auto& b = testbed();
    const std::string prefix = unique("fewer");
    create_topic(b.primary, prefix + ".wide", 4);
    create_topic(b.dr, "primary." + prefix + ".wide", 2);
    create_topic(b.primary, prefix + ".ok", 2);
    auto d = start(config({{.name = prefix + "-bad", .topics = "\"" + prefix + "\\\\.wide\""},
                           {.name = prefix + "-good", .topics = "\"" + prefix + "\\\\.ok\""}}),
                   "fewer");
    produce_records(prefix + ".ok", 0, 500, 2, false, 3);
    REQUIRE_EVENTUALLY(30s, end_offsets(b.dr, "primary." + prefix + ".ok") == 500);
    REQUIRE_EVENTUALLY(
        20s, d->log().find("target topic primary." + prefix + ".wide") != std::string::npos);
    const std::string log = d->log();
    CHECK(log.find("has 2 partitions but source topic " + prefix + ".wide") != std::string::npos);
    CHECK(log.find("has 4") != std::string::npos);
    const int port = d->admin_port();
    const std::string status = http_get(port, "/status");
    CHECK(status.find("\"name\":\"" + prefix + "-bad\",\"state\":\"failed\"") != std::string::npos);
    CHECK(status.find("\"name\":\"" + prefix + "-good\",\"state\":\"running\"") !=
          std::string::npos);
    CHECK(d->running());
    d->signal(SIGTERM);
    CHECK(d->wait(15s) == std::optional<int>(0));
}
