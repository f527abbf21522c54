// The checkpointer against a target that rejects its writes: the source
// groups are real (the test bed's primary), the target is librdkafka's
// in-process mock cluster, which fails produce requests on demand.
#include "checkpoint/checkpointer.h"
#include "checkpoint/failover.h"
#include "conf/config.h"
#include "kafka/mm2.h"
#include "offsetsync/store.h"
#include "tests/integration/support.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <filesystem>
#include <optional>
#include <string>

using namespace rpl::test;

namespace {

constexpr int16_t kProduce = 0;  // the Produce request's API key

using rpl::test::mock_cluster;

double counter(prometheus::Registry& r, const std::string& name) {
    double total = 0;
    for (const auto& family : r.Collect())
        if (family.name == name)
            for (const auto& m : family.metric) total += m.counter.value;
    return total;
}

}  // namespace

// Guards against: the checkpointer ignored delivery reports, so a checkpoint
// the target rejected was recorded as sent, never sent again while the group
// stayed where it was, and an idle group had no checkpoint on dr to fail over
// with.
TEST_CASE("checkpoint_that_failed_delivery_is_sent_again_next_pass") {
    const auto& b = testbed();
    mock_cluster dr;
    const std::string topic = unique("cpdel");
    const std::string group = unique("cpdel-group");
    create_topic(b.primary, topic, 1);
    commit_group_offset(b.primary, group, topic, 0, 5);

    const std::string text =
        "[daemon]\nadmin_listen = \"127.0.0.1:0\"\n"
        "[clusters.src]\nbootstrap = \"" +
        b.primary +
        "\"\n"
        "[clusters.dst]\nbootstrap = \"" +
        dr.bootstrap() +
        "\"\n"
        "[[flow]]\nname = \"cpdel\"\nsource = \"src\"\ntarget = \"dst\"\n"
        "topics = [\"" +
        topic + "\"]\ngroups = [\"" + group + "\"]\nsync_group_offsets = false\n";
    auto cfg = rpl::conf::parse(text, "cpdel.toml");
    REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
    const auto& flow = cfg.value().flows.at(0);
    const std::string cp_topic = rpl::kafka::mm2::checkpoints_topic("src");
    REQUIRE(rd_kafka_mock_topic_create(dr.get(), cp_topic.c_str(), 1, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);

    // Records 0..9 of the source sit at 100..109 on the target.
    const auto dir = std::filesystem::path(temp_dir()) / "cpdel-offsets";
    auto store = rpl::offsetsync::store::open(dir);
    REQUIRE(store.has_value());
    const std::string target_topic = "src." + topic;
    for (int64_t i = 0; i < 10; ++i)
        REQUIRE(store.value()->record("cpdel", topic, 0, target_topic, i, 100 + i).has_value());
    REQUIRE(store.value()->flush("cpdel").has_value());

    prometheus::Registry registry;
    auto metrics = rpl::checkpoint::make_checkpoint_metrics(registry);
    rpl::checkpoint::checkpointer cp(flow, cfg.value(), *store.value(), &metrics);
    REQUIRE(cp.open().has_value());  // no thread: the passes below are the only ones

    const rpl::kafka::endpoint target{"dst", dr.bootstrap(), {}};
    const rpl::Logger log("test");
    auto on_target = [&]() -> std::optional<int64_t> {
        auto cps = rpl::checkpoint::read_checkpoints(target, "src", std::chrono::seconds(10), log);
        REQUIRE_MESSAGE(cps.has_value(), (cps ? "" : cps.error().message));
        for (const auto& s : cps.value())
            if (s.cp.group == group && s.cp.topic == target_topic && s.cp.partition == 0)
                return s.cp.downstream_offset;
        return std::nullopt;
    };

    // The pass's one produce request is rejected (a non-retriable error: the
    // record fails at once instead of after message.timeout.ms).
    rd_kafka_mock_push_request_errors(dr.get(), kProduce, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    auto first = cp.run_once();
    CHECK_FALSE(on_target().has_value());
    CHECK_FALSE(first.has_value());
    if (!first) MESSAGE(first.error().message);
    CHECK(counter(registry, "replicatord_checkpoints_emitted_total") == 0);
    CHECK(counter(registry, "replicatord_checkpoint_errors_total") == 1);

    // The group has not moved; the next pass still owes the target its position.
    auto second = cp.run_once();
    REQUIRE_MESSAGE(second.has_value(), (second ? "" : second.error().message));
    CHECK(on_target() == 105);
    CHECK(counter(registry, "replicatord_checkpoints_emitted_total") == 1);
    CHECK(cp.status().checkpoints == 1);
    delete_topic(b.primary, topic);
}
