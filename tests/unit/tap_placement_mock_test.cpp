// The tap against librdkafka's mock cluster: what a newly assigned partition
// reads before the run loop places it must never move it past records.
//
// A CI run of bench/soak found 15 records of each partition of one topic
// missing from the archive, recorded as absent offsets (so `backup verify`
// passed). The tap assigned partitions at OFFSET_END until placed; in
// librdkafka 2.0.2 the reply to that END lookup, arriving after the seek to
// the archive's end, undoes the seek (issue 2256): the partition jumps to
// the log end and the records between are never delivered.
#include "backup/segment.h"
#include "backup/store.h"
#include "backup/tap.h"
#include "conf/config.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

// A producer writing one record every 5 ms to partition 0 until stopped.
class steady_writer {
public:
    explicit steady_writer(const std::string& bootstrap, std::string topic)
        : topic_(std::move(topic)) {
        char err[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
        rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err);
        producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        REQUIRE(producer_ != nullptr);
        thread_ = std::thread([this] {
            while (!stop_.load()) {
                (void)rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic_.c_str()),
                                        RD_KAFKA_V_PARTITION(0),
                                        RD_KAFKA_V_VALUE(const_cast<char*>("v"), 1),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                rd_kafka_poll(producer_, 0);
                std::this_thread::sleep_for(5ms);
            }
        });
    }
    ~steady_writer() {
        stop();
        rd_kafka_destroy(producer_);
    }
    steady_writer(const steady_writer&) = delete;
    steady_writer& operator=(const steady_writer&) = delete;
    void stop() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
        (void)rd_kafka_flush(producer_, 10000);
    }

private:
    std::string topic_;
    rd_kafka_t* producer_ = nullptr;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

TEST_SUITE("tap placement") {
    TEST_CASE("a_late_reply_to_an_offset_lookup_never_moves_a_placed_partition_past_records") {
        rpl::test::mock_cluster mc;
        mc.create_topic("placed", 1);
        rpl::test::mock_produce(mc.bootstrap(), "placed", 1, 200);
        steady_writer writer(mc.bootstrap(), "placed");

        const auto dir = std::filesystem::temp_directory_path() /
                         ("rpl-tap-placement-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        rpl::conf::Config config;
        config.clusters["primary"] = rpl::conf::cluster_config{"primary", mc.bootstrap(), {}, {}};
        rpl::conf::tap_config cfg;
        cfg.name = "placed";
        cfg.source = "primary";
        cfg.topics = {"placed"};
        cfg.storage = "file://" + dir.string();
        cfg.segment_max_interval = rpl::conf::duration(500);
        config.taps.push_back(cfg);
        auto store = rpl::backup::open_store(cfg.storage, {});
        REQUIRE(store);
        {
            rpl::backup::tap t(cfg, rpl::backup::tap_env{&config, nullptr},
                               std::move(store).value());
            REQUIRE(t.start());
            const auto until = [&](auto done) {
                for (auto end = std::chrono::steady_clock::now() + 60s;
                     !done() && std::chrono::steady_clock::now() < end;)
                    std::this_thread::sleep_for(50ms);
                return done();
            };
            REQUIRE(until([&] { return !t.status().topics.empty(); }));  // subscribed
            // Offset lookups (ListOffsets, API key 2) answered ever faster: a
            // lookup the consumer sends at assignment is answered after the
            // placement's own lookup, and so after the seek that follows it.
            // Every client's lookups take these in turn.
            for (int rtt = 2000; rtt > 0; rtt -= 100)
                REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(
                            mc.get(), 1, 2, 1, RD_KAFKA_RESP_ERR_NO_ERROR, rtt) ==
                        RD_KAFKA_RESP_ERR_NO_ERROR);

            REQUIRE(until([&] { return t.status().segments > 0; }));  // placed, archiving
            std::this_thread::sleep_for(8s);
            writer.stop();
            std::this_thread::sleep_for(2s);
            t.stop();
        }

        // Every offset archived, in order from 0, none recorded as absent:
        // the mock's log has no gaps.
        auto reread = rpl::backup::open_store(cfg.storage, {});
        REQUIRE(reread);
        auto& s = *reread.value();
        auto listed = s.list("placed/segments/placed/");
        REQUIRE(listed);
        std::set<int64_t> offsets;
        int64_t gaps = 0;
        for (const auto& o : listed.value()) {
            auto bytes = s.get(o.key);
            REQUIRE(bytes);
            auto seg = rpl::backup::segment_reader::open(std::move(bytes).value(), o.key);
            REQUIRE(seg);
            gaps += static_cast<int64_t>(seg.value().gaps().size());
            for (std::size_t i = 0; i < seg.value().frames().size(); ++i) {
                auto recs = seg.value().read_frame(i);
                REQUIRE(recs);
                for (const auto& r : recs.value()) offsets.insert(r.offset);
            }
        }
        REQUIRE_FALSE(offsets.empty());
        INFO("archived " << offsets.size() << " offsets, last " << *offsets.rbegin());
        CHECK(gaps == 0);
        CHECK(*offsets.begin() == 0);
        CHECK(static_cast<int64_t>(offsets.size()) == *offsets.rbegin() + 1);
        std::filesystem::remove_all(dir);
    }
}
