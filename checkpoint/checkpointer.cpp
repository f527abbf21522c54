#include "checkpoint/checkpointer.h"

#include "checkpoint/failover.h"
#include "kafka/metric_series.h"
#include "offsetsync/sync_topic.h"

#include <algorithm>

namespace rpl::checkpoint {

using namespace std::chrono_literals;

checkpoint_metric_families make_checkpoint_metrics(prometheus::Registry& r) {
    using namespace prometheus;
    return checkpoint_metric_families{
        BuildCounter()
            .Name("replicatord_checkpoints_emitted_total")
            .Help("Checkpoint records written to <source>.checkpoints.internal")
            .Register(r),
        BuildCounter()
            .Name("replicatord_group_sync_total")
            .Help("Consumer groups considered for offset sync on the target, by result")
            .Register(r),
        BuildCounter()
            .Name("replicatord_checkpoint_errors_total")
            .Help("Checkpoint pass errors by kind")
            .Register(r),
        BuildGauge()
            .Name("replicatord_last_checkpoint_timestamp_seconds")
            .Help("Unix time of the flow's last completed checkpoint pass")
            .Register(r),
    };
}

void declare_flow(checkpoint_metric_families& m, const std::string& flow) {
    m.emitted.Add({{"flow", flow}});
    for (const char* result : {"synced", "skipped_active", "error"})
        m.groups.Add({{"flow", flow}, {"result", result}});
    for (const char* kind : checkpoint_error_kinds) m.errors.Add({{"flow", flow}, {"kind", kind}});
    // 0 until a pass completes: a flow whose checkpoints never ran is stale
    // (ReplicatordCheckpointStale), not absent.
    m.last_checkpoint.Add({{"flow", flow}});
}

void forget_flow(checkpoint_metric_families& m, const std::string& flow) {
    for (auto* f : {&m.emitted, &m.groups, &m.errors}) remove_series(*f, "flow", flow);
    remove_series(m.last_checkpoint, "flow", flow);
}

namespace {
int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}
}  // namespace

group_filter::group_filter(const conf::flow_config& f)
    : include_(conf::compile_patterns(f.groups)),
      exclude_(conf::compile_patterns(f.exclude_groups)) {}

bool group_filter::selected(const std::string& group) const {
    // replicatord's own groups and the console tools' throwaway groups are
    // never carried across.
    if (group.rfind("replicatord", 0) == 0 || group.rfind("console-consumer-", 0) == 0)
        return false;
    return conf::full_match_any(include_, group) && !conf::full_match_any(exclude_, group);
}

checkpointer::checkpointer(const conf::flow_config& flow, const conf::Config& cfg,
                           offsetsync::store& store, checkpoint_metric_families* metrics,
                           local_checkpoints* local)
    : flow_(flow),
      cfg_(cfg),
      store_(store),
      metrics_(metrics),
      local_(local),
      policy_(flow),
      groups_(flow),
      log_("checkpoint " + flow.name),
      topic_(kafka::mm2::checkpoints_topic(flow.source)) {
    reverse_local_ = !flow_.reverse_flow.empty() && cfg_.flow(flow_.reverse_flow) != nullptr;
    if (metrics_ != nullptr) declare_flow(*metrics_, flow_.name);
}

checkpointer::~checkpointer() { stop(); }

Result<void> checkpointer::start() {
    RPL_TRY(open());
    thread_ = std::thread([this] { run(); });
    return ok();
}

Result<void> checkpointer::open() {
    const auto* s = cfg_.cluster(flow_.source);
    const auto* t = cfg_.cluster(flow_.target);
    const kafka::endpoint src{s->name, s->bootstrap, s->client};
    const kafka::endpoint dst{t->name, t->bootstrap, t->client};
    // Quiet clients: an unreachable source is reported once per pass, not
    // per reconnect attempt.
    RPL_TRY(sc, kafka::Client::create(kafka::client_kind::producer, src, {{"log_level", "3"}},
                                      log_.child("source")));
    source_.emplace(std::move(sc));
    // Each checkpoint's opaque is its number in reports_ (see emit()).
    RPL_TRY(tp,
            kafka::producer::create(
                dst, {{"linger.ms", "0"}}, log_.child("target"), [this](const kafka::delivery& d) {
                    const auto it = reports_.find(reinterpret_cast<std::uintptr_t>(d.opaque));
                    if (it != reports_.end()) it->second = d.err;
                }));
    target_.emplace(std::move(tp));
    source_groups_.emplace(src, log_.child("source groups"), 10s);
    target_groups_.emplace(dst, log_.child("target groups"), 10s);
    // The rewinds still owed to target groups, from before a restart.
    if (local_ != nullptr) {
        if (auto synced = local_->synced(flow_.name); synced) {
            for (const auto& cp : synced.value())
                synced_[key{cp.group, cp.topic, cp.partition}] = cp.upstream_offset;
        } else {
            log_.warn(synced.error().message +
                      "; rewinds owed to target groups from before "
                      "this start are not known");
        }
    }
    return ok();
}

void checkpointer::stop() noexcept {
    stop_.store(true);
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

checkpointer_status checkpointer::status() const {
    std::lock_guard lock(status_mu_);
    return status_;
}

void checkpointer::run() noexcept {
    while (!stop_.load()) {
        (void)run_once();  // run_once logs and counts its own failure
        std::unique_lock lock(wake_mu_);
        wake_.wait_for(lock, flow_.checkpoint_interval, [this] { return stop_.load(); });
    }
}

Result<void> checkpointer::ensure_topic() {
    if (topic_ready_) return ok();
    RPL_TRY(md, kafka::fetch_metadata(target_->client(), 10s));
    if (md.topic(topic_) == nullptr) {
        kafka::admin dst(target_->client(), 30s);
        const int rf = static_cast<int>(std::min<size_t>(3, md.brokers.size()));
        auto r = dst.create_topic(topic_, 1, rf, {{"cleanup.policy", "compact"}});
        if (!r && r.error().code != errc::conflict) return r;
        if (r) log_.info("created " + topic_ + " on " + flow_.target);
    }
    topic_ready_ = true;
    return ok();
}

Result<void> checkpointer::run_once() {
    auto r = pass();
    if (!r) {
        log_.warn(r.error().message);
        if (metrics_ != nullptr)
            metrics_->errors.Add({{"flow", flow_.name}, {"kind", to_string(r.error().code)}})
                .Increment();
        std::lock_guard lock(status_mu_);
        status_.last_error = r.error().message;
    }
    return r;
}

Result<void> checkpointer::pass() {
    checkpointer_status st;
    kafka::admin src(*source_, 10s);
    RPL_TRY(ensure_topic());
    const bool identity =
        flow_.naming == conf::naming_policy::identity && !flow_.reverse_flow.empty();
    if (identity) {
        RPL_TRY(follow_reverse_flow());
    }
    RPL_TRY(groups, src.list_groups());
    std::vector<kafka::mm2::checkpoint> to_emit;
    std::sort(groups.begin(), groups.end(),
              [](const auto& a, const auto& b) { return a.group_id < b.group_id; });
    // Only partitions this flow copied can be translated.
    kafka::partition_list copied;
    for (const auto& p : store_.partitions(flow_.name))
        copied.push_back({p.source_topic, p.partition});
    for (const auto& g : groups) {
        if (!groups_.selected(g.group_id)) continue;
        auto offsets = source_groups_->committed(g.group_id, copied);
        if (!offsets) {
            log_.warn(offsets.error().message);
            if (metrics_ != nullptr)
                metrics_->errors.Add({{"flow", flow_.name}, {"kind", "group_offsets"}}).Increment();
            continue;
        }
        std::vector<kafka::mm2::checkpoint> cps;
        std::map<key, bool> rewound;
        std::vector<kafka::mm2::checkpoint> synced_changed;  // to keep in local_
        for (const auto& tp : offsets.value()) {
            if (!policy_.mirrored(tp.topic)) continue;
            auto tr = store_.translate(flow_.name, tp.topic, tp.partition, tp.offset);
            if (!tr) continue;  // nothing replicated for this partition yet
            int64_t downstream = tr.value().target_offset;
            if (identity) {
                // Past this flow's runs, the source records from the group's
                // position on are not on the target yet: they will land after
                // everything there now, so only the target's own records bound
                // the position.
                const int64_t own = identity_bound(tp.topic, tp.partition, tp.offset);
                downstream = tr.value().kind == offsetsync::match_kind::past_end
                                 ? own
                                 : std::min(downstream, own);
            }
            kafka::mm2::checkpoint cp{g.group_id,   policy_.target_topic(tp.topic),
                                      tp.partition, tp.offset,
                                      downstream,   ""};
            const key k{cp.group, cp.topic, cp.partition};
            const auto it = last_.find(k);
            const bool known = it != last_.end();
            const bool rw = known && cp.upstream_offset < it->second.upstream;
            // For the group sync, a rewind is judged against what the target
            // group was last synced to: one whose sync failed or was skipped
            // is still owed next pass, though its checkpoint went out.
            if (flow_.sync_group_offsets) {
                const auto [synced, first_seen] = synced_.try_emplace(k, cp.upstream_offset);
                if (first_seen) synced_changed.push_back(cp);
                rewound[k] = cp.upstream_offset < synced->second;
            }
            if (known && !rw && cp.downstream_offset < it->second.downstream) {
                // The group moved forward but its translation moved back:
                // runs were lost and rebuilt. The smaller answer is the safe
                // one (a consumer re-reads); the old one could skip records.
                log_.warn("translation of " + cp.group + " " + tp.topic + "/" +
                          std::to_string(tp.partition) + " moved back from " +
                          std::to_string(it->second.downstream) + " to " +
                          std::to_string(cp.downstream_offset) +
                          "; emitting the smaller, safe offset");
            }
            if (!known || it->second.upstream != cp.upstream_offset ||
                it->second.downstream != cp.downstream_offset)
                to_emit.push_back(cp);
            cps.push_back(std::move(cp));
        }
        if (flow_.sync_group_offsets && !cps.empty()) {
            auto r = sync_group(g.group_id, cps, rewound, st);
            if (!r) {
                log_.warn("group sync of " + g.group_id + ": " + r.error().message);
                if (metrics_ != nullptr)
                    metrics_->groups.Add({{"flow", flow_.name}, {"result", "error"}}).Increment();
            } else if (r.value()) {
                for (const auto& cp : cps) {
                    auto& upstream = synced_[key{cp.group, cp.topic, cp.partition}];
                    if (upstream == cp.upstream_offset) continue;
                    upstream = cp.upstream_offset;
                    synced_changed.push_back(cp);
                }
            }
        }
        if (local_ != nullptr && !synced_changed.empty()) {
            // Lost, a rewind owed would be forgotten at the next start.
            if (auto r = local_->put_synced(flow_.name, synced_changed); !r)
                log_.warn(r.error().message);
        }
    }

    if (flow_.emit_checkpoints) {
        // Only what the target acknowledged counts as emitted: the rest
        // stays unknown in last_ and is sent again next pass, or an idle
        // group's last position would never reach the target.
        RPL_TRY(emit(to_emit));
    } else {
        for (const auto& cp : to_emit)
            last_[key{cp.group, cp.topic, cp.partition}] = {cp.upstream_offset,
                                                            cp.downstream_offset};
    }

    st.last_run_unix_ms = now_ms();
    st.checkpoints = static_cast<int64_t>(last_.size());
    if (metrics_ != nullptr)
        metrics_->last_checkpoint.Add({{"flow", flow_.name}})
            .Set(static_cast<double>(st.last_run_unix_ms) / 1000.0);
    std::lock_guard lock(status_mu_);
    status_ = std::move(st);
    return ok();
}

Result<void> checkpointer::emit(const std::vector<kafka::mm2::checkpoint>& to_emit) {
    if (to_emit.empty()) return ok();
    const int64_t ts = now_ms();
    // One report per checkpoint, by number: a report that comes after this
    // pass gave up on it finds no entry and is dropped.
    std::vector<std::uintptr_t> ids(to_emit.size());
    for (size_t i = 0; i < to_emit.size(); ++i) {
        const auto& cp = to_emit[i];
        ids[i] = next_report_++;
        reports_[ids[i]] = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        const std::string k = kafka::mm2::checkpoint_key(cp);
        const std::string v = kafka::mm2::checkpoint_value(cp);
        // The opaque carries the number only; it is never dereferenced.
        void* opaque = reinterpret_cast<void*>(ids[i]);  // NOLINT(performance-no-int-to-ptr)
        rd_kafka_resp_err_t err;
        while ((err = target_->produce_copy(topic_, 0, k, &v, ts, opaque)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            target_->poll(10ms);
        if (err) reports_[ids[i]] = err;  // never queued: no report will come
    }
    if (auto f = target_->flush(10s); !f) {
        // Not delivered in time: dropped now and sent again next pass, so
        // no older checkpoint can land after a newer one.
        log_.warn(f.error().message);
        target_->purge();
        (void)target_->flush(1s);  // serves the purge reports
    }
    std::vector<rd_kafka_resp_err_t> outcome(to_emit.size());
    for (size_t i = 0; i < to_emit.size(); ++i) {
        outcome[i] = reports_[ids[i]];
        reports_.erase(ids[i]);
    }
    std::vector<stored_checkpoint> stored;
    size_t failed = 0;
    rd_kafka_resp_err_t first = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < to_emit.size(); ++i) {
        const auto& cp = to_emit[i];
        if (outcome[i] != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (failed++ == 0) first = outcome[i];
            // A failed report does not say the record is absent (a purged or
            // timed-out request may still have been written): what the target
            // holds for this key is unknown, so the next pass sends the
            // group's position whatever it is, even the one last_ had (a
            // rewind back to it would otherwise leave the newer one there).
            last_.erase(key{cp.group, cp.topic, cp.partition});
            continue;
        }
        last_[key{cp.group, cp.topic, cp.partition}] = {cp.upstream_offset, cp.downstream_offset};
        stored.push_back({cp, ts});
    }
    if (local_ != nullptr && !stored.empty()) {
        if (auto r = local_->put(flow_.name, stored); !r) log_.warn(r.error().message);
    }
    if (metrics_ != nullptr && !stored.empty())
        metrics_->emitted.Add({{"flow", flow_.name}}).Increment(static_cast<double>(stored.size()));
    if (failed > 0)
        return fail(errc::kafka, std::to_string(failed) + " of " + std::to_string(to_emit.size()) +
                                     " checkpoint(s) to " + topic_ + " on " + flow_.target +
                                     " were not delivered (" + rd_kafka_err2str(first) +
                                     "); they are sent again next pass");
    return ok();
}

Result<void> checkpointer::follow_reverse_flow() {
    if (!reverse_local_) {
        const auto* s = cfg_.cluster(flow_.source);
        const kafka::endpoint src{s->name, s->bootstrap, s->client};
        RPL_TRY(st, offsetsync::catch_up(src, store_, 30s, log_.child("reverse runs"),
                                         std::string(offsetsync::runs_topic), reverse_runs_next_));
        reverse_runs_next_ = st.end_offset;
    }
    // The partitions identity_bound() asks about: this flow's and the
    // reverse flow's (the topics have the same names on both sides).
    std::set<std::pair<std::string, int32_t>> asked;
    for (const auto& f : {flow_.name, flow_.reverse_flow})
        for (const auto& p : store_.partitions(f)) asked.emplace(p.source_topic, p.partition);
    kafka::partition_list parts;
    for (const auto& [topic, partition] : asked) parts.push_back({topic, partition});
    RPL_TRY(committed, target_groups_->committed("replicatord." + flow_.reverse_flow, parts));
    reverse_committed_.clear();
    for (const auto& tp : committed) reverse_committed_[{tp.topic, tp.partition}] = tp.offset;
    return ok();
}

int64_t checkpointer::identity_bound(const std::string& topic, int32_t partition,
                                     int64_t upstream) const {
    // Identity naming: the topic has the same name on both sides. Below the
    // reverse flow's committed position on the target, whatever it did not
    // copy it skipped as ours (source-origin), so past its runs the first
    // target-origin record the group has not seen is at or after that position.
    const auto it = reverse_committed_.find({topic, partition});
    const int64_t processed = it != reverse_committed_.end() && it->second >= 0 ? it->second : 0;
    auto ends = store_.end_offsets(flow_.reverse_flow, topic, partition);
    if (!ends) return processed;  // it never copied a record of this partition
    if (upstream >= ends.value().dst_end) return std::max(ends.value().src_end, processed);
    auto back = store_.reverse_translate(flow_.reverse_flow, topic, partition, upstream);
    return back ? back.value() : 0;
}

Result<bool> checkpointer::sync_group(const std::string& group,
                                      const std::vector<kafka::mm2::checkpoint>& cps,
                                      const std::map<key, bool>& rewound, checkpointer_status& st) {
    RPL_TRY(desc, target_groups_->describe(group));
    if (desc.members > 0) {
        // The group is consuming on the target: its own commits win.
        st.skipped.push_back(group + ": " + std::to_string(desc.members) + " active member(s) on " +
                             flow_.target);
        log_.info("group " + group + " has " + std::to_string(desc.members) +
                  " active member(s) on " + flow_.target + " (" + desc.state +
                  "); not syncing its offsets");
        if (metrics_ != nullptr)
            metrics_->groups.Add({{"flow", flow_.name}, {"result", "skipped_active"}}).Increment();
        return false;
    }
    kafka::partition_list asked;
    for (const auto& cp : cps) asked.push_back({cp.topic, cp.partition});
    RPL_TRY(current, target_groups_->committed(group, asked));
    std::map<std::pair<std::string, int32_t>, int64_t> have;
    for (const auto& tp : current) have[{tp.topic, tp.partition}] = tp.offset;
    kafka::partition_list commit;
    for (const auto& cp : cps) {
        const auto it = have.find({cp.topic, cp.partition});
        const bool rw = rewound.at(key{cp.group, cp.topic, cp.partition});
        if (it == have.end() || it->second < cp.downstream_offset ||
            (rw && it->second != cp.downstream_offset))
            commit.push_back({cp.topic, cp.partition, cp.downstream_offset});
    }
    if (commit.empty()) return true;
    RPL_TRY(target_groups_->commit(group, commit));
    st.synced.push_back(group);
    log_.debug("synced " + std::to_string(commit.size()) + " offset(s) of group " + group + " on " +
               flow_.target);
    if (metrics_ != nullptr)
        metrics_->groups.Add({{"flow", flow_.name}, {"result", "synced"}}).Increment();
    return true;
}

}  // namespace rpl::checkpoint
