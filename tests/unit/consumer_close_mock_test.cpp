// Closing a group consumer in the middle of its first rebalance, on
// librdkafka's mock cluster.
#include "kafka/consumer.h"
#include "tests/mock_cluster.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int16_t sync_group_api = 14;

// The consumer's group member id, "" before its JoinGroup was answered.
std::string member_id(rpl::kafka::consumer& c) {
    char* id = rd_kafka_memberid(c.client().get());
    std::string out = id != nullptr ? id : "";
    if (id != nullptr) rd_kafka_mem_free(c.client().get(), id);
    return out;
}

// A cooperative-sticky consumer of orders that has joined its group (it has
// a member id) but has no assignment, its SyncGroup answer held back for 8 s;
// closed first by its owner when `close_first`, then destroyed.
void stop_in_first_rebalance(const std::string& group, bool close_first) {
    rpl::test::mock_cluster mc(1);
    mc.create_topic("orders", 1);
    rd_kafka_mock_broker_push_request_error_rtts(mc.get(), 1, sync_group_api, 1,
                                                 RD_KAFKA_RESP_ERR_NO_ERROR, 8000);
    auto c = rpl::kafka::consumer::create({"mock", mc.bootstrap(), {}}, group,
                                          {{"session.timeout.ms", "6000"}}, rpl::Logger("test"));
    REQUIRE(c.has_value());
    REQUIRE(c.value().subscribe({"orders"}));
    std::vector<rpl::kafka::message> batch;
    const auto until = std::chrono::steady_clock::now() + 6s;
    while (member_id(c.value()).empty() && std::chrono::steady_clock::now() < until)
        c.value().poll(batch, 10, 100ms);
    REQUIRE_FALSE(member_id(c.value()).empty());
    CHECK(c.value().assignment().empty());
    if (close_first) {
        c.value().close(4s);
        CHECK(member_id(c.value()).empty());  // leaving the group cleared it
    }
    // Destroyed here, in the middle of the rebalance.
}

}  // namespace

TEST_CASE(
    "a_consumer_stopped_after_joining_its_group_but_before_its_first_assignment_does_not_end_"
    "the_process") {
    // Guards against librdkafka before 2.3.0 aborting the whole process
    // (rdkafka_sticky_assignor.c: Assertion `assignor_state' failed) when
    // a cooperative-sticky consumer that joined its group but was never
    // assigned is destroyed: a flow stopped or reloaded during its first
    // rebalance ended the daemon and every other flow with it. Before the
    // fix the test run ended here with SIGABRT.
    stop_in_first_rebalance("first-rebalance", false);
}

TEST_CASE(
    "a_consumer_closed_by_its_owner_after_joining_but_before_its_first_assignment_does_not_end_"
    "the_process") {
    // Guards against the check above being made too late: a flow closes its
    // consumer itself (shutdown's bounded close) before the handle is
    // destroyed, and leaving the group clears the member id, so the destroy
    // no longer saw that the handle had joined and librdkafka aborted (a
    // flow failed 2 s after its start, in its first rebalance, in a CI run
    // of the unit suite). Before the fix the test run ended here with
    // SIGABRT.
    stop_in_first_rebalance("closed-first", true);
}
