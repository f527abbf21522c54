// replicatorctl backup list|describe|verify and restore (see app/ctl.h).
//
//   backup list     --store URL                          every backup in the store
//   backup describe --store URL --backup ID [--json]     per topic/partition, groups
//   backup verify   --store URL --backup ID [--deep]     exit 5 when damage is found
//   restore --config R.toml [--dry-run] [--skip-damaged] plan, or plan and run
//
// S3 credentials for --store come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
// (the restore file may name them instead). Exit codes: 0 ok, 1 failure, 2
// bad arguments or config, 3 store or cluster unreachable, 4 a consumer group
// was refused (active members on the target), 5 damage found.
#include "app/ctl.h"
#include "app/plan.h"
#include "backup/catalogue.h"
#include "backup/restore.h"
#include "backup/store.h"
#include "backup/verify.h"
#include "conf/config.h"
#include "conf/restore_config.h"
#include "kafka/log.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace rpl::app {

namespace {

constexpr int exit_refused = 4;
constexpr int exit_damage = 5;
// The archive is intact, but the source deleted records before the tap
// archived them (retention, DeleteRecords): not "ok", and not damage either.
constexpr int exit_lost = 6;

constexpr const char* backup_usage = R"(usage:
  replicatorctl backup list --store URL
      Every backup in the store: source, topics, partitions, segments, records,
      bytes, first/last timestamp and offset ranges.
  replicatorctl backup describe --store URL --backup ID [--json]
      Per topic/partition: segments, offsets, timestamps, records, bytes,
      absent offsets (recorded gaps) and holes; the group snapshots.
  replicatorctl backup verify --store URL --backup ID [--deep]
      Every segment's index and checksum, and that offsets are continuous
      except for recorded gaps; --deep also decompresses and checks every
      record. Names the object and offset range of any damage (exit 5), and
      every range of records the source deleted before they were archived
      (exit 6 when that is all that is wrong).
  replicatorctl restore --config R.toml [--dry-run] [--skip-damaged]
      Restore a backup (see docs/restore.md); --dry-run checks everything and
      prints what would be restored, writing nothing.

URL: file:///path or s3://bucket/prefix?endpoint=..&region=..&path_style=true;
S3 credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
exit codes: 0 ok, 1 failure, 2 bad arguments or config, 3 unreachable,
4 a group was refused, 5 damage found, 6 no damage but records were lost
before they were archived (verify)
)";

struct args {
    std::string sub;
    std::string store;
    std::string backup;
    std::string config;
    bool json = false;
    bool deep = false;
    bool dry_run = false;
    bool skip_damaged = false;
};

int bad(const std::string& msg) {
    std::cerr << "replicatorctl: " << msg << "\n" << backup_usage;
    return exit_invalid_config;
}

// Parses argv from `first`; returns an exit code on a bad argument.
std::optional<int> parse(int argc, char** argv, int first, args& a) {
    for (int i = first; i < argc; ++i) {
        const std::string s = argv[i];
        auto value = [&](std::string& out) -> bool {
            if (i + 1 >= argc) return false;
            out = argv[++i];
            return true;
        };
        bool good = true;
        if (s == "--store")
            good = value(a.store);
        else if (s == "--backup")
            good = value(a.backup);
        else if (s == "--config" || s == "-c")
            good = value(a.config);
        else if (s == "--json")
            a.json = true;
        else if (s == "--deep")
            a.deep = true;
        else if (s == "--dry-run")
            a.dry_run = true;
        else if (s == "--skip-damaged")
            a.skip_damaged = true;
        else if (s == "--help" || s == "-h") {
            std::cout << backup_usage;
            return exit_ok;
        } else
            return bad("unknown argument '" + s + "'");
        if (!good) return bad(s + " needs a value");
    }
    return std::nullopt;
}

int exit_for(const Error& e) {
    switch (e.code) {
        case errc::invalid_config: return exit_invalid_config;
        case errc::unreachable:
        case errc::timeout: return exit_unreachable;
        case errc::corrupt: return exit_damage;
        default: return exit_failure;
    }
}

int report(const Error& e) {
    std::cerr << "replicatorctl: " << e.message << "\n";
    return exit_for(e);
}

Result<std::unique_ptr<backup::object_store>> open_checked(const std::string& url,
                                                           const backup::store_options& opts) {
    RPL_TRY(store, backup::open_store(url, opts));
    RPL_TRY(store->check());
    return std::move(store);
}

std::string range(int64_t from, int64_t to) {
    return "[" + std::to_string(from) + ", " + std::to_string(to) + ")";
}

// Everything a listing says about one partition.
struct partition_stats {
    std::size_t segments = 0;
    int64_t start = -1;
    int64_t end = -1;
    int64_t min_ts = -1;
    int64_t max_ts = -1;
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    int64_t absent = 0;     // offsets recorded as gaps inside segments
    std::size_t holes = 0;  // missing ranges between segments (damage)
};

partition_stats stats_of(const std::vector<backup::segment_entry>& segs) {
    partition_stats s;
    for (const auto& e : segs) {
        if (s.segments > 0 && e.start_offset != s.end) ++s.holes;
        ++s.segments;
        if (s.start < 0) s.start = e.start_offset;
        s.end = e.end_offset;
        if (e.records > 0) {
            if (s.min_ts < 0 || e.min_timestamp < s.min_ts) s.min_ts = e.min_timestamp;
            if (s.max_ts < 0 || e.max_timestamp > s.max_ts) s.max_ts = e.max_timestamp;
        }
        s.records += e.records;
        s.bytes += e.size;
        s.absent += (e.end_offset - e.start_offset) - static_cast<int64_t>(e.records);
    }
    return s;
}

int backup_list(const args& a) {
    if (a.store.empty()) return bad("backup list needs --store URL");
    auto store = open_checked(a.store, {});
    if (!store) return report(store.error());
    auto ids = backup::list_backups(*store.value());
    if (!ids) return report(ids.error());
    if (ids.value().empty()) {
        std::cout << "no backups in " << store.value()->describe() << "\n";
        return exit_ok;
    }
    std::vector<std::vector<std::string>> rows = {{"BACKUP", "SOURCE", "TOPICS", "PARTITIONS",
                                                   "SEGMENTS", "RECORDS", "BYTES",
                                                   "FIRST-TIMESTAMP", "LAST-TIMESTAMP"}};
    std::ostringstream ranges;
    for (const auto& id : ids.value()) {
        auto cat = backup::catalogue::load(*store.value(), id);
        if (!cat) return report(cat.error());
        partition_stats total;
        std::size_t partitions = 0;
        const auto topics = cat.value().topics();
        ranges << id << ":\n";
        for (const auto& t : topics) {
            ranges << "  " << t << ":";
            for (const int32_t p : cat.value().partitions(t)) {
                const auto s = stats_of(cat.value().segments(t, p));
                ++partitions;
                total.segments += s.segments;
                total.records += s.records;
                total.bytes += s.bytes;
                if (s.min_ts >= 0 && (total.min_ts < 0 || s.min_ts < total.min_ts))
                    total.min_ts = s.min_ts;
                total.max_ts = std::max(total.max_ts, s.max_ts);
                ranges << " " << p << "=" << range(s.start, s.end);
            }
            ranges << "\n";
        }
        const auto& m = cat.value().meta();
        rows.push_back({id, m.source_cluster + " (" + m.source_bootstrap + ")",
                        std::to_string(topics.size()), std::to_string(partitions),
                        std::to_string(total.segments), std::to_string(total.records),
                        conf::format_size(total.bytes), conf::format_timestamp(total.min_ts),
                        conf::format_timestamp(total.max_ts)});
    }
    conf::print_table(rows, std::cout);
    std::cout << "\noffset ranges (partition=[first, end)):\n" << ranges.str();
    return exit_ok;
}

int backup_describe(const args& a) {
    if (a.store.empty() || a.backup.empty())
        return bad("backup describe needs --store URL and --backup ID");
    auto store = open_checked(a.store, {});
    if (!store) return report(store.error());
    auto cat = backup::load_catalogue(*store.value(), a.backup);
    if (!cat) return report(cat.error());
    const auto& c = cat.value();
    const auto& m = c.meta();

    struct row {
        std::string topic;
        int32_t partition;
        partition_stats s;
        std::uint64_t lost = 0;  // records the source deleted before they were archived
    };
    std::vector<row> rows;
    for (const auto& t : c.topics())
        for (const int32_t p : c.partitions(t)) {
            backup::verify_report lost;  // its lost_records() counts overlaps once
            lost.losses = c.losses(t, p);
            rows.push_back({t, p, stats_of(c.segments(t, p)), lost.lost_records()});
        }

    if (a.json) {
        std::ostringstream o;
        o << "{\"backup\":" << conf::quoted_string(m.id)
          << ",\"source_cluster\":" << conf::quoted_string(m.source_cluster)
          << ",\"source_bootstrap\":" << conf::quoted_string(m.source_bootstrap)
          << ",\"created_ms\":" << m.created_ms << ",\"compression_level\":" << m.compression_level
          << ",\"topics\":[";
        bool first_topic = true;
        for (const auto& t : c.topics()) {
            const auto* tm = c.topic(t);
            o << (first_topic ? "" : ",") << "{\"topic\":" << conf::quoted_string(t)
              << ",\"partitions\":" << (tm ? tm->partitions : 0) << ",\"partition_stats\":[";
            first_topic = false;
            bool first = true;
            for (const auto& r : rows) {
                if (r.topic != t) continue;
                o << (first ? "" : ",") << "{\"partition\":" << r.partition
                  << ",\"segments\":" << r.s.segments << ",\"start_offset\":" << r.s.start
                  << ",\"end_offset\":" << r.s.end << ",\"min_timestamp\":" << r.s.min_ts
                  << ",\"max_timestamp\":" << r.s.max_ts << ",\"records\":" << r.s.records
                  << ",\"bytes\":" << r.s.bytes << ",\"absent_offsets\":" << r.s.absent
                  << ",\"holes\":" << r.s.holes << ",\"lost_records\":" << r.lost
                  << ",\"losses\":[";
                bool first_loss = true;
                for (const auto& l : c.losses(t, r.partition)) {
                    o << (first_loss ? "" : ",") << "{\"from\":" << l.from << ",\"to\":" << l.to
                      << ",\"noticed_ms\":" << l.noticed_ms << "}";
                    first_loss = false;
                }
                o << "],\"epochs\":[";
                bool first_epoch = true;
                for (const auto& e : c.epochs(t, r.partition)) {
                    o << (first_epoch ? "" : ",") << "{\"base\":" << e.base
                      << ",\"taken_ms\":" << e.taken_ms << "}";
                    first_epoch = false;
                }
                o << "]}";
                first = false;
            }
            o << "]}";
        }
        o << "],\"group_snapshots\":[";
        bool first = true;
        for (const auto& [taken, key] : c.group_snapshots()) {
            o << (first ? "" : ",") << "{\"taken_ms\":" << taken
              << ",\"key\":" << conf::quoted_string(key) << "}";
            first = false;
        }
        o << "]}\n";
        std::cout << o.str();
        return exit_ok;
    }

    std::cout << "backup " << m.id << " in " << store.value()->describe() << "\n"
              << "source " << m.source_cluster << " (" << m.source_bootstrap << "), created "
              << conf::format_timestamp(m.created_ms) << ", zstd level " << m.compression_level
              << "\n\n";
    std::vector<std::vector<std::string>> table = {{"TOPIC", "PARTITION", "SEGMENTS", "OFFSETS",
                                                    "RECORDS", "ABSENT-OFFSETS", "LOST", "HOLES",
                                                    "BYTES", "MIN-TIMESTAMP", "MAX-TIMESTAMP"}};
    for (const auto& r : rows)
        table.push_back({r.topic, std::to_string(r.partition), std::to_string(r.s.segments),
                         range(r.s.start, r.s.end), std::to_string(r.s.records),
                         std::to_string(r.s.absent), std::to_string(r.lost),
                         std::to_string(r.s.holes), std::to_string(r.s.bytes),
                         conf::format_timestamp(r.s.min_ts), conf::format_timestamp(r.s.max_ts)});
    conf::print_table(table, std::cout);
    // Absent offsets include the lost ones; these are the ones that held records.
    for (const auto& r : rows) {
        for (const auto& l : c.losses(r.topic, r.partition))
            std::cout << "LOST: " << r.topic << "/" << r.partition << " offsets [" << l.from << ", "
                      << l.to << ") were deleted at the source before they were archived "
                      << "(noticed " << conf::format_timestamp(l.noticed_ms) << ")\n";
        for (const auto& e : c.epochs(r.topic, r.partition))
            std::cout << "EPOCH: " << r.topic << "/" << r.partition
                      << " was recreated at the source; its new records continue from archive "
                         "offset "
                      << e.base << " (noticed " << conf::format_timestamp(e.taken_ms) << ")\n";
    }
    std::cout << "\ngroup snapshots: " << c.group_snapshots().size() << "\n";
    for (const auto& [taken, key] : c.group_snapshots())
        std::cout << "  " << conf::format_timestamp(taken) << "  " << key << "\n";
    if (!c.group_snapshots().empty()) {
        auto snap = c.load_group_snapshot(*store.value(), std::nullopt);
        if (snap && snap.value()) {
            std::cout << "newest snapshot's groups:\n";
            for (const auto& [g, offs] : snap.value()->groups)
                std::cout << "  " << g << " (" << offs.size() << " partitions)\n";
        }
    }
    return exit_ok;
}

int backup_verify(const args& a) {
    if (a.store.empty() || a.backup.empty())
        return bad("backup verify needs --store URL and --backup ID");
    auto store = open_checked(a.store, {});
    if (!store) return report(store.error());
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    std::uint64_t done = 0;
    auto rep =
        backup::verify_backup(*store.value(), a.backup, a.deep, [&](const backup::segment_entry&) {
            ++done;
            if (tty && done % 16 == 0)
                std::fprintf(stderr, "\rverified %llu segments",
                             static_cast<unsigned long long>(done));
        });
    if (tty) std::fprintf(stderr, "\r                                   \r");
    if (!rep) return report(rep.error());
    const auto& r = rep.value();
    std::cout << "backup " << a.backup << ": " << r.partitions << " partitions, " << r.segments
              << " segments, " << r.records << " records, " << conf::format_size(r.stored_bytes)
              << " stored" << (a.deep ? ", " + std::to_string(r.frames) + " frames read" : "")
              << " (" << (a.deep ? "deep" : "shallow") << ")\n";
    for (const auto& e : r.epochs)
        std::cout << "epoch: " << e.topic << "/" << e.partition
                  << " was recreated at the source; its new records continue from archive offset "
                  << e.base << " (noticed " << conf::format_timestamp(e.taken_ms) << ")\n";
    if (!r.losses.empty()) {
        std::cout << "LOST: " << r.lost_records()
                  << " record(s) were deleted at the source before they were archived:\n";
        for (const auto& l : r.losses)
            std::cout << "  " << l.topic << "/" << l.partition << ": offsets [" << l.from << ", "
                      << l.to << ") (" << (l.to - l.from) << " records, noticed "
                      << conf::format_timestamp(l.noticed_ms) << ")\n";
    }
    if (r.clean()) {
        std::cout << (r.losses.empty() ? "ok" : "intact, but records were lost")
                  << ": continuous except for recorded gaps, every "
                  << (a.deep ? "frame and record" : "index") << " checks out\n";
        return r.losses.empty() ? exit_ok : exit_lost;
    }
    std::cout << "DAMAGE: " << r.problems.size() << " problem(s)\n";
    for (const auto& d : r.problems) std::cout << "  " << d.describe() << "\n";
    return exit_damage;
}

std::atomic<bool> stop_requested{false};
extern "C" void on_stop_signal(int) { stop_requested.store(true); }

}  // namespace

int ctl_backup(int argc, char** argv) {
    if (argc < 3) return bad("backup needs a subcommand: list, describe or verify");
    args a;
    a.sub = argv[2];
    if (a.sub == "--help" || a.sub == "-h" || a.sub == "help") {
        std::cout << backup_usage;
        return exit_ok;
    }
    if (auto code = parse(argc, argv, 3, a)) return *code;
    set_log_level(level::warn);
    if (a.sub == "list") return backup_list(a);
    if (a.sub == "describe") return backup_describe(a);
    if (a.sub == "verify") return backup_verify(a);
    return bad("unknown backup subcommand '" + a.sub + "' (list, describe or verify)");
}

int ctl_restore(int argc, char** argv) {
    args a;
    if (auto code = parse(argc, argv, 2, a)) return *code;
    if (a.config.empty()) return bad("restore needs --config R.toml");
    set_log_level(level::warn);
    const Logger log("restore");

    auto cfg = conf::load_restore(a.config);
    if (!cfg) {
        std::cerr << cfg.error().message << "\nreplicatorctl: " << a.config << " is invalid\n";
        return exit_invalid_config;
    }
    const auto& c = cfg.value();
    backup::store_options so;
    so.access_key = c.s3_access_key;
    so.secret_key = c.s3_secret_key;
    auto store = open_checked(c.store, so);
    if (!store) return report(store.error());

    auto plan = backup::plan_restore(c, *store.value(), log);
    if (!plan) return report(plan.error());
    backup::print_plan(plan.value(), c, std::cout);
    std::cout.flush();
    const bool skip = a.skip_damaged || c.skip_damaged;
    if (a.dry_run) {
        std::cout << "\ndry run: nothing was written\n";
        if (!plan.value().damaged.empty() && !skip) return exit_damage;
        return exit_ok;
    }

    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    backup::restore_options opts;
    opts.skip_damaged = skip;
    opts.progress = ::isatty(STDERR_FILENO) != 0;
    opts.stop = &stop_requested;
    auto res = backup::run_restore(c, *store.value(), plan.value(), opts, log);
    if (!res) return report(res.error());
    const auto& r = res.value();
    const double mb = static_cast<double>(r.bytes) / 1e6;
    std::cout << "\nrestored " << r.records << " records (" << conf::format_size(r.bytes) << ") in "
              << std::fixed << std::setprecision(1) << r.seconds << " s ("
              << (r.seconds > 0 ? mb / r.seconds : 0.0) << " MB/s)";
    if (r.already > 0) std::cout << "; " << r.already << " were already restored by an earlier run";
    std::cout << "\n";
    bool refused = false;
    for (const auto& g : r.groups) {
        if (!g.refused.empty()) {
            refused = true;
            std::cout << "group " << g.group << " REFUSED: " << g.refused << "\n";
            continue;
        }
        std::cout << "group " << g.group << " set on the target:\n";
        for (const auto& [src, to] : g.offsets)
            std::cout << "  " << c.target_topic(src.topic) << "/" << src.partition << " " << to
                      << " (source committed " << src.offset << ")\n";
    }
    if (!r.skipped.empty()) {
        std::cout << "skipped damaged ranges (" << r.skipped.size() << "):\n";
        for (const auto& d : r.skipped) std::cout << "  " << d.describe() << "\n";
        return exit_damage;
    }
    return refused ? exit_refused : exit_ok;
}

}  // namespace rpl::app
