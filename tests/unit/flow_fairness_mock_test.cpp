// Fairness of the flow's in-flight window against librdkafka's in-process
// mock cluster: while a slow target keeps the window full, every partition
// still moves. (Found by bench/soak: with a window of 500 records and a dr
// link under faults, two of six partitions of one topic got nothing onto the
// target for 15 and 25 minutes while the others moved.)
#include "conf/config.h"
#include "replicator/flow.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// End offsets of `topic`'s partitions on `bootstrap`, read with a client of
// its own (negative where unknown).
std::vector<int64_t> end_offsets(const std::string& bootstrap, const std::string& topic,
                                 int partitions) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    REQUIRE(c != nullptr);
    std::vector<int64_t> out(static_cast<size_t>(partitions), -1);
    for (int p = 0; p < partitions; ++p) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_query_watermark_offsets(c, topic.c_str(), p, &lo, &hi, 5000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            out[static_cast<size_t>(p)] = hi;
    }
    rd_kafka_destroy(c);
    return out;
}

}  // namespace

TEST_CASE("a_full_window_toward_a_slow_target_starves_no_partition") {
    constexpr int partitions = 6;
    constexpr int per_partition = 20000;
    rpl::test::mock_cluster src(1), dst(1);
    src.create_topic("orders", partitions);
    dst.create_topic("src.orders", partitions);
    rpl::test::mock_produce(src.bootstrap(), "orders", partitions, partitions * per_partition);
    // Every produce request waits 300 ms: the window stays full.
    REQUIRE(rd_kafka_mock_broker_set_rtt(dst.get(), -1, 300) == RD_KAFKA_RESP_ERR_NO_ERROR);

    auto cfg = rpl::test::mock_flow_config(src.bootstrap(), dst.bootstrap());
    cfg.flows.at(0).max_in_flight_records = 500;
    prometheus::Registry registry;
    auto metrics = rpl::replicator::make_mirror_metrics(registry);
    rpl::replicator::flow f(cfg.flows.at(0), rpl::replicator::flow_env{&cfg, &metrics});
    REQUIRE(f.start().has_value());

    // Until a fifth of everything is on the target (well short of what a
    // fair share lets every partition reach), then look at each partition.
    std::vector<int64_t> ends;
    int64_t total = 0;
    const auto until = std::chrono::steady_clock::now() + 240s;
    while (std::chrono::steady_clock::now() < until) {
        ends = end_offsets(dst.bootstrap(), "src.orders", partitions);
        total = 0;
        for (const auto e : ends) total += std::max<int64_t>(e, 0);
        if (total >= partitions * per_partition / 5) break;
        std::this_thread::sleep_for(200ms);
    }
    f.stop();
    REQUIRE_MESSAGE(total >= partitions * per_partition / 5,
                    "the flow copied only " << total << " records in 240 s");
    // A fair window gives each partition about total/6; a starved one gets
    // nothing. Half a fair share is the line between the two.
    std::string shown;
    for (const auto e : ends) shown += (shown.empty() ? "" : " ") + std::to_string(e);
    MESSAGE("records on the target per partition: " << shown);
    const int64_t fair = total / partitions;
    for (int p = 0; p < partitions; ++p) {
        CAPTURE(p);
        CHECK(ends[static_cast<size_t>(p)] >= fair / 2);
    }
}
