// conf/topic_policy: which source topics a flow (or tap) takes and what
// they are called on the target. Every rule in topic_policy.h has a test
// here; a wrong answer either loses a topic silently or loops records between
// clusters forever.

#include "conf/topic_policy.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using rpl::conf::flow_config;
using rpl::conf::is_internal_topic;
using rpl::conf::is_synced_topic_config;
using rpl::conf::naming_policy;
using rpl::conf::tap_config;
using rpl::conf::topic_policy;
using rpl::conf::topic_verdict;

namespace {

// primary -> dr, prefix naming, every topic: the shape of the demo flow.
flow_config primary_to_dr() {
    flow_config f;
    f.name = "primary-to-dr";
    f.source = "primary";
    f.target = "dr";
    return f;
}

tap_config tap_of(std::vector<std::string> topics, std::vector<std::string> exclude = {}) {
    tap_config t;
    t.name = "archive";
    t.source = "primary";
    t.topics = std::move(topics);
    t.exclude_topics = std::move(exclude);
    t.storage = "file:///tmp/archive";
    return t;
}

}  // namespace

TEST_CASE("prefix_naming_gives_source_alias_separator_topic") {
    // Guards against a target name that drops or doubles the separator, which
    // would collide with a local topic of the same name on the target.
    auto f = primary_to_dr();
    CHECK(topic_policy(f).target_topic("orders") == "primary.orders");
    CHECK(topic_policy(f).target_topic("orders.eu") == "primary.orders.eu");

    f.separator = "_";
    CHECK(topic_policy(f).target_topic("orders") == "primary_orders");

    f.separator = "--";
    CHECK(topic_policy(f).target_topic("orders") == "primary--orders");
}

TEST_CASE("identity_naming_keeps_the_source_name") {
    // Guards against identity naming still adding the prefix (consumers on the
    // target would not find their topic after failover).
    auto f = primary_to_dr();
    f.naming = naming_policy::identity;
    const topic_policy p(f);
    CHECK(p.target_topic("orders") == "orders");
    CHECK(p.target_topic("orders.eu") == "orders.eu");
    CHECK(p.mirrored("orders"));
}

TEST_CASE("internal_topics_are_never_mirrored_even_when_a_regex_matches_them") {
    // Guards against copying Kafka's own bookkeeping (__consumer_offsets) or
    // replicatord's checkpoints/offset runs, which would corrupt the target's
    // groups or feed our own state back to us.
    const topic_policy p(primary_to_dr());  // topics = [".*"]
    for (const std::string t : {"__consumer_offsets", "__transaction_state", "x.internal",
                                "x-internal", "primary.checkpoints.internal"}) {
        CAPTURE(t);
        CHECK(is_internal_topic(t));
        CHECK(p.classify(t) == topic_verdict::internal);
        CHECK_FALSE(p.mirrored(t));
    }
    // Look-alikes that are ordinary topics.
    for (const std::string t : {"internal", "x.internals", "internal.x", "_single_underscore"}) {
        CAPTURE(t);
        CHECK_FALSE(is_internal_topic(t));
        CHECK(p.mirrored(t));
    }
}

TEST_CASE("a_topic_that_came_from_the_target_is_never_sent_back") {
    // Guards against replication loops in active-active setups: dr.orders on
    // primary is dr's own orders, and copying it to dr would loop forever,
    // also when it arrived through a third cluster (us.dr.orders).
    const topic_policy p(primary_to_dr());
    CHECK(p.classify("dr.orders") == topic_verdict::cycle);
    CHECK(p.classify("us.dr.orders") == topic_verdict::cycle);
    CHECK(p.classify("us.eu.dr.orders") == topic_verdict::cycle);
    CHECK_FALSE(p.mirrored("dr.orders"));
    CHECK_FALSE(p.mirrored("us.dr.orders"));
}

TEST_CASE("cycle_detection_matches_whole_aliases_not_substrings") {
    // Guards against a prefix or substring test that would drop legitimate
    // topics whose names merely contain the target alias.
    const topic_policy p(primary_to_dr());
    CHECK(p.mirrored("orders.eu"));
    CHECK(p.mirrored("drx.orders"));
    CHECK(p.mirrored("orders.dr"));  // `dr` as the last segment is the topic, not an alias
    CHECK(p.mirrored("xdr.orders"));
    CHECK(p.target_topic("orders.eu") == "primary.orders.eu");
}

TEST_CASE("cycle_detection_follows_the_configured_separator") {
    // Guards against a hard-coded '.': with separator "_" the remote topic is
    // dr_orders, and dr.orders is an ordinary local name.
    auto f = primary_to_dr();
    f.separator = "_";
    const topic_policy p(f);
    CHECK(p.classify("dr_orders") == topic_verdict::cycle);
    CHECK(p.classify("us_dr_orders") == topic_verdict::cycle);
    CHECK(p.mirrored("dr.orders"));
}

TEST_CASE("identity_naming_does_no_cycle_detection_by_name") {
    // Identity names carry no alias; a `dr.` prefix is just part of the name.
    auto f = primary_to_dr();
    f.naming = naming_policy::identity;
    CHECK(topic_policy(f).mirrored("dr.orders"));
}

TEST_CASE("heartbeats_are_mirrored_even_when_not_in_topics") {
    // Guards against end-to-end latency going unmeasured because the user's
    // `topics` list (rightly) names only business topics.
    auto f = primary_to_dr();
    f.topics = {"orders"};
    const topic_policy p(f);
    CHECK(p.classify("heartbeats") == topic_verdict::mirrored);
    CHECK(p.classify("other.heartbeats") == topic_verdict::mirrored);
    CHECK(p.classify("us.other.heartbeats") == topic_verdict::mirrored);
    CHECK(p.target_topic("heartbeats") == "primary.heartbeats");
    // ... but never back to where they came from, and no look-alikes.
    CHECK(p.classify("dr.heartbeats") == topic_verdict::cycle);
    CHECK(p.classify("xheartbeats") == topic_verdict::not_included);
    CHECK(p.classify("heartbeats2") == topic_verdict::not_included);
}

TEST_CASE("identity_naming_prefixes_heartbeats_and_never_sends_them_back_to_their_cluster") {
    // Guards against a heartbeats loop (seen in bench/soak): an identity flow
    // primary -> dr beside a pair between the same clusters copied
    // dr.heartbeats (dr's heartbeats, brought to primary by the pair) back to
    // dr under the same name, the pair brought that back as dr.dr.heartbeats,
    // and so on: a new topic on each cluster every refresh until the names
    // hit Kafka's 249-byte limit. It also merged primary's heartbeats into
    // dr's own `heartbeats` topic.
    auto f = primary_to_dr();
    f.naming = naming_policy::identity;
    f.topics = {".*"};
    const topic_policy p(f);
    CHECK(p.classify("dr.heartbeats") == topic_verdict::cycle);
    CHECK(p.classify("us.dr.heartbeats") == topic_verdict::cycle);
    CHECK(p.classify("dr.dr.heartbeats") == topic_verdict::cycle);
    CHECK(p.target_topic("heartbeats") == "primary.heartbeats");
    CHECK(p.target_topic("us.heartbeats") == "primary.us.heartbeats");
    CHECK(p.source_topic_of("primary.heartbeats") == "heartbeats");
    CHECK(p.source_topic_of("heartbeats") == "");  // dr's own
    // Other topics keep their names and get no cycle detection by name.
    CHECK(p.target_topic("dr.orders") == "dr.orders");
    CHECK(p.mirrored("dr.orders"));
    CHECK(p.source_topic_of("orders") == "orders");
}

TEST_CASE("heartbeats_follow_topics_when_the_flow_emits_none") {
    // Guards against heartbeats=false still dragging heartbeat topics along.
    auto f = primary_to_dr();
    f.topics = {"orders"};
    f.heartbeats = false;
    const topic_policy p(f);
    CHECK(p.classify("heartbeats") == topic_verdict::not_included);
    CHECK(p.classify("other.heartbeats") == topic_verdict::not_included);

    f.topics = {"orders", "heartbeats"};
    CHECK(topic_policy(f).mirrored("heartbeats"));
}

TEST_CASE("include_and_exclude_regexes_must_match_the_whole_name") {
    // Guards against regex_search semantics: `orders` must not take orders2,
    // and excluding `tmp` must not drop orders.tmp.archive by substring.
    auto f = primary_to_dr();
    f.topics = {"orders", "payments\\..*"};
    f.exclude_topics = {".*\\.tmp", "payments\\.secret"};
    const topic_policy p(f);
    CHECK(p.classify("orders") == topic_verdict::mirrored);
    CHECK(p.classify("orders2") == topic_verdict::not_included);
    CHECK(p.classify("xorders") == topic_verdict::not_included);
    CHECK(p.classify("payments.eu") == topic_verdict::mirrored);
    CHECK(p.classify("payments") == topic_verdict::not_included);
    CHECK(p.classify("payments.eu.tmp") == topic_verdict::excluded);
    CHECK(p.classify("payments.tmp.archive") == topic_verdict::mirrored);
    CHECK(p.classify("payments.secret") == topic_verdict::excluded);
    CHECK(p.classify("payments.secrets") == topic_verdict::mirrored);
}

TEST_CASE("included_answers_rule_4_alone_for_the_plan") {
    // Guards against `replicatord --check` listing every remote topic as a
    // skipped cycle: the plan explains a cycle only when the user's regexes
    // ask for the topic, so included() must ignore rules 1-3.
    auto f = primary_to_dr();
    f.topics = {"orders.*", "dr\\.orders.*"};
    f.exclude_topics = {".*\\.tmp"};
    const topic_policy p(f);
    CHECK(p.included("orders"));
    CHECK(p.included("dr.orders"));  // a cycle the user asked for
    CHECK(p.classify("dr.orders") == topic_verdict::cycle);
    CHECK_FALSE(p.included("dr.payments"));  // a cycle nobody asked for
    CHECK(p.classify("dr.payments") == topic_verdict::cycle);
    CHECK_FALSE(p.included("orders.tmp"));
    CHECK_FALSE(p.included("heartbeats"));  // mirrored by rule 3, not by the regexes
    CHECK(p.mirrored("heartbeats"));
}

TEST_CASE("tap_selects_by_include_and_exclude_and_keeps_names") {
    // Guards against the tap inheriting flow rules it has no use for: a store
    // has no alias, so dr.orders is an ordinary topic to archive, and names are
    // kept as they are; heartbeats are archived only when asked for.
    const topic_policy p(tap_of({"orders.*", "dr\\..*"}, {".*\\.tmp"}));
    CHECK(p.mirrored("orders"));
    CHECK(p.mirrored("orders.eu"));
    CHECK(p.mirrored("dr.orders"));
    CHECK(p.classify("orders.tmp") == topic_verdict::excluded);
    CHECK(p.classify("payments") == topic_verdict::not_included);
    CHECK(p.classify("heartbeats") == topic_verdict::not_included);
    CHECK(p.target_topic("orders.eu") == "orders.eu");
    CHECK(p.target_topic("dr.orders") == "dr.orders");
    // Internal topics stay out of the archive too (rule 1).
    CHECK(p.classify("orders.internal") == topic_verdict::internal);

    CHECK(topic_policy(tap_of({"heartbeats"})).mirrored("heartbeats"));
}

TEST_CASE("only_data_configs_are_synced_to_the_target") {
    // Guards against copying the source cluster's durability and operations
    // settings (min.insync.replicas=3 on a one-broker DR cluster makes every
    // produce fail) while losing the ones that define the data.
    for (const char* name : {"min.insync.replicas", "leader.replication.throttled.replicas",
                             "follower.replication.throttled.replicas", "message.timestamp.type",
                             "unclean.leader.election.enable"}) {
        CAPTURE(name);
        CHECK_FALSE(is_synced_topic_config(name));
    }
    for (const char* name : {"cleanup.policy", "retention.ms", "retention.bytes",
                             "compression.type", "max.message.bytes", "segment.bytes"}) {
        CAPTURE(name);
        CHECK(is_synced_topic_config(name));
    }
}

TEST_CASE("verdicts_have_readable_names_for_the_plan") {
    // `replicatord --check` prints these; a "?" would hide why a topic is skipped.
    CHECK(std::string(to_string(topic_verdict::mirrored)) == "mirrored");
    CHECK(std::string(to_string(topic_verdict::internal)) == "internal");
    CHECK(std::string(to_string(topic_verdict::cycle)) == "cycle");
    CHECK(std::string(to_string(topic_verdict::not_included)) == "not included");
    CHECK(std::string(to_string(topic_verdict::excluded)) == "excluded");
}
