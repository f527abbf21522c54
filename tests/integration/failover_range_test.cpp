// `failover` against the target's log range, on the test bed's dr cluster:
// a translated offset is never committed blindly. The checkpoints are
// written by the test (no daemon): what is under test is only what failover
// does with an offset outside [log start, log end] on the target.
#include "checkpoint/failover.h"
#include "conf/config.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
#include "tests/integration/group_consumer.h"
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <filesystem>
#include <string>
#include <vector>

using namespace rpl::test;

namespace {

// Deletes the records of topic/partition below `before` (DeleteRecords):
// the log start moves as retention would move it.
void delete_records(const std::string& bootstrap, const std::string& topic, int32_t partition,
                    int64_t before) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    REQUIRE(rk != nullptr);
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic.c_str(), partition)->offset = before;
    rd_kafka_DeleteRecords_t* req = rd_kafka_DeleteRecords_new(l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteRecords(rk, &req, 1, nullptr, q);
    rd_kafka_DeleteRecords_destroy(req);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000);
    REQUIRE(ev != nullptr);
    std::string problem = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : "";
    if (problem.empty()) {
        const auto* res = rd_kafka_event_DeleteRecords_result(ev);
        const auto* offs = rd_kafka_DeleteRecords_result_offsets(res);
        for (int i = 0; offs != nullptr && i < offs->cnt; ++i)
            if (offs->elems[i].err) problem = rd_kafka_err2str(offs->elems[i].err);
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    REQUIRE_MESSAGE(problem.empty(), "delete records of " << topic << ": " << problem);
}

struct range_scenario {
    std::string topic = unique("fr");  // on the source; "src.<topic>" on dr
    std::string target_topic = "src." + topic;
    std::string group = unique("fr-group");
    rpl::conf::Config cfg;

    range_scenario() {
        const auto& b = testbed();
        const std::string text =
            "[daemon]\nadmin_listen = \"127.0.0.1:0\"\n"
            "[clusters.src]\nbootstrap = \"" +
            b.primary + "\"\n[clusters.dst]\nbootstrap = \"" + b.dr +
            "\"\n[[flow]]\nname = \"fr\"\nsource = \"src\"\ntarget = "
            "\"dst\"\ntopics = [\"" +
            topic + "\"]\n";
        auto c = rpl::conf::parse(text, "fr.toml");
        REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
        cfg = std::move(c).value();
        // 10 records in each of 2 partitions of the target topic.
        create_topic(b.dr, target_topic, 2);
        producer p(b.dr);
        for (int i = 0; i < 20; ++i) {
            record r;
            r.partition = i % 2;
            r.value = "v" + std::to_string(i);
            p.produce(target_topic, r);
        }
        p.flush();
    }
    ~range_scenario() { delete_topic(testbed().dr, target_topic); }

    // Checkpoints saying the group resumes at `at` (partition -> target offset).
    std::vector<rpl::checkpoint::translation_row> rows(const offsets& at) const {
        std::vector<rpl::checkpoint::stored_checkpoint> cps;
        for (const auto& [p, o] : at)
            cps.push_back({{group, target_topic, p, /*upstream=*/o, /*downstream=*/o, ""}, 0});
        return rpl::checkpoint::rows_for(cfg.flows.at(0), cps, group);
    }
    rpl::checkpoint::group_plan failover(const offsets& at, bool apply) const {
        auto plans = rpl::checkpoint::failover(cfg, cfg.flows.at(0), rows(at), apply,
                                               rpl::Logger("failover"));
        REQUIRE_MESSAGE(plans.has_value(), (plans ? "" : plans.error().message));
        REQUIRE(plans.value().size() == 1);
        return plans.value().front();
    }
    offsets committed() const { return committed_offsets(testbed().dr, group, target_topic, 2); }
};

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

}  // namespace

// Guards against: failover --apply committed a translated offset below the
// target's log start as it was; a consumer then met OFFSET_OUT_OF_RANGE and,
// with auto.offset.reset=latest, jumped to the end past every record there.
TEST_CASE("failover_resumes_at_the_log_start_when_the_translated_offset_was_deleted") {
    range_scenario s;
    delete_records(testbed().dr, s.target_topic, 0, 6);  // partition 0 now starts at 6
    const offsets at{{0, 2}, {1, 3}};

    // Plan mode shows the same check and commits nothing.
    const auto plan = s.failover(at, false);
    CHECK(plan.refused.empty());
    REQUIRE(plan.rows.size() == 2);
    CHECK(plan.rows[0].translated == 2);
    CHECK(plan.rows[0].next == 6);
    CHECK(plan.rows[0].log_start == 6);
    CHECK(plan.rows[0].log_end == 10);
    CHECK(contains(plan.rows[0].note, s.group));
    CHECK(contains(plan.rows[0].note, s.target_topic + "/0"));
    CHECK(contains(plan.rows[0].note, "translated offset 2 is below the log start 6"));
    CHECK(plan.rows[1].next == 3);
    CHECK(plan.rows[1].note.empty());
    CHECK(s.committed().at(0) == RD_KAFKA_OFFSET_INVALID);

    const auto applied = s.failover(at, true);
    CHECK(applied.refused.empty());
    CHECK(s.committed() == offsets{{0, 6}, {1, 3}});
}

// Guards against: failover --apply committed a translated offset past the
// target's log end (a recreated target topic, records lost there); once
// producers write to the target, the group would skip everything between.
TEST_CASE("failover_refuses_a_group_whose_translated_offset_is_past_the_log_end") {
    range_scenario s;
    const offsets at{{0, 50}, {1, 4}};

    const auto plan = s.failover(at, false);
    MESSAGE(plan.refused);
    CHECK(contains(plan.refused, s.group));
    CHECK(contains(plan.refused, s.target_topic + "/0"));
    CHECK(contains(plan.refused, "translated offset 50 is past the log end 10"));
    REQUIRE(plan.rows.size() == 2);
    CHECK(plan.rows[0].log_end == 10);

    const auto applied = s.failover(at, true);
    CHECK_FALSE(applied.refused.empty());
    // Nothing of the group is committed, not even its partition in range.
    CHECK(s.committed() == offsets{{0, RD_KAFKA_OFFSET_INVALID}, {1, RD_KAFKA_OFFSET_INVALID}});
}

namespace {

// Failback's mirror image: a group on dr, runs that map source record i of
// `topic` on primary to target record i of src.<topic> on dr (published to
// dr's runs topic, where failback reads them), and `source_records` records
// in the source topic itself.
struct failback_scenario {
    std::string flow = unique("fb-flow");
    std::string topic = unique("fb");
    std::string target_topic = "src." + topic;
    std::string group = unique("fb-group");
    rpl::conf::Config cfg;

    explicit failback_scenario(int source_records) {
        const auto& b = testbed();
        const std::string text =
            "[daemon]\nadmin_listen = \"127.0.0.1:0\"\n"
            "[clusters.src]\nbootstrap = \"" +
            b.primary + "\"\n[clusters.dst]\nbootstrap = \"" + b.dr + "\"\n[[flow]]\nname = \"" +
            flow + "\"\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"" + topic + "\"]\n";
        auto c = rpl::conf::parse(text, "fb.toml");
        REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
        cfg = std::move(c).value();
        create_topic(b.primary, topic, 1);
        create_topic(b.dr, target_topic, 1);
        produce(b.primary, topic, source_records);
        produce(b.dr, target_topic, 10);
        // The runs: source 0..9 -> target 0..9, as the flow would have left them.
        const auto dir = std::filesystem::path(temp_dir()) / (flow + "-runs");
        auto store = rpl::offsetsync::store::open(dir);
        REQUIRE(store.has_value());
        for (int64_t i = 0; i < 10; ++i)
            REQUIRE(store.value()->record(flow, topic, 0, target_topic, i, i).has_value());
        auto runs = store.value()->flush(flow);
        REQUIRE(runs.has_value());
        const rpl::kafka::endpoint dr{"dst", b.dr, {}};
        auto pub = rpl::offsetsync::publisher::create(dr, rpl::Logger("runs"));
        REQUIRE_MESSAGE(pub.has_value(), (pub ? "" : pub.error().message));
        REQUIRE(pub.value()->publish(runs.value()).has_value());
        auto flushed = pub.value()->flush(std::chrono::seconds(30));
        REQUIRE_MESSAGE(flushed.has_value(), (flushed ? "" : flushed.error().message));
    }
    ~failback_scenario() {
        delete_topic(testbed().primary, topic);
        delete_topic(testbed().dr, target_topic);
    }
    static void produce(const std::string& bootstrap, const std::string& t, int n) {
        producer p(bootstrap);
        for (int i = 0; i < n; ++i) {
            record r;
            r.partition = 0;
            r.value = "v" + std::to_string(i);
            p.produce(t, r);
        }
        p.flush();
    }
    // The group's commit on dr, where failback reads it.
    void commit_on_dr(int64_t at) const {
        consume_and_commit(testbed().dr, target_topic, group, {{0, at}}, "earliest");
    }
    rpl::checkpoint::group_plan failback(bool apply) const {
        const auto scratch = std::filesystem::path(temp_dir()) / (flow + "-scratch");
        std::filesystem::remove_all(scratch);
        auto plans = rpl::checkpoint::failback(cfg, cfg.flows.at(0), {group}, scratch, apply,
                                               rpl::Logger("failback"));
        REQUIRE_MESSAGE(plans.has_value(), (plans ? "" : plans.error().message));
        REQUIRE(plans.value().size() == 1);
        return plans.value().front();
    }
    int64_t committed_on_source() const {
        return committed_offsets(testbed().primary, group, topic, 1).at(0);
    }
};

}  // namespace

// Guards against: failover --reverse --apply committed reverse-translated
// offsets into the source without checking the source's log range (the same
// fault as the forward direction): below the log start the consumer's
// auto.offset.reset decided where it resumed.
TEST_CASE("failback_resumes_at_the_log_start_when_the_translated_offset_was_deleted") {
    failback_scenario s(10);
    s.commit_on_dr(4);
    delete_records(testbed().primary, s.topic, 0, 6);

    const auto plan = s.failback(false);
    CHECK(plan.refused.empty());
    REQUIRE(plan.rows.size() == 1);
    CHECK(plan.rows[0].translated == 4);
    CHECK(plan.rows[0].next == 6);
    CHECK(contains(plan.rows[0].note, "translated offset 4 is below the log start 6"));
    CHECK(s.committed_on_source() == RD_KAFKA_OFFSET_INVALID);

    const auto applied = s.failback(true);
    CHECK(applied.refused.empty());
    CHECK(s.committed_on_source() == 6);
}

// Guards against: failback committing an offset past the source's log end
// (the source topic was recreated while the region was down), which makes
// the group skip what producers write there next.
TEST_CASE("failback_refuses_a_group_whose_translated_offset_is_past_the_source_log_end") {
    failback_scenario s(3);  // the runs say 10 records, the source holds 3
    s.commit_on_dr(8);

    const auto applied = s.failback(true);
    MESSAGE(applied.refused);
    CHECK(contains(applied.refused, s.group));
    CHECK(contains(applied.refused, s.topic + "/0"));
    CHECK(contains(applied.refused, "translated offset 8 is past the log end 3"));
    CHECK(s.committed_on_source() == RD_KAFKA_OFFSET_INVALID);
}
