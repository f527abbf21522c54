// The archival tap where the archive and the source disagree, on the real
// test bed, with the tap run in-process so a test can stop it, change the
// source and start it again: a new store while the group has committed,
// retention overtaking a stopped tap, a recreated source topic, a store that
// throws, and a store upload that hangs.
#include "backup/catalogue.h"
#include "backup/metrics.h"
#include "backup/store.h"
#include "backup/tap.h"
#include "backup/verify.h"
#include "conf/config.h"
#include "kafka/consumer.h"
#include "support.h"

#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>

using namespace rpl;
using namespace rpl::test;
using namespace rpl::backup;

namespace {

namespace fs = std::filesystem;

// A file store with knobs: puts of segments can throw or block until released.
class knob_store final : public object_store {
public:
    explicit knob_store(std::unique_ptr<object_store> inner) : inner_(std::move(inner)) {}

    std::atomic<bool> throw_on_segment{false};
    std::atomic<bool> block_segments{false};
    std::atomic<int> blocked{0};  // segment puts waiting now

    void release() {
        {
            std::lock_guard lock(mu_);
            block_segments = false;
        }
        cv_.notify_all();
    }

    Result<void> put(std::string_view key, std::string_view data) override {
        if (key.ends_with(".seg")) {
            if (throw_on_segment) throw std::runtime_error("knob_store: injected failure");
            std::unique_lock lock(mu_);
            ++blocked;
            cv_.wait(lock, [&] { return !block_segments.load(); });
            --blocked;
        }
        return inner_->put(key, data);
    }
    Result<std::string> get(std::string_view key) override { return inner_->get(key); }
    Result<std::vector<object_info>> list(std::string_view prefix) override {
        return inner_->list(prefix);
    }
    Result<void> remove(std::string_view key) override { return inner_->remove(key); }
    Result<void> check() override { return inner_->check(); }
    const std::string& describe() const noexcept override { return inner_->describe(); }

private:
    std::unique_ptr<object_store> inner_;
    std::mutex mu_;
    std::condition_variable cv_;
};

struct bench {
    std::string name = unique("trust");
    std::string topic = unique("trust-topic");
    fs::path dir;
    conf::Config cfg;
    prometheus::Registry registry;
    tap_metric_families metrics = make_tap_metrics(registry);

    bench() : dir(fs::path(temp_dir()) / unique("trust-archive")) { load_config(); }

    void load_config() {
        fs::create_directories(dir);
        auto c = conf::parse(
            "[clusters.primary]\nbootstrap = \"" + testbed().primary + "\"\n\n[[tap]]\nname = \"" +
                name + "\"\nsource = \"primary\"\ntopics = [\"" + topic +
                "\"]\nstorage = \"file://" + dir.string() + "\"\nsegment_max_interval = \"1s\"\n",
            "trust.toml");
        REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
        cfg = std::move(c.value());
    }
    // A fresh, empty store directory (a lost bucket, a changed prefix).
    void new_store() {
        dir = fs::path(temp_dir()) / unique("trust-archive");
        load_config();
    }
    std::unique_ptr<object_store> file_store() {
        auto s = open_store("file://" + dir.string(), {});
        REQUIRE(s);
        return std::move(s.value());
    }
    std::unique_ptr<tap> make(std::unique_ptr<object_store> s = nullptr) {
        auto t = std::make_unique<tap>(cfg.taps.at(0), tap_env{&cfg, &metrics},
                                       s ? std::move(s) : file_store());
        auto r = t->start();
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        return t;
    }
    // Records and the [start, end) the archive's segments of partition 0 cover.
    struct extent {
        std::uint64_t records = 0;
        int64_t start = -1;
        int64_t end = -1;
    };
    extent archived() {
        auto s = file_store();
        auto cat = catalogue::load(*s, name);
        extent e;
        if (!cat) return e;
        for (const auto& seg : cat.value().segments(topic, 0)) {
            e.records += seg.records;
            if (e.start < 0) e.start = seg.start_offset;
            e.end = seg.end_offset;
        }
        return e;
    }
    double counter(const std::string& family) {
        for (const auto& f : registry.Collect())
            if (f.name == family)
                for (const auto& m : f.metric)
                    for (const auto& l : m.label)
                        if (l.name == "tap" && l.value == name) return m.counter.value;
        return -1;
    }
};

void commit_group(const std::string& group, const std::string& topic, int64_t offset) {
    kafka::endpoint ep{"primary", testbed().primary, {}};
    auto c = kafka::consumer::create(ep, group, {}, Logger("test"));
    REQUIRE_MESSAGE(c, c.error().message);
    auto r = c.value().commit({{topic, 0, offset}}, false);
    REQUIRE_MESSAGE(r, r.error().message);
}

// DeleteRecords: the log start of partition 0 moves to `before`, as
// retention would move it.
void delete_records(const std::string& topic, int64_t before) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", testbed().primary.c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    REQUIRE(rk != nullptr);
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offsets, topic.c_str(), 0)->offset = before;
    rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(offsets);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteRecords(rk, &del, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 60000);
    REQUIRE(ev != nullptr);
    const bool failed = rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR;
    const std::string what = failed ? rd_kafka_event_error_string(ev) : "";
    int partition_err = 0;
    if (!failed) {
        const auto* res =
            rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
        partition_err = res->elems[0].err;
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(del);
    rd_kafka_topic_partition_list_destroy(offsets);
    rd_kafka_destroy(rk);
    REQUIRE_MESSAGE(!failed, what);
    REQUIRE(partition_err == 0);
}

}  // namespace

TEST_SUITE("tap_trust") {
    TEST_CASE("tap_on_a_new_store_archives_from_the_log_start_not_the_group_commit") {
        // Guards against a replaced store (a lost bucket, a changed prefix)
        // archiving nothing of what the source still holds below the
        // group's commit, with lag and RPO 0.
        bench b;
        create_topic(testbed().primary, b.topic, 1);
        produce_numbered(b.topic, 0, 0, 20);
        commit_group("replicatord.tap." + b.name, b.topic, 15);
        auto t = b.make();
        REQUIRE_EVENTUALLY(30s, b.archived().end == 20);
        t->stop();
        const auto e = b.archived();
        CHECK(e.start == 0);
        CHECK(e.records == 20);
        auto s = b.file_store();
        auto rep = verify_backup(*s, b.name, true);
        REQUIRE(rep);
        CHECK(rep.value().clean());
        CHECK(rep.value().losses.empty());
        delete_topic(testbed().primary, b.topic);
    }

    TEST_CASE("a_new_store_records_what_the_group_committed_but_the_source_deleted_as_lost") {
        // Guards against a replaced store silently missing the offsets
        // between the tap's last commit and the log start: they were never
        // archived in any store the tap can still reach.
        bench b;
        create_topic(testbed().primary, b.topic, 1);
        produce_numbered(b.topic, 0, 0, 20);
        delete_records(b.topic, 10);
        commit_group("replicatord.tap." + b.name, b.topic, 5);
        auto t = b.make();
        REQUIRE_EVENTUALLY(30s, b.archived().end == 20);
        t->stop();
        CHECK(b.archived().start == 5);
        CHECK(b.archived().records == 10);
        auto s = b.file_store();
        auto rep = verify_backup(*s, b.name, true);
        REQUIRE(rep);
        CHECK(rep.value().clean());
        REQUIRE(rep.value().losses.size() == 1);
        CHECK(rep.value().losses[0].from == 5);
        CHECK(rep.value().losses[0].to == 10);
        delete_topic(testbed().primary, b.topic);
    }

    TEST_CASE("retention_overtaking_a_stopped_tap_is_recorded_counted_and_reported_as_lost") {
        // Guards against retention-deleted records becoming an ordinary gap
        // that verify accepts: the archive must mark them lost, the counter
        // count them, and verify list them.
        bench b;
        create_topic(testbed().primary, b.topic, 1);
        produce_numbered(b.topic, 0, 0, 10);
        {
            auto t = b.make();
            REQUIRE_EVENTUALLY(30s, b.archived().end == 10);
            t->stop();
        }
        produce_numbered(b.topic, 0, 10, 10);
        delete_records(b.topic, 15);  // offsets 10..14 never reached the archive
        auto t = b.make();
        REQUIRE_EVENTUALLY(30s, b.archived().end == 20);
        CHECK(b.counter("replicatord_records_lost_to_retention_total") == 5);
        t->stop();
        CHECK(b.archived().records == 15);
        auto s = b.file_store();
        auto rep = verify_backup(*s, b.name, true);
        REQUIRE(rep);
        CHECK(rep.value().clean());
        REQUIRE(rep.value().losses.size() == 1);
        CHECK(rep.value().losses[0].from == 10);
        CHECK(rep.value().losses[0].to == 15);
        CHECK(rep.value().lost_records() == 5);
        // replicatorctl says so, with its own exit code.
        const auto v = run({ctl_bin(), "backup", "verify", "--store", "file://" + b.dir.string(),
                            "--backup", b.name});
        CHECK_MESSAGE(v.exit_code == 6, show(v));
        CHECK_MESSAGE(v.out.find("LOST: 5 record(s)") != std::string::npos, show(v));
        const auto d = run({ctl_bin(), "backup", "describe", "--store", "file://" + b.dir.string(),
                            "--backup", b.name});
        CHECK_MESSAGE(d.out.find("LOST: " + b.topic + "/0 offsets [10, 15)") != std::string::npos,
                      show(d));
        delete_topic(testbed().primary, b.topic);
    }

    TEST_CASE("a_recreated_source_topic_is_archived_as_new_data_in_a_new_epoch") {
        // Guards against the tap resuming at the old archive end on a
        // recreated topic and silently discarding every record below it.
        bench b;
        create_topic(testbed().primary, b.topic, 1);
        produce_numbered(b.topic, 0, 0, 10);
        {
            auto t = b.make();
            REQUIRE_EVENTUALLY(30s, b.archived().end == 10);
            t->stop();
        }
        delete_topic(testbed().primary, b.topic);
        REQUIRE_EVENTUALLY(30s, kcat_partitions(testbed().primary, b.topic) == 0);
        REQUIRE_EVENTUALLY(60s, [&] {
            try {
                create_topic(testbed().primary, b.topic, 1);
                return true;
            } catch (const std::exception&) {
                return false;  // still being deleted
            }
        }());
        produce_numbered(b.topic, 0, 0, 3);
        auto t = b.make();
        REQUIRE_EVENTUALLY(30s, b.archived().records == 13);
        CHECK(b.counter("replicatord_tap_topic_resets_total") == 1);
        t->stop();
        CHECK(b.archived().end == 13);
        auto s = b.file_store();
        auto rep = verify_backup(*s, b.name, true);
        REQUIRE(rep);
        CHECK(rep.value().clean());
        REQUIRE(rep.value().epochs.size() == 1);
        CHECK(rep.value().epochs[0].base == 10);
        delete_topic(testbed().primary, b.topic);
    }

    TEST_CASE("an_exception_in_the_tap_fails_that_tap_with_its_cause_not_the_process") {
        // Guards against run() being noexcept: an exception (zstd, bad_alloc,
        // regex_error) called std::terminate and ended every flow and tap.
        bench b;
        create_topic(testbed().primary, b.topic, 1);
        produce_numbered(b.topic, 0, 0, 5);
        auto ks = std::make_unique<knob_store>(b.file_store());
        ks->throw_on_segment = true;
        auto t = b.make(std::move(ks));
        REQUIRE_EVENTUALLY(30s, t->status().state == tap_state::failed);
        CHECK(t->status().last_error.find("injected failure") != std::string::npos);
        t->stop();
        delete_topic(testbed().primary, b.topic);
    }

    TEST_CASE("a_rebalance_completes_while_a_segment_upload_hangs") {
        // Guards against store I/O inside the rebalance callback: on_revoke
        // stored what was buffered, so a hung store held the callback, the
        // tap never rejoined, and the whole group stood still.
        bench b;
        create_topic(testbed().primary, b.topic, 2);
        produce_numbered(b.topic, 0, 0, 5);
        produce_numbered(b.topic, 1, 0, 5);
        auto ks = std::make_unique<knob_store>(b.file_store());
        auto* knobs = ks.get();
        knobs->block_segments = true;
        auto t = b.make(std::move(ks));
        struct releaser {
            knob_store* k;
            ~releaser() { k->release(); }
        } release_on_exit{knobs};
        REQUIRE_EVENTUALLY(30s, knobs->blocked.load() == 1);
        // A second member of the tap's group takes one of the partitions.
        kafka::endpoint ep{"primary", testbed().primary, {}};
        auto other = kafka::consumer::create(ep, "replicatord.tap." + b.name, {}, Logger("other"));
        REQUIRE_MESSAGE(other, other.error().message);
        REQUIRE(other.value().subscribe({b.topic}));
        std::vector<kafka::message> batch;
        REQUIRE_EVENTUALLY(60s, [&] {
            batch.clear();
            other.value().poll(batch, 100, 100ms);
            return !other.value().assignment().empty();
        }());
        CHECK(knobs->blocked.load() == 1);  // the upload still hangs meanwhile
        CHECK(t->status().state == tap_state::running);
        other.value().close(10s);
        knobs->release();
        t->stop();
        delete_topic(testbed().primary, b.topic);
    }

    TEST_CASE("tap_keeps_polling_while_a_segment_upload_hangs") {
        // Guards against a slow store stopping the poll loop (and so the
        // group membership: max.poll.interval.ms evicts the tap).
        bench b;
        create_topic(testbed().primary, b.topic, 1);
        produce_numbered(b.topic, 0, 0, 5);
        auto ks = std::make_unique<knob_store>(b.file_store());
        auto* knobs = ks.get();
        knobs->block_segments = true;
        auto t = b.make(std::move(ks));
        // Releases the put before the tap stops, even when a check fails:
        // stop() waits for the upload in flight.
        struct releaser {
            knob_store* k;
            ~releaser() { k->release(); }
        } release_on_exit{knobs};
        REQUIRE_EVENTUALLY(30s, knobs->blocked.load() == 1);
        const auto stuck_at = t->status().loop_at;
        REQUIRE_EVENTUALLY(10s, t->status().loop_at > stuck_at + 1s);
        CHECK(knobs->blocked.load() == 1);  // still uploading meanwhile
        knobs->release();
        REQUIRE_EVENTUALLY(30s, b.archived().end == 5);
        t->stop();
        delete_topic(testbed().primary, b.topic);
    }
}
