// The latency accumulator sorts observations into the same buckets the
// histogram would, and a flush equals observing each value directly.
#include "replicator/metrics.h"

#include <doctest/doctest.h>

TEST_CASE("latency accumulated per batch equals the histogram fed record by record") {
    using rpl::replicator::latency_buckets;
    prometheus::Histogram direct(latency_buckets());
    prometheus::Histogram batched(latency_buckets());
    rpl::replicator::latency_accumulator acc;
    // Edges: exactly on a bound (1 ms, 50 ms, 300 s), just above, 0 and far past the last bound.
    for (int64_t ms : {0, 1, 2, 3, 50, 51, 999, 1000, 299'999, 300'000, 300'001, 3'600'000}) {
        direct.Observe(static_cast<double>(ms) / 1000.0);
        acc.observe(ms);
    }
    acc.flush_into(batched);
    const auto a = direct.Collect().histogram;
    const auto b = batched.Collect().histogram;
    CHECK(a.sample_count == 12);
    CHECK(b.sample_count == a.sample_count);
    CHECK(b.sample_sum == doctest::Approx(a.sample_sum));
    REQUIRE(a.bucket.size() == b.bucket.size());
    for (size_t i = 0; i < a.bucket.size(); ++i)
        CHECK_MESSAGE(a.bucket[i].cumulative_count == b.bucket[i].cumulative_count,
                      "bucket " << a.bucket[i].upper_bound);
    // A second flush with nothing new changes nothing.
    acc.flush_into(batched);
    CHECK(batched.Collect().histogram.sample_count == 12);
}
