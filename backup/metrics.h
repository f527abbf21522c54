// The archival tap's metrics, declared in one place and built by one
// function. Every series carries a `tap` label (and `op` for store calls), so
// cardinality stays bounded by the number of taps.
#pragma once

#include "conf/config.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace rpl::backup {

struct tap_metric_families {
    prometheus::Family<prometheus::Counter>& bytes;            // {tap}: record bytes archived
    prometheus::Family<prometheus::Counter>& stored_bytes;     // {tap}: object bytes written
    prometheus::Family<prometheus::Counter>& records;          // {tap}
    prometheus::Family<prometheus::Gauge>& compression;        // {tap}: record bytes / object bytes
    prometheus::Family<prometheus::Counter>& segments;         // {tap}
    prometheus::Family<prometheus::Histogram>& store_latency;  // {tap, op}
    prometheus::Family<prometheus::Counter>& store_errors;     // {tap, op}
    prometheus::Family<prometheus::Counter>& errors;           // {tap, kind}: other failures
    prometheus::Family<prometheus::Gauge>& rpo;                // {tap}
    prometheus::Family<prometheus::Gauge>& rpo_target;         // {tap}
    prometheus::Family<prometheus::Gauge>& rto_target;         // {tap}
    prometheus::Family<prometheus::Gauge>& up;                 // {tap}: 1 running, 0 otherwise
    prometheus::Family<prometheus::Gauge>& last_segment_age;   // {tap}: seconds since the last put
    prometheus::Family<prometheus::Gauge>& lag;                // {tap}: records not yet archived
    prometheus::Family<prometheus::Gauge>& buffered_bytes;     // {tap}: memory held for segments
    prometheus::Family<prometheus::Counter>& group_snapshots;  // {tap}
    // {tap}: records the source deleted (retention, DeleteRecords) before the
    // tap archived them. The family is shared with flows ({flow}).
    prometheus::Family<prometheus::Counter>& lost_to_retention;
    prometheus::Family<prometheus::Counter>& topic_resets;  // {tap}: source topics recreated
};

// Every series of one tap that dashboards and alerts read, at 0: a healthy
// tap has data on every panel from the first scrape.
void export_tap_series(tap_metric_families& m, const std::string& tap);
// export_tap_series, and the series that depend on the tap's settings: the
// RPO and RTO targets (+Inf when none: a target that cannot be missed) and
// the RPO, NaN until the tap's meter knows it. keep_rpo: an RPO already
// published stays (a new instance taking over from a failed one).
void declare_tap(tap_metric_families& m, const conf::tap_config& cfg, bool keep_rpo = false);

// Registers the families; the app builds them once and every tap shares them.
[[nodiscard]] tap_metric_families make_tap_metrics(prometheus::Registry& registry);
// Drops every series of a tap that was removed (after it stopped).
void forget_tap(tap_metric_families& m, const std::string& tap);

// Store call latency buckets, in seconds: 1 ms to 2 min.
[[nodiscard]] const prometheus::Histogram::BucketBoundaries& store_latency_buckets();

}  // namespace rpl::backup
