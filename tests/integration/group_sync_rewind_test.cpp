// A source group's rewind when the pass that sees it cannot finish its
// work on the target: the group sync is skipped or fails, or the checkpoint
// is reported undelivered. The checkpointer is driven pass by pass
// (run_once) from the test bed's primary, with an offset index built by
// hand: records 0..9 of the source partition sit at 100..109 on the target.
#include "checkpoint/checkpointer.h"
#include "checkpoint/failover.h"
#include "conf/config.h"
#include "kafka/mm2.h"
#include "offsetsync/store.h"
#include "tests/integration/group_consumer.h"
#include "tests/integration/support.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

using namespace rpl::test;

namespace {

constexpr int16_t kProduce = 0;  // the Produce request's API key

// The flow "gsrw" from the primary (alias src) to `target`, checkpointing `group`.
rpl::conf::Config flow_config(const std::string& target, const std::string& topic,
                              const std::string& group, bool sync_group_offsets) {
    const std::string text =
        "[daemon]\nadmin_listen = \"127.0.0.1:0\"\n[clusters.src]\nbootstrap = \"" +
        testbed().primary + "\"\n[clusters.dst]\nbootstrap = \"" + target +
        "\"\n[[flow]]\nname = \"gsrw\"\nsource = \"src\"\ntarget = \"dst\"\n"
        "topics = [\"" +
        topic + "\"]\ngroups = [\"" + group +
        "\"]\nemit_checkpoints = true\nsync_group_offsets = " +
        (sync_group_offsets ? "true" : "false") + "\n";
    auto cfg = rpl::conf::parse(text, "gsrw.toml");
    REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
    return std::move(cfg).value();
}

// An offset index in which source records 0..9 of topic/0 sit at 100..109
// of target_topic/0.
std::unique_ptr<rpl::offsetsync::store> index_of_ten(const std::string& topic,
                                                     const std::string& target_topic) {
    const auto dir = std::filesystem::path(temp_dir()) / unique("gsrw-offsets");
    auto store = rpl::offsetsync::store::open(dir);
    REQUIRE(store.has_value());
    for (int64_t i = 0; i < 10; ++i)
        REQUIRE(store.value()->record("gsrw", topic, 0, target_topic, i, 100 + i).has_value());
    REQUIRE(store.value()->flush("gsrw").has_value());
    return std::move(store).value();
}

// The downstream offset of the latest checkpoint of group on target_topic/0
// in src.checkpoints.internal on `target`.
std::optional<int64_t> checkpoint_on(const std::string& target, const std::string& group,
                                     const std::string& target_topic) {
    const rpl::kafka::endpoint ep{"dst", target, {}};
    auto cps =
        rpl::checkpoint::read_checkpoints(ep, "src", std::chrono::seconds(10), rpl::Logger("test"));
    REQUIRE_MESSAGE(cps.has_value(), (cps ? "" : cps.error().message));
    for (const auto& s : cps.value())
        if (s.cp.group == group && s.cp.topic == target_topic && s.cp.partition == 0)
            return s.cp.downstream_offset;
    return std::nullopt;
}

// True once the consumer has joined its group and holds a partition.
bool assigned(consumer& c) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 100);
    if (m != nullptr) rd_kafka_message_destroy(m);
    rd_kafka_topic_partition_list_t* a = nullptr;
    if (rd_kafka_assignment(c.rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
    const bool has = a->cnt > 0;
    rd_kafka_topic_partition_list_destroy(a);
    return has;
}

}  // namespace

// Guards against: a rewind was judged against the last checkpoint emitted.
// The pass that saw the rewind emitted its checkpoint but could not sync the
// target group (active there, so left alone; or the sync failed); the next
// pass compared with that checkpoint, saw no rewind, and only moved the
// target group forward. It stayed at 108 while the source group was back at
// 3 (103 on the target): consumers failing over skipped 103..107.
TEST_CASE("rewind_of_a_source_group_reaches_the_target_group_once_a_sync_succeeds") {
    const auto& b = testbed();
    const std::string topic = unique("gsrw");
    const std::string group = unique("gsrw-group");
    const std::string target_topic = "src." + topic;
    create_topic(b.primary, topic, 1);
    create_topic(b.dr, target_topic, 1);

    const auto cfg = flow_config(b.dr, topic, group, true);
    auto store = index_of_ten(topic, target_topic);
    rpl::checkpoint::checkpointer cp(cfg.flows.at(0), cfg, *store, nullptr);
    REQUIRE(cp.open().has_value());  // no thread: the passes below are the only ones

    auto pass = [&] {
        auto r = cp.run_once();
        REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    };
    auto on_target = [&] { return committed_offsets(b.dr, group, target_topic, 1).at(0); };
    auto checkpoint_on_target = [&] { return checkpoint_on(b.dr, group, target_topic); };

    // The group has read 0..7 on the source; the target group follows.
    commit_group_offset(b.primary, group, topic, 0, 8);
    pass();
    REQUIRE(on_target() == 108);

    {
        // The same group is active on dr while an operator rewinds it on the
        // source to re-read from 3.
        consumer active(b.dr, group, "earliest");
        active.subscribe(target_topic);
        REQUIRE_EVENTUALLY(30s, assigned(active));
        commit_group_offset(b.primary, group, topic, 0, 3);
        pass();
        // An active group's offsets are its own: left alone, skipped, no error.
        const auto st = cp.status();
        CHECK(st.skipped.size() == 1);
        CHECK(st.synced.empty());
        CHECK(on_target() == 108);
        // The rewind's checkpoint went out all the same.
        CHECK(checkpoint_on_target().value_or(-1) == 103);
    }  // the consumer leaves the group on dr

    // Passes until one finds the group idle on dr; that pass owes it the rewind.
    auto pass_not_skipped = [&] {
        pass();
        return cp.status().skipped.empty();
    };
    REQUIRE_EVENTUALLY(30s, pass_not_skipped());
    CHECK(cp.status().synced.size() == 1);
    CHECK(on_target() == 103);
    CHECK(checkpoint_on_target().value_or(-1) == 103);

    // Once there, the target group is not moved again while nothing changes,
    // and a forward move of the source group still follows.
    pass();
    CHECK(cp.status().synced.empty());
    commit_group_offset(b.primary, group, topic, 0, 6);
    pass();
    CHECK(on_target() == 106);

    delete_topic(b.primary, topic);
    delete_topic(b.dr, target_topic);
}

// Guards against: the rewind owed to a target group lived only in the
// checkpointer's memory. Skipped while the group was active on dr, then
// replicatord restarted: the new checkpointer first saw the source group at
// 3, took that as the baseline, and never moved the target group back from
// 108. The local store under state_dir now keeps the sync state.
TEST_CASE("rewind_owed_to_an_active_target_group_survives_a_restart_of_the_checkpointer") {
    const auto& b = testbed();
    const std::string topic = unique("gsrw-rs");
    const std::string group = unique("gsrw-rs-group");
    const std::string target_topic = "src." + topic;
    create_topic(b.primary, topic, 1);
    create_topic(b.dr, target_topic, 1);

    const auto cfg = flow_config(b.dr, topic, group, true);
    auto store = index_of_ten(topic, target_topic);
    auto local = rpl::checkpoint::local_checkpoints::open(
        std::filesystem::path(temp_dir()) / unique("gsrw-rs-checkpoints"), false);
    REQUIRE_MESSAGE(local.has_value(), (local ? "" : local.error().message));
    auto on_target = [&] { return committed_offsets(b.dr, group, target_topic, 1).at(0); };
    auto pass = [](rpl::checkpoint::checkpointer& cp) {
        auto r = cp.run_once();
        REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    };

    commit_group_offset(b.primary, group, topic, 0, 8);
    {
        rpl::checkpoint::checkpointer before(cfg.flows.at(0), cfg, *store, nullptr,
                                             local.value().get());
        REQUIRE(before.open().has_value());
        pass(before);
        REQUIRE(on_target() == 108);
        consumer active(b.dr, group, "earliest");
        active.subscribe(target_topic);
        REQUIRE_EVENTUALLY(30s, assigned(active));
        commit_group_offset(b.primary, group, topic, 0, 3);
        pass(before);
        CHECK(before.status().skipped.size() == 1);
        CHECK(on_target() == 108);
    }  // the consumer leaves the group on dr, then the checkpointer stops

    rpl::checkpoint::checkpointer after(cfg.flows.at(0), cfg, *store, nullptr, local.value().get());
    REQUIRE(after.open().has_value());
    auto pass_not_skipped = [&] {
        pass(after);
        return after.status().skipped.empty();
    };
    REQUIRE_EVENTUALLY(30s, pass_not_skipped());
    CHECK(on_target() == 103);
    // The sync state is kept apart from the checkpoints that translate reads.
    auto kept = local.value()->all("gsrw");
    REQUIRE_MESSAGE(kept.has_value(), (kept ? "" : kept.error().message));
    REQUIRE(kept.value().size() == 1);
    CHECK(kept.value().at(0).cp.downstream_offset == 103);

    delete_topic(b.primary, topic);
    delete_topic(b.dr, target_topic);
}

// Guards against: a checkpoint reported undelivered was treated as absent
// from the target, and last_ kept the one before it. But a request the
// checkpointer gave up on (flush deadline, purge of what was in flight) may
// have been written all the same. When the group then went back to the
// position last acknowledged, the pass saw no change and sent nothing: the
// newer checkpoint (108) stayed the latest on the target while the group was
// at 5 (105), and a failover from it skipped 105..107.
TEST_CASE(
    "checkpoint_reported_undelivered_is_followed_by_the_groups_position_even_when_unchanged") {
    const auto& b = testbed();
    mock_cluster dr;
    const std::string topic = unique("gsrw-cp");
    const std::string group = unique("gsrw-cp-group");
    const std::string target_topic = "src." + topic;
    create_topic(b.primary, topic, 1);
    dr.create_topic(rpl::kafka::mm2::checkpoints_topic("src"), 1);

    const auto cfg = flow_config(dr.bootstrap(), topic, group, false);
    auto store = index_of_ten(topic, target_topic);
    rpl::checkpoint::checkpointer cp(cfg.flows.at(0), cfg, *store, nullptr);
    REQUIRE(cp.open().has_value());

    commit_group_offset(b.primary, group, topic, 0, 5);
    auto first = cp.run_once();
    REQUIRE_MESSAGE(first.has_value(), (first ? "" : first.error().message));
    REQUIRE(checkpoint_on(dr.bootstrap(), group, target_topic).value_or(-1) == 105);

    // The group moves on to 8. The target writes that checkpoint but answers
    // 12 s later, past the pass's 10 s flush deadline (2 s to spare for a
    // loaded machine): the pass purges it and reports it undelivered. The
    // mock writes the record on receipt and only delays its answer.
    commit_group_offset(b.primary, group, topic, 0, 8);
    REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(dr.get(), 1, kProduce, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR,
                                                         12000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    auto second = cp.run_once();
    CHECK_FALSE(second.has_value());
    REQUIRE(checkpoint_on(dr.bootstrap(), group, target_topic).value_or(-1) == 108);

    // The group is reset to 5, the position last acknowledged.
    commit_group_offset(b.primary, group, topic, 0, 5);
    auto third = cp.run_once();
    REQUIRE_MESSAGE(third.has_value(), (third ? "" : third.error().message));
    CHECK(checkpoint_on(dr.bootstrap(), group, target_topic).value_or(-1) == 105);
    delete_topic(b.primary, topic);
}
