#include "replicator/metrics.h"

#include "kafka/metric_series.h"

#include <algorithm>
#include <limits>

namespace rpl::replicator {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries b{
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    return b;
}

latency_accumulator::latency_accumulator() : counts_(latency_buckets().size() + 1, 0.0) {}

void latency_accumulator::observe(int64_t ms) noexcept {
    // The first bound >= the value (Prometheus buckets are "less or equal").
    const double seconds = static_cast<double>(ms) / 1000.0;
    const auto& bounds = latency_buckets();
    const auto it = std::lower_bound(bounds.begin(), bounds.end(), seconds);
    counts_[static_cast<size_t>(it - bounds.begin())] += 1;
    sum_seconds_ += seconds;
    any_ = true;
}

void latency_accumulator::flush_into(prometheus::Histogram& h) {
    if (!any_) return;
    h.ObserveMultiple(counts_, sum_seconds_);
    std::fill(counts_.begin(), counts_.end(), 0.0);
    sum_seconds_ = 0;
    any_ = false;
}

mirror_metric_families make_mirror_metrics(prometheus::Registry& r) {
    using namespace prometheus;
    return mirror_metric_families{
        BuildCounter()
            .Name("replicatord_records_replicated_total")
            .Help("Records acknowledged by the target cluster")
            .Register(r),
        BuildCounter()
            .Name("replicatord_bytes_replicated_total")
            .Help("Key and value bytes acknowledged by the target cluster")
            .Register(r),
        BuildHistogram()
            .Name("replicatord_replication_latency_seconds")
            .Help("Target acknowledgement time minus source record timestamp")
            .Register(r),
        BuildGauge()
            .Name("replicatord_lag_records")
            .Help("Source high watermark minus the flow's committed offset")
            .Register(r),
        BuildGauge()
            .Name("replicatord_rpo_seconds")
            .Help("Estimated data at risk: time since everything written to the source was on the "
                  "target")
            .Register(r),
        BuildGauge()
            .Name("replicatord_rpo_target_seconds")
            .Help("The rpo_target of the flow in the config")
            .Register(r),
        BuildGauge()
            .Name("replicatord_rto_target_seconds")
            .Help("The rto_target of the flow in the config")
            .Register(r),
        BuildCounter()
            .Name("replicatord_target_topics_created_total")
            .Help("Topics created on the target cluster")
            .Register(r),
        BuildCounter()
            .Name("replicatord_source_topics_deleted_total")
            .Help("Mirrored topics that disappeared from the source cluster")
            .Register(r),
        BuildCounter().Name("replicatord_errors_total").Help("Errors by kind").Register(r),
        BuildCounter()
            .Name("replicatord_flow_restarts_total")
            .Help("Times a flow recreated its clients and rewound to the last acknowledged offsets")
            .Register(r),
        BuildGauge()
            .Name("replicatord_in_flight_records")
            .Help("Records read from the source and not yet committed back to it")
            .Register(r),
        BuildGauge()
            .Name("replicatord_in_flight_bytes")
            .Help("Bytes read from the source and not yet acknowledged by the target")
            .Register(r),
        BuildGauge()
            .Name("replicatord_flow_up")
            .Help("1 while the flow runs, 0 once it stopped or failed")
            .Register(r),
        BuildCounter()
            .Name("replicatord_heartbeats_total")
            .Help("Heartbeats written to the source cluster")
            .Register(r),
        BuildCounter()
            .Name("replicatord_records_filtered_total")
            .Help("Records not sent because their provenance header names the target cluster")
            .Register(r),
        // Shared by name with the taps' series ({tap}): the registry merges them.
        BuildCounter()
            .Name("replicatord_records_lost_to_retention_total")
            .Help("Records the source deleted (retention, or a recreated topic) before they were "
                  "copied or archived")
            .Register(r),
    };
}

void declare_flow(mirror_metric_families& m, const conf::flow_config& cfg, bool keep_rpo) {
    const prometheus::Labels l{{"flow", cfg.name}};
    // No target is a target that cannot be missed.
    const double inf = std::numeric_limits<double>::infinity();
    m.rpo_target.Add(l).Set(cfg.rpo_target ? static_cast<double>(cfg.rpo_target->count()) / 1000.0
                                           : inf);
    m.rto_target.Add(l).Set(cfg.rto_target ? static_cast<double>(cfg.rto_target->count()) / 1000.0
                                           : inf);
    m.up.Add(l).Set(0);
    // Unknown until the flow's meter has its first figure: not a reassuring 0.
    if (!keep_rpo || !m.rpo.Has(l)) m.rpo.Add(l).Set(std::numeric_limits<double>::quiet_NaN());
    m.restarts.Add(l);
    m.heartbeats.Add(l);
    m.topics_created.Add(l);
    m.topics_deleted.Add(l);
    m.records_lost_to_retention.Add(l);
    m.in_flight_records.Add(l).Set(0);
    m.in_flight_bytes.Add(l).Set(0);
    m.latency.Add(l, latency_buckets());
    for (const char* kind :
         {"commit", "consume", "produce", "discovery", "offset_runs", "config_sync", "heartbeat",
          "conflict", "authorization", "seek", "fetch_stall"})
        m.errors.Add({{"flow", cfg.name}, {"kind", kind}});
}

void forget_flow(mirror_metric_families& m, const std::string& flow) {
    for (auto* f : {&m.records, &m.bytes, &m.topics_created, &m.topics_deleted, &m.errors,
                    &m.restarts, &m.heartbeats, &m.filtered, &m.records_lost_to_retention})
        remove_series(*f, "flow", flow);
    for (auto* f : {&m.lag, &m.rpo, &m.rpo_target, &m.rto_target, &m.in_flight_records,
                    &m.in_flight_bytes, &m.up})
        remove_series(*f, "flow", flow);
    remove_series(m.latency, "flow", flow);
}

}  // namespace rpl::replicator
