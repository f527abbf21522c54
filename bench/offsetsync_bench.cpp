// bench_offsetsync: what the offset run index costs, on disk and per lookup.
//
//   deliveries (src, dst) ──store::record──> runs ──store::flush every N──> RocksDB
//        close, reopen RocksDB, Flush + full CompactRange, close ──> bytes on disk
//   reopen store (loads every run) ──1M random store::translate──> p50/p99/max
//
// Scenarios (each in a fresh RocksDB directory under /tmp, removed after):
//   no-gaps        1M records, source and target both contiguous: 1 run per partition
//   gap/10, gap/2  a source hole after every 10th / 2nd record (compaction):
//                  ~100k / ~500k runs
//   gap/1          a hole after every record: one run per record (1M runs);
//                  then 1M random lookups
//   gap/1+resend   the same plus a restart every 1000 records that re-sends
//                  the last 100: runs overlap on the source side, so lookups
//                  take the painted-index path (the first one builds it)
//
//   compacted      --compacted N records (default 10M) of a compacted source:
//                  every other source offset gone, the target contiguous. Run
//                  twice: with holes kept inside runs (the index as it is)
//                  and with no holes allowed (a run per hole, the index before
//                  runs held holes). Measures the index on disk, the runs
//                  topic after compaction (records and bytes: what a new
//                  host reads), the start-up from it (decode + store::apply
//                  of every record, no network) and from RocksDB
//                  (store::open), and checks every answer of a sample.
//
// Flushes mimic the flow, which calls store::flush before every commit
// (every 200 ms): here every --flush-every records (default 10000).
// Latency is measured per call with steady_clock (its own cost is printed).
// Nothing here asserts speed: --smoke runs tiny sizes so ctest keeps the
// program building and running (bench/offsetsync_smoke).
#include "kafka/log.h"
#include "offsetsync/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using rpl::offsetsync::store;

namespace {

struct options {
    int64_t records = 1'000'000;
    int64_t lookups = 1'000'000;
    int64_t flush_every = 10'000;
    int64_t compacted = 10'000'000;
    std::string base = "/tmp";
    bool keep = false;
    bool smoke = false;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bench_offsetsync: %s\n", what.c_str());
    std::exit(1);
}

template <class T>
T value_or_die(rpl::Result<T> r, const char* what) {
    if (!r) die(std::string(what) + ": " + r.error().message);
    if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// A fresh directory under the base, removed at scope exit unless --keep.
class scratch_dir {
public:
    scratch_dir(const options& o, const std::string& tag) : keep_(o.keep) {
        std::string tmpl = o.base + "/rpl-bench-offsetsync-" + tag + "-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp " + tmpl + ": " + std::strerror(errno));
        path_ = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        if (!keep_) fs::remove_all(path_, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
    bool keep_;
};

struct disk_usage {
    uint64_t all = 0;  // every file but RocksDB's own text log (SST, WAL, MANIFEST, OPTIONS)
    uint64_t sst = 0;  // the table files alone: the index's data
};

disk_usage measure(const fs::path& dir) {
    disk_usage u;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        // LOG and LOG.old.*: RocksDB's diagnostics, capped by keep_log_file_num.
        if (e.path().filename().string().starts_with("LOG")) continue;
        u.all += e.file_size();
        if (e.path().extension() == ".sst") u.sst += e.file_size();
    }
    return u;
}

// The store has no compaction call (RocksDB compacts in the background): open
// the closed directory with the store's options, flush the memtable, compact
// everything to the bottom level and close, so the size is the steady state
// rather than whatever the WAL and L0 happened to hold.
void compact(const fs::path& dir) {
    rocksdb::Options opts;
    opts.write_buffer_size = 8 << 20;
    opts.max_open_files = 256;
    opts.keep_log_file_num = 3;
    rocksdb::DB* raw = nullptr;
    auto st = rocksdb::DB::Open(opts, dir.string(), &raw);
    if (!st.ok()) die("rocksdb open " + dir.string() + ": " + st.ToString());
    std::unique_ptr<rocksdb::DB> db(raw);
    st = db->Flush(rocksdb::FlushOptions());
    if (!st.ok()) die("rocksdb flush: " + st.ToString());
    rocksdb::CompactRangeOptions c;
    c.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    st = db->CompactRange(c, nullptr, nullptr);
    if (!st.ok()) die("rocksdb compact: " + st.ToString());
    st = db->Close();
    if (!st.ok()) die("rocksdb close: " + st.ToString());
}

// How delivery i of a partition maps: target offset i, source offset
// i + holes before it. `gap_every` 0 = no holes; k = one source offset
// skipped after every k records.
struct history {
    const char* name;
    int partitions = 1;
    int64_t gap_every = 0;
    // Every `restart_every` records, the source goes back `resend` records
    // (a restart re-sending what was not committed). 0 = never.
    int64_t restart_every = 0;
    int64_t resend = 0;
    bool lookups = false;
};

struct write_result {
    std::string name;
    int partitions = 0;
    int64_t records = 0;
    size_t runs = 0;
    double record_s = 0;  // time in record() alone
    double flush_s = 0;   // time in flush() alone
    double flush_max_s = 0;
    int64_t flushes = 0;
    uint64_t runs_flushed = 0;  // run versions written (a growing run is rewritten)
    disk_usage written;         // right after the store closed
    disk_usage compacted;       // after a full compaction
    double reopen_s = 0;        // store::open loading every run
};

struct lookup_result {
    std::string name;
    size_t runs = 0;
    int64_t lookups = 0;
    double first_us = 0;  // the first lookup (builds the painted index if needed)
    double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
    double timed_per_s = 0;    // with a clock read around every call
    double untimed_per_s = 0;  // a plain loop over the same offsets
};

const std::string flow = "bench";
const std::string source_topic = "orders";
const std::string target_topic = "primary.orders";

// Writes one history into a fresh store, measures it, and (if asked) runs
// the random lookups on the reopened store.
void run_history(const options& o, const history& h, std::vector<write_result>& writes,
                 std::vector<lookup_result>& reads) {
    std::string tag;
    for (const char* c = h.name; *c != '\0'; ++c)
        tag += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
    scratch_dir dir(o, tag);
    write_result w;
    w.name = h.name;
    w.partitions = h.partitions;
    w.records = o.records;

    struct cursor {
        int64_t src = 0;
        int64_t dst = 0;
        int64_t n = 0;  // records delivered in this partition
    };
    std::vector<cursor> cur(static_cast<size_t>(h.partitions));
    {
        auto s = value_or_die(store::open(dir.path()), "store::open");
        clock_type::duration in_record{};
        for (int64_t i = 0; i < o.records;) {
            const int64_t batch = std::min(o.flush_every, o.records - i);
            const auto t0 = clock_type::now();
            for (int64_t j = 0; j < batch; ++j, ++i) {
                // Round-robin over partitions, as a consumer's batches interleave.
                auto& c = cur[static_cast<size_t>(i % h.partitions)];
                const auto p = static_cast<int32_t>(i % h.partitions);
                if (auto r = s->record(flow, source_topic, p, target_topic, c.src, c.dst); !r)
                    die("record: " + r.error().message);
                ++c.n;
                ++c.dst;
                ++c.src;
                if (h.gap_every > 0 && c.n % h.gap_every == 0) ++c.src;
                if (h.restart_every > 0 && c.n % h.restart_every == 0) c.src -= h.resend * 2;
            }
            in_record += clock_type::now() - t0;
            const auto f0 = clock_type::now();
            auto dirty = value_or_die(s->flush(flow), "flush");
            const double f = seconds_since(f0);
            w.flush_s += f;
            w.flush_max_s = std::max(w.flush_max_s, f);
            w.runs_flushed += dirty.size();
            ++w.flushes;
        }
        w.record_s = std::chrono::duration<double>(in_record).count();
        for (int p = 0; p < h.partitions; ++p) w.runs += s->runs(flow, source_topic, p).size();
    }
    w.written = measure(dir.path());
    compact(dir.path());
    w.compacted = measure(dir.path());

    const auto r0 = clock_type::now();
    auto s = value_or_die(store::open(dir.path()), "store::open (reopen)");
    w.reopen_s = seconds_since(r0);
    size_t reloaded = 0;
    for (int p = 0; p < h.partitions; ++p) reloaded += s->runs(flow, source_topic, p).size();
    if (reloaded != w.runs)
        die(std::string(h.name) + ": reopened store has " + std::to_string(reloaded) +
            " runs, wrote " + std::to_string(w.runs));
    writes.push_back(w);
    if (!h.lookups) return;

    // Lookups: uniform over the source offsets the partition has seen, so
    // with holes after every record about half land in a hole (kind gap).
    lookup_result l;
    l.name = h.name;
    l.runs = w.runs;
    l.lookups = o.lookups;
    const auto ends = value_or_die(s->end_offsets(flow, source_topic, 0), "end_offsets");
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int64_t> pick(0, ends.src_end);
    std::vector<int64_t> at(static_cast<size_t>(o.lookups));
    for (auto& x : at) x = pick(rng);

    int64_t checksum = 0;
    {
        const auto t0 = clock_type::now();
        auto t = value_or_die(s->translate(flow, source_topic, 0, at[0]), "translate");
        l.first_us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
        checksum += t.target_offset;
    }
    std::vector<int64_t> ns(at.size());
    const auto all0 = clock_type::now();
    for (size_t i = 0; i < at.size(); ++i) {
        const auto t0 = clock_type::now();
        auto t = s->translate(flow, source_topic, 0, at[i]);
        const auto t1 = clock_type::now();
        if (!t) die("translate: " + t.error().message);
        checksum += t.value().target_offset;
        ns[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    }
    l.timed_per_s = static_cast<double>(at.size()) / seconds_since(all0);
    const auto plain0 = clock_type::now();
    for (const int64_t x : at) {
        auto t = s->translate(flow, source_topic, 0, x);
        if (!t) die("translate: " + t.error().message);
        checksum += t.value().target_offset;
    }
    l.untimed_per_s = static_cast<double>(at.size()) / seconds_since(plain0);
    // Keeps the loops from being optimised away, and the run honest.
    if (checksum < 0) die("negative target offsets");

    std::sort(ns.begin(), ns.end());
    auto pct = [&](double q) {
        const auto k = static_cast<size_t>(q * static_cast<double>(ns.size() - 1));
        return static_cast<double>(ns[k]) / 1000.0;
    };
    l.p50_us = pct(0.50);
    l.p90_us = pct(0.90);
    l.p99_us = pct(0.99);
    l.p999_us = pct(0.999);
    l.max_us = static_cast<double>(ns.back()) / 1000.0;
    reads.push_back(l);
}

struct compacted_result {
    std::string name;
    int64_t records = 0;
    size_t runs = 0;
    double write_s = 0;          // record() + flush() for every record
    uint64_t topic_records = 0;  // keys left after compaction of the runs topic
    uint64_t topic_bytes = 0;    // their keys and values
    disk_usage compacted;        // RocksDB after a full compaction
    double catch_up_s = 0;       // a fresh store applying every topic record
    double reopen_s = 0;         // store::open of the caught-up store
    size_t memory = 0;           // store::memory_bytes() after the reopen
};

// The compacted-source case: record, keep what the runs topic would hold
// after compaction (the latest value per key), rebuild a fresh store from it
// as a new host would, and reopen that store as a restart would.
compacted_result run_compacted(const options& o, int64_t max_holes, const char* name) {
    compacted_result c;
    c.name = name;
    c.records = o.compacted;
    scratch_dir written(o, std::string("compacted-w-") + std::to_string(max_holes));
    std::map<std::string, std::string> topic;  // key -> latest value: compaction
    {
        auto s = value_or_die(store::open(written.path(), rpl::Logger("offsetsync"), max_holes),
                              "store::open");
        const auto t0 = clock_type::now();
        for (int64_t i = 0; i < o.compacted;) {
            const int64_t batch = std::min(o.flush_every, o.compacted - i);
            for (int64_t j = 0; j < batch; ++j, ++i) {
                if (auto r = s->record(flow, source_topic, 0, target_topic, 2 * i, i); !r)
                    die("record: " + r.error().message);
            }
            for (const auto& r : value_or_die(s->flush(flow), "flush"))
                topic[rpl::offsetsync::encode_key(r.key())] =
                    rpl::offsetsync::encode_value(r.r, r.target_topic);
        }
        c.write_s = seconds_since(t0);
        c.runs = s->runs(flow, source_topic, 0).size();
    }
    c.topic_records = topic.size();
    for (const auto& [k, v] : topic) c.topic_bytes += k.size() + v.size();

    scratch_dir rebuilt(o, std::string("compacted-r-") + std::to_string(max_holes));
    {
        const auto t0 = clock_type::now();
        auto s = value_or_die(store::open(rebuilt.path(), rpl::Logger("offsetsync"), max_holes),
                              "store::open (catch-up)");
        for (const auto& [k, v] : topic) {
            auto rec = value_or_die(rpl::offsetsync::decode_record(k, v), "decode_record");
            (void)value_or_die(s->apply(rec), "store::apply");
        }
        c.catch_up_s = seconds_since(t0);
        if (s->runs(flow, source_topic, 0).size() != c.runs)
            die(std::string(name) + ": caught-up store has " +
                std::to_string(s->runs(flow, source_topic, 0).size()) + " runs, wrote " +
                std::to_string(c.runs));
    }
    compact(rebuilt.path());
    c.compacted = measure(rebuilt.path());
    const auto r0 = clock_type::now();
    auto s = value_or_die(store::open(rebuilt.path(), rpl::Logger("offsetsync"), max_holes),
                          "store::open (reopen)");
    c.reopen_s = seconds_since(r0);
    c.memory = s->memory_bytes();
    // Exact answers: source 2i is at target i, the hole 2i+1 answers i+1.
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int64_t> pick(0, o.compacted - 1);
    for (int k = 0; k < 100'000; ++k) {
        const int64_t i = pick(rng);
        const auto at = value_or_die(s->translate(flow, source_topic, 0, 2 * i), "translate");
        const auto hole = value_or_die(s->translate(flow, source_topic, 0, 2 * i + 1), "translate");
        if (at.target_offset != i || at.kind != rpl::offsetsync::match_kind::exact ||
            hole.target_offset != i + 1)
            die(std::string(name) + ": wrong translation around source offset " +
                std::to_string(2 * i));
    }
    return c;
}

// What one steady_clock::now() pair costs, so the latencies can be read.
double clock_overhead_ns() {
    std::vector<int64_t> d(100'000);
    for (auto& x : d) {
        const auto a = clock_type::now();
        const auto b = clock_type::now();
        x = std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
    }
    std::sort(d.begin(), d.end());
    return static_cast<double>(d[d.size() / 2]);
}

std::string human(double bytes) {
    char buf[32];
    if (bytes >= 1 << 20)
        std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / (1 << 20));
    else if (bytes >= 1 << 10)
        std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / (1 << 10));
    else
        std::snprintf(buf, sizeof buf, "%.0f B", bytes);
    return buf;
}

void usage() {
    std::fprintf(
        stderr,
        "usage: bench_offsetsync [--smoke] [--records N] [--lookups N] "
        "[--flush-every N] [--compacted N] [--dir BASE] [--keep]\n"
        "  --smoke        tiny sizes (20000 records/lookups); for ctest\n"
        "  --records N    records per scenario (default 1000000)\n"
        "  --lookups N    random lookups on the one-run-per-record store (default 1000000)\n"
        "  --flush-every N  store::flush after every N records (default 10000)\n"
        "  --compacted N  records of the compacted-source case (default 10000000)\n"
        "  --dir BASE     where the scratch RocksDB directories go (default /tmp)\n"
        "  --keep         leave the scratch directories behind\n");
}

options parse(int argc, char** argv) {
    options o;
    bool records_set = false, lookups_set = false, compacted_set = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage();
                die(a + " needs a value");
            }
            return argv[++i];
        };
        auto number = [&]() -> int64_t {
            const std::string v = next();
            char* end = nullptr;
            const long long n = std::strtoll(v.c_str(), &end, 10);
            if (end == v.c_str() || *end != '\0' || n <= 0)
                die(a + ": not a positive number: " + v);
            return n;
        };
        if (a == "--smoke") {
            o.smoke = true;
        } else if (a == "--records") {
            o.records = number();
            records_set = true;
        } else if (a == "--lookups") {
            o.lookups = number();
            lookups_set = true;
        } else if (a == "--flush-every") {
            o.flush_every = number();
        } else if (a == "--compacted") {
            o.compacted = number();
            compacted_set = true;
        } else if (a == "--dir") {
            o.base = next();
        } else if (a == "--keep") {
            o.keep = true;
        } else if (a == "-h" || a == "--help") {
            usage();
            std::exit(0);
        } else {
            usage();
            die("unknown argument " + a);
        }
    }
    if (o.smoke) {
        if (!records_set) o.records = 20'000;
        if (!lookups_set) o.lookups = 20'000;
        if (!compacted_set) o.compacted = 20'000;
        o.flush_every = std::min<int64_t>(o.flush_every, 1'000);
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    rpl::set_log_level(rpl::level::warn);  // the store's "loaded N runs" lines

    // Restarts every 1000 records re-sending 100: with a hole after every
    // record the source goes back 200 offsets.
    const std::vector<history> histories = {
        {.name = "no-gaps", .partitions = 1},
        {.name = "no-gaps x6", .partitions = 6},
        {.name = "gap/10", .partitions = 1, .gap_every = 10},
        {.name = "gap/2", .partitions = 1, .gap_every = 2},
        {.name = "gap/1", .partitions = 1, .gap_every = 1, .lookups = true},
        {.name = "gap/1+resend",
         .partitions = 1,
         .gap_every = 1,
         .restart_every = 1000,
         .resend = 100,
         .lookups = true},
    };

    const auto t0 = clock_type::now();
    std::vector<write_result> writes;
    std::vector<lookup_result> reads;
    for (const auto& h : histories) run_history(o, h, writes, reads);
    const std::vector<compacted_result> compacted = {
        run_compacted(o, rpl::offsetsync::max_holes_per_run, "holes in runs"),
        run_compacted(o, 0, "run per hole"),
    };

    std::printf("bench_offsetsync%s: %" PRId64 " records per scenario, flush every %" PRId64
                " records, RocksDB %s, %u hardware threads\n\n",
                o.smoke ? " --smoke" : "", o.records, o.flush_every,
                (std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR)).c_str(),
                std::thread::hardware_concurrency());
    std::printf("%-13s %5s %9s %12s %11s %12s %10s %12s %12s %9s %14s %9s\n", "index", "parts",
                "runs", "record() /s", "flush total", "flush max", "written", "compacted",
                "sst only", "sst/run", "sst per 1M rec", "reopen");
    for (const auto& w : writes) {
        const double per_million =
            static_cast<double>(w.compacted.sst) * 1e6 / static_cast<double>(w.records);
        const double per_run =
            static_cast<double>(w.compacted.sst) / static_cast<double>(std::max<size_t>(w.runs, 1));
        std::printf(
            "%-13s %5d %9zu %12.0f %8.1f ms %9.2f ms %10s %12s %12s %7.1f B %14s %6.1f ms\n",
            w.name.c_str(), w.partitions, w.runs, static_cast<double>(w.records) / w.record_s,
            w.flush_s * 1e3, w.flush_max_s * 1e3, human(static_cast<double>(w.written.all)).c_str(),
            human(static_cast<double>(w.compacted.all)).c_str(),
            human(static_cast<double>(w.compacted.sst)).c_str(), per_run,
            human(per_million).c_str(), w.reopen_s * 1e3);
    }
    std::printf(
        "\n  written = the directory right after the store closed (WAL included); "
        "compacted = after Flush +\n  full CompactRange (both without RocksDB's LOG files); "
        "sst only = the table files, the index's data.\n\n");

    std::printf("%-13s %9s %9s %10s %8s %8s %8s %8s %8s %12s %12s\n", "lookups on", "runs",
                "lookups", "first", "p50", "p90", "p99", "p99.9", "max", "timed /s", "untimed /s");
    for (const auto& l : reads) {
        std::printf("%-13s %9zu %9" PRId64
                    " %7.0f us %5.2f us %5.2f us %5.2f us %5.2f us %5.0f us %12.0f %12.0f\n",
                    l.name.c_str(), l.runs, l.lookups, l.first_us, l.p50_us, l.p90_us, l.p99_us,
                    l.p999_us, l.max_us, l.timed_per_s, l.untimed_per_s);
    }
    std::printf(
        "\n  store::translate on one partition, offsets uniform over its source range; "
        "latencies include\n  one steady_clock::now() pair (median %.0f ns); \"first\" "
        "builds the painted index after a re-send.\n\n",
        clock_overhead_ns());

    std::printf("compacted source, %" PRId64
                " records, every other source offset gone (--compacted):\n",
                o.compacted);
    std::printf("%-14s %9s %9s %13s %12s %12s %11s %9s %12s\n", "index", "runs", "write",
                "topic records", "topic bytes", "sst only", "catch-up", "reopen", "memory");
    for (const auto& c : compacted)
        std::printf("%-14s %9zu %7.1f s %13" PRIu64 " %12s %12s %9.2f s %6.0f ms %12s\n",
                    c.name.c_str(), c.runs, c.write_s, c.topic_records,
                    human(static_cast<double>(c.topic_bytes)).c_str(),
                    human(static_cast<double>(c.compacted.sst)).c_str(), c.catch_up_s,
                    c.reopen_s * 1e3, human(static_cast<double>(c.memory)).c_str());
    std::printf(
        "\n  topic = the runs topic after compaction (latest value per key): what a new host "
        "reads;\n  catch-up = a fresh store decoding and applying all of it (no network); "
        "reopen = store::open;\n  memory = the store's runs in memory after the reopen "
        "(store::memory_bytes; a partition is held whole).\n  \"run per hole\" (no holes in runs) "
        "is the index before runs "
        "held holes.\n\n");

    auto find_w = [&](const char* n) -> const write_result& {
        for (const auto& w : writes)
            if (w.name == n) return w;
        die(std::string("no result for ") + n);
    };
    auto per_m = [&](const write_result& w) {
        return human(static_cast<double>(w.compacted.sst) * 1e6 / static_cast<double>(w.records));
    };
    const auto& ng = find_w("no-gaps");
    const auto& g10 = find_w("gap/10");
    const auto& g2 = find_w("gap/2");
    const auto& g1 = find_w("gap/1");
    const auto& lk = reads.front();
    std::printf(
        "summary: index per 1M records: no gaps %zu run %s, gap/10 %zu runs %s, gap/2 %zu "
        "runs %s, gap/1 %zu runs %s; lookups on %zu runs p50 %.2f us p99 %.2f us "
        "(%.0f/s); compacted %" PRId64
        " records: %zu runs, %s on disk, catch-up %.2f s "
        "(a run per hole: %zu runs, %s, %.2f s); %.0f s total\n",
        ng.runs, per_m(ng).c_str(), g10.runs, per_m(g10).c_str(), g2.runs, per_m(g2).c_str(),
        g1.runs, per_m(g1).c_str(), lk.runs, lk.p50_us, lk.p99_us, lk.untimed_per_s, o.compacted,
        compacted[0].runs, human(static_cast<double>(compacted[0].compacted.sst)).c_str(),
        compacted[0].catch_up_s, compacted[1].runs,
        human(static_cast<double>(compacted[1].compacted.sst)).c_str(), compacted[1].catch_up_s,
        seconds_since(t0));
    return 0;
}
