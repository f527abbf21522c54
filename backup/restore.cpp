// Restore: plan (dry-run) and run. See restore.h for the flow and invariants.

#include "backup/restore.h"

#include "backup/segment.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/producer.h"
#include "kafka/reader.h"
#include "offsetsync/runs.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace rpl::backup {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

int32_t murmur2_partition(std::string_view key, int32_t partitions) noexcept {
    // Kafka's Utils.murmur2 (seed 0x9747b28c), made positive with
    // & 0x7fffffff, modulo the partition count: DefaultPartitioner's rule for
    // keyed records, which librdkafka's "murmur2" partitioner reproduces.
    const auto* data = reinterpret_cast<const unsigned char*>(key.data());
    const std::uint32_t m = 0x5bd1e995;
    const int r = 24;
    const auto length = static_cast<std::uint32_t>(key.size());
    std::uint32_t h = 0x9747b28c ^ length;
    const std::uint32_t length4 = length / 4;
    for (std::uint32_t i = 0; i < length4; ++i) {
        const std::uint32_t i4 = i * 4;
        std::uint32_t k = static_cast<std::uint32_t>(data[i4]) |
                          (static_cast<std::uint32_t>(data[i4 + 1]) << 8) |
                          (static_cast<std::uint32_t>(data[i4 + 2]) << 16) |
                          (static_cast<std::uint32_t>(data[i4 + 3]) << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const std::uint32_t tail = length4 * 4;
    switch (length % 4) {
        case 3: h ^= static_cast<std::uint32_t>(data[tail + 2]) << 16; [[fallthrough]];
        case 2: h ^= static_cast<std::uint32_t>(data[tail + 1]) << 8; [[fallthrough]];
        case 1:
            h ^= static_cast<std::uint32_t>(data[tail]);
            h *= m;
            break;
        default: break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return static_cast<int32_t>((h & 0x7fffffff) % static_cast<std::uint32_t>(partitions));
}

namespace {

kafka::endpoint target_endpoint(const conf::restore_config& cfg) {
    return kafka::endpoint{"target", cfg.target.bootstrap, cfg.target.client};
}

std::string range(int64_t from, int64_t to) {
    return "[" + std::to_string(from) + ", " + std::to_string(to) + ")";
}

// Whether a segment (from its key) can hold records in the window.
bool may_hold(const conf::restore_window& w, const segment_entry& e) {
    if (e.records == 0) return false;
    if (w.from_offset && e.end_offset <= *w.from_offset) return false;
    if (w.to_offset && e.start_offset > *w.to_offset) return false;
    if (w.from_ms && e.max_timestamp < *w.from_ms) return false;
    if (w.to_ms && e.min_timestamp > *w.to_ms) return false;
    return true;
}

// Whether every record of a span (offset and timestamp bounds) is in the window.
bool wholly_inside(const conf::restore_window& w, int64_t first, int64_t last, int64_t min_ts,
                   int64_t max_ts) {
    if (w.from_offset && first < *w.from_offset) return false;
    if (w.to_offset && last > *w.to_offset) return false;
    if (w.from_ms && min_ts < *w.from_ms) return false;
    if (w.to_ms && max_ts > *w.to_ms) return false;
    return true;
}

bool wholly_outside(const conf::restore_window& w, int64_t first, int64_t last, int64_t min_ts,
                    int64_t max_ts) {
    if (w.from_offset && last < *w.from_offset) return true;
    if (w.to_offset && first > *w.to_offset) return true;
    if (w.from_ms && max_ts < *w.from_ms) return true;
    if (w.to_ms && min_ts > *w.to_ms) return true;
    return false;
}

void widen(int64_t& lo, int64_t& hi, int64_t min_v, int64_t max_v) {
    if (lo < 0 || min_v < lo) lo = min_v;
    if (hi < 0 || max_v > hi) hi = max_v;
}

// Exact count of the window's records in one segment: whole frames from the
// index, frames the window cuts through decoded.
void count_segment(object_store& store, const conf::restore_window& w, const segment_entry& e,
                   partition_plan& pp, std::vector<damage>& damaged) {
    pp.stored_bytes += e.size;
    if (wholly_inside(w, e.start_offset, e.end_offset - 1, e.min_timestamp, e.max_timestamp)) {
        pp.records += e.records;
        widen(pp.min_timestamp, pp.max_timestamp, e.min_timestamp, e.max_timestamp);
        return;
    }
    auto bytes = store.get(e.key);
    if (!bytes) {
        damaged.push_back(damage{e.key, e.topic, e.partition, e.start_offset, e.end_offset,
                                 bytes.error().message});
        return;
    }
    auto seg = segment_reader::open(std::move(bytes.value()), e.key);
    if (!seg) {
        damaged.push_back(
            damage{e.key, e.topic, e.partition, e.start_offset, e.end_offset, seg.error().message});
        return;
    }
    const auto& frames = seg.value().frames();
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const frame_index& f = frames[i];
        if (f.records == 0 ||
            wholly_outside(w, f.first_offset, f.last_offset, f.min_timestamp, f.max_timestamp))
            continue;
        if (wholly_inside(w, f.first_offset, f.last_offset, f.min_timestamp, f.max_timestamp)) {
            pp.records += f.records;
            widen(pp.min_timestamp, pp.max_timestamp, f.min_timestamp, f.max_timestamp);
            continue;
        }
        auto recs = seg.value().read_frame(i);
        if (!recs) {
            damaged.push_back(damage{e.key, e.topic, e.partition, f.first_offset, f.last_offset + 1,
                                     recs.error().message});
            continue;
        }
        for (const auto& r : recs.value()) {
            if (!w.contains(r.offset, r.timestamp)) continue;
            ++pp.records;
            widen(pp.min_timestamp, pp.max_timestamp, r.timestamp, r.timestamp);
        }
    }
}

// Topic configs a restored topic must not take from the source: the
// timestamp type (LogAppendTime would overwrite the original timestamps) and
// replication throttles that name the source's brokers.
std::map<std::string, std::string> restorable_configs(const std::map<std::string, std::string>& c) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : c) {
        if (k == "message.timestamp.type" || k == "leader.replication.throttled.replicas" ||
            k == "follower.replication.throttled.replicas")
            continue;
        out[k] = v;
    }
    return out;
}

}  // namespace

Result<restore_plan> plan_restore(const conf::restore_config& cfg, object_store& store,
                                  const Logger& log) {
    restore_plan plan;
    plan.store = store.describe();
    RPL_TRY(store.check());
    RPL_TRY(cat, load_catalogue(store, cfg.backup));
    plan.meta = cat.meta();

    const auto include = conf::compile_patterns(cfg.topics);
    const auto exclude = conf::compile_patterns(cfg.exclude_topics);
    std::vector<std::string> selected;
    for (const auto& t : cat.topics()) {
        if (conf::full_match_any(include, t) && !conf::full_match_any(exclude, t))
            selected.push_back(t);
    }
    if (selected.empty()) {
        std::string have;
        for (const auto& t : cat.topics()) have += (have.empty() ? "" : ", ") + t;
        return fail(errc::invalid_config,
                    cfg.path + ": topics: no topic of backup '" + cfg.backup +
                        "' matches (topics in the backup: " + (have.empty() ? "none" : have) + ")");
    }
    for (const auto& [src, dst] : cfg.rename) {
        if (std::find(selected.begin(), selected.end(), src) == selected.end())
            log.warn("rename: topic '" + src + "' is not restored from backup '" + cfg.backup +
                     "'; its rename has no effect");
    }
    std::map<std::string, std::string> target_of;  // target -> source
    for (const auto& t : selected) {
        const std::string dst = cfg.target_topic(t);
        if (const auto [it, fresh] = target_of.emplace(dst, t); !fresh) {
            std::string message = cfg.path;
            message += ": topics '" + it->second + "' and '";
            message += t;
            message += "' would both be restored into '" + dst + "'";
            return fail(errc::invalid_config, std::move(message));
        }
    }

    // The target: reachable, topics there or creatable, partition counts fit.
    const kafka::endpoint ep = target_endpoint(cfg);
    plan.target = ep.describe();
    RPL_TRY(md, kafka::probe(ep, 15s, log));

    const std::optional<int64_t> at = cfg.window.to_ms;
    for (const auto& t : selected) {
        topic_plan tp;
        tp.topic = t;
        tp.target_topic = cfg.target_topic(t);
        const auto parts = cat.partitions(t);
        const topic_meta* meta = cat.topic(t, at);
        if (!meta) meta = cat.topic(t);
        tp.backup_partitions = meta ? meta->partitions : 0;
        for (const int32_t p : parts) tp.backup_partitions = std::max(tp.backup_partitions, p + 1);
        const kafka::topic_info* ti = md.topic(tp.target_topic);
        if (ti && ti->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            tp.target_partitions = static_cast<int32_t>(ti->partitions.size());
            if (tp.target_partitions < tp.backup_partitions &&
                cfg.mapping == conf::partition_mapping::preserve) {
                return fail(errc::conflict,
                            "target topic '" + tp.target_topic + "' on " + ep.describe() + " has " +
                                std::to_string(tp.target_partitions) + " partitions, but topic '" +
                                t + "' in backup '" + cfg.backup + "' has " +
                                std::to_string(tp.backup_partitions) +
                                "; set partition_mapping = \"murmur2\" in " + cfg.path +
                                " to spread records by key, or add partitions to the target "
                                "topic");
            }
        } else {
            tp.create = true;
            tp.target_partitions = tp.backup_partitions;
            if (meta) tp.configs = restorable_configs(meta->configs);
        }
        for (const int32_t p : parts) {
            partition_plan pp;
            pp.partition = p;
            for (const auto& e : cat.segments(t, p)) {
                if (!may_hold(cfg.window, e)) continue;
                pp.segments.push_back(e);
                count_segment(store, cfg.window, e, pp, plan.damaged);
            }
            if (!pp.segments.empty()) {
                pp.first_offset = pp.segments.front().start_offset;
                pp.last_offset = pp.segments.back().end_offset;
            }
            plan.records += pp.records;
            plan.stored_bytes += pp.stored_bytes;
            tp.partitions.push_back(std::move(pp));
        }
        plan.topics.push_back(std::move(tp));
    }

    // Groups from the snapshot at or before the window's end.
    if (cfg.restore_groups) {
        RPL_TRY(snap, cat.load_group_snapshot(store, at));
        if (snap) {
            plan.snapshot_ms = snap->taken_ms;
            const auto g_in = conf::compile_patterns(cfg.groups);
            const auto g_ex = conf::compile_patterns(cfg.exclude_groups);
            RPL_TRY(client, kafka::Client::create(kafka::client_kind::producer, ep, {}, log));
            kafka::admin adm(client, 15s);
            for (const auto& [group, offsets] : snap->groups) {
                if (!conf::full_match_any(g_in, group) || conf::full_match_any(g_ex, group))
                    continue;
                group_plan gp;
                gp.group = group;
                for (auto o : offsets) {
                    if (std::find(selected.begin(), selected.end(), o.topic) == selected.end())
                        continue;
                    // Offsets in the archive's terms: a group that committed
                    // on a recreated topic counts from that topic's epoch.
                    o.offset += cat.base_at(o.topic, o.partition, snap->taken_ms);
                    gp.offsets.push_back(o);
                }
                if (gp.offsets.empty()) continue;
                if (cfg.mapping == conf::partition_mapping::murmur2) {
                    gp.refused =
                        "partition_mapping = \"murmur2\" moves records between partitions, so "
                        "committed offsets cannot be translated";
                } else if (auto desc = adm.describe_group(group);
                           desc && desc.value().members > 0) {
                    gp.refused = "group " + group + " has " + std::to_string(desc.value().members) +
                                 " active member(s) on " + ep.describe() + " (" +
                                 desc.value().state + ")";
                }
                plan.groups.push_back(std::move(gp));
            }
        }
    }
    return plan;
}

void print_plan(const restore_plan& plan, const conf::restore_config& cfg, std::ostream& out) {
    out << "restore of backup '" << plan.meta.id << "' (source " << plan.meta.source_cluster << " "
        << plan.meta.source_bootstrap << ") from " << plan.store << "\n";
    out << "to " << plan.target << ", partition mapping " << conf::to_string(cfg.mapping);
    if (cfg.rate_limit) out << ", rate limit " << conf::format_size(cfg.rate_limit) << "/s";
    out << "\n";
    const auto& w = cfg.window;
    if (w.by_time())
        out << "window: timestamps from " << (w.from_ms ? conf::format_timestamp(*w.from_ms) : "-")
            << " to " << (w.to_ms ? conf::format_timestamp(*w.to_ms) : "-") << " (inclusive)\n";
    else if (w.by_offset())
        out << "window: offsets from " << (w.from_offset ? std::to_string(*w.from_offset) : "-")
            << " to " << (w.to_offset ? std::to_string(*w.to_offset) : "-") << " (inclusive)\n";
    else
        out << "window: everything in the backup\n";
    out << "\n";

    std::vector<std::vector<std::string>> rows = {
        {"TOPIC", "PARTITION", "TARGET-TOPIC", "ACTION", "SEGMENTS", "SEGMENT-OFFSETS", "RECORDS",
         "STORED-BYTES", "MIN-TIMESTAMP", "MAX-TIMESTAMP"}};
    for (const auto& tp : plan.topics) {
        const std::string action =
            tp.create ? "create (" + std::to_string(tp.target_partitions) + " partitions)"
                      : "exists (" + std::to_string(tp.target_partitions) + " partitions)";
        for (const auto& pp : tp.partitions) {
            rows.push_back({tp.topic, std::to_string(pp.partition), tp.target_topic, action,
                            std::to_string(pp.segments.size()),
                            pp.segments.empty() ? "-" : range(pp.first_offset, pp.last_offset),
                            std::to_string(pp.records), std::to_string(pp.stored_bytes),
                            conf::format_timestamp(pp.min_timestamp),
                            conf::format_timestamp(pp.max_timestamp)});
        }
    }
    conf::print_table(rows, out);
    std::size_t partitions = 0;
    for (const auto& tp : plan.topics) partitions += tp.partitions.size();
    out << "\ntotal: " << plan.records << " records in " << partitions << " partitions of "
        << plan.topics.size() << " topics, " << plan.stored_bytes << " stored bytes to read\n";

    if (!cfg.restore_groups) {
        out << "consumer groups: not restored (restore_groups = false)\n";
    } else if (!plan.snapshot_ms) {
        out << "consumer groups: no group snapshot at or before the window's end\n";
    } else {
        out << "consumer groups from the snapshot taken at "
            << conf::format_timestamp(*plan.snapshot_ms) << ":\n";
        if (plan.groups.empty()) out << "  (no group matches)\n";
        for (const auto& g : plan.groups) {
            out << "  " << g.group;
            if (!g.refused.empty()) out << "  REFUSED: " << g.refused;
            out << "\n";
            for (const auto& o : g.offsets)
                out << "    " << o.topic << "/" << o.partition << " committed " << o.offset
                    << " -> " << cfg.target_topic(o.topic) << "/" << o.partition
                    << " (translated through the restore's offset runs)\n";
        }
    }
    if (!plan.damaged.empty()) {
        out << "\ndamaged ranges found while counting ("
            << (cfg.skip_damaged ? "will be skipped" : "restore will stop there") << "):\n";
        for (const auto& d : plan.damaged) out << "  " << d.describe() << "\n";
    }
}

// ---------------------------------------------------------------------------
// Run

namespace {

// Bytes per second with a burst of a tenth of a second (at least 64 KiB),
// so one large record never blocks forever.
class token_bucket {
public:
    explicit token_bucket(std::uint64_t rate) : rate_(static_cast<double>(rate)) {
        burst_ = std::max(rate_ / 10, 65536.0);
        tokens_ = burst_;
    }
    // How long to wait before n bytes may be sent (zero when they may go
    // now); the bytes are taken either way.
    std::chrono::microseconds take(std::uint64_t n) {
        if (rate_ <= 0) return {};
        const auto now = clock_type::now();
        tokens_ =
            std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
        last_ = now;
        tokens_ -= static_cast<double>(n);
        if (tokens_ >= 0) return {};
        return std::chrono::microseconds(static_cast<int64_t>(-tokens_ / rate_ * 1e6));
    }

private:
    double rate_;
    double burst_ = 0;
    double tokens_ = 0;
    clock_type::time_point last_ = clock_type::now();
};

std::string fmt_bytes(double b) {
    char buf[32];
    if (b >= 1024.0 * 1024 * 1024)
        std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
    else
        std::snprintf(buf, sizeof buf, "%.0f KiB", b / 1024);
    return buf;
}

class progress_line {
public:
    progress_line(bool on, std::uint64_t total) : on_(on), total_(total) {}
    void update(std::uint64_t records, std::uint64_t bytes, bool force = false) {
        if (!on_) return;
        const auto now = clock_type::now();
        if (!force && now - last_ < 250ms) return;
        last_ = now;
        const double secs = std::chrono::duration<double>(now - start_).count();
        const double pct =
            total_ ? 100.0 * static_cast<double>(records) / static_cast<double>(total_) : 100.0;
        std::string eta = "-";
        if (records > 0 && total_ > records && secs > 0) {
            const double left =
                secs * static_cast<double>(total_ - records) / static_cast<double>(records);
            eta = std::to_string(static_cast<int64_t>(left)) + "s";
        }
        std::fprintf(
            stderr, "\rrestored %llu/%llu records (%.1f%%), %s, %s/s, ETA %s   ",
            static_cast<unsigned long long>(records), static_cast<unsigned long long>(total_), pct,
            fmt_bytes(static_cast<double>(bytes)).c_str(),
            fmt_bytes(secs > 0 ? static_cast<double>(bytes) / secs : 0).c_str(), eta.c_str());
    }
    void done() {
        if (on_) std::fprintf(stderr, "\n");
    }

private:
    bool on_;
    std::uint64_t total_;
    clock_type::time_point start_ = clock_type::now();
    clock_type::time_point last_{};
};

struct delivery_state {
    offsetsync::partition_runs* runs = nullptr;  // preserve mapping only
    std::optional<Error> error;
    std::uint64_t delivered = 0;
};

std::optional<int64_t> parse_i64(const void* v, std::size_t n) {
    if (v == nullptr || n == 0) return std::nullopt;
    int64_t x = 0;
    const char* p = static_cast<const char*>(v);
    const auto [end, ec] = std::from_chars(p, p + n, x);
    if (ec != std::errc{} || end != p + n) return std::nullopt;
    return x;
}

// Sends one archived record with its headers plus the source-offset header
// (and the source-partition header when partitions are remapped). The
// producer copies every byte, so `r` may go right after.
rd_kafka_resp_err_t send(kafka::producer& prod, const std::string& topic, int32_t partition,
                         const archived_record& r, int32_t source_partition, bool with_partition,
                         void* opaque) {
    std::vector<kafka::record_header> headers;
    headers.reserve(r.headers.size() + 2);
    for (const auto& hd : r.headers) {
        headers.push_back(
            {hd.name, hd.value ? hd.value->data() : nullptr, hd.value ? hd.value->size() : 0});
    }
    const std::string off = std::to_string(r.offset);
    headers.push_back({source_offset_header, off.data(), off.size()});
    const std::string sp = std::to_string(source_partition);
    if (with_partition) headers.push_back({source_partition_header, sp.data(), sp.size()});
    return prod.produce_copy(topic, partition, r.key ? r.key->data() : nullptr,
                             r.key ? r.key->size() : 0, r.value ? r.value->data() : nullptr,
                             r.value ? r.value->size() : 0, headers,
                             r.timestamp >= 0 ? r.timestamp : 0, opaque);
}

std::size_t record_bytes(const archived_record& r) {
    std::size_t n = (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0);
    for (const auto& h : r.headers) n += h.name.size() + (h.value ? h.value->size() : 0);
    return n;
}

// What an earlier, interrupted run already put on the target for one source
// partition: the highest restored source offset and how many records.
struct resume_point {
    int64_t restored_up_to = -1;
    std::uint64_t records = 0;
};

// Reads a target partition and learns from the restored records' headers
// where each source partition stands; with `runs`, rebuilds its offset runs.
// A partition created moments ago may answer "not leader" for a while, so a
// failed read is retried (from scratch) for up to 30 s.
Result<void> scan_target(const kafka::endpoint& ep, const std::string& topic, int32_t tpart,
                         bool by_header_partition, int32_t fixed_source_partition,
                         std::map<int32_t, resume_point>& resume, offsetsync::partition_runs* runs,
                         const Logger& log) {
    const auto until = clock_type::now() + 30s;
    while (true) {
        std::map<int32_t, resume_point> found;
        offsetsync::partition_runs rebuilt;
        auto on_record = [&](const kafka::message& m) -> Result<void> {
            std::optional<int64_t> src;
            std::optional<int64_t> sp;
            m.for_each_header([&](const kafka::record_header& h) {
                if (h.name == source_offset_header) src = parse_i64(h.value, h.size);
                if (h.name == source_partition_header) sp = parse_i64(h.value, h.size);
            });
            if (!src) return ok();  // not a restored record
            const int32_t part = by_header_partition ? static_cast<int32_t>(sp.value_or(-1))
                                                     : fixed_source_partition;
            auto& rp = found[part];
            rp.restored_up_to = std::max(rp.restored_up_to, *src);
            ++rp.records;
            (void)rebuilt.add(*src, m.offset());
            return ok();
        };
        auto r = kafka::read_to_end(ep, topic, tpart, 10min, log, on_record);
        if (r) {
            for (const auto& [part, rp] : found) {
                auto& into = resume[part];
                into.restored_up_to = std::max(into.restored_up_to, rp.restored_up_to);
                into.records += rp.records;
            }
            if (runs) *runs = std::move(rebuilt);
            return ok();
        }
        if (r.error().code == errc::not_found || clock_type::now() >= until) return r.error();
        log.debug("reading " + topic + "/" + std::to_string(tpart) + ": " + r.error().message +
                  " (retrying)");
        std::this_thread::sleep_for(250ms);
    }
}

}  // namespace

Result<restore_result> run_restore(const conf::restore_config& cfg, object_store& store,
                                   const restore_plan& plan, const restore_options& opt,
                                   const Logger& log) {
    restore_result res;
    const auto started = clock_type::now();
    const kafka::endpoint ep = target_endpoint(cfg);
    const bool preserve = cfg.mapping == conf::partition_mapping::preserve;

    delivery_state ds;
    // Idempotent with acks=all (forced by kafka::producer): per partition the
    // target holds a prefix of what was sent, in order; that is what resume
    // relies on.
    const kafka::properties props = {
        {"linger.ms", "20"}, {"batch.size", "1048576"}, {"queue.buffering.max.kbytes", "262144"}};
    auto on_delivery = [&ds](const kafka::delivery& d) {
        if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (!ds.error) ds.error = kafka::kafka_error(d.err, "restore delivery");
            return;
        }
        ++ds.delivered;
        if (ds.runs) {
            const int64_t src = reinterpret_cast<intptr_t>(d.opaque) - 1;
            (void)ds.runs->add(src, d.offset);
        }
    };
    RPL_TRY(prod, kafka::producer::create(ep, props, log, on_delivery));

    // Topics first: create what is missing, as the plan said.
    {
        RPL_TRY(md, kafka::fetch_metadata(prod.client(), 15s));
        const int brokers = static_cast<int>(md.brokers.size());
        kafka::admin adm(prod.client(), 30s);
        for (const auto& tp : plan.topics) {
            if (!tp.create) continue;
            const int rf = cfg.replication_factor > 0 ? cfg.replication_factor
                                                      : std::max(1, std::min(3, brokers));
            auto r = adm.create_topic(tp.target_topic, tp.target_partitions, rf, tp.configs);
            if (!r && r.error().code != errc::conflict) return r.error();
            log.info("created topic " + tp.target_topic + " with " +
                     std::to_string(tp.target_partitions) + " partitions on " + ep.describe());
        }
        // Wait for the new topics' leaders, so the first produce does not race them.
        const auto until = clock_type::now() + 30s;
        for (bool ready = false; !ready && clock_type::now() < until;) {
            ready = true;
            RPL_TRY(m2, kafka::fetch_metadata(prod.client(), 15s));
            for (const auto& tp : plan.topics) {
                const auto* ti = m2.topic(tp.target_topic);
                if (!ti || ti->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
                    static_cast<int32_t>(ti->partitions.size()) < tp.target_partitions ||
                    std::any_of(ti->partitions.begin(), ti->partitions.end(),
                                [](const kafka::partition_info& p) { return p.leader < 0; }))
                    ready = false;
            }
            if (!ready) std::this_thread::sleep_for(200ms);
        }
    }

    progress_line progress(opt.progress, plan.records);
    token_bucket bucket(cfg.rate_limit);
    std::map<std::pair<std::string, int32_t>, offsetsync::partition_runs> runs;

    auto drain = [&](const std::string& what) -> Result<void> {
        auto f = prod.flush(10min);
        if (ds.error) {
            Error e = *ds.error;
            e.message += " (" + what + ")";
            return boost::outcome_v2::failure(std::move(e));
        }
        if (!f) return f.error();
        return ok();
    };

    for (const auto& tp : plan.topics) {
        // Resume: what an earlier run already wrote, per source partition.
        std::map<int32_t, resume_point> resume;
        if (!preserve) {
            for (int32_t t = 0; t < tp.target_partitions; ++t) {
                RPL_TRY(scan_target(ep, tp.target_topic, t, true, -1, resume, nullptr, log));
            }
        }
        for (const auto& pp : tp.partitions) {
            const std::string where = tp.topic + "/" + std::to_string(pp.partition);
            auto& pruns = runs[{tp.topic, pp.partition}];
            if (preserve) {
                RPL_TRY(scan_target(ep, tp.target_topic, pp.partition, false, pp.partition, resume,
                                    &pruns, log));
            }
            const resume_point rp =
                resume.count(pp.partition) ? resume[pp.partition] : resume_point{};
            res.already += rp.records;
            if (rp.records > 0)
                log.info(where + ": " + std::to_string(rp.records) +
                         " records already restored; resuming after source offset " +
                         std::to_string(rp.restored_up_to));
            ds.runs = preserve ? &pruns : nullptr;

            for (const auto& e : pp.segments) {
                if (e.end_offset - 1 <= rp.restored_up_to) continue;
                if (opt.stop && opt.stop->load()) {
                    RPL_TRY(drain(where));
                    return fail(errc::cancelled,
                                "restore interrupted at " + where + "; run it again to resume");
                }
                auto on_damage = [&](damage d) -> Result<void> {
                    if (opt.skip_damaged) {
                        log.warn("skipping damaged range: " + d.describe());
                        res.skipped.push_back(std::move(d));
                        return ok();
                    }
                    RPL_TRY(drain(where));
                    return fail(errc::corrupt,
                                "damaged backup: " + d.describe() +
                                    "; nothing at or after offset " + std::to_string(d.from) +
                                    " of " + where +
                                    " was restored (run with --skip-damaged or skip_damaged = "
                                    "true to skip the damaged range)");
                };
                auto bytes = store.get(e.key);
                if (!bytes) {
                    if (bytes.error().code != errc::not_found) return bytes.error();
                    RPL_TRY(on_damage(damage{e.key, e.topic, e.partition, e.start_offset,
                                             e.end_offset, bytes.error().message}));
                    continue;
                }
                auto seg = segment_reader::open(std::move(bytes.value()), e.key);
                if (!seg) {
                    RPL_TRY(on_damage(damage{e.key, e.topic, e.partition, e.start_offset,
                                             e.end_offset, seg.error().message}));
                    continue;
                }
                const auto& frames = seg.value().frames();
                for (std::size_t i = 0; i < frames.size(); ++i) {
                    const frame_index& f = frames[i];
                    if (f.records == 0 || f.last_offset <= rp.restored_up_to ||
                        wholly_outside(cfg.window, f.first_offset, f.last_offset, f.min_timestamp,
                                       f.max_timestamp))
                        continue;
                    auto recs = seg.value().read_frame(i);
                    const std::string bad =
                        recs ? check_frame(seg.value(), i, recs.value()) : recs.error().message;
                    if (!bad.empty()) {
                        RPL_TRY(on_damage(damage{e.key, e.topic, e.partition, f.first_offset,
                                                 f.last_offset + 1, bad}));
                        continue;
                    }
                    for (const auto& r : recs.value()) {
                        if (r.offset <= rp.restored_up_to) continue;
                        if (!cfg.window.contains(r.offset, r.timestamp)) continue;
                        int32_t target_part = pp.partition;
                        if (!preserve) {
                            target_part = r.key ? murmur2_partition(*r.key, tp.target_partitions)
                                                : pp.partition % tp.target_partitions;
                        }
                        const std::size_t n = record_bytes(r);
                        for (auto wait = bucket.take(n); wait.count() > 0;) {
                            const auto step = std::min<std::chrono::microseconds>(wait, 50ms);
                            std::this_thread::sleep_for(step);
                            prod.poll(0ms);
                            wait -= step;
                        }
                        // The opaque carries the source offset (+1, so never null).
                        void* opaque =
                            reinterpret_cast<void*>(  // NOLINT(performance-no-int-to-ptr)
                                static_cast<intptr_t>(r.offset + 1));
                        while (true) {
                            const auto err = send(prod, tp.target_topic, target_part, r,
                                                  pp.partition, !preserve, opaque);
                            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
                            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                return kafka::kafka_error(
                                    err, "produce to " + tp.target_topic + "/" +
                                             std::to_string(target_part) + " on " + ep.describe());
                            prod.poll(50ms);
                        }
                        ++res.records;
                        res.bytes += n;
                        if ((res.records & 1023) == 0) {
                            prod.poll(0ms);
                            if (ds.error) {
                                RPL_TRY(drain(where));
                            }
                        }
                        progress.update(res.records + res.already, res.bytes);
                    }
                }
            }
            RPL_TRY(drain(where));
        }
    }
    progress.update(res.records + res.already, res.bytes, true);
    progress.done();

    // Consumer groups, through the runs of this restore.
    if (cfg.restore_groups && !plan.groups.empty()) {
        kafka::admin adm(prod.client(), 15s);
        std::optional<kafka::reader> rd;
        for (const auto& g : plan.groups) {
            group_result gr;
            gr.group = g.group;
            gr.refused = g.refused;
            if (gr.refused.empty()) {
                if (auto desc = adm.describe_group(g.group); desc && desc.value().members > 0)
                    gr.refused = "group " + g.group + " has " +
                                 std::to_string(desc.value().members) + " active member(s) on " +
                                 ep.describe() + " (" + desc.value().state + ")";
            }
            if (!gr.refused.empty()) {
                res.groups.push_back(std::move(gr));
                continue;
            }
            kafka::partition_list commit;
            for (const auto& o : g.offsets) {
                const std::string target_topic = cfg.target_topic(o.topic);
                int64_t to = -1;
                const auto it = runs.find({o.topic, o.partition});
                if (it != runs.end()) {
                    if (auto t = it->second.lookup(o.offset)) to = t->target_offset;
                }
                if (to < 0) {
                    // Nothing restored in this partition: the consumer starts
                    // at whatever the target partition holds next.
                    if (!rd) {
                        RPL_TRY(r, kafka::reader::create(ep, {}, log));
                        rd.emplace(std::move(r));
                    }
                    auto wm = rd->query_watermarks(target_topic, o.partition, 15s);
                    for (int attempt = 0; !wm && attempt < 40; ++attempt) {
                        std::this_thread::sleep_for(250ms);  // a new topic's leader settling
                        wm = rd->query_watermarks(target_topic, o.partition, 15s);
                    }
                    if (!wm) return wm.error();
                    to = wm.value().high;
                }
                gr.offsets.emplace_back(o, to);
                commit.push_back({target_topic, o.partition, to});
            }
            RPL_TRY(adm.alter_group_offsets(g.group, commit));
            res.groups.push_back(std::move(gr));
        }
    }
    res.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    return res;
}

}  // namespace rpl::backup
