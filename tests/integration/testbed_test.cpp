// The test bed is real: records produced with librdkafka to the primary
// broker come back through kcat, an independent client, whole; and its link
// proxies (toxiproxy) carry a client's traffic and cut or slow it on command.
#include "tests/integration/support.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace rpl::test;

TEST_CASE("testbed_primary_round_trips_key_value_headers_and_timestamp_through_kcat") {
    // Guards against a test bed that is not a real broker (or a reader that
    // only echoes what we wrote): kcat must see exactly what librdkafka sent.
    const auto& b = testbed();
    const std::string topic = unique("bed-roundtrip");
    create_topic(b.primary, topic, 2);

    // Recent timestamps: the bed's retention would delete 2023-era records.
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    std::vector<record> sent;
    for (int i = 0; i < 20; ++i) {
        record r;
        r.partition = i % 2;
        r.timestamp = now_ms - (i * 7919) % 100000;  // explicit, not in order
        if (i % 5 != 0) r.key = "key-" + std::to_string(i);
        if (i % 7 != 3) r.value = "value-" + std::to_string(i * i);
        for (int h = 0; h < i % 4; ++h)
            r.headers.emplace_back(h == 2 ? "h0" : "h" + std::to_string(h),
                                   "v" + std::to_string(h));
        sent.push_back(r);
    }
    {
        producer p(b.primary);
        for (const auto& r : sent) p.produce(topic, r);
        p.flush();
    }
    for (int part = 0; part < 2; ++part) {
        const auto got = kcat_read(b.primary, topic, part);
        std::vector<record> want;
        for (const auto& r : sent)
            if (r.partition == part) want.push_back(r);
        REQUIRE(got.size() == want.size());
        for (size_t i = 0; i < got.size(); ++i) {
            CAPTURE(i);
            CHECK(got[i].key == want[i].key);
            CHECK(got[i].value == want[i].value);
            CHECK(got[i].headers == want[i].headers);
            CHECK(got[i].timestamp == want[i].timestamp);
            CHECK(got[i].offset == static_cast<int64_t>(i));
        }
    }
    CHECK(kcat_partitions(b.primary, topic) == 2);
    CHECK(kcat_partitions(b.dr, topic) == 0);  // two separate clusters
}

namespace {

// The test bed's link proxies (toxiproxy in front of each broker), from
// .testbed/env.
std::string link_env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0')
        throw std::runtime_error(std::string(name) +
                                 " is not set: run scripts/testbed up and source .testbed/env");
    return v;
}

command_result testbed_link(const std::string& alias, const std::vector<std::string>& args) {
    std::vector<std::string> argv{testbed_script(), "link", alias};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 30s);
}

// Metadata through BOOTSTRAP, with a short metadata timeout: a cut link is
// refused at once, so this only waits when it fails.
command_result metadata(const std::string& bootstrap) {
    return run({"kcat", "-L", "-b", bootstrap, "-m", "3"}, 15s);
}

// Both links healed on scope exit, whatever happened: the bed is shared and
// a test left with a cut or slow link would fail the tests after it.
struct heal_links_on_exit {
    heal_links_on_exit() = default;
    heal_links_on_exit(const heal_links_on_exit&) = delete;
    heal_links_on_exit& operator=(const heal_links_on_exit&) = delete;
    ~heal_links_on_exit() {
        for (const char* alias : {"primary", "dr"}) {
            const auto r = testbed_link(alias, {"heal"});
            if (r.exit_code != 0)
                std::cerr << "WARNING: testbed link " << alias << " heal failed: " << show(r)
                          << "\n";
        }
    }
};

}  // namespace

TEST_CASE("testbed_link_proxy_carries_a_clients_traffic_and_cut_stops_only_the_link") {
    // Guards the fault proxy the soak relies on: a client bootstrapping at
    // the link must be told the proxy's address (else its traffic after the
    // first request bypasses the proxy and a cut changes nothing), and a cut
    // must stop the link while the broker itself still answers.
    const auto& b = testbed();
    const std::string link = link_env("PRIMARY_LINK_BOOTSTRAP");
    heal_links_on_exit heal;

    const auto md = metadata(link);
    REQUIRE_MESSAGE(md.exit_code == 0, show(md));
    CHECK_MESSAGE(md.out.find("broker 1 at " + link) != std::string::npos, md.out);

    const std::string topic = unique("bed-link");
    create_topic(b.primary, topic, 1);
    std::vector<record> sent;
    for (int i = 0; i < 5; ++i) {
        record r;
        r.partition = 0;
        r.key = "k" + std::to_string(i);
        r.value = "v" + std::to_string(i);
        sent.push_back(r);
    }
    {
        producer p(link);
        for (const auto& r : sent) p.produce(topic, r);
        p.flush();
    }
    const auto got = kcat_read(link, topic, 0);
    REQUIRE(got.size() == sent.size());
    for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i].key == sent[i].key);
        CHECK(got[i].value == sent[i].value);
    }

    const auto cut = testbed_link("primary", {"cut"});
    REQUIRE_MESSAGE(cut.exit_code == 0, show(cut));
    CHECK_MESSAGE(testbed_link("primary", {"show"}).out.find("state=cut") != std::string::npos,
                  "link primary show after cut");
    const auto through_cut = metadata(link);
    CHECK_MESSAGE(through_cut.exit_code != 0, show(through_cut));
    CHECK(broker_answers(b.primary));

    const auto healed = testbed_link("primary", {"heal"});
    REQUIRE_MESSAGE(healed.exit_code == 0, show(healed));
    REQUIRE_EVENTUALLY(30s, broker_answers(link));
    CHECK(kcat_read(link, topic, 0).size() == sent.size());
}

TEST_CASE("testbed_link_latency_is_a_toxic_on_both_directions_until_heal") {
    // Guards the link commands the soak drives: latency is set on both
    // directions (a one-way toxic would slow only requests or only
    // answers), shows in `link show`, and heal removes every toxic.
    const std::string link = link_env("DR_LINK_BOOTSTRAP");
    heal_links_on_exit heal;

    const auto slow = testbed_link("dr", {"latency", "100"});
    REQUIRE_MESSAGE(slow.exit_code == 0, show(slow));
    const auto shown = testbed_link("dr", {"show"});
    REQUIRE_MESSAGE(shown.exit_code == 0, show(shown));
    CHECK_MESSAGE(shown.out.find("latency_upstream(latency=100,") != std::string::npos, shown.out);
    CHECK_MESSAGE(shown.out.find("latency_downstream(latency=100,") != std::string::npos,
                  shown.out);
    CHECK_MESSAGE(shown.out.find("state=enabled") != std::string::npos, shown.out);
    CHECK(broker_answers(link));  // slower, still up

    const auto healed = testbed_link("dr", {"heal"});
    REQUIRE_MESSAGE(healed.exit_code == 0, show(healed));
    const auto after = testbed_link("dr", {"show"});
    CHECK_MESSAGE(after.out.find("toxics=none") != std::string::npos, after.out);
}
