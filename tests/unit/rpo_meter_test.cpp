// The RPO meter against librdkafka's mock cluster: end offsets sampled by
// requests of its own, a figure that grows while the source is unreachable,
// and the bound carried across a restart in the commit metadata.
#include "kafka/rpo_meter.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using rpl::kafka::rpo_meter;

namespace {

class mock_source : public rpl::test::mock_cluster {
public:
    mock_source() { create_topic("t", 1); }
    void down() { rd_kafka_mock_broker_set_down(get(), 1); }

    void produce(int n) {
        char err[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap().c_str(), err, sizeof err);
        rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        REQUIRE(p != nullptr);
        for (int i = 0; i < n; ++i)
            REQUIRE(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_PARTITION(0),
                                      RD_KAFKA_V_VALUE(const_cast<char*>("v"), 1),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
        REQUIRE(rd_kafka_flush(p, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_destroy(p);
    }
};

rpl::kafka::Client client_for(const mock_source& m) {
    auto c =
        rpl::kafka::Client::create(rpl::kafka::client_kind::producer, {"mock", m.bootstrap(), {}},
                                   {{"log_level", "0"}}, rpl::Logger("rpo-test"));
    REQUIRE(c);
    return std::move(c).value();
}

rpl::kafka::Client client_after(mock_source& m, int records) {
    m.produce(records);
    return client_for(m);
}

// A mock source holding `records` records, a client on it, and a meter
// sampling through that client every 100 ms (when started).
struct metered {
    mock_source src;
    rpl::kafka::Client client;
    rpo_meter meter;
    explicit metered(int records)
        : client(client_after(src, records)), meter(client, rpl::Logger("rpo"), 100ms, nullptr) {}
};

double seconds_since(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::system_clock::now() - t).count();
}

}  // namespace

TEST_SUITE("rpo meter") {
    // Issue 16: the figure came from watermarks cached from fetches, which
    // stop when the source cannot be reached, and fell to 0 while records
    // were waiting. Now it grows from the last moment the partition was
    // known to be safe.
    TEST_CASE("rpo_keeps_growing_while_the_source_cannot_be_reached") {
        metered m(10);
        auto& meter = m.meter;
        meter.assign("t", 0, 10, std::nullopt);  // caught up
        meter.sample_once();
        auto f = meter.compute();
        REQUIRE(f.complete);
        CHECK(f.lag == 0);
        CHECK(f.rpo_seconds < 5.0);

        m.src.produce(5);  // not on the target
        const auto written = std::chrono::system_clock::now();
        meter.sample_once();
        f = meter.compute();
        CHECK(f.lag == 5);
        // Never below the truth: the 5 records are at least this old.
        CHECK(f.rpo_seconds >= seconds_since(written) - 0.001);

        m.src.down();
        meter.sample_once();  // fails within its deadline
        const auto f1 = meter.compute();
        meter.sample_once();
        const auto f2 = meter.compute();
        CHECK(f2.rpo_seconds > f1.rpo_seconds);
        CHECK(f2.rpo_seconds >= seconds_since(written) - 0.001);
        CHECK(f2.lag == 5);  // the last one known
    }

    TEST_CASE("an acknowledged backlog brings the figure back near zero") {
        metered m(7);
        auto& meter = m.meter;
        meter.assign("t", 0, 0, std::nullopt);
        meter.sample_once();
        CHECK(meter.compute().lag == 7);
        meter.acknowledge("t", 0, 7);
        meter.sample_once();
        const auto f = meter.compute();
        CHECK(f.lag == 0);
        CHECK(f.rpo_seconds < 5.0);
    }

    // bench/soak: a flow lost its partitions while the source was down; the
    // next assignment could not read the group's commits, and assign() with
    // nothing known wiped the partition's samples and bound. The figure went
    // unknown, then restarted from the next sample: 3.5 s while the oldest
    // record waiting was 69 s old.
    TEST_CASE("a_partition_assigned_again_with_nothing_new_keeps_what_was_known") {
        metered m(10);
        auto& meter = m.meter;
        meter.assign("t", 0, 10, std::nullopt);
        meter.sample_once();
        m.src.produce(5);  // waiting, not on the target
        const auto written = std::chrono::system_clock::now();
        meter.sample_once();
        std::this_thread::sleep_for(300ms);

        meter.assign("t", 0, -1, std::nullopt);  // re-assigned, no commit read
        auto f = meter.compute();
        REQUIRE(f.complete);
        CHECK(f.rpo_seconds >= seconds_since(written) - 0.001);
        meter.sample_once();
        f = meter.compute();
        REQUIRE(f.complete);
        CHECK(f.lag == 5);
        CHECK(f.rpo_seconds >= seconds_since(written) - 0.001);

        // A commit further on: the old bound holds there too.
        meter.assign("t", 0, 12, std::nullopt);
        f = meter.compute();
        REQUIRE(f.complete);
        CHECK(f.lag == 3);
        CHECK(f.rpo_seconds >= seconds_since(written) - 0.001);
    }

    // A backlog that no sample, commit or record dates is unknown: the time
    // of the first sample would read better than the truth.
    TEST_CASE("a_backlog_nothing_dates_is_unknown_until_its_first_record") {
        metered m(7);
        auto& meter = m.meter;
        const auto written = std::chrono::system_clock::now();
        std::this_thread::sleep_for(300ms);
        meter.assign("t", 0, 0, std::nullopt);
        meter.sample_once();
        auto f = meter.compute();
        CHECK(f.lag == 7);
        CHECK_FALSE(f.complete);

        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(written.time_since_epoch())
                .count();
        meter.first_record("t", 0, 0, ms);
        f = meter.compute();
        REQUIRE(f.complete);
        CHECK(f.rpo_seconds >= seconds_since(written) - 0.002);
    }

    // A restart must not start from 0 while data is outstanding: the commit
    // carries the time from which the committed position was known safe.
    TEST_CASE("commit_metadata_carries_the_bound_and_restore_reads_it_back") {
        metered m(3);
        auto& meter = m.meter;
        const auto before = std::chrono::system_clock::now();
        meter.assign("t", 0, 3, std::nullopt);
        meter.sample_once();
        const std::string md = meter.commit_metadata("t", 0, 3);
        const auto since = rpo_meter::restore_since(md);
        REQUIRE(since.has_value());
        CHECK(*since >= std::chrono::time_point_cast<std::chrono::milliseconds>(before));
        CHECK(*since <= std::chrono::system_clock::now());
        // No bound for a position nothing vouches for.
        CHECK(meter.commit_metadata("t", 0, 2).empty());
        CHECK_FALSE(rpo_meter::restore_since("").has_value());
        CHECK_FALSE(rpo_meter::restore_since("rpl.safe_ms=12x").has_value());
        CHECK_FALSE(rpo_meter::restore_since("someone else's metadata").has_value());

        // The next run: a backlog written after the commit counts from it.
        rpo_meter next(m.client, rpl::Logger("rpo"), 100ms, nullptr);
        next.assign("t", 0, 3, since);
        m.src.produce(4);
        next.sample_once();
        const auto f = next.compute();
        CHECK(f.lag == 4);
        CHECK(f.rpo_seconds >= seconds_since(*since) - 0.001);
    }
}
