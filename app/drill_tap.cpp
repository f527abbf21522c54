// The archive drill: `replicatorctl drill --config F --tap NAME --cluster SCRATCH
// [--window 10m] [--sample N] [--keep] [--report FILE.md] [--json]`.
//
//   T0: catalogue of the tap's backup ──┐
//       source end offsets (primary) ───┴──> RPO: per partition, records the
//                                            archive lacks and the age of the
//                                            first of them
//   window = [newest archived timestamp - window, newest archived timestamp]
//   plan_restore + run_restore ──> SCRATCH: drill.<topic>   (timed: the RTO)
//   drill.<topic>/p ──replicatord.source.offset──> source <topic>/p at that
//       offset: key, value, headers, timestamp equal? (every record, or
//       --sample N per partition; a record the source no longer holds is
//       "gone", not a failure; after a recreated source topic the archive
//       holds epochs (catalogue.h): the newest epoch's records are compared
//       at archive offset - base, earlier epochs' are gone)
//   delete drill.<topic> on SCRATCH (unless --keep) ──> report, exit code
//
// Invariants: the drill writes only to topics it created itself on the
// scratch cluster (it refuses when a drill.<topic> already exists, so it
// never appends to or deletes anyone else's data); it restores no consumer
// groups and commits nothing anywhere (its readers assign partitions, never
// join a group); it never writes to the source. Topics it created are
// deleted even when the restore or the verification fails, unless --keep.
// Exit codes: 0 every target met and every check passed; 5 a target missed
// or a record differs or is missing; 2 bad arguments (unknown scratch
// cluster, scratch = source); 4 refused (a drill.* topic exists); 3 store or
// cluster unreachable; 1 anything else.
// --timeout bounds the drill's reads (RPO measurement and verification),
// counted from the start; the restore itself has no deadline.
// Thread model: one thread; SIGINT/SIGTERM stop the restore and the
// verification early and still clean up.
#include "app/drill.h"
#include "app/plan.h"
#include "backup/catalogue.h"
#include "backup/restore.h"
#include "backup/store.h"
#include "backup/verify.h"
#include "conf/restore_config.h"
#include "conf/topic_policy.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/reader.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace rpl::app {

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int exit_refused = 4;
constexpr const char* drill_prefix = "drill.";
constexpr std::size_t max_listed_differences = 10;

std::atomic<bool> stop_requested{false};
extern "C" void on_drill_signal(int) { stop_requested.store(true); }

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

std::string fixed(double v, int digits = 3) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(digits) << v;
    return o.str();
}

// A topic name as a full-match regex of itself (topic names are
// [a-zA-Z0-9._-]; '.' is the only character with a meaning).
std::string literal_pattern(const std::string& topic) {
    std::string out;
    for (const char c : topic) {
        if (c == '.' || c == '-') out += '\\';
        out += c;
    }
    return out;
}

// ---- measurements -------------------------------------------------------

struct partition_rpo {
    std::string topic;
    int32_t partition = 0;
    int64_t source_end = 0;         // high watermark at T0
    int64_t archive_end = -1;       // one past the last archived offset; -1: nothing archived
    int64_t not_archived = 0;       // records (offsets) the archive lacks
    int64_t first_missing_ts = -1;  // timestamp of the first record not archived
    int64_t age_ms = 0;             // T0 - first_missing_ts, or 0 when fully archived
};

struct partition_check {
    std::string topic;         // in the backup (= on the source)
    std::string target_topic;  // drill.<topic>
    int32_t partition = 0;
    std::uint64_t planned = 0;   // records of the window, from the plan
    std::uint64_t restored = 0;  // records found on the drill topic
    int64_t first_offset = -1;   // first and last source offset restored
    int64_t last_offset = -1;
    std::uint64_t checked = 0;
    std::uint64_t equal = 0;
    std::uint64_t differ = 0;
    std::uint64_t gone = 0;  // no longer on the source (retention, compaction, recreation)
    // Of the gone: records of an earlier epoch of a recreated topic.
    std::uint64_t earlier_epoch = 0;
    // The newest epoch's base: source offset = archive offset - base.
    int64_t base = 0;
    [[nodiscard]] std::uint64_t missing() const {
        return planned > restored ? planned - restored : 0;
    }
};

struct target_result {
    std::optional<conf::duration> target;
    bool measured = false;  // false when the drill stopped before measuring it
    int64_t measured_ms = 0;
    [[nodiscard]] bool met() const { return !target || measured_ms <= target->count(); }
    [[nodiscard]] std::string verdict() const {
        if (!measured) return "not measured";
        if (!target) return "no target";
        return met() ? "pass" : "FAIL";
    }
};

struct drill_report {
    std::string tap;
    int64_t t0_ms = 0;
    std::string store;  // masked
    std::string backup;
    std::string source;   // "primary (host:port)"
    std::string scratch;  // "dr (host:port)"
    conf::duration window{0};
    int64_t from_ms = -1;
    int64_t to_ms = -1;

    std::vector<partition_rpo> rpo;
    int64_t rpo_ms = 0;
    int64_t rpo_records = 0;

    std::vector<std::pair<std::string, std::string>> topics;  // backup topic -> drill topic
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    double plan_seconds = 0;
    double restore_seconds = 0;
    double verify_seconds = 0;
    double cleanup_seconds = 0;
    std::uint64_t archive_records = 0;  // the whole archive, for the extrapolation

    bool sampled = false;
    int sample = 0;
    std::vector<partition_check> checks;
    std::vector<std::string> differences;  // the first few, each naming topic/partition/offset
    std::uint64_t more_differences = 0;

    target_result rpo_target;
    target_result rto_target;

    std::vector<std::string> created;  // drill topics this run created (and so may delete)
    bool kept = false;
    std::vector<std::string> deleted;
    std::vector<std::string> cleanup_errors;
    std::vector<std::string> warnings;
    // Records the source deleted before the tap archived them, per range
    // ("topic/p offsets [a, b) ..."), and their count; those noticed inside
    // the window fail the drill.
    std::vector<std::string> losses;
    // Partitions whose source topic was recreated (or truncated) while
    // archived, one line each.
    std::vector<std::string> recreated;
    std::uint64_t lost_records = 0;
    std::uint64_t lost_in_window = 0;
    std::vector<std::string> failures;  // why the drill failed; empty = pass
    std::string error;                  // the drill stopped early: why

    [[nodiscard]] double rto_seconds() const { return plan_seconds + restore_seconds; }
    [[nodiscard]] double records_per_second() const {
        return restore_seconds > 0 ? static_cast<double>(records) / restore_seconds : 0;
    }
    [[nodiscard]] std::uint64_t total(std::uint64_t partition_check::*field) const {
        std::uint64_t n = 0;
        for (const auto& c : checks) n += c.*field;
        return n;
    }
    [[nodiscard]] std::uint64_t missing() const {
        std::uint64_t n = 0;
        for (const auto& c : checks) n += c.missing();
        return n;
    }
};

// ---- reading ------------------------------------------------------------

// The drill's readers move from partition to partition (and, with
// --sample, from offset to offset); a fetch long-polling an exhausted
// partition delays the next assignment by fetch.wait.max.ms (500 ms by
// default), so they poll briefly. The group is never joined.
kafka::properties reader_props() {
    return {{"fetch.wait.max.ms", "10"}, {"group.id", "replicatord-drill-reader"}};
}

// The next record of the partition assigned to rd at or after `from`;
// nullopt when the partition's end is reached first. errc::timeout at `until`.
Result<std::optional<kafka::message>> next_record(kafka::reader& rd, const std::string& where,
                                                  int64_t from, clock_type::time_point until) {
    for (;;) {
        if (stop_requested.load()) return fail(errc::cancelled, "stopped by a signal");
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
        if (left <= 0ms)
            return fail(errc::timeout, "reading " + where + ": no record at or after offset " +
                                           std::to_string(from) + " before the drill's --timeout");
        kafka::message m = rd.poll(std::min<std::chrono::milliseconds>(left, 500ms));
        if (!m) continue;
        if (m.err() == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m.offset() >= from) return std::optional<kafka::message>();
            continue;
        }
        if (m.err() != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (kafka::is_retriable(m.err())) continue;
            return kafka::kafka_error(m.err(), "reading " + where);
        }
        if (m.offset() < from) continue;
        return std::optional<kafka::message>(std::move(m));
    }
}

std::optional<std::string> bytes_of(const void* p, std::size_t n) {
    if (p == nullptr) return std::nullopt;
    return std::string(static_cast<const char*>(p), n);
}

// What the drill compares: key, value, headers (without the restore's own),
// timestamp.
struct record_view {
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
    int64_t timestamp = -1;
    // Restored records: the replicatord.source.offset header, which carries
    // the archive offset (the source offset unless the topic was recreated).
    int64_t archive_offset = -1;
    int64_t source_offset = -1;  // in the source topic as it is now
};

record_view view_of(const kafka::message& m, bool restored) {
    record_view v;
    v.key = bytes_of(m.key(), m.key_size());
    v.value = bytes_of(m.value(), m.value_size());
    v.timestamp = m.timestamp();
    m.for_each_header([&](const kafka::record_header& h) {
        if (restored && h.name == backup::source_offset_header) {
            const char* b = static_cast<const char*>(h.value);
            int64_t off = -1;
            if (b != nullptr && std::from_chars(b, b + h.size, off).ec == std::errc())
                v.archive_offset = v.source_offset = off;
            return;
        }
        v.headers.emplace_back(std::string(h.name), bytes_of(h.value, h.size));
    });
    return v;
}

// "" when equal, else what differs.
std::string difference(const record_view& restored, const record_view& source) {
    std::string out;
    auto add = [&out](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
    if (restored.key != source.key) add("key");
    if (restored.value != source.value) add("value");
    if (restored.headers != source.headers)
        add("headers (" + std::to_string(restored.headers.size()) + " restored, " +
            std::to_string(source.headers.size()) + " on the source)");
    if (restored.timestamp != source.timestamp)
        add("timestamp (" + std::to_string(restored.timestamp) + " restored, " +
            std::to_string(source.timestamp) + " on the source)");
    return out;
}

// Compares one restored partition with its source partition: every record
// in one pass over both (their source offsets ascend), or `sample` records
// spread evenly, each fetched where it is. pc.base maps the newest epoch's
// archive offsets to the source; below it, records of an earlier epoch are
// no longer on the source.
Result<void> verify_partition(kafka::reader& restored_rd, kafka::reader& source_rd,
                              const kafka::endpoint& scratch, const kafka::endpoint& source,
                              std::optional<int> sample, clock_type::time_point until,
                              partition_check& pc, drill_report& rep) {
    const std::string rwhere =
        pc.target_topic + "/" + std::to_string(pc.partition) + " on " + scratch.describe();
    const std::string swhere =
        pc.topic + "/" + std::to_string(pc.partition) + " on " + source.describe();
    RPL_TRY(rwm, restored_rd.query_watermarks(pc.target_topic, pc.partition, 15s));
    RPL_TRY(swm, source_rd.query_watermarks(pc.topic, pc.partition, 15s));
    if (rwm.high <= rwm.low) return ok();

    auto note = [&](const std::string& topic, int64_t offset, const std::string& what) {
        if (rep.differences.size() < max_listed_differences)
            rep.differences.push_back(topic + "/" + std::to_string(pc.partition) + " offset " +
                                      std::to_string(offset) + ": " + what);
        else
            ++rep.more_differences;
    };
    auto compare = [&](const record_view& r, const kafka::message& s) {
        ++pc.checked;
        const std::string d = difference(r, view_of(s, false));
        if (d.empty()) {
            ++pc.equal;
        } else {
            ++pc.differ;
            note(pc.topic, r.source_offset,
                 d + " differ" +
                     (pc.base != 0 ? " (archive offset " + std::to_string(r.archive_offset) + ")"
                                   : std::string()));
        }
    };
    auto track = [&](const record_view& r) {
        if (pc.first_offset < 0 || r.archive_offset < pc.first_offset)
            pc.first_offset = r.archive_offset;
        pc.last_offset = std::max(pc.last_offset, r.archive_offset);
    };
    // A restored record to compare: it names its archive offset, it belongs
    // to the topic the source holds now (the newest epoch), and the source
    // still holds that offset. Otherwise it is counted and skipped.
    auto comparable = [&](const kafka::message& m) -> std::optional<record_view> {
        record_view r = view_of(m, true);
        if (r.archive_offset < 0) {
            ++pc.checked;
            ++pc.differ;
            note(pc.target_topic, m.offset(),
                 std::string("restored record without a ") + backup::source_offset_header +
                     " header");
            return std::nullopt;
        }
        track(r);
        if (r.archive_offset < pc.base) {
            ++pc.gone;
            ++pc.earlier_epoch;
            return std::nullopt;
        }
        r.source_offset = r.archive_offset - pc.base;
        if (r.source_offset < swm.low || r.source_offset >= swm.high) {
            ++pc.gone;
            return std::nullopt;
        }
        return r;
    };

    if (sample) {
        // Restored offsets to look at, evenly spread, first and last included.
        const int64_t count = rwm.high - rwm.low;
        pc.restored = static_cast<std::uint64_t>(count);
        std::set<int64_t> picks;
        const int64_t n = std::min<int64_t>(*sample, count);
        for (int64_t k = 0; k < n; ++k)
            picks.insert(rwm.low + (n == 1 ? 0 : k * (count - 1) / (n - 1)));
        for (const int64_t at : picks) {
            RPL_TRY(restored_rd.assign(pc.target_topic, pc.partition, at));
            RPL_TRY(rm, next_record(restored_rd, rwhere, at, until));
            if (!rm) break;
            const auto maybe = comparable(*rm);
            if (!maybe) continue;
            const record_view& r = *maybe;
            RPL_TRY(source_rd.assign(pc.topic, pc.partition, r.source_offset));
            RPL_TRY(sm, next_record(source_rd, swhere, r.source_offset, until));
            if (!sm || sm->offset() != r.source_offset) {
                ++pc.gone;
                continue;
            }
            compare(r, *sm);
        }
        return ok();
    }

    // Every record: both partitions read forward once.
    RPL_TRY(restored_rd.assign(pc.target_topic, pc.partition, rwm.low));
    std::optional<kafka::message> cur;  // the source record read last
    bool source_assigned = false, source_done = false;
    for (int64_t next = rwm.low; next < rwm.high;) {
        RPL_TRY(rm, next_record(restored_rd, rwhere, next, until));
        if (!rm) break;
        next = rm->offset() + 1;
        ++pc.restored;
        const auto maybe = comparable(*rm);
        if (!maybe) continue;
        const record_view& r = *maybe;
        if (!source_assigned) {
            RPL_TRY(source_rd.assign(pc.topic, pc.partition, r.source_offset));
            source_assigned = true;
        }
        while (!source_done && (!cur || cur->offset() < r.source_offset)) {
            RPL_TRY(sm, next_record(source_rd, swhere, r.source_offset, until));
            if (!sm) {
                source_done = true;
                cur.reset();
            } else {
                cur = std::move(sm);
            }
        }
        if (!cur || cur->offset() != r.source_offset) {
            ++pc.gone;  // compacted away, or an aborted record's offset
            continue;
        }
        compare(r, *cur);
    }
    return ok();
}

// RPO at T0: per partition the tap selects on the source, what the archive
// lacks and how old the first missing record is.
Result<void> measure_rpo(const conf::tap_config& tap, const kafka::endpoint& source,
                         const backup::catalogue& cat, clock_type::time_point until,
                         const Logger& log, drill_report& rep) {
    RPL_TRY(md, kafka::probe(source, 15s, log));
    const conf::topic_policy policy(tap);
    RPL_TRY(rd, kafka::reader::create(source, reader_props(), log));
    for (const auto& t : md.topics) {
        if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR || !policy.mirrored(t.name)) continue;
        for (const auto& pi : t.partitions) {
            partition_rpo pr;
            pr.topic = t.name;
            pr.partition = pi.id;
            RPL_TRY(wm, rd.query_watermarks(t.name, pi.id, 15s));
            pr.source_end = wm.high;
            const auto& segs = cat.segments(t.name, pi.id);
            // In source offsets: after a recreation the archive continues
            // from its newest epoch's base (catalogue.h).
            const auto& epochs = cat.epochs(t.name, pi.id);
            if (!segs.empty())
                pr.archive_end = segs.back().end_offset - (epochs.empty() ? 0 : epochs.back().base);
            const int64_t first = std::max(pr.archive_end, wm.low);
            if (first < wm.high) {
                RPL_TRY(rd.assign(t.name, pi.id, first));
                RPL_TRY(m,
                        next_record(
                            rd, t.name + "/" + std::to_string(pi.id) + " on " + source.describe(),
                            first, until));
                if (m) {
                    pr.not_archived = wm.high - m->offset();
                    pr.first_missing_ts = m->timestamp();
                    pr.age_ms = std::max<int64_t>(0, rep.t0_ms - pr.first_missing_ts);
                }
            }
            if (pr.archive_end > wm.high)
                rep.warnings.push_back(
                    t.name + "/" + std::to_string(pi.id) + " ends at offset " +
                    std::to_string(wm.high) + " on " + source.describe() +
                    ", before the archive's end " + std::to_string(pr.archive_end) +
                    ": the topic was recreated or truncated since it was archived");
            rep.rpo_ms = std::max(rep.rpo_ms, pr.age_ms);
            rep.rpo_records += pr.not_archived;
            rep.rpo.push_back(std::move(pr));
        }
    }
    return ok();
}

// ---- output -------------------------------------------------------------

std::string md_table(const std::vector<std::vector<std::string>>& rows) {
    std::ostringstream o;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        o << "|";
        for (const auto& c : rows[i]) o << " " << c << " |";
        o << "\n";
        if (i == 0) {
            o << "|";
            for (std::size_t k = 0; k < rows[i].size(); ++k) o << "---|";
            o << "\n";
        }
    }
    return o.str();
}

std::string target_text(const target_result& t) {
    return t.target ? conf::format_duration(*t.target) : "-";
}

std::string markdown(const drill_report& r) {
    std::ostringstream o;
    o << "# DR drill: archive tap `" << r.tap << "`\n\n";
    o << "- Time (T0): " << conf::format_timestamp(r.t0_ms) << "\n";
    o << "- Store: " << r.store << ", backup `" << r.backup << "`\n";
    o << "- Source: " << r.source << "\n";
    o << "- Scratch cluster: " << r.scratch << ", topics restored as `" << drill_prefix
      << "<topic>`\n";
    o << "- Window: last " << conf::format_duration(r.window) << " of the archive, timestamps "
      << conf::format_timestamp(r.from_ms) << " to " << conf::format_timestamp(r.to_ms)
      << " (the newest archived record)\n";
    o << "- Result: "
      << (r.failures.empty() ? std::string("**PASS**")
                             : "**FAIL** (" + std::to_string(r.failures.size()) + " problem(s))")
      << "\n\n";

    o << "## Targets\n\n";
    o << md_table({{"MEASURE", "MEASURED", "TARGET", "RESULT"},
                   {"RPO (archive behind the source at T0)",
                    r.rpo_target.measured ? fixed(static_cast<double>(r.rpo_ms) / 1000.0) + " s, " +
                                                std::to_string(r.rpo_records) + " records"
                                          : "-",
                    target_text(r.rpo_target), r.rpo_target.verdict()},
                   {"RTO (restore of the window)",
                    r.rto_target.measured
                        ? fixed(r.rto_seconds()) + " s, " + std::to_string(r.records) + " records"
                        : "-",
                    target_text(r.rto_target), r.rto_target.verdict()}});
    if (!r.failures.empty()) {
        o << "\n";
        for (const auto& f : r.failures) o << "- FAIL: " << f << "\n";
    }
    if (!r.losses.empty()) {
        o << "\n## Records lost before they were archived\n\n"
          << r.lost_records
          << " record(s) were deleted at the source (retention, DeleteRecords) before the tap "
             "archived them; no restore can bring them back:\n\n";
        for (const auto& l : r.losses) o << "- LOST: " << l << "\n";
    }

    o << "\n## Restore (RTO)\n\n";
    o << "- Records: " << r.records << " (" << fixed(static_cast<double>(r.bytes) / 1e6, 1)
      << " MB of keys, values and headers)\n";
    o << "- Time: " << fixed(r.rto_seconds()) << " s (plan " << fixed(r.plan_seconds)
      << " s, create topics and restore " << fixed(r.restore_seconds) << " s), "
      << fixed(r.records_per_second(), 0) << " records/s\n";
    if (r.records_per_second() > 0)
        o << "- The whole archive (" << r.archive_records << " records) at this rate: about "
          << fixed(static_cast<double>(r.archive_records) / r.records_per_second(), 1) << " s\n";
    o << "\n";
    std::vector<std::vector<std::string>> restored = {
        {"TOPIC", "RESTORED-AS", "PARTITION", "RECORDS", "SOURCE-OFFSETS"}};
    for (const auto& c : r.checks)
        restored.push_back({c.topic, c.target_topic, std::to_string(c.partition),
                            std::to_string(c.restored),
                            c.first_offset < 0 ? "-"
                                               : std::to_string(c.first_offset) + ".." +
                                                     std::to_string(c.last_offset) +
                                                     (c.base != 0 ? " (archive offsets)" : "")});
    o << md_table(restored);

    o << "\n## Archive RPO per partition\n\n";
    std::vector<std::vector<std::string>> rpo = {
        {"TOPIC", "PARTITION", "SOURCE-END", "ARCHIVE-END", "NOT-ARCHIVED", "AGE"}};
    for (const auto& p : r.rpo)
        rpo.push_back({p.topic, std::to_string(p.partition), std::to_string(p.source_end),
                       p.archive_end < 0 ? "-" : std::to_string(p.archive_end),
                       std::to_string(p.not_archived),
                       fixed(static_cast<double>(p.age_ms) / 1000.0) + " s"});
    o << md_table(rpo);

    o << "\n## Verification against the source\n\n";
    o << "Mode: "
      << (r.sampled ? "a sample of " + std::to_string(r.sample) + " records per partition"
                    : std::string("every restored record"))
      << "; key, value, headers and timestamp compared with the source record at the offset in "
         "the `"
      << backup::source_offset_header << "` header"
      << (r.recreated.empty() ? "" : " (less the base of a recreated topic's epoch)") << "; "
      << fixed(r.verify_seconds) << " s.\n\n";
    std::vector<std::vector<std::string>> ver = {{"TOPIC", "PARTITION", "PLANNED", "RESTORED",
                                                  "CHECKED", "EQUAL", "DIFFER", "GONE", "MISSING"}};
    for (const auto& c : r.checks)
        ver.push_back({c.topic, std::to_string(c.partition), std::to_string(c.planned),
                       std::to_string(c.restored), std::to_string(c.checked),
                       std::to_string(c.equal), std::to_string(c.differ), std::to_string(c.gone),
                       std::to_string(c.missing())});
    ver.push_back({"total", "", std::to_string(r.total(&partition_check::planned)),
                   std::to_string(r.total(&partition_check::restored)),
                   std::to_string(r.total(&partition_check::checked)),
                   std::to_string(r.total(&partition_check::equal)),
                   std::to_string(r.total(&partition_check::differ)),
                   std::to_string(r.total(&partition_check::gone)), std::to_string(r.missing())});
    o << md_table(ver);
    o << "\nGONE: the source no longer holds the record (retention, compaction, or a recreated "
         "topic); not a failure.\n";
    if (!r.recreated.empty()) {
        o << "\nRecreated topics (" << r.total(&partition_check::earlier_epoch)
          << " restored record(s) from before a recreation, among the GONE):\n";
        for (const auto& line : r.recreated) o << "- " << line << "\n";
    }
    if (!r.differences.empty()) {
        o << "\nDifferences:\n";
        for (const auto& d : r.differences) o << "- " << d << "\n";
        if (r.more_differences > 0) o << "- ... and " << r.more_differences << " more\n";
    }

    o << "\n## Cleanup\n\n";
    if (r.kept) {
        o << "Kept (--keep):";
        for (const auto& t : r.created) o << " `" << t << "`";
        o << " on " << r.scratch << ". Delete them before the next drill.\n";
    } else {
        if (r.deleted.empty())
            o << "Nothing to delete.\n";
        else {
            o << "Deleted on " << r.scratch << ":";
            for (const auto& d : r.deleted) o << " `" << d << "`";
            o << " (" << fixed(r.cleanup_seconds) << " s)\n";
        }
    }
    for (const auto& e : r.cleanup_errors) o << "- NOT deleted: " << e << "\n";
    o << "No consumer group was created or committed to.\n";
    if (!r.warnings.empty()) {
        o << "\n## Warnings\n\n";
        for (const auto& w : r.warnings) o << "- " << w << "\n";
    }
    return o.str();
}

std::string json_target(const target_result& t) {
    std::ostringstream o;
    o << "{\"target_ms\":" << (t.target ? std::to_string(t.target->count()) : "null")
      << ",\"measured_ms\":" << (t.measured ? std::to_string(t.measured_ms) : "null")
      << ",\"result\":" << conf::quoted_string(t.verdict()) << "}";
    return o.str();
}

std::string json_strings(const std::vector<std::string>& v) {
    std::string o = "[";
    for (std::size_t i = 0; i < v.size(); ++i) o += (i ? "," : "") + conf::quoted_string(v[i]);
    return o + "]";
}

std::string json(const drill_report& r) {
    std::ostringstream o;
    o << "{\"drill\":\"tap\",\"tap\":" << conf::quoted_string(r.tap) << ",\"t0_ms\":" << r.t0_ms
      << ",\"t0\":" << conf::quoted_string(conf::format_timestamp(r.t0_ms))
      << ",\"store\":" << conf::quoted_string(r.store)
      << ",\"backup\":" << conf::quoted_string(r.backup)
      << ",\"source\":" << conf::quoted_string(r.source)
      << ",\"scratch\":" << conf::quoted_string(r.scratch)
      << ",\"prefix\":" << conf::quoted_string(drill_prefix)
      << ",\"window\":{\"duration_ms\":" << r.window.count() << ",\"from_ms\":" << r.from_ms
      << ",\"to_ms\":" << r.to_ms << "}";
    o << ",\"rpo\":{\"ms\":" << r.rpo_ms << ",\"records\":" << r.rpo_records << ",\"partitions\":[";
    for (std::size_t i = 0; i < r.rpo.size(); ++i) {
        const auto& p = r.rpo[i];
        o << (i ? "," : "") << "{\"topic\":" << conf::quoted_string(p.topic)
          << ",\"partition\":" << p.partition << ",\"source_end\":" << p.source_end
          << ",\"archive_end\":" << p.archive_end << ",\"not_archived\":" << p.not_archived
          << ",\"first_missing_timestamp\":" << p.first_missing_ts << ",\"age_ms\":" << p.age_ms
          << "}";
    }
    o << "]}";
    o << ",\"restore\":{\"records\":" << r.records << ",\"bytes\":" << r.bytes
      << ",\"plan_seconds\":" << fixed(r.plan_seconds)
      << ",\"restore_seconds\":" << fixed(r.restore_seconds)
      << ",\"verify_seconds\":" << fixed(r.verify_seconds)
      << ",\"cleanup_seconds\":" << fixed(r.cleanup_seconds)
      << ",\"seconds\":" << fixed(r.rto_seconds())
      << ",\"records_per_second\":" << fixed(r.records_per_second(), 1)
      << ",\"archive_records\":" << r.archive_records << ",\"topics\":[";
    for (std::size_t i = 0; i < r.topics.size(); ++i)
        o << (i ? "," : "") << "{\"topic\":" << conf::quoted_string(r.topics[i].first)
          << ",\"restored_as\":" << conf::quoted_string(r.topics[i].second) << "}";
    o << "]}";
    o << ",\"verification\":{\"mode\":\"" << (r.sampled ? "sample" : "all") << "\"";
    if (r.sampled) o << ",\"sample\":" << r.sample;
    o << ",\"planned\":" << r.total(&partition_check::planned)
      << ",\"restored\":" << r.total(&partition_check::restored)
      << ",\"checked\":" << r.total(&partition_check::checked)
      << ",\"equal\":" << r.total(&partition_check::equal)
      << ",\"differ\":" << r.total(&partition_check::differ)
      << ",\"gone\":" << r.total(&partition_check::gone)
      << ",\"earlier_epoch\":" << r.total(&partition_check::earlier_epoch)
      << ",\"missing\":" << r.missing() << ",\"partitions\":[";
    for (std::size_t i = 0; i < r.checks.size(); ++i) {
        const auto& c = r.checks[i];
        o << (i ? "," : "") << "{\"topic\":" << conf::quoted_string(c.topic)
          << ",\"restored_as\":" << conf::quoted_string(c.target_topic)
          << ",\"partition\":" << c.partition << ",\"planned\":" << c.planned
          << ",\"restored\":" << c.restored << ",\"first_source_offset\":" << c.first_offset
          << ",\"last_source_offset\":" << c.last_offset << ",\"checked\":" << c.checked
          << ",\"equal\":" << c.equal << ",\"differ\":" << c.differ << ",\"gone\":" << c.gone
          << ",\"earlier_epoch\":" << c.earlier_epoch << ",\"base\":" << c.base
          << ",\"missing\":" << c.missing() << "}";
    }
    o << "],\"differences\":" << json_strings(r.differences)
      << ",\"more_differences\":" << r.more_differences << "}";
    o << ",\"targets\":{\"rpo\":" << json_target(r.rpo_target)
      << ",\"rto\":" << json_target(r.rto_target) << "}";
    o << ",\"cleanup\":{\"kept\":" << (r.kept ? "true" : "false")
      << ",\"deleted\":" << json_strings(r.deleted)
      << ",\"errors\":" << json_strings(r.cleanup_errors) << "}";
    o << ",\"warnings\":" << json_strings(r.warnings);
    o << ",\"lost_records\":" << r.lost_records << ",\"lost_in_window\":" << r.lost_in_window
      << ",\"losses\":" << json_strings(r.losses) << ",\"recreated\":" << json_strings(r.recreated);
    o << ",\"error\":" << (r.error.empty() ? "null" : conf::quoted_string(r.error));
    o << ",\"result\":\"" << (r.failures.empty() ? "pass" : "fail") << "\""
      << ",\"failures\":" << json_strings(r.failures) << "}\n";
    return o.str();
}

int exit_for(const Error& e) {
    switch (e.code) {
        case errc::invalid_config: return exit_invalid_config;
        case errc::unreachable:
        case errc::timeout: return exit_unreachable;
        case errc::conflict: return exit_refused;
        default: return exit_failure;
    }
}

// ---- the drill ----------------------------------------------------------

struct drill_context {
    const conf::Config& cfg;
    const conf::tap_config& tap;
    const drill_args& args;
    const conf::cluster_config& source;
    const conf::cluster_config& scratch;
    Logger log;
    drill_report rep;
};

// Everything up to the verification; errors stop the drill (cleanup still
// runs for what was created).
Result<void> restore_and_verify(drill_context& d) {
    auto& rep = d.rep;
    const auto until = clock_type::now() + d.args.timeout;
    const kafka::endpoint source_ep = endpoint_of(d.source);
    const kafka::endpoint scratch_ep = endpoint_of(d.scratch);

    backup::store_options so;
    so.access_key = d.tap.s3_access_key;
    so.secret_key = d.tap.s3_secret_key;
    RPL_TRY(store, backup::open_store(d.tap.storage, so));
    rep.store = store->describe();
    RPL_TRY(store->check());
    RPL_TRY(cat, backup::load_catalogue(*store, d.tap.name));

    // RPO at T0, right after the listing, so the source ends are not older
    // than the archive's.
    RPL_TRY(measure_rpo(d.tap, source_ep, cat, until, d.log, rep));
    rep.rpo_target.measured = true;
    rep.rpo_target.measured_ms = rep.rpo_ms;

    // The window: the last `window` of the archive, by record timestamps.
    const conf::topic_policy policy(d.tap);
    std::vector<std::string> topics;
    for (const auto& t : cat.topics())
        if (policy.mirrored(t)) topics.push_back(t);
    for (const auto& t : topics)
        for (const int32_t p : cat.partitions(t))
            for (const auto& e : cat.segments(t, p)) {
                rep.archive_records += e.records;
                if (e.records > 0) rep.to_ms = std::max(rep.to_ms, e.max_timestamp);
            }
    if (rep.to_ms < 0)
        return fail(errc::not_found, "the archive of tap " + d.tap.name + " in " + rep.store +
                                         " holds no record of the topics the tap selects yet");
    rep.from_ms = rep.to_ms - d.args.window.count();
    for (const auto& t : topics)
        for (const int32_t p : cat.partitions(t)) {
            backup::verify_report lost;  // its lost_records() counts overlaps once
            lost.losses = cat.losses(t, p);
            rep.lost_records += lost.lost_records();
            for (const auto& l : lost.losses) {
                const bool in_window = l.noticed_ms >= rep.from_ms;
                if (in_window) rep.lost_in_window += static_cast<std::uint64_t>(l.to - l.from);
                rep.losses.push_back(t + "/" + std::to_string(p) + " offsets [" +
                                     std::to_string(l.from) + ", " + std::to_string(l.to) +
                                     "), noticed " + conf::format_timestamp(l.noticed_ms) +
                                     (in_window ? " (in the window)" : ""));
            }
        }
    std::vector<std::string> in_window;
    for (const auto& t : topics) {
        bool any = false;
        for (const int32_t p : cat.partitions(t))
            for (const auto& e : cat.segments(t, p))
                any = any || (e.records > 0 && e.max_timestamp >= rep.from_ms);
        if (any) in_window.push_back(t);
    }

    // The scratch cluster: reachable, and no drill topic there already.
    RPL_TRY(md, kafka::probe(scratch_ep, 15s, d.log));
    std::vector<std::string> existing;
    for (const auto& t : in_window) {
        const std::string dt = drill_prefix + t;
        if (const auto* ti = md.topic(dt); ti && ti->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            existing.push_back(dt);
    }
    if (!existing.empty()) {
        std::string names;
        for (const auto& e : existing) names += (names.empty() ? "" : ", ") + e;
        return fail(errc::conflict,
                    "topic(s) " + names + " already exist on the scratch cluster " +
                        scratch_ep.describe() +
                        ": a drill never writes into or deletes a topic it did not create. If "
                        "they are left from an earlier drill (--keep, or one that was killed), "
                        "delete each (kafka-topics.sh --bootstrap-server " +
                        d.scratch.bootstrap + " --delete --topic NAME) and run the drill again");
    }
    for (const auto& t : in_window) {
        const std::string dt = drill_prefix + t;
        rep.topics.emplace_back(t, dt);
        for (const auto& f : d.cfg.flows) {
            if (f.source == d.scratch.name && conf::topic_policy(f).mirrored(dt))
                rep.warnings.push_back("flow " + f.name + " mirrors " + dt + " from " +
                                       d.scratch.name + " while it exists; exclude '" +
                                       drill_prefix + ".*' in its exclude_topics");
        }
        for (const auto& tc : d.cfg.taps) {
            if (tc.source == d.scratch.name && conf::topic_policy(tc).mirrored(dt))
                rep.warnings.push_back("tap " + tc.name + " archives " + dt + " from " +
                                       d.scratch.name + " while it exists; exclude '" +
                                       drill_prefix + ".*' in its exclude_topics");
        }
    }

    // The restore, as `replicatorctl restore` would run it, timed.
    conf::restore_config rc;
    rc.path = "drill of tap " + d.tap.name;
    rc.store = d.tap.storage;
    rc.s3_access_key = d.tap.s3_access_key;
    rc.s3_secret_key = d.tap.s3_secret_key;
    rc.backup = d.tap.name;
    rc.target = d.scratch;
    rc.topics.clear();
    for (const auto& t : in_window) rc.topics.push_back(literal_pattern(t));
    rc.window.from_ms = rep.from_ms;
    rc.window.to_ms = rep.to_ms;
    rc.topic_prefix = drill_prefix;
    rc.mapping = conf::partition_mapping::preserve;
    rc.restore_groups = false;  // a drill touches no group
    rc.skip_damaged = false;

    const auto plan_start = clock_type::now();
    RPL_TRY(plan, backup::plan_restore(rc, *store, d.log));
    rep.plan_seconds = seconds_since(plan_start);
    if (!plan.damaged.empty())
        return fail(errc::corrupt,
                    "the window holds damaged archive data: " + plan.damaged.front().describe() +
                        " (replicatorctl backup verify --deep names all)");

    // The drill creates its topics itself, before the restore (which then
    // finds them in place): creation is atomic, so a drill topic another
    // drill created in the meantime is refused here, never written into or
    // deleted by this one.
    const auto run_start = clock_type::now();
    {
        RPL_TRY(client, kafka::Client::create(kafka::client_kind::producer, scratch_ep, {}, d.log));
        const kafka::admin adm(client, 30s);
        const int rf = std::max(1, std::min(3, static_cast<int>(md.brokers.size())));
        for (const auto& tp : plan.topics) {
            auto r = adm.create_topic(tp.target_topic, tp.target_partitions, rf, tp.configs);
            if (!r && r.error().code == errc::conflict)
                return fail(errc::conflict, "topic " + tp.target_topic + " appeared on " +
                                                scratch_ep.describe() +
                                                " while the drill started (another drill?); "
                                                "refusing to write into it");
            if (!r) return r.error();
            d.rep.created.push_back(tp.target_topic);
        }
    }
    backup::restore_options ro;
    ro.stop = &stop_requested;
    RPL_TRY(res, backup::run_restore(rc, *store, plan, ro, d.log));
    rep.restore_seconds = seconds_since(run_start);
    if (stop_requested.load())
        return fail(errc::cancelled, "stopped by a signal during the restore");
    rep.records = res.records;
    rep.bytes = res.bytes;
    rep.rto_target.measured = true;
    rep.rto_target.measured_ms = static_cast<int64_t>(rep.rto_seconds() * 1000.0);

    // Verification against the source, partition by partition.
    const auto verify_start = clock_type::now();
    RPL_TRY(restored_rd, kafka::reader::create(scratch_ep, reader_props(), d.log));
    RPL_TRY(source_rd, kafka::reader::create(source_ep, reader_props(), d.log));
    for (const auto& tp : plan.topics) {
        for (const auto& pp : tp.partitions) {
            if (pp.records == 0) continue;
            partition_check pc;
            pc.topic = tp.topic;
            pc.target_topic = tp.target_topic;
            pc.partition = pp.partition;
            pc.planned = pp.records;
            if (const auto& epochs = cat.epochs(tp.topic, pp.partition); !epochs.empty()) {
                pc.base = epochs.back().base;
                rep.recreated.push_back(
                    tp.topic + "/" + std::to_string(pp.partition) +
                    " was recreated or truncated at the source (" + std::to_string(epochs.size()) +
                    " time(s), last recorded " + conf::format_timestamp(epochs.back().taken_ms) +
                    "): archive offsets from " + std::to_string(pc.base) +
                    " on hold the topic as it is now, at source offset = archive offset - " +
                    std::to_string(pc.base) +
                    "; the records below are no longer on the source and count as gone");
            }
            const auto t = clock_type::now();
            RPL_TRY(verify_partition(restored_rd, source_rd, scratch_ep, source_ep, d.args.sample,
                                     until, pc, rep));
            d.log.debug("verified " + tp.topic + "/" + std::to_string(pp.partition) + ": " +
                        std::to_string(pc.checked) + " records in " + fixed(seconds_since(t)) +
                        " s");
            rep.checks.push_back(std::move(pc));
        }
    }
    rep.verify_seconds = seconds_since(verify_start);
    return ok();
}

// Deletes the drill topics this run created (unless --keep).
void clean_up(drill_context& d) {
    auto& rep = d.rep;
    if (d.args.keep) {
        rep.kept = true;
        return;
    }
    if (d.rep.created.empty()) return;
    const auto start = clock_type::now();
    auto client =
        kafka::Client::create(kafka::client_kind::producer, endpoint_of(d.scratch), {}, d.log);
    if (!client) {
        for (const auto& t : d.rep.created)
            rep.cleanup_errors.push_back(t + ": " + client.error().message);
        return;
    }
    const kafka::admin adm(client.value(), 30s);
    for (const auto& t : d.rep.created) {
        auto r = adm.delete_topic(t);
        if (r) {
            rep.deleted.push_back(t);
            continue;
        }
        // A topic the restore never got to create is not a failure.
        if (r.error().code == errc::not_found ||
            r.error().message.find("nknown topic") != std::string::npos)
            continue;
        rep.cleanup_errors.push_back(t + ": " + r.error().message);
    }
    rep.cleanup_seconds = seconds_since(start);
}

}  // namespace

int run_tap_drill(const conf::Config& cfg, const conf::tap_config& tap, const drill_args& args) {
    const std::string me = "replicatorctl: drill --tap " + tap.name + ": ";
    const conf::cluster_config* scratch = cfg.cluster(args.cluster);
    if (args.cluster.empty()) {
        std::cerr << me << "--cluster SCRATCH is required: the cluster to restore into\n";
        return exit_invalid_config;
    }
    if (scratch == nullptr) {
        std::string known;
        for (const auto& [name, c] : cfg.clusters) known += (known.empty() ? "" : ", ") + name;
        std::cerr << me << "--cluster " << args.cluster << ": no such cluster in " << cfg.path
                  << " (clusters: " << known << ")\n";
        return exit_invalid_config;
    }
    const conf::cluster_config* source = cfg.cluster(tap.source);
    if (source == nullptr) {
        std::cerr << me << "the tap's source cluster " << tap.source << " is not in " << cfg.path
                  << "\n";
        return exit_invalid_config;
    }
    if (scratch->name == source->name || scratch->bootstrap == source->bootstrap) {
        std::cerr << me << "--cluster " << args.cluster << " is the tap's source cluster ("
                  << source->bootstrap
                  << "); restore drills into a scratch cluster, never into production\n";
        return exit_invalid_config;
    }
    if (args.window.count() <= 0) {
        std::cerr << me << "--window must be positive\n";
        return exit_invalid_config;
    }
    if (args.sample && *args.sample <= 0) {
        std::cerr << me << "--sample must be a positive number of records per partition\n";
        return exit_invalid_config;
    }

    drill_context d{cfg, tap, args, *source, *scratch, Logger("drill tap " + tap.name), {}};
    auto& rep = d.rep;
    rep.tap = tap.name;
    rep.backup = tap.name;
    rep.store = conf::masked_url(tap.storage);
    rep.source = endpoint_of(*source).describe();
    rep.scratch = endpoint_of(*scratch).describe();
    rep.window = args.window;
    rep.sampled = args.sample.has_value();
    rep.sample = args.sample.value_or(0);
    rep.rpo_target.target = tap.rpo_target;
    rep.rto_target.target = tap.rto_target;
    rep.t0_ms = wall_ms();

    stop_requested.store(false);
    const auto old_int = std::signal(SIGINT, on_drill_signal);
    const auto old_term = std::signal(SIGTERM, on_drill_signal);
    auto done = restore_and_verify(d);
    clean_up(d);
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);

    // Verdicts. A drill that stopped early reports what it measured and
    // cleaned up, fails, and exits with its error's code.
    if (!done) {
        rep.error = done.error().message;
        rep.failures.push_back("the drill stopped early: " + rep.error);
    }
    if (rep.rpo_target.measured && !rep.rpo_target.met())
        rep.failures.push_back("rpo_target " + conf::format_duration(*tap.rpo_target) +
                               " missed: the archive was " +
                               fixed(static_cast<double>(rep.rpo_ms) / 1000.0) + " s (" +
                               std::to_string(rep.rpo_records) + " records) behind the source");
    if (rep.rto_target.measured && !rep.rto_target.met())
        rep.failures.push_back("rto_target " + conf::format_duration(*tap.rto_target) +
                               " missed: restoring the window took " + fixed(rep.rto_seconds()) +
                               " s");
    if (rep.lost_in_window > 0)
        rep.failures.push_back(std::to_string(rep.lost_in_window) +
                               " record(s) were deleted at the source before the tap archived "
                               "them, noticed within the window");
    if (const auto n = rep.total(&partition_check::differ); n > 0)
        rep.failures.push_back(std::to_string(n) + " restored record(s) differ from the source");
    if (const auto n = rep.missing(); n > 0)
        rep.failures.push_back(std::to_string(n) +
                               " record(s) of the window are missing from the drill topics");
    if (rep.records != rep.total(&partition_check::planned))
        rep.failures.push_back("the restore wrote " + std::to_string(rep.records) +
                               " records, the plan counted " +
                               std::to_string(rep.total(&partition_check::planned)));

    const std::string md = markdown(rep);
    std::cout << (args.json ? json(rep) : md);
    std::cout.flush();
    int code = !done ? exit_for(done.error()) : rep.failures.empty() ? exit_ok : exit_drill_failed;
    if (!args.report_path.empty()) {
        std::ofstream f(args.report_path, std::ios::binary | std::ios::trunc);
        f << md;
        f.close();
        if (!f) {
            std::cerr << me << "cannot write the report to " << args.report_path << "\n";
            if (code == exit_ok) code = exit_failure;
        }
    }
    for (const auto& f : rep.failures) std::cerr << me << "FAIL: " << f << "\n";
    if (rep.kept)
        for (const auto& t : d.rep.created) std::cerr << me << "kept " << t << " (--keep)\n";
    if (!rep.cleanup_errors.empty()) {
        for (const auto& e : rep.cleanup_errors) std::cerr << me << "NOT deleted: " << e << "\n";
        if (code == exit_ok) code = exit_failure;
    }
    return code;
}

}  // namespace rpl::app
