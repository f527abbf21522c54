#include "offsetsync/sync_topic.h"

#include "kafka/admin.h"
#include "kafka/reader.h"

#include <algorithm>
#include <chrono>

namespace rpl::offsetsync {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

kafka::deadline_ms left(clock_type::time_point until) {
    return std::max(
        0ms, std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now()));
}

}  // namespace

Result<void> ensure_runs_topic(const kafka::Client& target, const std::string& topic,
                               const Logger& log) {
    RPL_TRY(md, kafka::fetch_metadata(target, 10s));
    kafka::admin adm(target, 30s);
    if (const auto* t = md.topic(topic); t != nullptr && t->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (t->partitions.size() != 1)
            log.warn("runs topic " + topic + " on " + target.where().describe() + " has " +
                     std::to_string(t->partitions.size()) +
                     " partitions; only partition 0 is used");
        auto cfg = adm.describe_topic_configs(topic);
        if (cfg) {
            for (const auto& e : cfg.value()) {
                if (e.name == "cleanup.policy" && e.value.find("compact") == std::string::npos)
                    log.warn("runs topic " + topic + " on " + target.where().describe() +
                             " has cleanup.policy=" + e.value +
                             ": runs may be deleted by retention; it should be compact");
            }
        }
        return ok();
    }
    const int rf = static_cast<int>(std::min<size_t>(3, std::max<size_t>(1, md.brokers.size())));
    auto r = adm.create_topic(topic, 1, rf, {{"cleanup.policy", "compact"}});
    if (!r && r.error().code != errc::conflict) return r;
    if (r)
        log.info("created runs topic " + topic + " on " + target.where().describe() +
                 " (1 partition, compacted, replication factor " + std::to_string(rf) + ")");
    return ok();
}

Result<std::unique_ptr<publisher>> publisher::create(const kafka::endpoint& target,
                                                     const Logger& log, std::string topic) {
    std::unique_ptr<publisher> p(new publisher(std::move(topic), log));
    publisher* self = p.get();
    RPL_TRY(prod, kafka::producer::create(
                      target, {}, log, [self](const kafka::delivery& d) { self->on_delivery(d); }));
    p->producer_.emplace(std::move(prod));
    RPL_TRY(ensure_runs_topic(p->producer_->client(), p->topic_, log));
    return p;
}

publisher::~publisher() {
    if (!producer_) return;
    if (!pending_.empty())
        log_.warn("runs publisher closing with " + std::to_string(pending_.size()) +
                  " run record(s) not acknowledged by " + topic_);
    producer_->purge();
    (void)producer_->poll(0ms);
    producer_.reset();
}

Result<void> publisher::send(const std::string& key, entry& e) {
    e.gen = next_gen_++;
    e.failed = false;
    auto token = inflight_.insert_or_assign(e.gen, key).first;
    void* opaque = const_cast<uint64_t*>(&token->first);
    const auto until = clock_type::now() + 30s;
    while (true) {
        const auto err =
            producer_->produce_copy(topic_, 0, key, e.value ? &*e.value : nullptr, 0, opaque);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return ok();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && clock_type::now() < until) {
            (void)producer_->poll(100ms);
            continue;
        }
        inflight_.erase(e.gen);
        e.failed = true;
        return kafka::kafka_error(err, "queueing a run record for " + topic_ + " on " +
                                           producer_->client().where().describe());
    }
}

Result<void> publisher::resend_failed() {
    for (auto& [key, e] : pending_) {
        if (e.failed) {
            RPL_TRY(send(key, e));
        }
    }
    return ok();
}

void publisher::on_delivery(const kafka::delivery& d) {
    if (d.opaque == nullptr) return;
    const uint64_t gen = *static_cast<const uint64_t*>(d.opaque);
    auto f = inflight_.find(gen);
    if (f == inflight_.end()) return;
    const std::string key = std::move(f->second);
    inflight_.erase(f);
    auto p = pending_.find(key);
    // A newer version of this key was sent since: it alone decides.
    if (p == pending_.end() || p->second.gen != gen) return;
    if (d.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pending_.erase(p);
        return;
    }
    p->second.failed = true;
    last_error_ = kafka::kafka_error(d.err, "run record delivery to " + topic_).message;
    log_.warn(last_error_ + " (will re-send)");
}

Result<void> publisher::publish(const std::vector<run_record>& runs) {
    (void)producer_->poll(0ms);
    RPL_TRY(resend_failed());
    for (const auto& r : runs) {
        const std::string key = encode_key(r.key());
        entry& e = pending_[key];
        e.value = encode_value(r.r, r.target_topic);
        RPL_TRY(send(key, e));
    }
    return ok();
}

Result<void> publisher::retract(const std::vector<run_record>& runs) {
    (void)producer_->poll(0ms);
    RPL_TRY(resend_failed());
    for (const auto& r : runs) {
        const std::string key = encode_key(r.key());
        entry& e = pending_[key];
        e.value.reset();
        RPL_TRY(send(key, e));
    }
    return ok();
}

Result<void> publisher::flush(kafka::deadline_ms deadline) {
    const auto until = clock_type::now() + deadline;
    while (true) {
        if (const auto fatal = producer_->fatal_error(); !fatal.empty())
            return fail(errc::kafka, "runs publisher for " + topic_ + " on " +
                                         producer_->client().where().describe() +
                                         ": producer failed: " + fatal);
        RPL_TRY(resend_failed());
        if (pending_.empty()) return ok();
        const auto remaining = left(until);
        if (remaining <= 0ms) {
            std::string msg = std::to_string(pending_.size()) +
                              " run record(s) not acknowledged by " + topic_ + " on " +
                              producer_->client().where().describe() + " within " +
                              std::to_string(deadline.count()) + " ms";
            if (!last_error_.empty()) msg += " (last error: " + last_error_ + ")";
            return fail(errc::timeout, std::move(msg));
        }
        // Timeouts here are the loop's business; delivery reports say the rest.
        (void)producer_->flush(std::min<kafka::deadline_ms>(remaining, 1s));
        (void)producer_->poll(0ms);
    }
}

namespace {

struct applier {
    store& s;
    const Logger& log;
    const std::string& topic;
    catch_up_stats stats;

    void skip(size_t& counter, int64_t offset, const std::string& why) {
        ++counter;
        // Say it loudly a few times, then only count.
        if (stats.corrupt + stats.conflicts <= 10)
            log.warn("runs topic " + topic + " offset " + std::to_string(offset) +
                     ": skipped: " + why);
    }

    Result<void> handle(const kafka::message& m) {
        if (m.key() == nullptr) {
            skip(stats.corrupt, m.offset(), "record without a key");
            return ok();
        }
        const std::string_view key(static_cast<const char*>(m.key()), m.key_size());
        auto k = decode_key(key);
        if (!k) {
            skip(stats.corrupt, m.offset(), k.error().message);
            return ok();
        }
        if (m.value() == nullptr) {
            RPL_TRY(removed, s.remove(k.value()));
            if (removed) ++stats.removed;
            return ok();
        }
        auto rec = decode_record(
            key, std::string_view(static_cast<const char*>(m.value()), m.value_size()));
        if (!rec) {
            skip(stats.corrupt, m.offset(), rec.error().message);
            return ok();
        }
        auto applied = s.apply(rec.value());
        if (!applied) {
            if (applied.error().code != errc::conflict) return applied.error();
            skip(stats.conflicts, m.offset(), applied.error().message);
            return ok();
        }
        if (applied.value() == merge_result::unchanged)
            ++stats.unchanged;
        else
            ++stats.applied;
        return ok();
    }
};

}  // namespace

Result<catch_up_stats> catch_up(const kafka::endpoint& target, store& s,
                                kafka::deadline_ms deadline, const Logger& log,
                                const std::string& topic, int64_t from) {
    applier a{s, log, topic, {}};
    auto high = kafka::read_to_end(
        target, topic, 0, deadline, log, [&a](const kafka::message& m) { return a.handle(m); },
        from);
    if (!high) {
        if (high.error().code != errc::not_found) return high.error();
        log.info("runs topic " + topic + " does not exist on " + target.describe() +
                 ": nothing to catch up");
        return a.stats;
    }
    a.stats.end_offset = high.value();
    log.log(from > 0 ? level::debug : level::info,
            "caught up from " + topic + " on " + target.describe() + " to offset " +
                std::to_string(a.stats.end_offset) + ": " + std::to_string(a.stats.applied) +
                " applied, " + std::to_string(a.stats.unchanged) + " already known, " +
                std::to_string(a.stats.removed) + " removed, " + std::to_string(a.stats.corrupt) +
                " corrupt, " + std::to_string(a.stats.conflicts) + " conflicting");
    return a.stats;
}

}  // namespace rpl::offsetsync
