// A partition librdkafka 2.0.2 assigns but never fetches (issue 17, found by
// bench/soak): when its own query for the group's commits is answered with
// an error such as NOT_COORDINATOR, right after the coordinator moved, the
// partition stays assigned with no fetch position, and the flow reported
// running while nothing of it moved. Two defences, each held by a test on
// the mock cluster, which answers the query the same way on demand.
#include "conf/config.h"
#include "replicator/flow.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using rpl::test::mock_cluster;
using rpl::test::mock_flow_config;
using rpl::test::mock_produce;

constexpr int16_t offset_fetch_api = 9;  // RD_KAFKAP_OffsetFetch
constexpr int records = 200;

// How many records `topic` holds on `bootstrap`, read from the start by a
// plain librdkafka consumer that commits nothing, until `expect` or `deadline`.
size_t count_records(const std::string& bootstrap, const std::string& topic, int partitions,
                     size_t expect, std::chrono::seconds deadline) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "mock-reader", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    REQUIRE(c != nullptr);
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(tpl, topic.c_str(), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    REQUIRE(rd_kafka_assign(c, tpl) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tpl);
    size_t n = 0;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (n < expect && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 200);
        if (m == nullptr) continue;
        if (!m->err) ++n;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return n;
}

double stalls(prometheus::Registry& r) {
    for (const auto& family : r.Collect()) {
        if (family.name != "replicatord_errors_total") continue;
        for (const auto& m : family.metric)
            for (const auto& l : m.label)
                if (l.name == "kind" && l.value == "fetch_stall") return m.counter.value;
    }
    return -1;
}

struct outcome {
    size_t mirrored = 0;  // records on the target
    double stalls = -1;   // replicatord_errors_total{kind="fetch_stall"}
};

// Mirrors `records` records with the first assignment's query for the
// group's commits after the flow's own answered NOT_COORDINATOR; with
// `lose_own_read` the flow's own read counts as failed too. Waits up to
// `deadline` for every record on the target.
outcome run(bool lose_own_read, std::chrono::seconds deadline) {
    mock_cluster src(1), dst(1);
    src.create_topic("orders", 2);
    dst.create_topic("src.orders", 2);
    mock_produce(src.bootstrap(), "orders", 2, records);
    rpl::replicator::flow_faults faults;
    std::atomic<bool> armed{true};
    faults.lose_committed_read = [&] {
        if (!armed.exchange(false)) return false;
        rd_kafka_mock_push_request_errors(src.get(), offset_fetch_api, 1,
                                          RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
        return lose_own_read;
    };
    const auto cfg = mock_flow_config(src.bootstrap(), dst.bootstrap());
    prometheus::Registry registry;
    auto metrics = rpl::replicator::make_mirror_metrics(registry);
    rpl::replicator::flow f(cfg.flows.at(0), {&cfg, &metrics, nullptr, &faults});
    REQUIRE(f.start().has_value());
    outcome out;
    out.mirrored = count_records(dst.bootstrap(), "src.orders", 2, records, deadline);
    f.stop();
    out.stalls = stalls(registry);
    return out;
}

}  // namespace

TEST_CASE(
    "a_flow_starts_fetching_where_it_read_the_groups_commits_without_librdkafka_asking_again") {
    // The flow reads the commits on every assignment anyway; handing them to
    // the assignment leaves librdkafka no query of its own to fail.
    const auto out = run(false, 60s);
    CHECK(out.mirrored == records);
    CHECK(out.stalls == 0);
}

TEST_CASE("a_partition_assigned_but_never_fetched_is_taken_again_and_mirrored") {
    // When the flow's own read fails too, librdkafka asks, its query fails,
    // and the partitions sit unfetched until the flow takes them again.
    const auto out = run(true, 120s);
    CHECK(out.mirrored == records);
    CHECK(out.stalls >= 1);
}
