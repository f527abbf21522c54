// A flow with exact offset runs against librdkafka's mock cluster, with the
// runs topic on a broker of its own so that its producer alone can be made
// to fail.
#include "conf/config.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
#include "replicator/flow.h"
#include "tests/mock_cluster.h"
#include "tests/scratch_dir.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

using rpl::test::scratch_dir;

using rpl::test::mock_cluster;
using rpl::test::mock_flow_config;
using rpl::test::mock_produce;

// The group's committed offsets on the source, summed over partitions.
int64_t committed_total(const std::string& bootstrap, const std::string& group,
                        const std::string& topic, int partitions) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    REQUIRE(c != nullptr);
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(tpl, topic.c_str(), p);
    int64_t total = 0;
    if (rd_kafka_committed(c, tpl, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < tpl->cnt; ++i) total += std::max<int64_t>(0, tpl->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    rd_kafka_destroy(c);
    return total;
}

}  // namespace

TEST_CASE("flow_commits_again_after_its_runs_publisher_failed_fatally") {
    // Guards against the offset-runs publisher that never recovers: once
    // librdkafka declared its idempotent producer fatally failed, every
    // commit was refused for want of published runs, so the flow copied its
    // window, paused and stayed there for good while reporting running.
    mock_cluster src(1), dst(2);
    REQUIRE(rd_kafka_mock_topic_create(src.get(), "orders", 2, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_topic_create(dst.get(), "src.orders", 2, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_topic_create(dst.get(), rpl::offsetsync::runs_topic, 1, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    // Data on broker 1, runs on broker 2: the errors below hit the runs alone.
    for (int p = 0; p < 2; ++p)
        REQUIRE(rd_kafka_mock_partition_set_leader(dst.get(), "src.orders", p, 1) ==
                RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_partition_set_leader(dst.get(), rpl::offsetsync::runs_topic, 0, 2) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    // The first runs request fails with an out-of-order sequence: fatal for
    // an idempotent producer in librdkafka 2.0.2.
    REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(
                dst.get(), 2, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                0) == RD_KAFKA_RESP_ERR_NO_ERROR);
    mock_produce(src.bootstrap(), "orders", 2, 1000);

    scratch_dir dir;
    auto offsets = rpl::offsetsync::store::open(dir.path / "offsets");
    REQUIRE_MESSAGE(offsets.has_value(), (offsets ? "" : offsets.error().message));
    const auto cfg = mock_flow_config(src.bootstrap(), dst.bootstrap());
    prometheus::Registry registry;
    auto metrics = rpl::replicator::make_mirror_metrics(registry);
    rpl::replicator::flow f(cfg.flows.at(0), {&cfg, &metrics, offsets.value().get()});
    REQUIRE(f.start().has_value());

    // Every record copied and committed: the runs reached the topic through
    // a replacement producer.
    const auto until = std::chrono::steady_clock::now() + 60s;
    int64_t committed = 0;
    while (std::chrono::steady_clock::now() < until) {
        committed = committed_total(src.bootstrap(), "replicatord.mock", "orders", 2);
        if (committed == 1000) break;
        std::this_thread::sleep_for(200ms);
    }
    f.stop();
    CHECK(committed == 1000);
}
