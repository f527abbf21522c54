#include "backup/metrics.h"

#include <limits>

#include "kafka/metric_series.h"

namespace rpl::backup {

const prometheus::Histogram::BucketBoundaries& store_latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries b{
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
    return b;
}

tap_metric_families make_tap_metrics(prometheus::Registry& r) {
    using namespace prometheus;
    return tap_metric_families{
        BuildCounter()
            .Name("replicatord_tap_bytes_archived_total")
            .Help("Record bytes (encoded, before compression) in segments durably stored")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_stored_bytes_total")
            .Help("Segment object bytes durably stored (after compression)")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_records_archived_total")
            .Help("Records in segments durably stored")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_compression_ratio")
            .Help("Record bytes divided by stored object bytes, since the tap started")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_segments_written_total")
            .Help("Segments durably stored")
            .Register(r),
        BuildHistogram()
            .Name("replicatord_tap_store_latency_seconds")
            .Help("Duration of object store calls, by operation, retries included")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_store_errors_total")
            .Help("Object store calls that failed after the store's own retries")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_errors_total")
            .Help("Tap errors other than store calls, by kind")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_rpo_seconds")
            .Help("Estimated data at risk: age of the oldest source data not yet durably archived")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_rpo_target_seconds")
            .Help("The rpo_target of the tap in the config")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_rto_target_seconds")
            .Help("The rto_target of the tap in the config")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_up")
            .Help("1 while the tap runs, 0 once it stopped or failed")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_last_segment_age_seconds")
            .Help("Seconds since the tap last stored a segment")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_lag_records")
            .Help("Source high watermarks minus the archived end, summed over partitions")
            .Register(r),
        BuildGauge()
            .Name("replicatord_tap_buffered_bytes")
            .Help("Bytes held in memory for segments not yet stored")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_group_snapshots_total")
            .Help("Group offset snapshots stored")
            .Register(r),
        BuildCounter()
            .Name("replicatord_records_lost_to_retention_total")
            .Help("Records deleted at the source (retention, DeleteRecords) before they were "
                  "replicated or archived")
            .Register(r),
        BuildCounter()
            .Name("replicatord_tap_topic_resets_total")
            .Help("Source partitions found recreated or truncated below what was archived")
            .Register(r),
    };
}

// The kinds of replicatord_tap_errors_total a tap counts (tap.cpp).
const char* const tap_error_kinds[] = {"consume", "commit",    "discovery", "group_snapshot",
                                       "seek",    "placement", "exception"};

void export_tap_series(tap_metric_families& m, const std::string& tap) {
    const prometheus::Labels l{{"tap", tap}};
    m.up.Add(l);
    m.rpo.Add(l);
    m.lag.Add(l);
    m.buffered_bytes.Add(l);
    m.last_segment_age.Add(l);
    m.compression.Add(l);
    m.bytes.Add(l);
    m.stored_bytes.Add(l);
    m.records.Add(l);
    m.segments.Add(l);
    m.group_snapshots.Add(l);
    m.lost_to_retention.Add(l);
    m.topic_resets.Add(l);
    for (const char* op : {"put", "list"}) {
        m.store_errors.Add({{"tap", tap}, {"op", op}});
        m.store_latency.Add({{"tap", tap}, {"op", op}}, store_latency_buckets());
    }
    for (const char* kind : tap_error_kinds) m.errors.Add({{"tap", tap}, {"kind", kind}});
}

void declare_tap(tap_metric_families& m, const conf::tap_config& cfg, bool keep_rpo) {
    export_tap_series(m, cfg.name);
    const prometheus::Labels l{{"tap", cfg.name}};
    const double inf = std::numeric_limits<double>::infinity();
    m.rpo_target.Add(l).Set(cfg.rpo_target ? static_cast<double>(cfg.rpo_target->count()) / 1000.0
                                           : inf);
    m.rto_target.Add(l).Set(cfg.rto_target ? static_cast<double>(cfg.rto_target->count()) / 1000.0
                                           : inf);
    if (!keep_rpo || !m.rpo.Has(l)) m.rpo.Add(l).Set(std::numeric_limits<double>::quiet_NaN());
}

void forget_tap(tap_metric_families& m, const std::string& tap) {
    for (auto* f : {&m.bytes, &m.stored_bytes, &m.records, &m.segments, &m.store_errors, &m.errors,
                    &m.group_snapshots, &m.lost_to_retention, &m.topic_resets})
        remove_series(*f, "tap", tap);
    for (auto* f : {&m.compression, &m.rpo, &m.rpo_target, &m.rto_target, &m.up,
                    &m.last_segment_age, &m.lag, &m.buffered_bytes})
        remove_series(*f, "tap", tap);
    remove_series(m.store_latency, "tap", tap);
}

}  // namespace rpl::backup
