// The mirror's metrics, declared in one place and built by one function.
// Every series carries a `flow` label; only lag is per partition, so label
// cardinality stays bounded by the number of mirrored partitions.
#pragma once

#include "conf/config.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

namespace rpl::replicator {

struct mirror_metric_families {
    prometheus::Family<prometheus::Counter>& records;          // {flow, topic}
    prometheus::Family<prometheus::Counter>& bytes;            // {flow, topic}
    prometheus::Family<prometheus::Histogram>& latency;        // {flow}
    prometheus::Family<prometheus::Gauge>& lag;                // {flow, topic, partition}
    prometheus::Family<prometheus::Gauge>& rpo;                // {flow}
    prometheus::Family<prometheus::Gauge>& rpo_target;         // {flow}
    prometheus::Family<prometheus::Gauge>& rto_target;         // {flow}
    prometheus::Family<prometheus::Counter>& topics_created;   // {flow}
    prometheus::Family<prometheus::Counter>& topics_deleted;   // {flow}
    prometheus::Family<prometheus::Counter>& errors;           // {flow, kind}
    prometheus::Family<prometheus::Counter>& restarts;         // {flow}
    prometheus::Family<prometheus::Gauge>& in_flight_records;  // {flow}
    prometheus::Family<prometheus::Gauge>& in_flight_bytes;    // {flow}
    prometheus::Family<prometheus::Gauge>& up;            // {flow}: 1 running, 0 failed/stopped
    prometheus::Family<prometheus::Counter>& heartbeats;  // {flow}
    // Records read and deliberately not sent: under identity naming, those
    // whose provenance header names the target (loop prevention).
    prometheus::Family<prometheus::Counter>& filtered;  // {flow, topic}
    // Records the source deleted (retention) before the flow copied them.
    prometheus::Family<prometheus::Counter>& records_lost_to_retention;  // {flow}
};

// Registers the families; the app builds them once and every flow shares them.
[[nodiscard]] mirror_metric_families make_mirror_metrics(prometheus::Registry& registry);
// Every series of one flow that a dashboard or alert reads, at its initial
// value (0, NaN for an RPO not yet known, +Inf for no target), so that they
// are in the first scrape: "No data" on a panel must mean a problem.
// keep_rpo: an RPO already published stays (a new instance of the same flow
// taking over from a failed one whose meter still counts).
void declare_flow(mirror_metric_families& m, const conf::flow_config& cfg, bool keep_rpo = false);
// Drops every series of a flow that was removed (after it stopped).
void forget_flow(mirror_metric_families& m, const std::string& flow);

// The latency buckets, in seconds: 1 ms to 5 min.
[[nodiscard]] const prometheus::Histogram::BucketBoundaries& latency_buckets();

// Latency observations sorted into latency_buckets() on the flow's thread
// and handed to the histogram in one call per metrics update, so that the
// per-record path touches no shared state.
class latency_accumulator {
public:
    latency_accumulator();
    void observe(int64_t ms) noexcept;
    // Adds what was observed since the last flush; resets.
    void flush_into(prometheus::Histogram& h);

private:
    std::vector<double> counts_;  // one per bucket, plus +Inf
    double sum_seconds_ = 0;
    bool any_ = false;
};

}  // namespace rpl::replicator
