// kafka::group_client against librdkafka's mock cluster: reading and
// writing a group's commits while its coordinator is down fails by the
// deadline and breaks nothing when the coordinator comes back. The admin
// API's group requests abort the process then in librdkafka 2.0.2 (an
// assertion in rd_kafka_enq_once_del_source_return, seen by bench/soak), or
// hang it when their handle is destroyed.
#include "kafka/admin.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("group_commits_read_and_written_across_a_coordinator_outage_break_nothing") {
    rpl::test::mock_cluster src(1);
    src.create_topic("orders", 2);
    const rpl::kafka::partition_list parts{{"orders", 0}, {"orders", 1}};
    {
        rpl::kafka::group_client groups({"src", src.bootstrap(), {}}, rpl::Logger("groups"), 2s);
        auto none = groups.committed("app", parts);
        REQUIRE_MESSAGE(none.has_value(), (none ? "" : none.error().message));
        CHECK(none.value().empty());
        REQUIRE(groups.commit("app", {{"orders", 0, 5}}).has_value());

        rd_kafka_mock_broker_set_down(src.get(), 1);
        CHECK_FALSE(groups.committed("app", parts).has_value());
        CHECK_FALSE(groups.commit("app", {{"orders", 1, 3}}).has_value());
        CHECK_FALSE(groups.committed("other", parts).has_value());

        // The coordinator answers again: within a few tries (librdkafka
        // finds it again on its own schedule) a commit goes through.
        rd_kafka_mock_broker_set_up(src.get(), 1);
        rpl::Result<void> again = rpl::fail(rpl::errc::timeout, "not tried");
        for (int i = 0; i < 15 && !again; ++i) again = groups.commit("app", {{"orders", 1, 7}});
        REQUIRE_MESSAGE(again.has_value(), (again ? "" : again.error().message));
        auto now = groups.committed("app", parts);
        REQUIRE_MESSAGE(now.has_value(), (now ? "" : now.error().message));
        REQUIRE(now.value().size() == 2);
        CHECK(now.value()[0].offset == 5);
        CHECK(now.value()[1].offset == 7);
    }
    // The handles went without hanging (the test would time out here).
}
