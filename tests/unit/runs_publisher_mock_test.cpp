// The offset-runs publisher against librdkafka's in-process mock cluster:
// sends that cannot be queued, a target that goes away, a producer that
// librdkafka declares fatally broken. The topic is read back with a plain
// consumer, not with catch_up: what counts is what a rebuilding host finds.
#include "offsetsync/sync_topic.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using rpl::offsetsync::publisher;
using rpl::offsetsync::run_record;

namespace {

constexpr const char* topic = "runs.test";

// The runs topic exists from the start (the mock has no controller for
// CreateTopics).
struct mock_cluster : rpl::test::mock_cluster {
    mock_cluster() { create_topic(topic, 1); }
};

// Runs [first, first + n) of one partition, each of `length` records.
std::vector<run_record> runs(int64_t first, int64_t n, int64_t length = 1) {
    std::vector<run_record> out;
    for (int64_t i = first; i < first + n; ++i)
        out.push_back({"f", "orders", 0, "src.orders", {i * 1000, i * 1000, length}});
    return out;
}

// What the topic must hold: the latest value of every key.
void expect(std::map<std::string, std::string>& want, const std::vector<run_record>& rs) {
    for (const auto& r : rs)
        want[rpl::offsetsync::encode_key(r.key())] =
            rpl::offsetsync::encode_value(r.r, r.target_topic);
}

// The topic read back from the beginning with a plain consumer: the last
// value of each key, as compaction would keep it.
std::map<std::string, std::string> read_back(const std::string& bootstrap) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "runs-reader", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    REQUIRE(c != nullptr);
    rd_kafka_poll_set_consumer(c);
    int64_t low = 0, high = 0;
    REQUIRE(rd_kafka_query_watermark_offsets(c, topic, 0, &low, &high, 10000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tpl, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    std::map<std::string, std::string> out;
    int64_t next = low;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (next < high && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 200);
        if (m == nullptr) continue;
        if (!m->err) {
            out[std::string(static_cast<const char*>(m->key), m->key_len)] =
                std::string(static_cast<const char*>(m->payload), m->len);
            next = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    CHECK(next == high);
    return out;
}

// flush() until it reports success, or `deadline` has passed.
bool flushed_within(publisher& p, std::chrono::seconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
        if (p.flush(2s)) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("runs_publisher_reports_flushed_only_when_every_run_of_a_batch_is_in_the_topic") {
    // Guards against the hole in the runs topic: publish() gave up at the
    // first send librdkafka would not queue (here its queue is full while the
    // target is down), the rest of the batch was dropped although the store
    // had already marked it clean, and flush() then reported success for
    // what was left, so the flow committed past runs that never reached the
    // topic. Deliveries the target rejects must be sent again as well.
    mock_cluster mc;
    const rpl::kafka::endpoint target{
        "mock", mc.bootstrap(), {{"queue.buffering.max.messages", "4"}}};
    auto created = publisher::create(target, rpl::Logger("runs"), topic);
    REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message));
    publisher& p = *created.value();

    std::map<std::string, std::string> want;
    const auto first = runs(0, 1);
    expect(want, first);
    REQUIRE(p.publish(first).has_value());
    REQUIRE(p.flush(10s).has_value());

    rd_kafka_mock_broker_set_down(mc.get(), 1);
    // Twelve runs into a queue of four: most cannot be queued yet.
    const auto batch = runs(1, 12);
    expect(want, batch);
    (void)p.publish(batch);
    CHECK(p.unacknowledged() == 12);
    CHECK_FALSE(p.flush(1s).has_value());
    CHECK_FALSE(p.healthy());

    // And once it is back, it rejects the first requests outright: those
    // runs' deliveries fail and must be sent again.
    rd_kafka_mock_push_request_errors(mc.get(), 0 /* Produce */, 2,
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD,
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD);
    rd_kafka_mock_broker_set_up(mc.get(), 1);
    REQUIRE(flushed_within(p, 60s));
    CHECK(p.unacknowledged() == 0);
    CHECK(p.healthy());
    const auto got = read_back(mc.bootstrap());
    CHECK(got.size() == want.size());
    CHECK(got == want);
}

TEST_CASE("runs_publisher_recreates_its_producer_after_a_fatal_error_and_publishes_again") {
    // Guards against the publisher that never recovers: after librdkafka
    // declared its idempotent producer fatally failed (an out-of-order
    // sequence from the broker), every later flush failed, so the flow never
    // committed again while reporting itself running.
    mock_cluster mc;
    const rpl::kafka::endpoint target{"mock", mc.bootstrap(), {}};
    auto created = publisher::create(target, rpl::Logger("runs"), topic);
    REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message));
    publisher& p = *created.value();

    std::map<std::string, std::string> want;
    const auto a = runs(0, 5);
    expect(want, a);
    REQUIRE(p.publish(a).has_value());
    REQUIRE(p.flush(10s).has_value());

    // The head-of-line request fails with an out-of-order sequence: fatal
    // for an idempotent producer in librdkafka 2.0.2.
    rd_kafka_mock_push_request_errors(mc.get(), 0 /* Produce */, 1,
                                      RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    const auto b = runs(5, 5);
    expect(want, b);
    (void)p.publish(b);
    // Longer versions of runs already acknowledged: the topic must end with
    // these, never with an older, shorter one.
    const auto a_longer = runs(0, 5, 7);
    expect(want, a_longer);
    (void)p.publish(a_longer);
    REQUIRE(flushed_within(p, 60s));
    CHECK(p.recreations() >= 1);
    CHECK(p.healthy());

    const auto c = runs(10, 5);
    expect(want, c);
    REQUIRE(p.publish(c).has_value());
    REQUIRE(p.flush(10s).has_value());
    const auto got = read_back(mc.bootstrap());
    CHECK(got.size() == want.size());
    CHECK(got == want);
}
