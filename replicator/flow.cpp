#include "replicator/flow.h"

#include "kafka/mm2.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace rpl::replicator {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* to_string(flow_state s) noexcept {
    switch (s) {
        case flow_state::starting: return "starting";
        case flow_state::running: return "running";
        case flow_state::backing_off: return "backing_off";
        case flow_state::failed: return "failed";
        case flow_state::stopped: return "stopped";
    }
    return "?";
}

struct flow::partition_state {
    topic_state* topic = nullptr;
    int32_t partition = 0;
    bool assigned = false;
    int64_t read_next = -1;       // one past the last record handed to the producer
    int64_t acked_next = -1;      // every record below this is on the target
    int64_t committed_next = -1;  // what the group has committed on the source
    int64_t in_flight = 0;        // produced, no delivery report yet
    bool broken = false;          // a record failed: later acks are ignored until the rewind
    int64_t fail_at = -1;         // the source offset that failed, while broken
    // >= 0: records of this partition are dropped until the consumer has been
    // moved here (a rewind of this partition, or records past the window).
    int64_t seek_to = -1;
    int attempts = 0;     // rewinds of this partition without an acknowledgement since
    std::string failure;  // why the last one was needed
    clock::time_point retry_at{};
    // False once a record was taken from the consumer and not produced: the
    // consumer's position is then past a record the target never got, and
    // must not be committed. A seek makes it true again.
    bool position_reliable = true;
    bool first_record_pending = false;  // the RPO meter wants its timestamp
    bool waiting = false;          // records past its position on the source, at the last figures
    bool first_gap_check = false;  // see explained()
    // watch_fetching(): when the partition last had a fetch position or no
    // reason to have one, and how long it may go without one.
    clock::time_point fetch_seen{};
    std::chrono::seconds fetch_patience{0};
    prometheus::Gauge* lag = nullptr;
};

struct flow::topic_state {
    std::string name;
    std::string target;
    int target_partitions = 0;
    bool deleted = false;
    std::vector<std::unique_ptr<partition_state>> parts;  // index = partition id
    prometheus::Counter* records = nullptr;
    prometheus::Counter* bytes = nullptr;
    prometheus::Counter* filtered = nullptr;
    // Counted per delivery, added to the counters by update_metrics().
    int64_t unreported_records = 0;
    int64_t unreported_bytes = 0;
};

namespace {

constexpr auto drain_deadline = 4s;
constexpr auto commit_interval = 200ms;
constexpr auto min_commit_gap = 20ms;  // early commits, while the window is half full

// The flow's client defaults, minus those the cluster's [client] table sets.
kafka::properties defaults_for(const kafka::endpoint& ep, kafka::properties defaults) {
    std::erase_if(defaults, [&](const auto& kv) { return ep.client.count(kv.first) > 0; });
    return defaults;
}
constexpr int max_failures_without_progress = 20;
// A partition assigned this long with no fetch position, while the source
// holds records for it, is re-assigned (see watch_fetching); each further
// time it happens to the same partition the wait doubles, up to the cap.
constexpr auto fetch_stall_after = 30s;
constexpr auto fetch_stall_cap = 600s;
// How long commits may fail before the flow reports that it cannot commit.
constexpr auto commit_stall_after = 10s;
// Attempts at one partition's record without an acknowledgement in between,
// before the flow fails naming the record and the cause.
// Retriable errors never get here (librdkafka retries them with no message
// timeout); what does is a refusal (size, policy, authorization), so a few
// attempts over about 7 s are enough to tell a passing one from a real one.
constexpr int max_partition_attempts = 8;
constexpr auto max_partition_backoff = 2s;
// What the producer may send in one record: the broker's own default
// socket.request.max.bytes (100 MiB), so the target broker judges the
// record's size and not librdkafka's 1,000,000 default below it.
constexpr const char* target_message_max_bytes = "100000000";

bool is_permanent(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED: return true;
        default: return false;
    }
}

kafka::endpoint endpoint_of(const conf::Config& c, const std::string& alias) {
    const auto* cl = c.cluster(alias);
    return kafka::endpoint{cl->name, cl->bootstrap, cl->client};
}

}  // namespace

flow::flow(const conf::flow_config& cfg, flow_env env)
    : cfg_(cfg),
      env_(env),
      policy_(cfg),
      log_("flow " + cfg.source + "->" + cfg.target + " " + cfg.name),
      source_(endpoint_of(*env.config, cfg.source)),
      target_(endpoint_of(*env.config, cfg.target)) {
    status_.name = cfg_.name;
    if (env_.metrics != nullptr) {
        auto& m = *env_.metrics;
        // The supervisor declared the series (RPO NaN) with the unit; a
        // failed predecessor's figure, still counting, stays until this
        // flow's meter has one.
        declare_flow(m, cfg_, true);
        latency_histogram_ = &m.latency.Add({{"flow", cfg_.name}}, latency_buckets());
    }
}

flow::~flow() { stop(); }

void flow::set_state(flow_state s, std::string error) {
    {
        std::lock_guard lock(status_mu_);
        status_.state = s;
        if (!error.empty()) status_.last_error = std::move(error);
    }
    if (env_.metrics != nullptr)
        env_.metrics->up.Add({{"flow", cfg_.name}})
            .Set(s == flow_state::running || s == flow_state::backing_off ? 1 : 0);
}

flow_status flow::status() const {
    std::lock_guard lock(status_mu_);
    return status_;
}

void flow::count_error(const std::string& kind) {
    if (env_.metrics != nullptr)
        env_.metrics->errors.Add({{"flow", cfg_.name}, {"kind", kind}}).Increment();
}

Result<void> flow::connect() {
    // Source side: heartbeats, metadata and admin requests. Heartbeats are
    // tiny and latency matters more than batching for them.
    RPL_TRY(src, kafka::producer::create(source_, {{"linger.ms", "0"}}, log_.child("source"),
                                         [](const kafka::delivery&) {}));
    source_producer_.emplace(std::move(src));
    { RPL_TRY(kafka::fetch_metadata(source_producer_->client(), 10s)); }
    meter_ = std::make_unique<kafka::rpo_meter>(
        source_producer_->client(), log_.child("rpo"), 1s,
        [this](const kafka::rpo_meter::figures& f) { publish_figures(f); });
    meter_->start();

    // Target side. No local message timeout: a target outage is waited out
    // inside librdkafka, never turned into a skipped record.
    // Throughput defaults; the cluster's [client] table overrides them.
    kafka::properties target_props =
        defaults_for(target_, {
                                  {"linger.ms", "5"},
                                  {"batch.num.messages", "10000"},
                                  {"batch.size", "1000000"},
                                  {"queue.buffering.max.messages", "1000000"},
                                  {"queue.buffering.max.kbytes", "1048576"},
                                  {"message.max.bytes", target_message_max_bytes},
                              });
    target_props["message.timeout.ms"] = "0";
    RPL_TRY(dst, kafka::producer::create(target_, target_props, log_.child("target"),
                                         [this](const kafka::delivery& d) { on_delivery(d); }));
    producer_.emplace(std::move(dst));
    { RPL_TRY(kafka::fetch_metadata(producer_->client(), 10s)); }

    if (env_.offsets != nullptr) {
        RPL_TRY(pub, offsetsync::publisher::create(target_, log_.child("runs")));
        runs_ = std::move(pub);
    }

    const auto refresh_ms = std::to_string(std::max<int64_t>(1000, cfg_.refresh_interval.count()));
    const kafka::properties source_props = defaults_for(
        source_, {
                     {"topic.metadata.refresh.interval.ms", refresh_ms},
                     // Prefetch up to 32 MiB: about 0.1 s at the target broker's pace here.
                     {"queued.max.messages.kbytes", "32768"},
                     {"fetch.wait.max.ms", "100"},
                     // A crashed process's partitions move to its restart (or a peer)
                     // after 10 s instead of the default 45 s.
                     {"session.timeout.ms", "10000"},
                     {"heartbeat.interval.ms", "1000"},
                 });
    RPL_TRY(c, kafka::consumer::create(source_, "replicatord." + cfg_.name, source_props,
                                       log_.child("consumer")));
    consumer_.emplace(std::move(c));
    consumer_->set_rebalance_handler(kafka::rebalance_handler{
        [this](kafka::partition_list& p) { on_assign(p); },
        [this](const kafka::partition_list& p) { on_revoke(p); },
        [this](const kafka::partition_list& p) { on_committed(p); },
    });
    if (env_.faults != nullptr && env_.faults->poll_wait) {
        consumer_->set_poll_hook([f = env_.faults](const kafka::message& m) {
            return m.err() ? 0ms : f->poll_wait(std::string(m.topic()), m.partition(), m.offset());
        });
    }
    return ok();
}

Result<void> flow::start() {
    set_state(flow_state::starting);
    auto r = connect();
    if (!r) {
        set_state(flow_state::failed, r.error().message);
        return r;
    }
    if (cfg_.heartbeats) {
        // The heartbeats topic lives on the source, one compacted partition,
        // as MirrorMaker 2 lays it out.
        kafka::admin adm(source_producer_->client(), 10s);
        auto md = kafka::fetch_metadata(source_producer_->client(), 10s);
        if (md && md.value().topic(std::string(conf::heartbeats_topic)) == nullptr) {
            const int rf = static_cast<int>(std::min<size_t>(3, md.value().brokers.size()));
            auto created = adm.create_topic(std::string(conf::heartbeats_topic), 1, rf,
                                            {{"cleanup.policy", "compact"}});
            if (!created && created.error().code != errc::conflict)
                log_.warn("cannot create heartbeats topic: " + created.error().message);
        }
    }
    thread_ = std::thread([this] { run(); });
    return ok();
}

void flow::stop() noexcept {
    stop_requested_.store(true);
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool flow::sleep_for(std::chrono::milliseconds d) {
    std::unique_lock lock(wake_mu_);
    return !wake_.wait_for(lock, d, [this] { return stop_requested_.load(); });
}

flow::partition_state& flow::part(const std::string& topic, int32_t partition) {
    auto& ts = topics_[topic];
    if (!ts) {
        ts = std::make_unique<topic_state>();
        ts->name = topic;
        ts->target = policy_.target_topic(topic);
        if (env_.metrics != nullptr) {
            ts->records = &env_.metrics->records.Add({{"flow", cfg_.name}, {"topic", topic}});
            ts->bytes = &env_.metrics->bytes.Add({{"flow", cfg_.name}, {"topic", topic}});
            ts->filtered = &env_.metrics->filtered.Add({{"flow", cfg_.name}, {"topic", topic}});
        }
    }
    auto& parts = ts->parts;
    if (static_cast<size_t>(partition) >= parts.size())
        parts.resize(static_cast<size_t>(partition) + 1);
    auto& ps = parts[static_cast<size_t>(partition)];
    if (!ps) {
        ps = std::make_unique<partition_state>();
        ps->topic = ts.get();
        ps->partition = partition;
    }
    return *ps;
}

flow::partition_state* flow::find(const kafka::message& m) {
    topic_state* ts = nullptr;
    if (auto it = by_handle_.find(m.topic_handle()); it != by_handle_.end()) {
        ts = it->second;
    } else {
        ts = part(std::string(m.topic()), m.partition()).topic;
        by_handle_.emplace(m.topic_handle(), ts);
    }
    const auto idx = static_cast<size_t>(m.partition());
    if (idx >= ts->parts.size() || !ts->parts[idx]) return &part(ts->name, m.partition());
    return ts->parts[idx].get();
}

int64_t flow::commit_position(const partition_state& p, int64_t consumer_position) const {
    // Past transaction markers and aborted records, which the application
    // never sees, the consumer's own position is the truth once everything
    // read has been acknowledged.
    if (p.position_reliable && p.in_flight == 0 && !p.broken && p.seek_to == -1 &&
        !rewind_needed_ && p.read_next == p.acked_next && consumer_position > p.acked_next &&
        p.acked_next >= 0)
        return consumer_position;
    return p.acked_next;
}

std::vector<std::pair<flow::partition_state*, int64_t>> flow::safe_positions(bool assigned_only) {
    std::vector<std::pair<partition_state*, int64_t>> out;
    kafka::partition_list query;
    for (auto& [name, ts] : topics_) {
        for (auto& ps : ts->parts) {
            if (!ps || (assigned_only && !ps->assigned)) continue;
            out.emplace_back(ps.get(), -1);
            query.push_back({name, ps->partition});
        }
    }
    const auto pos = consumer_->positions(query);
    for (size_t i = 0; i < out.size(); ++i)
        out[i].second = commit_position(*out[i].first, i < pos.size() ? pos[i].offset : -1);
    return out;
}

void flow::on_assign(kafka::partition_list& parts) {
    kafka::partition_list query;
    for (const auto& tp : parts) {
        auto& ps = part(tp.topic, tp.partition);
        ps.assigned = true;
        ps.broken = false;
        ps.fail_at = -1;
        ps.seek_to = -1;
        ps.attempts = 0;
        ps.position_reliable = true;
        ps.read_next = ps.acked_next = ps.committed_next = -1;
        ps.first_record_pending = true;
        ps.first_gap_check = true;
        ps.fetch_seen = clock::now();
        ps.fetch_patience = fetch_stall_after;
        if (env_.metrics != nullptr && ps.lag == nullptr)
            ps.lag = &env_.metrics->lag.Add({{"flow", cfg_.name},
                                             {"topic", tp.topic},
                                             {"partition", std::to_string(tp.partition)}});
        query.push_back({tp.topic, tp.partition});
    }
    // Where the group stands, so the uncommitted window is exact from the
    // first record on.
    // The RPO bound the last run committed travels in the commit's metadata.
    std::map<std::pair<std::string, int32_t>, std::string> metadata;
    auto committed = consumer_->committed(query, 10s);
    if (committed && env_.faults != nullptr && env_.faults->lose_committed_read &&
        env_.faults->lose_committed_read())
        committed = fail(errc::unreachable, "the read was lost (fault injected)");
    if (committed) {
        // Fetching starts where the group stands: librdkafka need not ask
        // again (see rebalance_handler::on_assign).
        for (const auto& tp : committed.value()) {
            auto it = std::find_if(parts.begin(), parts.end(), [&](const auto& p) {
                return p.topic == tp.topic && p.partition == tp.partition;
            });
            if (it != parts.end())
                it->offset = tp.offset >= 0 ? tp.offset : consumer_->start_without_commit();
            if (tp.offset < 0) continue;
            auto& ps = part(tp.topic, tp.partition);
            ps.read_next = ps.acked_next = ps.committed_next = tp.offset;
            metadata[{tp.topic, tp.partition}] = tp.metadata;
        }
    } else {
        log_.warn("cannot read committed offsets on assignment: " + committed.error().message);
    }
    for (const auto& tp : parts) {
        primed_.erase({tp.topic, tp.partition});
        lost_.erase({tp.topic, tp.partition});
    }
    if (!primed_.empty() && !parts.empty()) {
        // Primed partitions this member did not get belong to another.
        for (const auto& [topic, partition] : primed_) {
            meter_->revoke(topic, partition);
            drop_lag_gauge(part(topic, partition));
        }
        primed_.clear();
        lost_.clear();
    }
    for (const auto& tp : parts) {
        const auto& ps = part(tp.topic, tp.partition);
        const auto it = metadata.find({tp.topic, tp.partition});
        meter_->assign(
            tp.topic, tp.partition, ps.acked_next,
            it == metadata.end() ? std::nullopt : kafka::rpo_meter::restore_since(it->second));
    }
    // librdkafka keeps a partition's pause across unassign and assign: one
    // paused by back-pressure, then lost while the window drained (and the
    // flow resumed an empty assignment), would come back paused for good.
    if (paused_)
        (void)consumer_->pause(parts);
    else
        (void)consumer_->resume(parts);
    count_partitions();
    log_.info("assigned " + std::to_string(parts.size()) + " partition(s)");
}

void flow::on_revoke(const kafka::partition_list& parts) {
    // Everything handed to the producer for these partitions must be
    // acknowledged and committed before another member takes them over.
    if (producer_) (void)producer_->flush(drain_deadline);
    const bool lost = consumer_->assignment_lost();
    // This runs inside the consumer's poll, while records of these partitions
    // may already sit in the batch being filled, not yet handed to the
    // producer: the consumer's position is past them, so only what the target
    // acknowledged may be committed. The batch loop then drops them.
    std::set<std::pair<std::string, int32_t>> unhandled;
    for (const auto& m : batch_)
        if (!m.err()) unhandled.emplace(std::string(m.topic()), m.partition());
    kafka::partition_list positions;
    const auto cp = consumer_->positions(parts);
    for (size_t i = 0; i < parts.size(); ++i) {
        auto& ps = part(parts[i].topic, parts[i].partition);
        const bool pending = unhandled.count({parts[i].topic, parts[i].partition}) > 0;
        const int64_t pos =
            pending ? ps.acked_next : commit_position(ps, i < cp.size() ? cp[i].offset : -1);
        if (pos >= 0 && pos > ps.committed_next)
            positions.push_back({parts[i].topic, parts[i].partition, pos,
                                 meter_->commit_metadata(parts[i].topic, parts[i].partition, pos)});
    }
    if (!persist_runs()) {
        log_.warn(
            "offset runs not persisted; the next owner re-sends these partitions' uncommitted "
            "records");
    } else if (auto r = consumer_->commit(positions, false); r) {
        for (const auto& tp : positions) part(tp.topic, tp.partition).committed_next = tp.offset;
    } else {
        log_.warn("commit on revoke: " + r.error().message);
    }
    for (const auto& tp : parts) {
        auto& ps = part(tp.topic, tp.partition);
        ps.assigned = false;
        // A failed flow keeps following what it owned (see shutdown): its
        // figure keeps growing until a new instance takes over.
        // Lost partitions (the source unreachable long enough for the
        // session to time out) are still owed to the target: the meter keeps
        // following them, as primed ones, until the next assignment says who
        // has them.
        // Their lag gauges stay too.
        if (lost) {
            primed_.insert({tp.topic, tp.partition});
            lost_.insert({tp.topic, tp.partition});
            continue;
        }
        if (status().state != flow_state::failed) meter_->revoke(tp.topic, tp.partition);
        drop_lag_gauge(ps);
    }
    count_partitions();
    log_.info(std::string(lost ? "lost " : "revoked ") + std::to_string(parts.size()) +
              " partition(s)" + (lost ? "; still counting them in the RPO figure" : ""));
}

void flow::set_paused(bool paused) {
    paused_ = paused;
    std::lock_guard lock(status_mu_);
    status_.paused = paused;
}

void flow::count_partitions() {
    int32_t assigned = 0;
    for (const auto& [name, ts] : topics_)
        for (const auto& ps : ts->parts)
            if (ps && ps->assigned) ++assigned;
    std::lock_guard lock(status_mu_);
    status_.partitions_assigned = assigned;
    status_.partitions_lost = static_cast<int32_t>(lost_.size());
}

void flow::drop_lag_gauge(partition_state& ps) {
    if (ps.lag != nullptr && env_.metrics != nullptr) {
        env_.metrics->lag.Remove(ps.lag);
        ps.lag = nullptr;
    }
}

void flow::on_committed(const kafka::partition_list& parts) {
    for (const auto& tp : parts) {
        auto& ps = part(tp.topic, tp.partition);
        ps.committed_next = std::max(ps.committed_next, tp.offset);
    }
}

void flow::commit(bool sync) {
    if (env_.faults != nullptr && env_.faults->on_commit) env_.faults->on_commit();
    kafka::partition_list positions;
    for (const auto& [ps, pos] : safe_positions(true)) {
        meter_->acknowledge(ps->topic->name, ps->partition, pos);
        if (pos >= 0 && pos > ps->committed_next)
            positions.push_back({ps->topic->name, ps->partition, pos,
                                 meter_->commit_metadata(ps->topic->name, ps->partition, pos)});
    }
    if (positions.empty()) {
        commit_health({});
        return;
    }
    if (!persist_runs()) {
        commit_health("offset runs not acknowledged by " + target_.describe());
        return;
    }
    auto r = consumer_->commit(positions, !sync);
    if (!r) {
        count_error("commit");
        log_.warn(r.error().message);
        commit_health(r.error().message);
        return;
    }
    // An asynchronous commit's answer arrives later, in the commit callback.
    const auto last = consumer_->last_commit_error();
    commit_health(last != RD_KAFKA_RESP_ERR_NO_ERROR
                      ? "commit to " + source_.describe() + ": " + rd_kafka_err2str(last)
                      : std::string());
    if (sync) on_committed(positions);
}

void flow::commit_health(const std::string& problem) {
    // A flow that copies but cannot commit is not healthy: its window fills,
    // it pauses, and a restart would re-send everything since. Say so in its
    // state (and so in /readyz) once it has lasted, and recover by itself.
    const auto now = clock::now();
    if (problem.empty()) {
        commit_failing_since_.reset();
        if (commit_stalled_) {
            commit_stalled_ = false;
            log_.info("commits go through again");
            set_state(flow_state::running);
        }
        return;
    }
    if (!commit_failing_since_) commit_failing_since_ = now;
    if (!commit_stalled_ && now - *commit_failing_since_ >= commit_stall_after) {
        commit_stalled_ = true;
        count_error("commit_stalled");
        log_.error("no progress committed for " +
                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                      now - *commit_failing_since_)
                                      .count()) +
                   " s: " + problem);
        set_state(flow_state::backing_off, "cannot commit: " + problem);
    }
}

bool flow::persist_runs() {
    if (env_.offsets == nullptr) return true;
    auto dirty = env_.offsets->flush(cfg_.name);
    if (!dirty) {
        count_error("offset_runs");
        log_.warn(dirty.error().message);
        return false;
    }
    if (!dirty.value().empty()) {
        if (auto r = runs_->publish(dirty.value()); !r) {
            count_error("offset_runs");
            log_.warn(r.error().message);
            return false;
        }
    }
    if (runs_->unacknowledged() == 0) return true;
    if (auto r = runs_->flush(drain_deadline); !r) {
        count_error("offset_runs");
        log_.warn(r.error().message);
        return false;
    }
    return true;
}

void flow::update_window() {
    int64_t window = 0;
    int64_t busy = 0;
    for (auto& [name, ts] : topics_) {
        for (auto& ps : ts->parts) {
            if (!ps || !ps->assigned) continue;
            const int64_t held = ps->read_next >= 0 && ps->committed_next >= 0
                                     ? ps->read_next - ps->committed_next
                                     : 0;
            window += held;
            if (held > 0 || ps->waiting) ++busy;
        }
    }
    window_records_ = window;
    busy_partitions_ = busy;
}

bool flow::over_share(const partition_state& ps, int64_t max_records) const {
    // librdkafka hands out records in the order its fetches return them,
    // and a partition whose record does not fit is moved back to it, behind
    // the others' prefetched data: under a target slower than the source,
    // the same few partitions would fill the window every time and the rest
    // wait for as long as the target stays slow. So each partition with
    // records to copy may hold an even share of the window, no more, until
    // a commit frees some. One busy partition alone has all of it.
    if (busy_partitions_ <= 1 || ps.read_next < 0 || ps.committed_next < 0) return false;
    const int64_t share = std::max<int64_t>(1, max_records / busy_partitions_);
    return ps.read_next - ps.committed_next >= share;
}

namespace {
// The provenance verdict for a consumed record (identity naming).
conf::provenance_verdict provenance_of(const kafka::message& m, std::string_view target) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m.get(), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return conf::check_provenance(nullptr, target);
    const void* value = nullptr;
    size_t size = 0;
    if (rd_kafka_header_get_last(hdrs, conf::provenance_header.data(), &value, &size) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return conf::check_provenance(nullptr, target);
    const std::string_view origin(static_cast<const char*>(value), value != nullptr ? size : 0);
    return conf::check_provenance(&origin, target);
}
}  // namespace

void flow::handle(kafka::message& m) {
    if (m.err()) {
        const auto err = m.err();
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
            err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
            err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
            // A topic deleted at the source; discovery says so once and
            // drops it from the subscription.
            log_.debug("consumer: " + m.error_string());
            next_refresh_ = clock::now();
        } else if (is_permanent(err)) {
            set_state(flow_state::failed, "source " + source_.describe() + ": " + m.error_string());
            count_error("authorization");
            stop_requested_.store(true);
        } else {
            count_error("consume");
            log_.warn("consumer: " + m.error_string());
        }
        return;
    }
    if (env_.faults != nullptr && env_.faults->on_record)
        env_.faults->on_record(std::string(m.topic()), m.partition(), m.offset());
    partition_state* ps = find(m);
    // Records of a partition this flow no longer owns, or one being moved
    // back to its last acknowledged record, are not sent: they come again.
    if (!ps->assigned || ps->broken || ps->seek_to != -1) return;
    // Offsets only go forward; one below the next expected is a stale copy
    // from before a seek or a re-assignment. A gap forward is the broker's
    // (compaction, transaction markers): every seek this flow makes is
    // checked, and a failed one holds the partition until it succeeds.
    if (ps->read_next >= 0 && m.offset() != ps->read_next && !explained(*ps, m.offset())) return;
    if (ps->read_next < 0) {
        ps->read_next = ps->acked_next = ps->committed_next = m.offset();
        if (env_.offsets != nullptr) fresh_start(*ps, m.offset());
    }
    if (ps->first_record_pending) {
        ps->first_record_pending = false;
        meter_->first_record(ps->topic->name, ps->partition, m.offset(), m.timestamp());
    }
    // Until it is produced, this record is taken but not sent.
    ps->position_reliable = false;
    topic_state& ts = *ps->topic;
    if (m.partition() >= ts.target_partitions) {
        // The source grew before discovery noticed: grow the target first.
        if (auto r = discover(); !r || m.partition() >= ts.target_partitions) {
            fail_partition(*ps, m.offset(),
                           "target " + ts.target + " has no partition " +
                               std::to_string(m.partition()) + " yet");
            return;
        }
    }
    const size_t size = m.value_size() + m.key_size();
    const int64_t offset = m.offset();
    rd_kafka_message_t* raw = m.get();
    kafka::record_header mark;
    const kafka::record_header* extra = nullptr;
    if (cfg_.naming == conf::naming_policy::identity) {
        switch (provenance_of(m, cfg_.target)) {
            case conf::provenance_verdict::skip:
                // It came from the target: sending it back would loop. It
                // counts as done, once everything before it is acknowledged.
                ps->read_next = offset + 1;
                if (ps->in_flight == 0 && !ps->broken) ps->acked_next = ps->read_next;
                ps->position_reliable = true;
                if (ts.filtered != nullptr) ts.filtered->Increment();
                return;
            case conf::provenance_verdict::send_and_mark:
                mark = {conf::provenance_header, cfg_.source.data(), cfg_.source.size()};
                extra = &mark;
                break;
            case conf::provenance_verdict::send: break;
        }
    }
    rd_kafka_resp_err_t err;
    while ((err = producer_->produce(ts.target, m.partition(), m, raw, extra)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        producer_->poll(10ms);
        if (stop_requested_.load()) return;
    }
    if (err) {
        count_error("produce");
        fail_partition(*ps, offset,
                       "produce to " + ts.target + "/" + std::to_string(m.partition()) + ": " +
                           rd_kafka_err2str(err));
        return;
    }
    (void)m.release();  // owned by the delivery report now
    ps->read_next = offset + 1;
    ps->position_reliable = true;
    ++ps->in_flight;
    in_flight_bytes_ += static_cast<int64_t>(size);
    ++window_records_;
}

void flow::on_delivery(const kafka::delivery& d) {
    kafka::message m(static_cast<rd_kafka_message_t*>(d.opaque));  // freed on return
    partition_state* ps = find(m);
    --ps->in_flight;
    in_flight_bytes_ -= static_cast<int64_t>(m.value_size() + m.key_size());
    if (d.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        // Past a failed record, acknowledgements say nothing about it.
        if (!ps->broken || m.offset() < ps->fail_at) {
            ps->attempts = 0;
            ps->acked_next = std::max(ps->acked_next, m.offset() + 1);
            // Records skipped after this one (provenance) are done too.
            if (ps->in_flight == 0 && !ps->broken)
                ps->acked_next = std::max(ps->acked_next, ps->read_next);
        }
        if (env_.offsets != nullptr) record_run(*ps, m.offset(), d.offset);
        ++ps->topic->unreported_records;
        ps->topic->unreported_bytes += static_cast<int64_t>(m.value_size() + m.key_size());
        if (env_.metrics != nullptr) {
            const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
            const int64_t ts = m.timestamp();
            if (ts > 0 && now_ms >= ts) latency_.observe(now_ms - ts);
        }
        failures_without_progress_ = 0;
        backoff_ = 100ms;
        return;
    }
    if (d.err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || d.err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return;
    if (!ps->broken) {
        count_error(rd_kafka_err2name(d.err));
        fail_partition(*ps, m.offset(),
                       "delivery to " + ps->topic->target + "/" + std::to_string(m.partition()) +
                           " failed for source offset " + std::to_string(m.offset()) + ": " +
                           rd_kafka_err2str(d.err));
    }
    if (is_permanent(d.err)) {
        set_state(flow_state::failed,
                  "target " + target_.describe() + ": " + rd_kafka_err2str(d.err));
        stop_requested_.store(true);
    }
}

bool flow::explained(partition_state& ps, int64_t offset) {
    // The consumer moved off the next expected offset. Backwards with the
    // log still past the expected offset: a stale copy from before a seek or
    // a re-assignment, dropped (false). Backwards with the log ending below
    // it: the topic was deleted and created again (or truncated), and its
    // records are new data. Forwards past a log start that moved beyond the
    // expected offset: retention or DeleteRecords removed records this flow
    // never copied (with auto.offset.reset=earliest the consumer jumped
    // silently). Any other forward gap is the broker's own (compaction,
    // transaction markers).
    const std::string where = ps.topic->name + "/" + std::to_string(ps.partition);
    const int64_t at = ps.read_next;
    int64_t low = -1, high = -1;
    const bool cached = consumer_->cached_watermarks(ps.topic->name, ps.partition, low, high);
    // The first move after an assignment is worth one request: the cached
    // watermarks may predate it.
    if (ps.first_gap_check) {
        ps.first_gap_check = false;
        auto r = kafka::list_offset_ranges(source_producer_->client(),
                                           {{ps.topic->name, ps.partition}}, 10s);
        if (r && !r.value().empty() && r.value()[0].start >= 0) {
            low = std::max(low, r.value()[0].start);
            high = r.value()[0].end;
        }
    } else if (!cached) {
        low = high = -1;
    }
    low = std::max(low, meter_->log_start(ps.topic->name, ps.partition));
    if (offset < at) {
        if (high < 0 || high >= at) return false;
        log_.error("source " + where + " ends at offset " + std::to_string(high) +
                   ", below offset " + std::to_string(at) +
                   " already mirrored: the topic was recreated or truncated; its records from "
                   "offset " +
                   std::to_string(offset) + " are mirrored as new data");
        count_error("source_truncated");
        ps.read_next = ps.acked_next = ps.committed_next = offset;
        meter_->assign(ps.topic->name, ps.partition, offset, std::nullopt);
        return true;
    }
    if (low > at) {
        const int64_t gone = std::min(low, offset) - at;
        log_.error("retention overtook the flow on " + where + ": offsets " + std::to_string(at) +
                   " to " + std::to_string(at + gone - 1) +
                   " were deleted at the source before they were copied (" + std::to_string(gone) +
                   " offsets lost); going on from offset " + std::to_string(offset));
        if (env_.metrics != nullptr)
            env_.metrics->records_lost_to_retention.Add({{"flow", cfg_.name}})
                .Increment(static_cast<double>(gone));
    }
    return true;
}

void flow::fresh_start(partition_state& ps, int64_t offset) {
    // The group has no position for this partition, yet the offset index
    // says records past `offset` were mirrored. Deleting a topic deletes its
    // group offsets: if the source log now ends below what was mirrored,
    // the topic was recreated, its offsets restart, and the old runs would
    // translate the new records' offsets into the old ones' places.
    auto ends = env_.offsets->end_offsets(cfg_.name, ps.topic->name, ps.partition);
    if (!ends || ends.value().src_end <= offset) return;
    const std::string where = ps.topic->name + "/" + std::to_string(ps.partition);
    auto ranges = kafka::list_offset_ranges(source_producer_->client(),
                                            {{ps.topic->name, ps.partition}}, 10s);
    if (!ranges || ranges.value().empty() || ranges.value()[0].end < 0) return;
    const int64_t end = ranges.value()[0].end;
    if (end >= ends.value().src_end) {
        log_.warn("group replicatord." + cfg_.name + " has no position on " + where + " but " +
                  "offsets up to " + std::to_string(ends.value().src_end - 1) +
                  " were mirrored (group offsets expired or deleted?); copying again from offset " +
                  std::to_string(offset));
        return;
    }
    log_.error("source " + where + " ends at offset " + std::to_string(end) + ", below offset " +
               std::to_string(ends.value().src_end) +
               " already mirrored: the topic was recreated or truncated; its records from offset " +
               std::to_string(offset) + " are mirrored as new data");
    count_error("source_truncated");
    auto dropped = env_.offsets->forget(cfg_.name, ps.topic->name, ps.partition);
    if (dropped && runs_ && !dropped.value().empty()) {
        if (auto t = runs_->retract(dropped.value()); !t)
            log_.warn("retracting the old topic's runs: " + t.error().message);
    }
}

void flow::fail_partition(partition_state& ps, int64_t offset, const std::string& cause) {
    if (!ps.broken) {
        ps.broken = true;
        ps.fail_at = offset;
        ps.failure = cause;
        ps.retry_at = clock::now() +
                      std::min<std::chrono::milliseconds>(
                          100ms * (int64_t{1} << std::min(ps.attempts, 7)), max_partition_backoff);
        log_.error(cause + "; resending " + ps.topic->name + "/" + std::to_string(ps.partition) +
                   " from source offset " + std::to_string(ps.acked_next) + " (attempt " +
                   std::to_string(ps.attempts + 1) + " of " +
                   std::to_string(max_partition_attempts) + ")");
    } else {
        ps.fail_at = std::min(ps.fail_at, offset);
    }
    ps.position_reliable = false;
}

void flow::recover_partitions() {
    // One partition's failure is that partition's: the others keep flowing.
    // A broken partition waits until nothing of it is in flight, then reads
    // again from its last acknowledged record, after a backoff of its own.
    const auto now = clock::now();
    kafka::partition_list seeks;
    std::vector<partition_state*> moving;
    for (auto& [name, ts] : topics_) {
        for (auto& ps : ts->parts) {
            if (!ps || !ps->assigned) continue;
            if (ps->broken && ps->in_flight == 0 && now >= ps->retry_at) {
                if (++ps->attempts >= max_partition_attempts) {
                    const std::string why =
                        "gave up on " + name + "/" + std::to_string(ps->partition) +
                        " at source offset " + std::to_string(ps->fail_at) + " after " +
                        std::to_string(ps->attempts) + " attempts: " + ps->failure;
                    log_.error(why);
                    count_error("partition_failed");
                    set_state(flow_state::failed, why);
                    stop_requested_.store(true);
                    return;
                }
                ps->broken = false;
                ps->fail_at = -1;
                ps->seek_to = ps->acked_next;
                if (env_.metrics != nullptr)
                    env_.metrics->restarts.Add({{"flow", cfg_.name}}).Increment();
            }
            if (ps->seek_to != -1 && !ps->broken && now >= ps->retry_at) {
                seeks.push_back({name, ps->partition, ps->seek_to});
                moving.push_back(ps.get());
            }
        }
    }
    if (seeks.empty()) return;
    if (auto r = seek(seeks); !r) {
        // Held until a seek succeeds: reading on would pass records the
        // target never got.
        count_error("seek");
        log_.warn("seek: " + r.error().message + "; trying again");
        return;
    }
    for (auto* ps : moving) {
        if (ps->seek_to >= 0) ps->read_next = ps->seek_to;
        ps->seek_to = -1;
        ps->position_reliable = true;
    }
}

Result<void> flow::seek(const kafka::partition_list& positions) {
    if (env_.faults == nullptr || !env_.faults->fail_seek) return consumer_->seek(positions, 10s);
    kafka::partition_list performed;
    std::string refused;
    for (const auto& tp : positions) {
        if (!env_.faults->fail_seek(tp.topic, tp.partition, tp.offset)) {
            performed.push_back(tp);
            continue;
        }
        refused += (refused.empty() ? "" : ", ") + tp.topic + "/" + std::to_string(tp.partition);
    }
    // As librdkafka does: the other partitions' seeks go through.
    { RPL_TRY(consumer_->seek(performed, 10s)); }
    if (!refused.empty()) return fail(errc::kafka, "seek " + refused + ": injected failure");
    return ok();
}

void flow::rewind() {
    rewind_needed_ = false;
    if (env_.metrics != nullptr) env_.metrics->restarts.Add({{"flow", cfg_.name}}).Increment();
    producer_->purge();
    const auto until = clock::now() + drain_deadline;
    while (producer_->outstanding() > 0 && clock::now() < until) producer_->poll(50ms);
    const std::string fatal = producer_->fatal_error();
    if (!fatal.empty() || producer_->outstanding() > 0) {
        log_.warn("recreating the target producer" +
                  (fatal.empty() ? std::string() : ": " + fatal));
        producer_.reset();
        auto r = kafka::producer::create(target_,
                                         {{"message.timeout.ms", "0"},
                                          {"linger.ms", "5"},
                                          {"batch.size", "1000000"},
                                          {"batch.num.messages", "10000"},
                                          {"queue.buffering.max.kbytes", "1048576"},
                                          {"message.max.bytes", target_message_max_bytes}},
                                         log_.child("target"),
                                         [this](const kafka::delivery& d) { on_delivery(d); });
        if (!r) {
            set_state(flow_state::failed, r.error().message);
            stop_requested_.store(true);
            return;
        }
        producer_.emplace(std::move(r).value());
        in_flight_bytes_ = 0;
        for (auto& [name, ts] : topics_)
            for (auto& ps : ts->parts)
                if (ps) ps->in_flight = 0;
    }
    kafka::partition_list positions;
    for (auto& [name, ts] : topics_) {
        for (auto& ps : ts->parts) {
            if (!ps || !ps->assigned) continue;
            ps->broken = false;
            ps->fail_at = -1;
            if (ps->acked_next < 0) continue;
            ps->read_next = ps->acked_next;
            ps->position_reliable = true;
            positions.push_back({name, ps->partition, ps->acked_next});
        }
    }
    if (auto r = seek(positions); !r) {
        // Reading on would pass records the target never got.
        log_.warn("rewind: " + r.error().message + "; trying again");
        count_error("seek");
        rewind_needed_ = true;
    }
    for (auto& [name, ts] : topics_)
        for (auto& ps : ts->parts)
            if (ps) ps->seek_to = -1;
    if (++failures_without_progress_ >= max_failures_without_progress) {
        set_state(flow_state::failed, "gave up after " +
                                          std::to_string(failures_without_progress_) +
                                          " rewinds without progress");
        stop_requested_.store(true);
        return;
    }
    set_state(flow_state::backing_off);
    log_.warn("rewound " + std::to_string(positions.size()) + " partition(s); retrying in " +
              std::to_string(backoff_.count()) + " ms");
    sleep_for(backoff_);
    backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, 10s);
    set_state(flow_state::running);
}

Result<void> flow::sync_configs(topic_state& t) {
    kafka::admin src(source_producer_->client(), 10s);
    kafka::admin dst(producer_->client(), 10s);
    RPL_TRY(source_cfg, src.describe_topic_configs(t.name));
    RPL_TRY(target_cfg, dst.describe_topic_configs(t.target));
    std::map<std::string, std::string> want;
    std::map<std::string, std::string> have;
    for (const auto& e : target_cfg) {
        if (e.source != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG) continue;
        have[e.name] = e.value;
        // The target's own durability settings stay as the operator set them.
        if (!conf::is_synced_topic_config(e.name)) want[e.name] = e.value;
    }
    for (const auto& e : source_cfg) {
        if (e.source != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG || e.is_sensitive) continue;
        if (conf::is_synced_topic_config(e.name)) want[e.name] = e.value;
    }
    if (want == have) return ok();
    RPL_TRY(dst.alter_topic_configs(t.target, want));
    log_.info("synced configs of " + t.target + " from " + t.name);
    return ok();
}

Result<void> flow::ensure_target(topic_state& t, int source_partitions, bool exists_on_target) {
    kafka::admin dst(producer_->client(), 30s);
    if (!exists_on_target) {
        kafka::admin src(source_producer_->client(), 10s);
        RPL_TRY(source_cfg, src.describe_topic_configs(t.name));
        std::map<std::string, std::string> configs;
        for (const auto& e : source_cfg) {
            if (e.source == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG && !e.is_sensitive &&
                conf::is_synced_topic_config(e.name))
                configs[e.name] = e.value;
        }
        RPL_TRY(md, kafka::fetch_metadata(producer_->client(), 10s));
        const int rf = cfg_.replication_factor > 0
                           ? cfg_.replication_factor
                           : static_cast<int>(std::min<size_t>(3, md.brokers.size()));
        auto r = dst.create_topic(t.target, source_partitions, rf, configs);
        if (!r && r.error().code != errc::conflict) return r;
        if (r) {
            log_.info("created target topic " + t.target + " (" +
                      std::to_string(source_partitions) + " partitions, replication factor " +
                      std::to_string(rf) + ", " + std::to_string(configs.size()) +
                      " synced config(s))");
            if (env_.metrics != nullptr)
                env_.metrics->topics_created.Add({{"flow", cfg_.name}}).Increment();
        }
        t.target_partitions = source_partitions;
        return ok();
    }
    RPL_TRY(dst.create_partitions(t.target, source_partitions));
    log_.info("grew target topic " + t.target + " to " + std::to_string(source_partitions) +
              " partitions");
    t.target_partitions = source_partitions;
    return ok();
}

Result<void> flow::discover() {
    // While a cluster cannot be reached, discovery must not hold the loop
    // (pausing, commits, metrics) for the whole deadline at every refresh:
    // after a failure it waits 2 s, and the full 10 s every fifth try (a
    // mock test's flow ran one loop turn per 10 s with its target down and
    // never paused on its full window).
    const kafka::deadline_ms deadline = metadata_failures_ % 5 == 0 ? 10s : 2s;
    auto src_md = kafka::fetch_metadata(source_producer_->client(), deadline);
    auto dst_md = src_md ? kafka::fetch_metadata(producer_->client(), deadline)
                         : Result<kafka::cluster_metadata>(src_md.error());
    if (!dst_md) {
        ++metadata_failures_;
        return dst_md.error();
    }
    metadata_failures_ = 0;
    const auto& src = src_md.value();
    const auto& dst = dst_md.value();
    const bool sync_now = clock::now() >= next_config_sync_;
    bool grew = false;
    std::vector<std::string> wanted;
    std::vector<topic_state*> to_sync;
    for (const auto& t : src.topics) {
        if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partitions.empty()) continue;
        if (!policy_.mirrored(t.name)) continue;
        auto& ts = *part(t.name, 0).topic;
        ts.deleted = false;
        const int n = static_cast<int>(t.partitions.size());
        const auto* existing = dst.topic(ts.target);
        if (existing == nullptr) {
            RPL_TRY(ensure_target(ts, n, false));
        } else {
            const int have = static_cast<int>(existing->partitions.size());
            if (have < n) {
                // A target we have mirrored into before grows with its source;
                // one made by someone else with fewer partitions cannot hold
                // a partition-preserving copy.
                kafka::partition_list probe;
                for (int p = 0; p < n; ++p) probe.push_back({t.name, p});
                RPL_TRY(committed, consumer_->committed(probe, 10s));
                const bool ours = ts.target_partitions > 0 ||
                                  std::any_of(committed.begin(), committed.end(),
                                              [](const auto& tp) { return tp.offset >= 0; });
                if (!ours)
                    return fail(errc::conflict, "target topic " + ts.target + " on " + cfg_.target +
                                                    " has " + std::to_string(have) +
                                                    " partitions but source topic " + t.name +
                                                    " on " + cfg_.source + " has " +
                                                    std::to_string(n) + "; refusing to mirror");
                RPL_TRY(ensure_target(ts, n, true));
                grew = true;
            } else {
                ts.target_partitions = have;
            }
            if (sync_now) to_sync.push_back(&ts);
        }
        wanted.push_back(t.name);
    }
    // Configs change rarely: every sixth discovery, at least every 5 s.
    if (sync_now) prune_runs();
    if (sync_now)
        next_config_sync_ =
            clock::now() + std::max<std::chrono::milliseconds>(6 * cfg_.refresh_interval, 5s);
    if (grew) (void)kafka::fetch_metadata(producer_->client(), 10s);  // refresh the producer's view

    for (const auto& name : subscribed_) {
        if (src.topic(name) != nullptr) continue;
        auto& ts = *part(name, 0).topic;
        if (ts.deleted) continue;
        ts.deleted = true;
        log_.warn("source topic " + name + " was deleted; its mirroring stops, target copy " +
                  ts.target + " is kept");
        if (env_.metrics != nullptr)
            env_.metrics->topics_deleted.Add({{"flow", cfg_.name}}).Increment();
    }
    if (wanted.empty()) topics_known_.store(0);
    if (wanted != subscribed_) {
        RPL_TRY(consumer_->subscribe(wanted));
        for (const auto& n : wanted)
            if (std::find(subscribed_.begin(), subscribed_.end(), n) == subscribed_.end())
                log_.info("mirroring " + n + " -> " + policy_.target_topic(n));
        subscribed_ = wanted;
        topics_known_.store(wanted.empty() ? 0 : 1);
        std::lock_guard lock(status_mu_);
        status_.topics = wanted;
    }
    // After the subscription, so that a slow or unsupported DescribeConfigs
    // never delays mirroring a new topic.
    for (auto* ts : to_sync) {
        if (auto r = sync_configs(*ts); !r) {
            count_error("config_sync");
            log_.warn("config sync of " + ts->target + ": " + r.error().message +
                      "; next try in 60 s");
            // A cluster that cannot describe configs should not stall the
            // data path every few seconds.
            next_config_sync_ = clock::now() + 60s;
            break;
        }
    }
    return ok();
}

void flow::record_run(partition_state& ps, int64_t src, int64_t dst) {
    auto r =
        env_.offsets->record(cfg_.name, ps.topic->name, ps.partition, ps.topic->target, src, dst);
    if (r) return;
    if (r.error().code == errc::conflict) {
        // The target partition holds less than the known runs describe: it
        // was deleted and created again, or state_dir outlived the cluster
        // it indexed. Those runs point at records that no longer exist and
        // would translate commits past the partition's end: drop them (with
        // tombstones in the runs topic) and start the partition's runs again.
        auto dropped = env_.offsets->forget(cfg_.name, ps.topic->name, ps.partition);
        if (dropped) {
            if (runs_ && !dropped.value().empty()) {
                if (auto t = runs_->retract(dropped.value()); !t)
                    log_.warn("retracting stale runs: " + t.error().message);
            }
            log_.warn(r.error().message + "; dropped " + std::to_string(dropped.value().size()) +
                      " stale run(s) of " + ps.topic->name + "/" + std::to_string(ps.partition) +
                      " and indexing it afresh");
            r = env_.offsets->record(cfg_.name, ps.topic->name, ps.partition, ps.topic->target, src,
                                     dst);
            if (r) return;
        }
    }
    count_error("offset_runs");
    log_.warn(r.error().message);
}

void flow::prune_runs() {
    // Runs entirely below the source's log start offset describe records
    // that no consumer can commit a position in any more.
    if (env_.offsets == nullptr || !runs_) return;
    std::vector<offsetsync::run_record> dropped;
    for (auto& [name, ts] : topics_) {
        for (auto& ps : ts->parts) {
            if (!ps || !ps->assigned) continue;
            // From the meter's samples: fresh while the partition is paused,
            // unlike the fetch path's cached watermarks. A log start of 0
            // still prunes runs whose records were all copied again later.
            const int64_t low = meter_->log_start(name, ps->partition);
            if (low < 0) continue;
            auto r = env_.offsets->prune(cfg_.name, name, ps->partition, low);
            if (!r) {
                log_.warn(r.error().message);
                continue;
            }
            dropped.insert(dropped.end(), r.value().begin(), r.value().end());
        }
    }
    if (dropped.empty()) return;
    if (auto r = runs_->retract(dropped); !r)
        log_.warn("retracting pruned runs: " + r.error().message);
    log_.debug("pruned " + std::to_string(dropped.size()) + " run(s) below the source's log start");
}

void flow::heartbeat() {
    // MirrorMaker 2's heartbeat: key (source alias, target alias) as STRINGs,
    // value version INT16 0 and timestamp INT64 in ms, big-endian.
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const kafka::mm2::heartbeat hb{cfg_.source, cfg_.target, now_ms};
    const std::string key = kafka::mm2::heartbeat_key(hb);
    const std::string value = kafka::mm2::heartbeat_value(hb);
    const auto err = source_producer_->produce_copy(std::string(conf::heartbeats_topic), 0, key,
                                                    &value, now_ms, nullptr);
    if (err) {
        count_error("heartbeat");
        log_.debug(std::string("heartbeat: ") + rd_kafka_err2str(err));
        return;
    }
    if (env_.metrics != nullptr) env_.metrics->heartbeats.Add({{"flow", cfg_.name}}).Increment();
}

void flow::publish_figures(const kafka::rpo_meter::figures& f) {
    // While some followed partition has no figure the gauge says "unknown"
    // (NaN): until this meter has one, a failed predecessor's figure, still
    // counting, stays; once this meter has published, a number left standing
    // would stop moving and read better than the truth (bench/soak saw one
    // stand for 27 s while the truth grew past it). A flow with no topics
    // has nothing at risk.
    if (!f.complete && topics_known_.load() != 0) {
        if (figure_published_ && env_.metrics != nullptr)
            env_.metrics->rpo.Add({{"flow", cfg_.name}})
                .Set(std::numeric_limits<double>::quiet_NaN());
        return;
    }
    figure_published_ = true;
    // On the meter's thread: the figure keeps moving while this flow's own
    // thread is busy, blocked or gone.
    if (env_.metrics != nullptr) env_.metrics->rpo.Add({{"flow", cfg_.name}}).Set(f.rpo_seconds);
    std::lock_guard lock(status_mu_);
    status_.lag = f.lag;
    status_.rpo_seconds = f.rpo_seconds;
}

void flow::watch_fetching(const kafka::rpo_meter::figures& f) {
    // librdkafka 2.0.2 can leave an assigned partition without a fetch
    // position for good (see rebalance_handler::on_assign): the flow reads
    // nothing from it while reporting running. No fetch position, not
    // paused, not held by this flow, and records waiting on the source for
    // longer than the partition's patience: take it again where it stands.
    const auto now = clock::now();
    std::vector<partition_state*> watched;
    kafka::partition_list query;
    for (const auto& pf : f.partitions) {
        auto it = topics_.find(pf.topic);
        if (it == topics_.end() || static_cast<size_t>(pf.partition) >= it->second->parts.size())
            continue;
        auto* ps = it->second->parts[static_cast<size_t>(pf.partition)].get();
        if (ps == nullptr || !ps->assigned) continue;
        if (paused_ || ps->broken || ps->seek_to >= 0 || it->second->deleted || !pf.sampled ||
            pf.lag <= 0) {
            ps->fetch_seen = now;
            continue;
        }
        watched.push_back(ps);
        query.push_back({pf.topic, pf.partition});
    }
    if (query.empty()) return;
    const auto pos = consumer_->positions(query);
    kafka::partition_list stalled;
    std::vector<partition_state*> moving;
    for (size_t i = 0; i < watched.size(); ++i) {
        auto* ps = watched[i];
        if (i < pos.size() && pos[i].offset >= 0) {
            ps->fetch_seen = now;
            ps->fetch_patience = fetch_stall_after;
            continue;
        }
        if (now - ps->fetch_seen < ps->fetch_patience) continue;
        stalled.push_back(query[i]);
        moving.push_back(ps);
    }
    if (stalled.empty()) return;
    std::string names;
    for (const auto& tp : stalled)
        names += (names.empty() ? "" : ", ") + tp.topic + "/" + std::to_string(tp.partition);
    // Where each stands: what the target acknowledged, else the group's
    // commit, else where a partition without one starts.
    auto committed = consumer_->committed(stalled, 5s);
    for (auto* ps : moving) {
        ps->fetch_seen = now;
        ps->fetch_patience =
            std::min<std::chrono::seconds>(ps->fetch_patience * 2, fetch_stall_cap);
    }
    if (!committed) {
        log_.warn("no fetch position for " + names +
                  "; cannot read where the group stands: " + committed.error().message);
        return;
    }
    for (size_t i = 0; i < stalled.size(); ++i) {
        const int64_t group = i < committed.value().size() ? committed.value()[i].offset : -1;
        stalled[i].offset = moving[i]->acked_next >= 0 ? moving[i]->acked_next
                            : group >= 0               ? group
                                                       : consumer_->start_without_commit();
    }
    count_error("fetch_stall");
    if (auto r = consumer_->reassign(stalled); !r) {
        log_.error("no fetch position for " + names +
                   "; re-assigning failed: " + r.error().message);
        return;
    }
    // The watchdog runs only while the flow is not paused: a partition left
    // paused (see on_assign) fetches again.
    (void)consumer_->resume(stalled);
    std::string where;
    for (const auto& tp : stalled)
        where += (where.empty() ? "" : ", ") + tp.topic + "/" + std::to_string(tp.partition) +
                 (tp.offset >= 0                           ? " at " + std::to_string(tp.offset)
                  : tp.offset == RD_KAFKA_OFFSET_BEGINNING ? " at its log start"
                  : tp.offset == RD_KAFKA_OFFSET_END       ? " at its log end"
                                                           : " at the group's commit");
    log_.warn(
        "partition(s) assigned with records waiting but never fetched (no fetch "
        "position for " +
        std::to_string(fetch_stall_after.count()) + " s or more); re-assigned " + where);
}

void flow::update_metrics() {
    // Acknowledged positions reach the meter at least once a second.
    const auto f = meter_->compute();
    watch_fetching(f);
    for (const auto& [ps, safe] : safe_positions(true))
        meter_->acknowledge(ps->topic->name, ps->partition, safe);
    for (const auto& pf : f.partitions) {
        auto it = topics_.find(pf.topic);
        if (it == topics_.end() || static_cast<size_t>(pf.partition) >= it->second->parts.size())
            continue;
        auto* ps = it->second->parts[static_cast<size_t>(pf.partition)].get();
        if (ps == nullptr) continue;
        ps->waiting = pf.sampled && pf.lag > 0;  // see over_share()
        if (ps->lag != nullptr) ps->lag->Set(static_cast<double>(pf.lag));
    }
    for (auto& [name, ts] : topics_) {
        if (ts->records != nullptr && ts->unreported_records > 0) {
            ts->records->Increment(static_cast<double>(ts->unreported_records));
            ts->bytes->Increment(static_cast<double>(ts->unreported_bytes));
        }
        ts->unreported_records = ts->unreported_bytes = 0;
    }
    if (latency_histogram_ != nullptr) latency_.flush_into(*latency_histogram_);
    if (env_.metrics != nullptr) {
        env_.metrics->in_flight_records.Add({{"flow", cfg_.name}})
            .Set(static_cast<double>(window_records_));
        env_.metrics->in_flight_bytes.Add({{"flow", cfg_.name}})
            .Set(static_cast<double>(in_flight_bytes_));
    }
}

void flow::run() noexcept {
    set_state(flow_state::running);
    log_.info("running: group replicatord." + cfg_.name + ", naming " +
              (cfg_.naming == conf::naming_policy::prefix ? "prefix" : "identity"));
    try {
        loop();
    } catch (const std::exception& e) {
        // A bug or an exhausted resource fails this flow, not the daemon.
        fail_unit(e.what());
    } catch (...) {
        fail_unit("unknown exception");
    }
    batch_.clear();
    shutdown();
}

void flow::fail_unit(const char* cause) noexcept {
    try {
        count_error("exception");
        log_.error(std::string("failed: ") + cause);
        set_state(flow_state::failed, std::string("internal error: ") + cause);
    } catch (...) {
        // Out of memory even for the message: the state alone still says it.
        std::lock_guard lock(status_mu_);
        status_.state = flow_state::failed;
    }
}

template <class F>
void flow::guarded(const char* step, F&& f) noexcept {
    // The cause that failed the run loop may come again here (memory is
    // still short, the same bug): it ends this step, not the process.
    try {
        f();
    } catch (const std::exception& e) {
        try {
            log_.error(std::string(step) + " at shutdown: " + e.what());
        } catch (...) {
        }
    } catch (...) {
        try {
            log_.error(std::string(step) + " at shutdown: unknown exception");
        } catch (...) {
        }
    }
}

void flow::loop() {
    batch_.reserve(10000);
    const auto max_records = static_cast<int64_t>(cfg_.max_in_flight_records);
    const auto max_bytes = static_cast<int64_t>(cfg_.max_in_flight_bytes);
    while (!stop_requested_.load()) {
        const auto now = clock::now();
        {
            std::lock_guard lock(status_mu_);
            status_.loop_at = now;
        }
        if (now >= next_refresh_) {
            next_refresh_ = now + cfg_.refresh_interval;
            const bool first = subscribed_.empty();
            auto r = discover();
            if (first && !subscribed_.empty() && consumer_->assignment().empty())
                primed_ = meter_->follow_commits(*consumer_, subscribed_);
            if (!r) {
                if (r.error().code == errc::conflict) {
                    log_.error(r.error().message);
                    set_state(flow_state::failed, r.error().message);
                    count_error("conflict");
                    break;
                }
                count_error("discovery");
                log_.warn("discovery: " + r.error().message);
            }
        }
        if (cfg_.heartbeats && now >= next_heartbeat_) {
            next_heartbeat_ = now + cfg_.heartbeat_interval;
            heartbeat();
        }

        // Back-pressure: pause rather than grow.
        const bool over = window_records_ >= max_records || in_flight_bytes_ >= max_bytes;
        if (over && !paused_) {
            set_paused(true);
            (void)consumer_->pause(consumer_->assignment());
            commit(false);
        } else if (paused_ && window_records_ < max_records * 3 / 4 &&
                   in_flight_bytes_ < max_bytes * 3 / 4) {
            set_paused(false);
            (void)consumer_->resume(consumer_->assignment());
        }

        batch_.clear();
        const size_t capacity =
            static_cast<size_t>(std::clamp<int64_t>(max_records - window_records_, 0, 10000));
        consumer_->poll(batch_, std::max<size_t>(capacity, 1), 100ms);
        for (auto& m : batch_) {
            if (rewind_needed_ || stop_requested_.load()) {
                // Taken from the consumer, never produced: see position_reliable.
                if (!m.err()) find(m)->position_reliable = false;
                continue;
            }
            if (auto* ps = m.err() ? nullptr : find(m);
                ps != nullptr && (window_records_ >= max_records || over_share(*ps, max_records))) {
                // The first record not sent is where this partition goes on.
                if (ps->assigned && !ps->broken && ps->seek_to == -1 && m.offset() >= ps->read_next)
                    ps->seek_to = m.offset();
                continue;
            }
            handle(m);
        }
        batch_.clear();
        producer_->poll(0ms);
        recover_partitions();
        source_producer_->poll(0ms);
        if (!rewind_needed_ && !producer_->fatal_error().empty()) rewind_needed_ = true;
        if (rewind_needed_ && !stop_requested_.load()) {
            rewind();
            continue;
        }
        // Commit on the timer, and early while the window is half full: the
        // window shrinks only when commits land, and a full window pauses
        // the consumer (which drops what it had prefetched).
        const auto after_poll = clock::now();
        const bool pressing = window_records_ * 2 >= max_records;
        if (after_poll >= next_commit_ || paused_ ||
            (pressing && after_poll >= last_commit_at_ + min_commit_gap)) {
            next_commit_ = after_poll + commit_interval;
            last_commit_at_ = after_poll;
            commit(false);
        }
        update_window();
        if (clock::now() >= next_metrics_) {
            next_metrics_ = clock::now() + 1s;
            update_metrics();
        }
    }
}

void flow::shutdown() noexcept {
    bool failed = true;
    guarded("state", [&] { failed = status().state == flow_state::failed; });
    if (producer_ && consumer_) {
        // Drain: whatever the target acknowledges now is committed; the rest
        // is re-read by the next run.
        guarded("drain", [&] {
            if (auto r = producer_->flush(drain_deadline); !r)
                log_.warn("drain: " + r.error().message);
        });
        guarded("commit", [&] { commit(true); });
    }
    if (consumer_) guarded("close", [&] { consumer_->close(drain_deadline); });
    if (producer_) {
        guarded("purge", [&] {
            producer_->purge();
            const auto until = clock::now() + 1s;
            while (producer_->outstanding() > 0 && clock::now() < until) producer_->poll(50ms);
        });
    }
    if (source_producer_) guarded("flush", [&] { (void)source_producer_->flush(500ms); });
    consumer_.reset();
    producer_.reset();
    // A failed flow keeps its meter (and the handle it samples through) until
    // it is destroyed: nothing is acknowledged any more, so its RPO keeps
    // growing while it waits to be restarted instead of freezing.
    if (!failed) {
        if (meter_) meter_->stop();
        meter_.reset();
        source_producer_.reset();
    }
    runs_.reset();
    guarded("stop", [&] {
        if (!failed) set_state(flow_state::stopped);
        log_.info(failed ? "stopped after failure" : "stopped");
    });
}

}  // namespace rpl::replicator
