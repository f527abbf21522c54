#include "offsetsync/catch_up.h"

#include "kafka/reader.h"

namespace rpl::offsetsync {

std::string catch_up_source(const kafka::endpoint& target, const std::string& topic) {
    return topic + "@" + target.bootstrap;
}

namespace {

// Applies runs-topic records to the store and keeps the position: the
// offset after the last record applied.
struct resumer {
    store& s;
    const Logger& log;
    const resume_options& opts;
    const std::string& source;
    resume_stats stats;
    int64_t next = 0;
    size_t since_save = 0;

    void skip(size_t& counter, int64_t offset, const std::string& why) {
        ++counter;
        // Say it loudly a few times, then only count.
        if (stats.applied.corrupt + stats.applied.conflicts <= 10)
            log.warn("runs topic " + opts.topic + " offset " + std::to_string(offset) +
                     ": skipped: " + why);
    }

    Result<void> apply(const kafka::message& m) {
        if (m.key() == nullptr) {
            skip(stats.applied.corrupt, m.offset(), "record without a key");
            return ok();
        }
        const std::string_view key(static_cast<const char*>(m.key()), m.key_size());
        auto k = decode_key(key);
        if (!k) {
            skip(stats.applied.corrupt, m.offset(), k.error().message);
            return ok();
        }
        if (m.value() == nullptr) {
            RPL_TRY(removed, s.remove(k.value()));
            if (removed) ++stats.applied.removed;
            return ok();
        }
        auto rec = decode_record(
            key, std::string_view(static_cast<const char*>(m.value()), m.value_size()));
        if (!rec) {
            skip(stats.applied.corrupt, m.offset(), rec.error().message);
            return ok();
        }
        auto applied = s.apply(rec.value());
        if (!applied) {
            if (applied.error().code != errc::conflict) return applied.error();
            skip(stats.applied.conflicts, m.offset(), applied.error().message);
            return ok();
        }
        if (applied.value() == merge_result::unchanged)
            ++stats.applied.unchanged;
        else
            ++stats.applied.applied;
        return ok();
    }

    Result<void> handle(const kafka::message& m) {
        if (opts.stop != nullptr && opts.stop->load())
            return fail(errc::cancelled,
                        "catch-up from " + source + " stopped at offset " + std::to_string(next));
        RPL_TRY(apply(m));
        // Saved after the record is applied: the position never runs ahead.
        next = m.offset() + 1;
        if (++since_save >= opts.save_every) {
            RPL_TRY(save());
        }
        return ok();
    }

    Result<void> save() {
        since_save = 0;
        return s.save_catch_up_position(source, next);
    }
};

}  // namespace

Result<resume_stats> resume_catch_up(const kafka::endpoint& target, store& s, const Logger& log,
                                     const resume_options& opts) {
    const std::string source = catch_up_source(target, opts.topic);
    resumer r{s, log, opts, source, {}};
    RPL_TRY(from, s.catch_up_position(source));
    r.next = from;
    r.stats.resumed_from = from;
    if (from > 0)
        log.info("resuming catch-up from " + opts.topic + " on " + target.describe() +
                 " at offset " + std::to_string(from));
    while (true) {
        const int64_t slice_start = r.next;
        auto high = kafka::read_to_end(
            target, opts.topic, 0, opts.stall, log,
            [&r](const kafka::message& m) { return r.handle(m); }, r.next);
        if (high) {
            if (high.value() < r.next) {
                // The topic ends below where we stopped: it was deleted and
                // created again. Its records are all new to us.
                log.warn("runs topic " + opts.topic + " on " + target.describe() + " ends at " +
                         std::to_string(high.value()) + ", below the saved catch-up position " +
                         std::to_string(r.next) + " (recreated?): reading it from the start");
                r.next = 0;
                RPL_TRY(r.save());
                continue;
            }
            r.next = high.value();
            RPL_TRY(r.save());
            r.stats.end_offset = high.value();
            r.stats.applied.end_offset = high.value();
            log.info("caught up from " + opts.topic + " on " + target.describe() + " to offset " +
                     std::to_string(high.value()) + " (from " + std::to_string(from) +
                     "): " + std::to_string(r.stats.applied.applied) + " applied, " +
                     std::to_string(r.stats.applied.unchanged) + " already known, " +
                     std::to_string(r.stats.applied.removed) + " removed, " +
                     std::to_string(r.stats.applied.corrupt) + " corrupt, " +
                     std::to_string(r.stats.applied.conflicts) + " conflicting");
            return r.stats;
        }
        if (high.error().code == errc::not_found) {
            log.info("runs topic " + opts.topic + " does not exist on " + target.describe() +
                     ": nothing to catch up");
            return r.stats;
        }
        // Keep what was read, whatever stopped the read.
        if (auto saved = r.save(); !saved) return saved.error();
        // A slice that timed out while records kept coming is progress, not
        // a failure: go on from there.
        if (high.error().code == errc::timeout && r.next > slice_start) continue;
        return high.error();
    }
}

}  // namespace rpl::offsetsync
