// The test bed is real: records produced with librdkafka to the primary
// broker come back through kcat, an independent client, whole.
#include "tests/integration/support.h"

#include <doctest/doctest.h>

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
