// Fault injection on the data path with librdkafka's in-process mock
// cluster: fast, deterministic failures that a real broker will not produce
// on demand. Real-broker behaviour is covered by tests/integration.
#include "conf/config.h"
#include "replicator/flow.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using rpl::test::mock_cluster;
using rpl::test::mock_flow_config;
using rpl::test::mock_produce;

// Every value in each partition of a topic, in order.
std::map<int, std::vector<std::string>> read_all(const std::string& bootstrap,
                                                 const std::string& topic, int partitions,
                                                 size_t expect, std::chrono::seconds deadline) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "mock-reader", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    REQUIRE(c != nullptr);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(tpl, topic.c_str(), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    std::map<int, std::vector<std::string>> out;
    size_t n = 0;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (n < expect && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 200);
        if (m == nullptr) continue;
        if (!m->err) {
            out[m->partition].emplace_back(static_cast<const char*>(m->payload), m->len);
            ++n;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return out;
}

double counter_value(prometheus::Registry& r, const std::string& name) {
    double total = 0;
    for (const auto& family : r.Collect()) {
        if (family.name != name) continue;
        for (const auto& m : family.metric) total += m.counter.value;
    }
    return total;
}

}  // namespace

TEST_CASE("flow_rewinds_and_loses_nothing_when_the_target_rejects_produce_requests") {
    // Guards against a delivery failure being treated as done: the flow must
    // purge, seek back to the last acknowledged offset and send again, so
    // the target holds every record once the errors stop, in source order.
    mock_cluster src(1), dst(1);
    REQUIRE(rd_kafka_mock_topic_create(src.get(), "orders", 3, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_topic_create(dst.get(), "src.orders", 3, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    mock_produce(src.bootstrap(), "orders", 3, 3000);

    // Non-retriable produce errors: librdkafka reports them per message.
    rd_kafka_mock_push_request_errors(
        dst.get(), 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_INVALID_RECORD,
        RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_MSG,
        RD_KAFKA_RESP_ERR_INVALID_RECORD);

    const auto cfg = mock_flow_config(src.bootstrap(), dst.bootstrap());
    prometheus::Registry registry;
    auto metrics = rpl::replicator::make_mirror_metrics(registry);
    rpl::replicator::flow f(cfg.flows.at(0), {&cfg, &metrics});
    REQUIRE(f.start().has_value());

    const auto got = read_all(dst.bootstrap(), "src.orders", 3, 3000, 120s);
    mock_produce(src.bootstrap(), "orders", 3, 0);
    f.stop();

    size_t total = 0;
    for (int p = 0; p < 3; ++p) {
        CAPTURE(p);
        const auto it = got.find(p);
        REQUIRE(it != got.end());
        // Source order per partition: i = p, p+3, p+6, ... with no gap.
        std::vector<std::string> want;
        for (int i = p; i < 3000; i += 3) want.push_back("v" + std::to_string(i));
        std::vector<std::string> dedup;
        for (const auto& v : it->second)
            if (std::find(dedup.begin(), dedup.end(), v) == dedup.end()) dedup.push_back(v);
        CHECK(dedup == want);
        total += dedup.size();
    }
    CHECK(total == 3000);
    CHECK(counter_value(registry, "replicatord_flow_restarts_total") >= 1);
    CHECK(f.status().state == rpl::replicator::flow_state::stopped);
}

TEST_CASE("flow_waits_out_a_target_broker_outage_without_skipping") {
    // Guards against a broker outage being surfaced as a delivery failure
    // that skips records: retriable errors stay inside librdkafka.
    mock_cluster src(1), dst(1);
    REQUIRE(rd_kafka_mock_topic_create(src.get(), "orders", 2, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_topic_create(dst.get(), "src.orders", 2, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    const auto cfg = mock_flow_config(src.bootstrap(), dst.bootstrap());
    prometheus::Registry registry;
    auto metrics = rpl::replicator::make_mirror_metrics(registry);
    rpl::replicator::flow f(cfg.flows.at(0), {&cfg, &metrics});
    REQUIRE(f.start().has_value());

    mock_produce(src.bootstrap(), "orders", 2, 500);
    REQUIRE(read_all(dst.bootstrap(), "src.orders", 2, 500, 90s).size() == 2);
    rd_kafka_mock_broker_set_down(dst.get(), 1);
    mock_produce(src.bootstrap(), "orders", 2, 500);
    std::this_thread::sleep_for(3s);
    rd_kafka_mock_broker_set_up(dst.get(), 1);
    const auto got = read_all(dst.bootstrap(), "src.orders", 2, 1000, 120s);
    f.stop();
    size_t total = 0;
    for (const auto& [p, values] : got) total += values.size();
    CHECK(total == 1000);
    CHECK(got.at(0).size() == 500);
    CHECK(got.at(1).size() == 500);
}

TEST_CASE("flow_recreates_a_fatally_failed_producer_and_loses_nothing") {
    // Guards against librdkafka 2.0.2 declaring the idempotent producer
    // fatally broken (here: an out-of-order sequence from the broker) and the
    // flow either stopping for good or skipping what was in flight.
    mock_cluster src(1), dst(1);
    REQUIRE(rd_kafka_mock_topic_create(src.get(), "orders", 2, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_topic_create(dst.get(), "src.orders", 2, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    mock_produce(src.bootstrap(), "orders", 2, 2000);
    rd_kafka_mock_push_request_errors(dst.get(), 0 /* Produce */, 2,
                                      RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);

    const auto cfg = mock_flow_config(src.bootstrap(), dst.bootstrap());
    prometheus::Registry registry;
    auto metrics = rpl::replicator::make_mirror_metrics(registry);
    rpl::replicator::flow f(cfg.flows.at(0), {&cfg, &metrics});
    REQUIRE(f.start().has_value());
    const auto got = read_all(dst.bootstrap(), "src.orders", 2, 2000, 120s);
    f.stop();

    for (int p = 0; p < 2; ++p) {
        CAPTURE(p);
        REQUIRE(got.count(p) == 1);
        std::vector<std::string> want;
        for (int i = p; i < 2000; i += 2) want.push_back("v" + std::to_string(i));
        std::vector<std::string> dedup;
        for (const auto& v : got.at(p))
            if (std::find(dedup.begin(), dedup.end(), v) == dedup.end()) dedup.push_back(v);
        CHECK(dedup == want);
    }
    CHECK(counter_value(registry, "replicatord_flow_restarts_total") >= 1);
}
