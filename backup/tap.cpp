#include "backup/tap.h"

#include "kafka/admin.h"

#include <algorithm>
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
    int64_t archived_end = -1;  // end of the newest stored segment (-1: none known)
    int64_t next_offset = -1;   // where the next segment starts (-1: at the first record)
    std::optional<segment_writer> writer;
    clock::time_point first_added{};
    int pending = 0;  // rolled segments not yet stored
    // (observed at, high watermark) marks for the RPO estimate.
    std::deque<std::pair<clock::time_point, int64_t>> marks;
    clock::time_point safe_at = clock::now();
};

struct tap::pending_segment {
    partition_state* ps = nullptr;
    segment_entry entry;
    std::string bytes;
    std::uint64_t record_bytes = 0;
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
    if (env_.metrics != nullptr) {
        auto& m = *env_.metrics;
        const prometheus::Labels l{{"tap", cfg_.name}};
        if (cfg_.rpo_target)
            m.rpo_target.Add(l).Set(static_cast<double>(cfg_.rpo_target->count()) / 1000.0);
        if (cfg_.rto_target)
            m.rto_target.Add(l).Set(static_cast<double>(cfg_.rto_target->count()) / 1000.0);
        m.up.Add(l).Set(0);
        m.rpo.Add(l).Set(0);
        m.bytes.Add(l);
        m.stored_bytes.Add(l);
        m.records.Add(l);
        m.segments.Add(l);
        m.store_errors.Add({{"tap", cfg_.name}, {"op", "put"}});
    }
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
    { RPL_TRY(kafka::fetch_metadata(source_client_->client(), 10s)); }
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
        [this](const kafka::partition_list& p) { on_assign(p); },
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

Result<int64_t> tap::resume_offset(const std::string& topic, int32_t partition, int64_t committed) {
    char pbuf[16];
    std::snprintf(pbuf, sizeof pbuf, "%06d", static_cast<int>(partition));
    const std::string prefix = cfg_.name + "/segments/" + topic + "/" + pbuf + "/";
    const auto t0 = clock::now();
    auto listed = store_->list(prefix);
    if (env_.metrics != nullptr)
        env_.metrics->store_latency
            .Add({{"tap", cfg_.name}, {"op", "list"}}, store_latency_buckets())
            .Observe(std::chrono::duration<double>(clock::now() - t0).count());
    if (!listed) {
        if (env_.metrics != nullptr)
            env_.metrics->store_errors.Add({{"tap", cfg_.name}, {"op", "list"}}).Increment();
        return listed.error();
    }
    int64_t end = -1;
    for (const auto& o : listed.value()) {
        auto e = parse_segment_key(o.key, o.size);
        if (!e) {
            log_.warn("ignoring " + e.error().message);
            continue;
        }
        end = std::max(end, e.value().end_offset);
    }
    if (end >= 0) return end;
    return committed >= 0 ? committed : -1;
}

void tap::on_assign(const kafka::partition_list& parts) {
    kafka::partition_list query;
    for (const auto& tp : parts) {
        auto& ps = part(tp.topic, tp.partition);
        ps.assigned = true;
        ps.needs_seek = true;
        ps.writer.reset();
        ps.marks.clear();
        ps.safe_at = clock::now();
        query.push_back({tp.topic, tp.partition});
    }
    // Where the group stands; the archive decides where to resume.
    std::map<std::pair<std::string, int32_t>, int64_t> committed;
    if (auto c = consumer_->committed(query, 10s)) {
        for (const auto& tp : c.value()) committed[{tp.topic, tp.partition}] = tp.offset;
    } else {
        log_.warn("cannot read committed offsets on assignment: " + c.error().message);
        for (const auto& tp : parts) part(tp.topic, tp.partition).archived_end = -2;  // unknown
        log_.info("assigned " + std::to_string(parts.size()) + " partition(s)");
        return;
    }
    // Committing the resume offset before the assignment takes effect makes
    // the consumer fetch from there; place_partitions() seeks if this fails.
    kafka::partition_list to_commit;
    for (const auto& tp : parts) {
        auto& ps = part(tp.topic, tp.partition);
        const auto it = committed.find({tp.topic, tp.partition});
        const int64_t c = it == committed.end() ? -1 : it->second;
        auto start = resume_offset(tp.topic, tp.partition, c);
        if (!start) {
            log_.warn("cannot find the archived end of " + tp_name(tp.topic, tp.partition) + ": " +
                      start.error().message + "; retrying");
            ps.archived_end = -2;
            continue;
        }
        ps.next_offset = start.value();
        ps.archived_end = start.value();
        if (start.value() >= 0 && start.value() != c)
            to_commit.push_back({tp.topic, tp.partition, start.value()});
        else
            ps.needs_seek = false;  // the consumer starts at the committed offset (or earliest)
    }
    if (!to_commit.empty()) {
        if (auto r = consumer_->commit(to_commit, false); r) {
            for (const auto& tp : to_commit) part(tp.topic, tp.partition).needs_seek = false;
        } else {
            log_.warn("commit of resume offsets: " + r.error().message + "; seeking instead");
        }
    }
    for (const auto& tp : parts) {
        const auto& ps = part(tp.topic, tp.partition);
        log_.debug(tp_name(tp.topic, tp.partition) + " resumes at " +
                   (ps.next_offset >= 0 ? std::to_string(ps.next_offset) : "the earliest offset"));
    }
    log_.info("assigned " + std::to_string(parts.size()) + " partition(s)");
}

void tap::place_partitions() {
    // Partitions whose resume offset is not yet in effect: find it (the store
    // may have been down at assignment) and seek there.
    kafka::partition_list seeks;
    for (auto& [key, ps] : parts_) {
        if (!ps->assigned || !ps->needs_seek) continue;
        if (ps->archived_end == -2) {
            kafka::partition_list q{{ps->topic, ps->partition}};
            auto c = consumer_->committed(q, 10s);
            if (!c) continue;
            auto start = resume_offset(ps->topic, ps->partition,
                                       c.value().empty() ? -1 : c.value()[0].offset);
            if (!start) continue;
            ps->archived_end = ps->next_offset = start.value();
        }
        // Without an archived end or a committed offset: the earliest offset.
        seeks.push_back({ps->topic, ps->partition,
                         ps->next_offset >= 0 ? ps->next_offset : RD_KAFKA_OFFSET_BEGINNING});
    }
    if (seeks.empty()) return;
    if (auto r = consumer_->seek(seeks, 10s); !r) {
        count_error("seek");
        log_.warn(r.error().message);
        return;
    }
    for (const auto& tp : seeks) part(tp.topic, tp.partition).needs_seek = false;
}

void tap::on_revoke(const kafka::partition_list& parts) {
    // What is buffered for these partitions is stored and committed before
    // another member takes them; what cannot be stored now is dropped, and
    // the next owner reads it again from the archive's end.
    // Inside poll(): records of these partitions may already sit in the
    // caller's batch, so the segment ends at its last record, not at the
    // consumer's position.
    for (const auto& tp : parts) roll(part(tp.topic, tp.partition), false);
    (void)store_pending();
    kafka::partition_list positions;
    for (const auto& tp : parts) {
        const auto& ps = part(tp.topic, tp.partition);
        if (ps.pending == 0 && ps.archived_end >= 0)
            positions.push_back({tp.topic, tp.partition, ps.archived_end});
    }
    if (auto r = consumer_->commit(positions, false); !r)
        log_.warn("commit on revoke: " + r.error().message);
    for (const auto& tp : parts) {
        auto& ps = part(tp.topic, tp.partition);
        if (ps.pending > 0) {
            log_.warn(tp_name(tp.topic, tp.partition) + ": " + std::to_string(ps.pending) +
                      " segment(s) not stored before revocation; the next owner re-reads them");
            drop_pending(ps);
        }
        ps.assigned = false;
        ps.needs_seek = false;
        ps.writer.reset();
        ps.marks.clear();
    }
    log_.info("revoked " + std::to_string(parts.size()) + " partition(s)");
}

void tap::drop_pending(partition_state& ps) {
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [&](const pending_segment& s) { return s.ps == &ps; }),
                   pending_.end());
    ps.pending = 0;
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
    if (!ps.writer) {
        const int64_t start = ps.next_offset >= 0 ? ps.next_offset : m.offset();
        if (m.offset() < start) return;  // read again before the resume offset took effect
        const int level = cfg_.compression == "none" ? 0 : cfg_.compression_level;
        ps.writer.emplace(ps.topic, ps.partition, start, level);
        ps.first_added = clock::now();
    }
    if (m.offset() < ps.writer->next_offset()) {
        log_.debug(tp_name(ps.topic, ps.partition) + ": dropping re-read offset " +
                   std::to_string(m.offset()));
        return;
    }
    ps.writer->add(m);
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
        if (!pos.empty() && pos[0].offset > end) end = pos[0].offset;
    }
    pending_segment s;
    s.ps = &ps;
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
    ps.next_offset = sum.end_offset;
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

bool tap::store_pending() {
    while (!pending_.empty()) {
        auto& s = pending_.front();
        const auto t0 = clock::now();
        auto r = store_->put(s.entry.key, s.bytes);
        const double secs = std::chrono::duration<double>(clock::now() - t0).count();
        auto* m = env_.metrics;
        if (m != nullptr)
            m->store_latency.Add({{"tap", cfg_.name}, {"op", "put"}}, store_latency_buckets())
                .Observe(secs);
        if (!r) {
            if (m != nullptr) m->store_errors.Add({{"tap", cfg_.name}, {"op", "put"}}).Increment();
            log_.warn("storing segment " + s.entry.key + " failed: " + r.error().message +
                      "; retrying in " + std::to_string(backoff_.count()) + " ms");
            set_state(tap_state::backing_off, r.error().message);
            retry_at_ = clock::now() + backoff_;
            backoff_ = std::min(backoff_ * 2, max_backoff);
            return false;
        }
        auto& ps = *s.ps;
        ps.archived_end = s.entry.end_offset;
        --ps.pending;
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
        if (ps.assigned && consumer_) {
            if (auto c = consumer_->commit({{ps.topic, ps.partition, s.entry.end_offset}}, true);
                !c) {
                count_error("commit");
                log_.warn(c.error().message);
            }
        }
        {
            std::lock_guard lock(status_mu_);
            ++status_.segments;
        }
        pending_.pop_front();
        if (backoff_ != 1000ms || status().state == tap_state::backing_off) {
            backoff_ = 1000ms;
            set_state(tap_state::running);
        }
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
        subscribed_ = wanted;
        std::lock_guard lock(status_mu_);
        status_.topics = wanted;
    }
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
    for (const auto& g : groups.value()) {
        if (g.group_id.starts_with("replicatord")) continue;
        auto offsets = adm.list_group_offsets(g.group_id);
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

void tap::update_metrics() {
    const auto now = clock::now();
    std::chrono::duration<double> rpo{0};
    int64_t total_lag = 0;
    kafka::partition_list query;
    std::vector<partition_state*> order;
    for (auto& [key, ps] : parts_) {
        if (!ps->assigned) continue;
        query.push_back({ps->topic, ps->partition});
        order.push_back(ps.get());
    }
    const auto pos = consumer_->positions(query);
    for (std::size_t i = 0; i < order.size(); ++i) {
        auto& ps = *order[i];
        int64_t low = 0, high = 0;
        if (!consumer_->cached_watermarks(ps.topic, ps.partition, low, high)) continue;
        // Safe: durably archived. With nothing buffered or pending, whatever
        // the consumer skipped past (markers, aborted records) is safe too.
        int64_t safe = ps.archived_end;
        if (!ps.writer && ps.pending == 0 && !ps.needs_seek && i < pos.size())
            safe = std::max(safe, pos[i].offset);
        if (safe < 0) safe = low;
        total_lag += std::max<int64_t>(0, high - safe);
        // RPO: the time we saw a high watermark that the archive now holds.
        if (ps.marks.empty() || ps.marks.back().second < high) ps.marks.emplace_back(now, high);
        while (!ps.marks.empty() && safe >= ps.marks.front().second) {
            ps.safe_at = ps.marks.front().first;
            ps.marks.pop_front();
        }
        if (ps.marks.empty()) ps.safe_at = now;
        rpo = std::max<std::chrono::duration<double>>(rpo, now - ps.safe_at);
    }
    if (env_.metrics != nullptr) {
        const prometheus::Labels l{{"tap", cfg_.name}};
        env_.metrics->rpo.Add(l).Set(rpo.count());
        env_.metrics->lag.Add(l).Set(static_cast<double>(total_lag));
        env_.metrics->buffered_bytes.Add(l).Set(static_cast<double>(memory_bytes()));
        env_.metrics->last_segment_age.Add(l).Set(
            std::chrono::duration<double>(now - last_put_).count());
    }
    std::lock_guard lock(status_mu_);
    status_.lag = total_lag;
    status_.rpo_seconds = rpo.count();
}

void tap::run() noexcept {
    set_state(tap_state::running);
    log_.info("running: group replicatord.tap." + cfg_.name + ", store " + store_->describe());
    std::vector<kafka::message> batch;
    batch.reserve(10000);
    while (!stop_requested_.load()) {
        const auto now = clock::now();
        {
            std::lock_guard lock(status_mu_);
            status_.loop_at = now;
        }
        if (now >= next_refresh_) {
            next_refresh_ = now + refresh_interval;
            if (auto r = discover(); !r) {
                count_error("discovery");
                log_.warn("discovery: " + r.error().message);
            }
        }
        if (now >= next_snapshot_) {
            next_snapshot_ = now + cfg_.group_snapshot_interval;
            snapshot_groups();
        }
        place_partitions();
        apply_backpressure();

        batch.clear();
        consumer_->poll(batch, 10000, 100ms);
        for (auto& m : batch) handle(m);
        batch.clear();

        roll_due();
        if (!pending_.empty() && clock::now() >= retry_at_) (void)store_pending();
        if (clock::now() >= next_metrics_) {
            next_metrics_ = clock::now() + 1s;
            update_metrics();
        }
    }
    shutdown();
}

void tap::shutdown() noexcept {
    const bool failed = status().state == tap_state::failed;
    if (consumer_) {
        // Everything buffered becomes a segment; stored ones are committed.
        for (auto& [key, ps] : parts_)
            if (ps->assigned) roll(*ps);
        // While the store is failing, the store's own retries could hold the
        // shutdown for minutes: give up at once. Nothing is lost, the next
        // run resumes at the archive's end and re-reads the rest.
        const bool store_failing = status().state == tap_state::backing_off;
        if (store_failing || !store_pending()) {
            log_.warn(std::to_string(pending_.size()) +
                      " segment(s) could not be stored before stopping; the next run re-reads "
                      "them from the source");
            for (auto& seg : pending_) seg.ps->pending = 0;
            pending_.clear();
        }
        kafka::partition_list positions;
        for (auto& [key, ps] : parts_)
            if (ps->assigned && ps->archived_end >= 0)
                positions.push_back({ps->topic, ps->partition, ps->archived_end});
        if (auto r = consumer_->commit(positions, false); !r)
            log_.warn("final commit: " + r.error().message);
        consumer_->close(5s);
    }
    pending_.clear();
    consumer_.reset();
    source_client_.reset();
    if (!failed) set_state(tap_state::stopped);
    log_.info(failed ? "stopped after failure" : "stopped");
}

}  // namespace rpl::backup
