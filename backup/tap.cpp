#include "backup/tap.h"

#include "kafka/admin.h"

#include <algorithm>
#include <limits>
#include <set>

namespace rpl::backup {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* to_string(tap_state s) noexcept {
    switch (s) {
        case tap_state::starting: return "starting";
        case tap_state::running: return "running";
        case tap_state::backing_off: return "backing_off";
        case tap_state::failed: return "failed";
        case tap_state::stopped: return "stopped";
    }
    return "?";
}

struct tap::partition_state {
    std::string topic;
    int32_t partition = 0;
    bool assigned = false;
    // Set on assignment until the consumer is known to fetch from
    // next_offset; records read meanwhile are dropped (and read again).
    bool needs_seek = false;
    // Source offsets. archived_end: end of the newest stored segment (-1:
    // none known, -2: not placed yet); next_offset: where the next segment
    // starts (-1: at the first record).
    int64_t archived_end = -1;
    int64_t next_offset = -1;
    // Archive offset = source offset + base (non-zero after the source topic
    // was recreated; see epoch_entry).
    int64_t base = 0;
    // The last loss recorded (archive offsets), so that one loss is counted,
    // logged and stored once even when it is seen again.
    int64_t loss_noted_from = -1;
    int64_t loss_noted_to = -1;
    clock::time_point place_at{};  // a failed placement is retried from then on
    std::optional<segment_writer> writer;
    clock::time_point first_added{};
    int pending = 0;  // rolled segments not yet stored
    // The first record read after placement dates a backlog that no sample
    // and no commit vouches for (rpo_meter::first_record).
    bool first_record_pending = false;
};

struct tap::pending_segment {
    partition_state* ps = nullptr;
    segment_entry entry;  // for a loss: its key and source range only
    std::string bytes;
    std::uint64_t record_bytes = 0;
    int64_t base = 0;   // the partition's base when it was rolled
    bool loss = false;  // a loss object, stored ahead of the segment holding its gap
};

namespace {

constexpr auto refresh_interval = 5s;
constexpr auto max_backoff = std::chrono::milliseconds(30000);
constexpr std::uint64_t min_memory_bound = 256ull << 20;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

kafka::endpoint endpoint_of(const conf::Config& c, const std::string& alias) {
    const auto* cl = c.cluster(alias);
    return kafka::endpoint{cl->name, cl->bootstrap, cl->client};
}

std::string tp_name(const std::string& topic, int32_t partition) {
    return topic + "/" + std::to_string(partition);
}

}  // namespace

tap::tap(const conf::tap_config& cfg, tap_env env, std::unique_ptr<object_store> store)
    : cfg_(cfg),
      env_(env),
      policy_(cfg),
      log_("tap " + cfg.name),
      source_(endpoint_of(*env.config, cfg.source)),
      store_(std::move(store)) {
    status_.name = cfg_.name;
    // The supervisor declared the series (NaN) with the unit; a failed
    // predecessor's figure, still counting, stays until this meter has one.
    if (env_.metrics != nullptr) declare_tap(*env_.metrics, cfg_, true);
}

tap::~tap() { stop(); }

void tap::set_state(tap_state s, std::string error) {
    {
        std::lock_guard lock(status_mu_);
        status_.state = s;
        if (!error.empty()) status_.last_error = std::move(error);
    }
    if (env_.metrics != nullptr)
        env_.metrics->up.Add({{"tap", cfg_.name}})
            .Set(s == tap_state::running || s == tap_state::backing_off ? 1 : 0);
}

tap_status tap::status() const {
    std::lock_guard lock(status_mu_);
    return status_;
}

void tap::count_error(const std::string& kind) {
    if (env_.metrics != nullptr)
        env_.metrics->errors.Add({{"tap", cfg_.name}, {"kind", kind}}).Increment();
}

tap::partition_state& tap::part(const std::string& topic, int32_t partition) {
    auto& ps = parts_[{topic, partition}];
    if (!ps) {
        ps = std::make_unique<partition_state>();
        ps->topic = topic;
        ps->partition = partition;
    }
    return *ps;
}

Result<void> tap::connect() {
    RPL_TRY(src, kafka::producer::create(source_, {{"linger.ms", "0"}}, log_.child("source"),
                                         [](const kafka::delivery&) {}));
    source_client_.emplace(std::move(src));
    source_groups_.emplace(source_, log_.child("groups"), 10s);
    { RPL_TRY(kafka::fetch_metadata(source_client_->client(), 10s)); }
    meter_ = std::make_unique<kafka::rpo_meter>(
        source_client_->client(), log_.child("rpo"), 1s,
        [this](const kafka::rpo_meter::figures& f) { publish_figures(f); });
    meter_->start();
    RPL_TRY(rd, kafka::reader::create(source_, {}, log_.child("offsets")));
    offsets_client_.emplace(std::move(rd));
    const kafka::properties props{
        {"topic.metadata.refresh.interval.ms", "5000"},
        {"queued.max.messages.kbytes", "16384"},
        {"fetch.wait.max.ms", "100"},
        // A crashed process's partitions come back to its restart after 10 s.
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
    };
    RPL_TRY(c, kafka::consumer::create(source_, "replicatord.tap." + cfg_.name, props,
                                       log_.child("consumer")));
    consumer_.emplace(std::move(c));
    consumer_->set_rebalance_handler(kafka::rebalance_handler{
        [this](kafka::partition_list& p) { on_assign(p); },
        [this](const kafka::partition_list& p) { on_revoke(p); },
        nullptr,
    });
    return ok();
}

Result<void> tap::write_backup_meta() {
    const auto key = backup_meta_key(cfg_.name);
    auto existing = store_->get(key);
    if (existing) {
        RPL_TRY(meta, decode_backup_meta(existing.value(), key));
        if (meta.source_cluster != cfg_.source)
            log_.warn("backup " + cfg_.name + " was started from cluster " + meta.source_cluster +
                      ", now archiving " + cfg_.source + " into it");
        return ok();
    }
    if (existing.error().code != errc::not_found) return existing.error();
    const backup_meta meta{cfg_.name, cfg_.source, source_.bootstrap, now_ms(),
                           cfg_.compression == "none" ? 0 : cfg_.compression_level};
    RPL_TRY(store_->put(key, encode(meta)));
    log_.info("created backup " + cfg_.name + " in " + store_->describe());
    return ok();
}

Result<void> tap::load_topic_metas() {
    RPL_TRY(objects, store_->list(cfg_.name + "/topics/"));
    // Keys sort by time within a topic: the last one per topic is the newest.
    std::map<std::string, std::string> newest;
    for (const auto& o : objects) {
        const auto rest = o.key.substr(cfg_.name.size() + 8);  // after "<name>/topics/"
        const auto slash = rest.find('/');
        if (slash == std::string::npos) continue;
        newest[rest.substr(0, slash)] = o.key;
    }
    for (const auto& [topic, key] : newest) {
        RPL_TRY(bytes, store_->get(key));
        RPL_TRY(m, decode_topic_meta(bytes, key));
        stored_partitions_[topic] = m.partitions;
    }
    return ok();
}

Result<void> tap::start() {
    set_state(tap_state::starting);
    auto r = [&]() -> Result<void> {
        RPL_TRY(store_->check());
        RPL_TRY(connect());
        RPL_TRY(write_backup_meta());
        RPL_TRY(load_topic_metas());
        return ok();
    }();
    if (!r) {
        set_state(tap_state::failed, r.error().message);
        return r;
    }
    thread_ = std::thread([this] { run(); });
    return ok();
}

void tap::stop() noexcept {
    stop_requested_.store(true);
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool tap::sleep_for(std::chrono::milliseconds d) {
    std::unique_lock lock(wake_mu_);
    return !wake_.wait_for(lock, d, [this] { return stop_requested_.load(); });
}

Result<void> tap::record_loss(partition_state& ps, int64_t from, int64_t to,
                              const std::string& why) {
    loss_entry l;
    l.topic = ps.topic;
    l.partition = ps.partition;
    l.from = from + ps.base;
    l.to = to + ps.base;
    l.noticed_ms = now_ms();
    // Seen again after a rebalance before its segment was stored: already
    // recorded, counted and logged once.
    if (ps.loss_noted_from == l.from && ps.loss_noted_to >= l.to) return ok();
    if (auto r = store_->put(loss_key(cfg_.name, l), ""); !r) {
        if (env_.metrics != nullptr)
            env_.metrics->store_errors.Add({{"tap", cfg_.name}, {"op", "put"}}).Increment();
        return r;
    }
    ps.loss_noted_from = l.from;
    ps.loss_noted_to = l.to;
    if (env_.metrics != nullptr)
        env_.metrics->lost_to_retention.Add({{"tap", cfg_.name}})
            .Increment(static_cast<double>(to - from));
    log_.error(tp_name(ps.topic, ps.partition) + ": offsets " + std::to_string(from) + " to " +
               std::to_string(to - 1) + " (" + std::to_string(to - from) +
               " records) were deleted at the source before they were archived (" + why +
               "); recorded as lost in the archive");
    return ok();
}

void tap::queue_loss(partition_state& ps, int64_t from, int64_t to) {
    if (ps.loss_noted_from == from + ps.base && ps.loss_noted_to >= to + ps.base) return;
    pending_segment s;
    s.ps = &ps;
    s.loss = true;
    s.entry.topic = ps.topic;
    s.entry.partition = ps.partition;
    s.entry.start_offset = from;
    s.entry.end_offset = to;
    s.base = ps.base;
    loss_entry l{{}, ps.topic, ps.partition, from + ps.base, to + ps.base, now_ms()};
    s.entry.key = loss_key(cfg_.name, l);
    ps.loss_noted_from = l.from;
    ps.loss_noted_to = l.to;
    ++ps.pending;
    pending_.push_back(std::move(s));
    if (env_.metrics != nullptr)
        env_.metrics->lost_to_retention.Add({{"tap", cfg_.name}})
            .Increment(static_cast<double>(to - from));
    log_.error(tp_name(ps.topic, ps.partition) + ": offsets " + std::to_string(from) + " to " +
               std::to_string(to - 1) + " (" + std::to_string(to - from) +
               " records) were deleted at the source (retention overtook the tap) before they "
               "were archived; recorded as lost in the archive");
}

Result<void> tap::place(partition_state& ps) {
    const std::string name = tp_name(ps.topic, ps.partition);
    kafka::partition_list q{{ps.topic, ps.partition}};
    RPL_TRY(committed, consumer_->committed(q, 10s));
    const int64_t c = committed.empty() ? -1 : committed[0].offset;
    const std::string committed_metadata =
        committed.empty() ? std::string() : committed[0].metadata;

    const auto t0 = clock::now();
    char pbuf[16];
    std::snprintf(pbuf, sizeof pbuf, "%06d", static_cast<int>(ps.partition));
    auto listed = store_->list(cfg_.name + "/segments/" + ps.topic + "/" + pbuf + "/");
    auto epochs = listed ? store_->list(epoch_prefix(cfg_.name, ps.topic, ps.partition))
                         : Result<std::vector<object_info>>(listed.error());
    if (env_.metrics != nullptr)
        env_.metrics->store_latency
            .Add({{"tap", cfg_.name}, {"op", "list"}}, store_latency_buckets())
            .Observe(std::chrono::duration<double>(clock::now() - t0).count());
    if (!listed || !epochs) {
        if (env_.metrics != nullptr)
            env_.metrics->store_errors.Add({{"tap", cfg_.name}, {"op", "list"}}).Increment();
        return !listed ? listed.error() : epochs.error();
    }
    int64_t archive_end = -1;  // in archive offsets
    for (const auto& o : listed.value()) {
        auto e = parse_segment_key(o.key, o.size);
        if (!e) {
            log_.warn("ignoring " + e.error().message);
            continue;
        }
        archive_end = std::max(archive_end, e.value().end_offset);
    }
    int64_t base = 0;
    for (const auto& o : epochs.value())
        if (auto e = parse_epoch_key(o.key)) base = std::max(base, e.value().base);

    RPL_TRY(wm, offsets_client_->query_watermarks(ps.topic, ps.partition, 10s));
    int64_t start = 0;  // source offset to resume at
    const int64_t archive_base = base;
    const std::string archive_says =
        archive_end >= 0 ? std::to_string(archive_end - base) : std::string("nothing");
    if (archive_end >= 0) {
        start = archive_end - base;
        if (wm.high < start) {
            // The log ends below what was archived: the topic was recreated
            // (or truncated). Its records are new data; they continue the
            // archive's offsets from a new epoch instead of being discarded
            // as already archived.
            epoch_entry e{{}, ps.topic, ps.partition, archive_end, now_ms()};
            RPL_TRY(store_->put(epoch_key(cfg_.name, e), ""));
            if (env_.metrics != nullptr)
                env_.metrics->topic_resets.Add({{"tap", cfg_.name}}).Increment();
            log_.error(name + ": the source's log ends at " + std::to_string(wm.high) +
                       " (starts at " + std::to_string(wm.low) + "), below the " +
                       std::to_string(start) +
                       " already archived: the topic was recreated or truncated. Archiving it as "
                       "new data from archive offset " +
                       std::to_string(archive_end));
            base = archive_end;
            start = 0;
        }
    } else {
        // Nothing archived (a new store, a lost bucket): everything the
        // source still holds, not just what follows the group's commit.
        start = wm.low;
        // Committed below the log start: the tap once archived up to c, and
        // what followed was deleted before this store got it.
        if (c >= 0 && c < wm.low) start = c;
    }
    // Any disagreement is worth one line: normally the group commits exactly
    // where the archive ends.
    if (c >= 0 && (archive_end < 0 || c != archive_end - archive_base))
        log_.warn(name + ": the archive ends at " + archive_says + " but group replicatord.tap." +
                  cfg_.name + " committed " + std::to_string(c) + "; resuming at " +
                  std::to_string(start) + " as the archive says");
    ps.base = base;
    if (start < wm.low) {
        RPL_TRY(record_loss(ps, start, wm.low,
                            archive_end >= 0 ? "retention overtook the stopped tap"
                                             : "committed by the tap, not in this store"));
    }
    ps.next_offset = start;
    ps.archived_end = start;
    ps.first_record_pending = true;
    // The RPO bound the last run committed holds for every position at or
    // after its commit.
    meter_->assign(
        ps.topic, ps.partition, start,
        c >= 0 && start >= c ? kafka::rpo_meter::restore_since(committed_metadata) : std::nullopt);
    log_.debug(name + " resumes at " + std::to_string(start) +
               (base != 0 ? " (archive offset " + std::to_string(start + base) + ")" : ""));
    return ok();
}

void tap::on_assign(kafka::partition_list& parts) {
    // No store or broker I/O here (inside poll()): the run loop places each
    // partition before anything it reads is kept.
    try {
        for (auto& tp : parts) {
            auto& ps = part(tp.topic, tp.partition);
            // Fetching starts at an absolute offset until placed, never at a
            // logical one: librdkafka 2.0.2 (issue 2256) lets the reply to a
            // lookup of OFFSET_END that arrives after the run loop's seek
            // undo it, moves the partition to the log end and silently skips
            // what lay between (bench/soak: 15 records of each partition of
            // a topic, archived as absent offsets). The last place this
            // partition was read to, else 0; an offset out of range resets
            // to the earliest, and a move backward only re-reads records the
            // tap drops. Nor does librdkafka query the group's commits
            // itself (a failed query leaves the partition never fetched, see
            // rebalance_handler::on_assign).
            tp.offset = std::max<int64_t>(ps.next_offset, 0);
            ps.assigned = true;
            ps.needs_seek = true;
            ps.archived_end = -2;  // unknown until placed
            ps.writer.reset();
        }
        // Primed partitions this member did not get belong to another.
        if (!primed_.empty() && !parts.empty()) {
            for (const auto& tp : parts) primed_.erase({tp.topic, tp.partition});
            for (const auto& [topic, partition] : primed_) meter_->revoke(topic, partition);
            primed_.clear();
        }
        // librdkafka keeps a partition's pause across unassign and assign:
        // one paused while the store failed, then lost in a source outage
        // while the tap resumed an empty assignment, would come back paused
        // for good (the flow's fault, found by bench/soak).
        if (paused_)
            (void)consumer_->pause(parts);
        else
            (void)consumer_->resume(parts);
        log_.info("assigned " + std::to_string(parts.size()) + " partition(s)");
    } catch (...) {
        callback_error_ = std::current_exception();
    }
}

void tap::place_partitions() {
    // The store is the worker's while an upload is in flight; a partition
    // with segments still pending is placed once they are stored.
    if (store_busy()) return;
    kafka::partition_list seeks;
    for (auto& [key, ps] : parts_) {
        if (!ps->assigned || !ps->needs_seek || ps->pending > 0) continue;
        if (ps->archived_end == -2) {
            if (clock::now() < ps->place_at) continue;
            if (auto r = place(*ps); !r) {
                count_error("placement");
                log_.warn("cannot place " + tp_name(ps->topic, ps->partition) + ": " +
                          r.error().message + "; retrying in 1 s");
                ps->place_at = clock::now() + 1s;
                continue;
            }
        }
        seeks.push_back({ps->topic, ps->partition, ps->next_offset});
    }
    if (seeks.empty()) return;
    if (auto r = consumer_->seek(seeks, 10s); !r) {
        count_error("seek");
        // A partition librdkafka never started fetching refuses seeks: take
        // it again at the placed offset instead.
        auto again = consumer_->reassign(seeks);
        log_.warn(r.error().message +
                  (again ? "; re-assigned the partition(s) at their placed "
                           "offsets instead"
                         : "; re-assigning failed too: " + again.error().message));
        if (!again) return;
    }
    for (const auto& tp : seeks) part(tp.topic, tp.partition).needs_seek = false;
}

void tap::on_revoke(const kafka::partition_list& parts) {
    // No store I/O here: what is buffered for these partitions is dropped,
    // and whoever owns them next reads it again from the archive's end. A
    // segment upload in flight completes, but commits nothing for them.
    try {
        for (const auto& tp : parts) {
            auto& ps = part(tp.topic, tp.partition);
            if (ps.writer && ps.writer->records() > 0)
                log_.info(tp_name(tp.topic, tp.partition) + ": " +
                          std::to_string(ps.writer->records()) +
                          " buffered record(s) dropped on revocation; the next owner re-reads "
                          "them");
            drop_pending(ps);
            ps.assigned = false;
            ps.needs_seek = false;
            ps.writer.reset();
            // The meter is the tap's own: no I/O, safe inside the callback.
            // A failed tap keeps following what it owned: its figure keeps
            // growing until a new instance takes over.
            if (status().state != tap_state::failed) meter_->revoke(tp.topic, tp.partition);
        }
        log_.info("revoked " + std::to_string(parts.size()) + " partition(s)");
    } catch (...) {
        callback_error_ = std::current_exception();
    }
}

void tap::drop_pending(partition_state& ps) {
    // The front may be uploading: it stays until its put returns.
    const auto first = pending_.begin() + (store_busy() && !pending_.empty() ? 1 : 0);
    const auto keep = std::remove_if(first, pending_.end(),
                                     [&](const pending_segment& s) { return s.ps == &ps; });
    pending_.erase(keep, pending_.end());
    ps.pending = store_busy() && !pending_.empty() && pending_.front().ps == &ps ? 1 : 0;
}

void tap::handle(kafka::message& m) {
    if (m.err()) {
        const auto err = m.err();
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
            err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
            err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
            log_.debug("consumer: " + m.error_string());
            return;
        }
        count_error("consume");
        log_.warn("consumer: " + m.error_string());
        return;
    }
    auto it = parts_.find({std::string(m.topic()), m.partition()});
    if (it == parts_.end()) return;
    auto& ps = *it->second;
    if (!ps.assigned || ps.needs_seek) return;
    // The next source offset this partition expects.
    const int64_t expected = ps.writer ? ps.writer->next_offset() - ps.base : ps.next_offset;
    if (expected >= 0 && m.offset() < expected) {
        int64_t low = 0, high = 0;
        if (consumer_->cached_watermarks(ps.topic, ps.partition, low, high) && high >= 0 &&
            high < expected) {
            // The log now ends below what was read: recreated or truncated
            // while we read it. Keep what was read, place the partition again.
            log_.warn(tp_name(ps.topic, ps.partition) + ": offset " + std::to_string(m.offset()) +
                      " read after " + std::to_string(expected - 1) + ", log end " +
                      std::to_string(high) + ": placing the partition again");
            roll(ps, false);
            ps.needs_seek = true;
            ps.archived_end = -2;
            return;
        }
        log_.debug(tp_name(ps.topic, ps.partition) + ": dropping re-read offset " +
                   std::to_string(m.offset()));
        return;
    }
    if (expected >= 0 && m.offset() > expected) {
        // A skip is compaction or transaction markers, unless the log start
        // moved past it: then retention deleted records before we read them.
        int64_t low = 0, high = 0;
        if (consumer_->cached_watermarks(ps.topic, ps.partition, low, high) && low > expected)
            queue_loss(ps, expected, std::min(low, m.offset()));
        log_.debug(tp_name(ps.topic, ps.partition) + ": offsets " + std::to_string(expected) +
                   ".." + std::to_string(m.offset() - 1) +
                   " not returned by the source (compacted away, transaction markers or aborted "
                   "records); recorded as absent");
    }
    if (ps.first_record_pending) {
        ps.first_record_pending = false;
        meter_->first_record(ps.topic, ps.partition, m.offset(), m.timestamp());
    }
    if (!ps.writer) {
        const int64_t start = expected >= 0 ? expected : m.offset();
        const int level = cfg_.compression == "none" ? 0 : cfg_.compression_level;
        ps.writer.emplace(ps.topic, ps.partition, start + ps.base, level);
        ps.first_added = clock::now();
    }
    ps.writer->add(m, ps.base);
    // Full: roll now, mid-batch. The segment ends after its last record (the
    // consumer's position may already be past records of this batch).
    if (ps.writer->buffered_bytes() >= cfg_.segment_max_bytes) roll(ps, false);
}

void tap::roll(partition_state& ps, bool use_position) {
    if (!ps.writer || ps.writer->records() == 0) return;
    int64_t end = ps.writer->next_offset();
    // The consumer's position covers transaction markers and aborted records
    // after the last record: they become a recorded gap.
    if (consumer_ && use_position) {
        const auto pos = consumer_->positions({{ps.topic, ps.partition}});
        if (!pos.empty() && pos[0].offset >= 0 && pos[0].offset + ps.base > end) {
            log_.debug(tp_name(ps.topic, ps.partition) + ": segment ends at the position " +
                       std::to_string(pos[0].offset) + ", past its last record " +
                       std::to_string(end - ps.base - 1));
            end = pos[0].offset + ps.base;
        }
    }
    pending_segment s;
    s.ps = &ps;
    s.base = ps.base;
    s.record_bytes = ps.writer->buffered_bytes();
    s.bytes = ps.writer->finish(end);
    const auto& sum = ps.writer->summary();
    s.entry.topic = ps.topic;
    s.entry.partition = ps.partition;
    s.entry.start_offset = sum.start_offset;
    s.entry.end_offset = sum.end_offset;
    s.entry.min_timestamp = sum.min_timestamp;
    s.entry.max_timestamp = sum.max_timestamp;
    s.entry.records = sum.records;
    s.entry.size = s.bytes.size();
    s.entry.key = segment_key(cfg_.name, s.entry);
    ps.next_offset = sum.end_offset - ps.base;
    ps.writer.reset();
    ++ps.pending;
    pending_.push_back(std::move(s));
}

std::uint64_t tap::memory_bytes() const {
    std::uint64_t total = 0;
    for (const auto& [key, ps] : parts_)
        if (ps->writer) total += ps->writer->memory_bytes();
    for (const auto& s : pending_) total += s.bytes.size();
    return total;
}

void tap::roll_due() {
    const auto now = clock::now();
    for (auto& [key, ps] : parts_) {
        if (!ps->writer || ps->writer->records() == 0) continue;
        if (ps->writer->buffered_bytes() >= cfg_.segment_max_bytes ||
            now - ps->first_added >= cfg_.segment_max_interval)
            roll(*ps);
    }
    // The memory bound: while puts succeed, roll the largest open segment early.
    const std::uint64_t bound =
        std::max<std::uint64_t>(min_memory_bound, 2 * cfg_.segment_max_bytes);
    while (pending_.empty() && memory_bytes() > bound) {
        partition_state* largest = nullptr;
        for (auto& [key, ps] : parts_)
            if (ps->writer && ps->writer->records() > 0 &&
                (largest == nullptr ||
                 ps->writer->memory_bytes() > largest->writer->memory_bytes()))
                largest = ps.get();
        if (largest == nullptr) break;
        roll(*largest);
    }
}

void tap::finish_put(const Result<void>& r, double secs) {
    auto& s = pending_.front();
    auto* m = env_.metrics;
    if (m != nullptr)
        m->store_latency.Add({{"tap", cfg_.name}, {"op", "put"}}, store_latency_buckets())
            .Observe(secs);
    if (!r) {
        if (m != nullptr) m->store_errors.Add({{"tap", cfg_.name}, {"op", "put"}}).Increment();
        log_.warn("storing " + s.entry.key + " failed: " + r.error().message + "; retrying in " +
                  std::to_string(backoff_.count()) + " ms");
        set_state(tap_state::backing_off, r.error().message);
        retry_at_ = clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, max_backoff);
        return;
    }
    auto& ps = *s.ps;
    --ps.pending;
    if (s.loss) {
        // A loss object: the segment holding its gap follows in pending_.
        log_.debug("stored " + s.entry.key);
    } else {
        // Revoked meanwhile: stored, but the next owner places the partition.
        if (ps.assigned && !ps.needs_seek) ps.archived_end = s.entry.end_offset - s.base;
        record_bytes_total_ += s.record_bytes;
        stored_bytes_total_ += s.bytes.size();
        last_put_ = clock::now();
        if (m != nullptr) {
            const prometheus::Labels l{{"tap", cfg_.name}};
            m->bytes.Add(l).Increment(static_cast<double>(s.record_bytes));
            m->stored_bytes.Add(l).Increment(static_cast<double>(s.bytes.size()));
            m->records.Add(l).Increment(static_cast<double>(s.entry.records));
            m->segments.Add(l).Increment();
            if (stored_bytes_total_ > 0)
                m->compression.Add(l).Set(static_cast<double>(record_bytes_total_) /
                                          static_cast<double>(stored_bytes_total_));
        }
        log_.debug("stored " + s.entry.key + " (" + std::to_string(s.entry.records) + " records, " +
                   std::to_string(s.bytes.size()) + " bytes)");
        // Durably stored: now, and only now, the group may move past it.
        if (ps.assigned && !ps.needs_seek && consumer_) {
            const int64_t next = s.entry.end_offset - s.base;
            if (auto c =
                    consumer_->commit({{ps.topic, ps.partition, next,
                                        meter_->commit_metadata(ps.topic, ps.partition, next)}},
                                      true);
                !c) {
                count_error("commit");
                log_.warn(c.error().message);
            }
        }
        std::lock_guard lock(status_mu_);
        ++status_.segments;
    }
    pending_.pop_front();
    if (backoff_ != 1000ms || status().state == tap_state::backing_off) {
        backoff_ = 1000ms;
        set_state(tap_state::running);
    }
}

void tap::pump_uploads(bool start_next) {
    if (upload_.valid()) {
        if (upload_.wait_for(0s) != std::future_status::ready) return;
        auto r = upload_.get();  // rethrows what the put threw
        finish_put(r, std::chrono::duration<double>(clock::now() - upload_started_).count());
    }
    if (!start_next || pending_.empty() || clock::now() < retry_at_) return;
    // The front stays in pending_ (and its bytes in place) until the put returns.
    auto* store = store_.get();
    const std::string_view key = pending_.front().entry.key;
    const std::string_view bytes = pending_.front().bytes;
    upload_started_ = clock::now();
    upload_ =
        std::async(std::launch::async, [store, key, bytes] { return store->put(key, bytes); });
}

bool tap::store_pending() {
    if (upload_.valid()) {
        auto r = upload_.get();
        finish_put(r, std::chrono::duration<double>(clock::now() - upload_started_).count());
        if (!r) return false;
    }
    while (!pending_.empty()) {
        const auto t0 = clock::now();
        auto r = store_->put(pending_.front().entry.key, pending_.front().bytes);
        finish_put(r, std::chrono::duration<double>(clock::now() - t0).count());
        if (!r) return false;
    }
    return true;
}

void tap::apply_backpressure() {
    const std::uint64_t bound =
        std::max<std::uint64_t>(min_memory_bound, 2 * cfg_.segment_max_bytes);
    const std::uint64_t mem = memory_bytes();
    if (!paused_ && !pending_.empty() && mem > bound) {
        paused_ = true;
        (void)consumer_->pause(consumer_->assignment());
        log_.warn("pausing consumption: " + std::to_string(mem) +
                  " bytes held while the store fails");
    } else if (paused_ && (pending_.empty() || mem < bound * 3 / 4)) {
        paused_ = false;
        (void)consumer_->resume(consumer_->assignment());
        log_.info("resuming consumption");
    }
}

Result<void> tap::discover() {
    RPL_TRY(md, kafka::fetch_metadata(source_client_->client(), 10s));
    std::vector<std::string> wanted;
    for (const auto& t : md.topics) {
        if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partitions.empty()) continue;
        if (!policy_.mirrored(t.name)) continue;
        wanted.push_back(t.name);
        const auto n = static_cast<int32_t>(t.partitions.size());
        const auto known = stored_partitions_.find(t.name);
        if (known != stored_partitions_.end() && known->second == n) continue;
        topic_meta tm;
        tm.topic = t.name;
        tm.partitions = n;
        tm.taken_ms = now_ms();
        kafka::admin adm(source_client_->client(), 10s);
        if (auto cfgs = adm.describe_topic_configs(t.name)) {
            for (const auto& e : cfgs.value())
                if (e.source == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG && !e.is_sensitive)
                    tm.configs[e.name] = e.value;
        } else {
            log_.warn("topic configs of " + t.name + ": " + cfgs.error().message);
        }
        if (auto r = store_->put(topic_meta_key(cfg_.name, tm), encode(tm)); !r) {
            if (env_.metrics != nullptr)
                env_.metrics->store_errors.Add({{"tap", cfg_.name}, {"op", "put"}}).Increment();
            log_.warn("storing topic meta of " + t.name + ": " + r.error().message);
            continue;
        }
        stored_partitions_[t.name] = n;
        log_.info("recorded topic " + t.name + " (" + std::to_string(n) + " partitions)");
    }
    if (wanted != subscribed_) {
        RPL_TRY(consumer_->subscribe(wanted));
        for (const auto& n : wanted)
            if (std::find(subscribed_.begin(), subscribed_.end(), n) == subscribed_.end())
                log_.info("archiving " + n);
        const bool first = subscribed_.empty();
        subscribed_ = wanted;
        topics_known_.store(wanted.empty() ? 0 : 1);
        if (first && !wanted.empty()) primed_ = meter_->follow_commits(*consumer_, subscribed_);
        std::lock_guard lock(status_mu_);
        status_.topics = wanted;
    }
    if (wanted.empty()) topics_known_.store(0);
    return ok();
}

void tap::snapshot_groups() {
    if (subscribed_.empty()) return;
    const std::set<std::string> topics(subscribed_.begin(), subscribed_.end());
    kafka::admin adm(source_client_->client(), 10s);
    auto groups = adm.list_groups();
    if (!groups) {
        count_error("group_snapshot");
        log_.warn("listing groups: " + groups.error().message);
        return;
    }
    std::map<std::string, std::vector<group_offset>> snap;
    kafka::partition_list parts;
    for (const auto& [key, ps] : parts_)
        if (topics.contains(key.first)) parts.push_back({key.first, key.second});
    for (const auto& g : groups.value()) {
        if (g.group_id.starts_with("replicatord")) continue;
        auto offsets = source_groups_->committed(g.group_id, parts);
        if (!offsets) {
            log_.debug("offsets of group " + g.group_id + ": " + offsets.error().message);
            continue;
        }
        std::vector<group_offset> mine;
        for (const auto& tp : offsets.value())
            if (tp.offset >= 0 && topics.contains(tp.topic))
                mine.push_back({tp.topic, tp.partition, tp.offset});
        if (mine.empty()) continue;
        std::sort(mine.begin(), mine.end(), [](const auto& a, const auto& b) {
            return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
        });
        snap[g.group_id] = std::move(mine);
    }
    // An unchanged snapshot adds nothing: the previous one still holds.
    if (snap == last_snapshot_) return;
    group_snapshot s;
    s.taken_ms = now_ms();
    s.groups = snap;
    const auto t0 = clock::now();
    auto r = store_->put(group_snapshot_key(cfg_.name, s.taken_ms), encode(s));
    if (env_.metrics != nullptr)
        env_.metrics->store_latency
            .Add({{"tap", cfg_.name}, {"op", "put"}}, store_latency_buckets())
            .Observe(std::chrono::duration<double>(clock::now() - t0).count());
    if (!r) {
        if (env_.metrics != nullptr)
            env_.metrics->store_errors.Add({{"tap", cfg_.name}, {"op", "put"}}).Increment();
        log_.warn("storing group snapshot: " + r.error().message);
        return;
    }
    last_snapshot_ = std::move(snap);
    if (env_.metrics != nullptr)
        env_.metrics->group_snapshots.Add({{"tap", cfg_.name}}).Increment();
    log_.debug("stored group snapshot of " + std::to_string(s.groups.size()) + " group(s)");
}

void tap::publish_figures(const kafka::rpo_meter::figures& f) {
    // On the meter's thread, so the figure moves while the tap's own thread
    // waits on a slow store. While some partition has no figure the gauge
    // says "unknown" (NaN): until this meter has one, a failed predecessor's
    // figure, still counting, stays; once this meter has published, a number
    // left standing would stop moving and read better than the truth. A tap
    // with no topics has nothing at risk.
    if (!f.complete && topics_known_.load() != 0) {
        if (figure_published_ && env_.metrics != nullptr)
            env_.metrics->rpo.Add({{"tap", cfg_.name}})
                .Set(std::numeric_limits<double>::quiet_NaN());
        return;
    }
    figure_published_ = true;
    if (env_.metrics != nullptr) {
        const prometheus::Labels l{{"tap", cfg_.name}};
        env_.metrics->rpo.Add(l).Set(f.rpo_seconds);
        env_.metrics->lag.Add(l).Set(static_cast<double>(f.lag));
    }
    std::lock_guard lock(status_mu_);
    status_.lag = f.lag;
    status_.rpo_seconds = f.rpo_seconds;
}

void tap::update_metrics() {
    const auto now = clock::now();
    kafka::partition_list query;
    std::vector<partition_state*> order;
    for (auto& [key, ps] : parts_) {
        if (!ps->assigned || ps->needs_seek || ps->archived_end < 0) continue;
        query.push_back({ps->topic, ps->partition});
        order.push_back(ps.get());
    }
    const auto pos = consumer_->positions(query);
    for (std::size_t i = 0; i < order.size(); ++i) {
        auto& ps = *order[i];
        // Safe: durably archived. With nothing buffered or pending, whatever
        // the consumer skipped past (markers, aborted records) is safe too.
        int64_t safe = ps.archived_end;
        if (!ps.writer && ps.pending == 0 && i < pos.size()) safe = std::max(safe, pos[i].offset);
        meter_->acknowledge(ps.topic, ps.partition, safe);
    }
    if (env_.metrics != nullptr) {
        const prometheus::Labels l{{"tap", cfg_.name}};
        env_.metrics->buffered_bytes.Add(l).Set(static_cast<double>(memory_bytes()));
        env_.metrics->last_segment_age.Add(l).Set(
            std::chrono::duration<double>(now - last_put_).count());
    }
}

void tap::run() noexcept {
    set_state(tap_state::running);
    log_.info("running: group replicatord.tap." + cfg_.name + ", store " + store_->describe());
    try {
        run_loop();
    } catch (const std::exception& e) {
        // A bug or an exhausted resource (zstd, bad_alloc, regex_error): this
        // tap fails and says why; the process and every other unit go on.
        count_error("exception");
        log_.error(std::string("failed: ") + e.what());
        set_state(tap_state::failed, std::string("tap thread: ") + e.what());
    } catch (...) {
        count_error("exception");
        log_.error("failed: unknown exception");
        set_state(tap_state::failed, "tap thread: unknown exception");
    }
    shutdown();
}

void tap::run_loop() {
    std::vector<kafka::message> batch;
    batch.reserve(10000);
    while (!stop_requested_.load()) {
        const auto now = clock::now();
        {
            std::lock_guard lock(status_mu_);
            status_.loop_at = now;
        }
        pump_uploads(false);  // collects a finished upload: the store is free below
        if (now >= next_refresh_ && !store_busy()) {
            next_refresh_ = now + refresh_interval;
            if (auto r = discover(); !r) {
                count_error("discovery");
                log_.warn("discovery: " + r.error().message);
            }
        }
        if (now >= next_snapshot_ && !store_busy()) {
            next_snapshot_ = now + cfg_.group_snapshot_interval;
            snapshot_groups();
        }
        place_partitions();
        apply_backpressure();

        batch.clear();
        consumer_->poll(batch, 10000, 100ms);
        if (callback_error_) std::rethrow_exception(std::exchange(callback_error_, nullptr));
        for (auto& m : batch) handle(m);
        batch.clear();

        roll_due();
        // The next upload waits while the loop has its own store work due
        // (placing a partition, topic metadata, a group snapshot), so that
        // a steady stream of segments never starves it.
        const auto t = clock::now();
        bool store_work_due = t >= next_refresh_ || t >= next_snapshot_;
        for (const auto& [key, ps] : parts_)
            store_work_due =
                store_work_due || (ps->assigned && ps->needs_seek && ps->archived_end == -2 &&
                                   ps->pending == 0 && t >= ps->place_at);
        pump_uploads(!store_work_due);
        if (clock::now() >= next_metrics_) {
            next_metrics_ = clock::now() + 1s;
            update_metrics();
        }
    }
}

void tap::shutdown() noexcept {
    const bool failed = status().state == tap_state::failed;
    try {
        if (consumer_) {
            // After a failure nothing more is written: the next run resumes at
            // the archive's end and re-reads the rest.
            if (!failed) {
                // Everything buffered becomes a segment; stored ones are committed.
                for (auto& [key, ps] : parts_)
                    if (ps->assigned && !ps->needs_seek) roll(*ps);
            }
            // While the store is failing, the store's own retries could hold
            // the shutdown for minutes: give up at once. Nothing is lost, the
            // next run resumes at the archive's end and re-reads the rest.
            const bool store_failing = status().state == tap_state::backing_off;
            // A put in flight reads pending_: it ends before pending_ is cleared.
            if ((failed || store_failing) && upload_.valid()) upload_.wait();
            if (!pending_.empty() && (failed || store_failing || !store_pending())) {
                log_.warn(std::to_string(pending_.size()) +
                          " object(s) could not be stored before stopping; the next run re-reads "
                          "them from the source");
                for (auto& seg : pending_) seg.ps->pending = 0;
                pending_.clear();
            }
            kafka::partition_list positions;
            for (auto& [key, ps] : parts_)
                if (ps->assigned && !ps->needs_seek && ps->archived_end >= 0)
                    positions.push_back({ps->topic, ps->partition, ps->archived_end,
                                         meter_ ? meter_->commit_metadata(ps->topic, ps->partition,
                                                                          ps->archived_end)
                                                : std::string()});
            if (auto r = consumer_->commit(positions, false); !r)
                log_.warn("final commit: " + r.error().message);
            consumer_->close(5s);
        }
    } catch (const std::exception& e) {
        log_.error(std::string("stopping: ") + e.what());
    } catch (...) {
        log_.error("stopping: unknown exception");
    }
    if (upload_.valid()) upload_.wait();
    pending_.clear();
    consumer_.reset();
    offsets_client_.reset();
    // A failed tap keeps its meter (and the handle it samples through) until
    // it is destroyed: its RPO keeps growing while it waits to be restarted.
    if (!failed) {
        if (meter_) meter_->stop();
        meter_.reset();
        source_client_.reset();
    }
    if (!failed) set_state(tap_state::stopped);
    log_.info(failed ? "stopped after failure" : "stopped");
}

}  // namespace rpl::backup
