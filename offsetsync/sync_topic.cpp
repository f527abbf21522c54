#include "offsetsync/sync_topic.h"

#include "kafka/admin.h"
#include "kafka/reader.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

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
    if (const auto* t = md.topic(topic); t != nullptr && t->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (t->partitions.size() != 1)
            log.warn("runs topic " + topic + " on " + target.where().describe() + " has " +
                     std::to_string(t->partitions.size()) +
                     " partitions; only partition 0 is used");
        // Only for a warning: a cluster that cannot say within seconds gets none.
        auto cfg = kafka::admin(target, 5s).describe_topic_configs(topic);
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
    auto r = kafka::admin(target, 30s).create_topic(topic, 1, rf, {{"cleanup.policy", "compact"}});
    if (!r && r.error().code != errc::conflict) return r;
    if (r)
        log.info("created runs topic " + topic + " on " + target.where().describe() +
                 " (1 partition, compacted, replication factor " + std::to_string(rf) + ")");
    return ok();
}

Result<std::unique_ptr<publisher>> publisher::create(const kafka::endpoint& target,
                                                     const Logger& log, std::string topic) {
    std::unique_ptr<publisher> p(new publisher(target, std::move(topic), log));
    RPL_TRY(p->make_producer());
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

std::string publisher::where() const { return topic_ + " on " + target_.describe(); }

Result<void> publisher::make_producer() {
    RPL_TRY(prod, kafka::producer::create(target_, {}, log_,
                                          [this](const kafka::delivery& d) { on_delivery(d); }));
    producer_.emplace(std::move(prod));
    return ok();
}

void publisher::failed(level l, std::string why) {
    // Once per distinct cause: a failed batch reports every record.
    if (healthy_ || why != last_error_) log_.log(l, why + " (runs kept and sent again)");
    healthy_ = false;
    last_error_ = std::move(why);
}

void publisher::accept(const std::string& key, std::optional<std::string> value) {
    entry& e = pending_[key];
    // An older version not yet sent is simply replaced; one in flight is
    // overtaken (its report is ignored from now on).
    if (e.seq != 0 && e.sent == 0) unsent_.erase(e.seq);
    e.seq = next_seq_++;
    e.value = std::move(value);
    e.sent = 0;
    unsent_.emplace(e.seq, key);
}

Result<void> publisher::replace_failed_producer() {
    if (producer_) {
        const std::string fatal = producer_->fatal_error();
        if (fatal.empty()) return ok();
        failed(level::error, "runs producer for " + where() + " failed: " + fatal);
        producer_->purge();
        (void)producer_->poll(0ms);
        producer_.reset();
        // Whatever the failed producer still held goes out through the next.
        for (const auto& [id, key] : inflight_) {
            auto p = pending_.find(key);
            if (p == pending_.end() || p->second.sent != id) continue;
            p->second.sent = 0;
            unsent_.emplace(p->second.seq, key);
        }
        inflight_.clear();
    }
    const auto now = clock_type::now();
    if (now < next_recreate_)
        return fail(errc::kafka,
                    "runs producer for " + where() + " is being replaced (" + last_error_ + ")");
    next_recreate_ = now + backoff_;
    backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, 10s);
    if (auto r = make_producer(); !r) {
        failed(level::error,
               "replacing the runs producer for " + where() + ": " + r.error().message);
        return r;
    }
    ++recreations_;
    log_.warn("replaced the runs producer for " + where() + "; sending " +
              std::to_string(pending_.size()) + " unacknowledged run record(s) again");
    return ok();
}

Result<void> publisher::send_pending() {
    while (!unsent_.empty()) {
        auto it = unsent_.begin();
        entry& e = pending_.at(it->second);
        const uint64_t id = next_send_++;
        const auto node = inflight_.emplace(id, it->second).first;
        void* opaque = const_cast<uint64_t*>(&node->first);
        const auto err = producer_->produce_copy(topic_, 0, it->second,
                                                 e.value ? &*e.value : nullptr, 0, opaque);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            inflight_.erase(node);
            // A full queue is back-pressure, not a failure: flush() sends
            // the rest as it drains.
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return ok();
            auto error = kafka::kafka_error(err, "queueing a run record for " + where());
            failed(level::warn, error.message);
            return error;
        }
        e.sent = id;
        unsent_.erase(it);
    }
    return ok();
}

Result<void> publisher::pump() {
    if (producer_) (void)producer_->poll(0ms);
    RPL_TRY(replace_failed_producer());
    RPL_TRY(send_pending());
    recovered_if_done();
    return ok();
}

void publisher::recovered_if_done() {
    if (!pending_.empty() || healthy_) return;
    log_.info("every run record acknowledged by " + where() + " again");
    healthy_ = true;
    last_error_.clear();
}

void publisher::on_delivery(const kafka::delivery& d) {
    if (d.opaque == nullptr) return;
    const uint64_t id = *static_cast<const uint64_t*>(d.opaque);
    auto f = inflight_.find(id);
    if (f == inflight_.end()) return;
    const std::string key = std::move(f->second);
    inflight_.erase(f);
    auto p = pending_.find(key);
    // A newer version of this key was given since: it alone decides.
    if (p == pending_.end() || p->second.sent != id) return;
    if (d.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pending_.erase(p);
        backoff_ = 100ms;
        recovered_if_done();
        return;
    }
    p->second.sent = 0;
    unsent_.emplace(p->second.seq, key);
    // Purged by a producer replacement: its cause is already recorded.
    if (d.err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || d.err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return;
    failed(level::warn, kafka::kafka_error(d.err, "run record delivery to " + where()).message);
}

Result<void> publisher::publish(const std::vector<run_record>& runs) {
    for (const auto& r : runs) accept(encode_key(r.key()), encode_value(r.r, r.target_topic));
    return pump();
}

Result<void> publisher::retract(const std::vector<run_record>& runs) {
    for (const auto& r : runs) accept(encode_key(r.key()), std::nullopt);
    return pump();
}

Result<void> publisher::flush(kafka::deadline_ms deadline) {
    const auto until = clock_type::now() + deadline;
    while (true) {
        // Its error is recorded in last_error_; the loop retries until the deadline.
        (void)pump();
        if (pending_.empty()) return ok();
        const auto remaining = left(until);
        if (remaining <= 0ms) {
            std::string msg = std::to_string(pending_.size()) +
                              " run record(s) not acknowledged by " + where() + " within " +
                              std::to_string(deadline.count()) + " ms";
            if (!last_error_.empty()) msg += " (last error: " + last_error_ + ")";
            if (healthy_) last_error_ = msg;
            healthy_ = false;
            return fail(errc::timeout, std::move(msg));
        }
        if (!producer_) {
            // Waiting out the replacement backoff is part of this blocking call.
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                next_recreate_ - clock_type::now());
            std::this_thread::sleep_for(std::clamp(wait, 1ms, remaining));
        } else if (!unsent_.empty()) {
            // Room in librdkafka's queue for the rest.
            (void)producer_->poll(std::min<kafka::deadline_ms>(remaining, 100ms));
        } else {
            // Timeouts here are the loop's business; delivery reports say the rest.
            (void)producer_->flush(std::min<kafka::deadline_ms>(remaining, 1s));
        }
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
