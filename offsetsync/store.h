// The offset run store: RocksDB under `[daemon] state_dir`/offsets holds
// every run and is the source of truth; memory holds the runs of the
// partitions in use, within a budget, so a restart resumes where it stopped
// (the last run of each partition keeps being extended) and the index may
// outgrow memory.
//
//   record(src, dst) ──> partition_runs (memory, dirty tail)
//   flush() ──one WriteBatch──> RocksDB; returns the dirty runs to publish
//   apply(run) / remove(key) <── runs topic during catch-up (written at once)
//   translate(o) ──> partition_runs::lookup (see runs.h for the invariant)
//   over budget ──> least recently used clean partitions leave memory;
//                   the next call that needs one reads it back from RocksDB
//
// RocksDB key/value = the run record's Kafka key/value bytes (run_codec.h),
// so a partition's runs are contiguous and in dst_start order. One more kind
// of key, starting with bytes ff ff (never a run key, whose version is 0):
// how far a resumable catch-up has read a runs topic (catch_up.h).
// Memory: at most the budget plus the partitions being replicated (a
// partition is loaded whole; one with deliveries since the last flush, or
// with unflushed runs, stays). A catch-up (apply) keeps what it touched until
// the next flush or load. Thread model: one mutex around everything. record()/flush() come
// from the flow thread, translate() from any thread.
#pragma once

#include "kafka/log.h"
#include "kafka/result.h"
#include "offsetsync/run_codec.h"
#include "offsetsync/runs.h"

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace rocksdb {
class DB;
}

namespace rpl::offsetsync {

struct partition_ref {
    std::string source_topic;
    int32_t partition = 0;
    std::string target_topic;
    auto operator<=>(const partition_ref&) const = default;
};

struct partition_ends {
    int64_t src_end = 0;  // one past the highest source offset replicated
    int64_t dst_end = 0;  // one past the highest target offset written
    bool operator==(const partition_ends&) const = default;
};

class store {
public:
    // Opens (creating if missing) the RocksDB directory and loads every run.
    // errc::io if the directory cannot be opened (another process holds it,
    // permissions); errc::corrupt if a stored run does not decode or
    // contradicts another (delete the directory: catch_up rebuilds it).
    // `max_holes` is the holes a run may hold (runs.h); the benchmark sets 0
    // to measure a run per hole, as before runs held holes. `memory_budget`
    // bounds the bytes of runs kept in memory (see the header).
    [[nodiscard]] static Result<std::unique_ptr<store>> open(
        const std::filesystem::path& dir, const Logger& log = Logger("offsetsync"),
        int64_t max_holes = max_holes_per_run, size_t memory_budget = default_memory_budget);
    static constexpr size_t default_memory_budget = size_t{256} << 20;
    ~store();
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    // One delivery report: source record `src` of source_topic/partition now
    // sits at target offset `dst` of target_topic (same partition). Memory
    // only until flush(). errc::conflict if dst is not after the last target
    // offset of the partition (target partition recreated?) or the target
    // topic differs from the one the partition's runs point into;
    // errc::invalid_config for an empty or over-long name.
    [[nodiscard]] Result<void> record(std::string_view flow, std::string_view source_topic,
                                      int32_t partition, std::string_view target_topic, int64_t src,
                                      int64_t dst);

    // Writes every run of `flow` that record() changed since its last flush
    // to RocksDB in one batch and returns them (in target order per
    // partition) for the caller to publish to that flow's target. Other
    // flows' runs are left for their own flush: they go to another target.
    // If the write fails the runs stay dirty for the next call.
    // Publish the runs before committing the source offsets they cover: a
    // host that rebuilds from the topic must not find a hole where records
    // were replicated, or its lookups in that hole would skip them.
    [[nodiscard]] Result<std::vector<run_record>> flush(std::string_view flow);

    // A run read back from the runs topic. Idempotent: the same run again or
    // a shorter version changes nothing, a longer one extends it. errc::conflict
    // (nothing changed) if it overlaps a different run on the target side, or
    // names another target topic than the partition's runs.
    [[nodiscard]] Result<merge_result> apply(const run_record& r);
    // A tombstone from the runs topic; false if the run was unknown.
    [[nodiscard]] Result<bool> remove(const run_key& k);

    // Where a consumer that committed source position o resumes on the
    // target. errc::not_found if no run is known for the partition.
    [[nodiscard]] Result<translation> translate(std::string_view flow,
                                                std::string_view source_topic, int32_t partition,
                                                int64_t o) const;
    // Inverse of translate (runs.h, reverse_lookup): where a consumer whose
    // committed position on the target is d resumes on the source.
    [[nodiscard]] Result<int64_t> reverse_translate(std::string_view flow,
                                                    std::string_view source_topic,
                                                    int32_t partition, int64_t d) const;
    [[nodiscard]] Result<partition_ends> end_offsets(std::string_view flow,
                                                     std::string_view source_topic,
                                                     int32_t partition) const;

    // Retention: drops runs entirely below the source's log start offset,
    // and runs whose every record was copied again later (re-sends), keeping
    // the latest run (partition_runs::prune). Returns what was dropped, for
    // the caller to retract (tombstone) from the runs topic. log_start 0
    // drops only the re-sent runs.
    [[nodiscard]] Result<std::vector<run_record>> prune(std::string_view flow,
                                                        std::string_view source_topic,
                                                        int32_t partition, int64_t log_start);
    // Drops every run of a partition (the source topic was deleted).
    [[nodiscard]] Result<std::vector<run_record>> forget(std::string_view flow,
                                                         std::string_view source_topic,
                                                         int32_t partition);

    // The next offset a resumable catch-up reads from the runs topic named by
    // `source` (any stable name for topic and cluster; catch_up.h); 0 if it
    // never read it. Everything below it has been applied to this store.
    [[nodiscard]] Result<int64_t> catch_up_position(std::string_view source) const;
    // Records that every record of `source` below `next` has been applied.
    [[nodiscard]] Result<void> save_catch_up_position(std::string_view source, int64_t next);

    // Partitions with runs for a flow, sorted.
    [[nodiscard]] std::vector<partition_ref> partitions(std::string_view flow) const;
    // A partition's runs in target order (empty if unknown).
    [[nodiscard]] std::vector<run> runs(std::string_view flow, std::string_view source_topic,
                                        int32_t partition) const;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    // Bytes of runs in memory now, and partitions whose runs are in memory.
    [[nodiscard]] size_t memory_bytes() const;
    [[nodiscard]] size_t loaded_partitions() const;

private:
    struct partition_id {
        std::string flow;
        std::string topic;
        int32_t partition = 0;
    };
    struct partition_state {
        std::string target_topic;
        partition_runs runs;  // empty while not loaded
        bool listed_dirty = false;
        bool loaded = true;
        // record() since the last trim(): a partition being replicated stays
        // in memory (evicting it would read it back at the next delivery).
        bool recorded = false;
        uint64_t last_used = 0;  // store's use counter, for eviction
        size_t bytes = 0;        // runs.memory_bytes() as of the last use
    };
    // Heterogeneous lookup so record() finds a partition without allocating.
    struct id_less {
        using is_transparent = void;
        template <class A, class B>
        bool operator()(const A& a, const B& b) const noexcept {
            if (int c = std::string_view(a.flow).compare(b.flow); c != 0) return c < 0;
            if (int c = std::string_view(a.topic).compare(b.topic); c != 0) return c < 0;
            return a.partition < b.partition;
        }
    };
    struct id_view {
        std::string_view flow;
        std::string_view topic;
        int32_t partition = 0;
    };
    using partition_map = std::map<partition_id, partition_state, id_less>;

    store(std::filesystem::path path, std::unique_ptr<rocksdb::DB> db, Logger log,
          int64_t max_holes, size_t memory_budget);
    // The partition's runs in memory, read from RocksDB if they were evicted.
    [[nodiscard]] Result<partition_runs*> use(partition_map::iterator it) const;
    [[nodiscard]] Result<void> read_partition(const partition_id& id, partition_state& st) const;
    // Evicts least recently used clean partitions until within the budget,
    // never `keep`.
    void trim(const partition_state* keep = nullptr) const;
    void account(partition_state& st) const;
    [[nodiscard]] size_t loaded_partitions_locked() const;
    [[nodiscard]] Result<void> write(const std::vector<std::pair<std::string, std::string>>& puts,
                                     const std::vector<std::string>& deletes,
                                     const std::string& what);
    [[nodiscard]] Result<void> load();
    [[nodiscard]] static std::string describe(std::string_view flow, std::string_view topic,
                                              int32_t partition);
    void unlist(const partition_state* st);
    [[nodiscard]] static std::string position_key(std::string_view source);

    std::filesystem::path path_;
    Logger log_;
    int64_t max_holes_ = max_holes_per_run;
    size_t memory_budget_ = default_memory_budget;
    mutable std::mutex mu_;
    // Destroyed after parts_ (declared first): nothing refers back to it.
    std::unique_ptr<rocksdb::DB> db_;
    // Mutable: const lookups load and evict partitions (a cache of RocksDB).
    mutable partition_map parts_;
    mutable uint64_t use_counter_ = 0;
    mutable size_t memory_ = 0;  // sum of bytes of loaded partitions
    // Partitions with runs changed by record() since the last flush. Map
    // nodes are stable, so these pointers stay valid until erased.
    std::vector<std::pair<const partition_id*, partition_state*>> dirty_;
};

}  // namespace rpl::offsetsync
