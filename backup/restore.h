// backup/: point-in-time restore of a backup into any Kafka cluster
// (`replicatorctl restore --config R.toml [--dry-run] [--skip-damaged]`).
//
//   plan_restore: store readable, backup exists, target reachable, topics
//     exist or can be created, partition counts fit; exact record counts in
//     the window (segments the window cuts through are read)
//   run_restore, per partition, in offset order:
//     target partition ──read headers──> runs so far + resume point
//     store ──get──> segment ──frames──> records in window ──token bucket──>
//       idempotent acks=all producer (key, value, headers, CreateTime,
//       + header replicatord.source.offset) ──delivery──> offsetsync runs
//   then groups: snapshot at or before the window's end ──runs.lookup──>
//     alter_group_offsets on the target (groups with members are refused)
//
// Invariants: a record is produced only after every earlier record of its
// partition in the window was produced (or its damaged range was skipped on
// request); a damaged range stops the restore before anything in or after
// it is written to that partition. Resuming reads the restored records'
// replicatord.source.offset headers and continues after the highest one, so
// an interrupted restore never duplicates (the idempotent producer writes a
// prefix of what was sent). Offsets are translated only through
// offsetsync::partition_runs (the same lookup as failover).
// Thread model: one thread; the producer's delivery reports run inside its
// poll() on that thread.
#pragma once

#include "backup/catalogue.h"
#include "backup/store.h"
#include "backup/verify.h"
#include "conf/restore_config.h"
#include "kafka/log.h"

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rpl::backup {

// The header every restored record carries: its offset in the backup's
// source partition, as decimal ASCII.
inline constexpr const char* source_offset_header = "replicatord.source.offset";
// With partition_mapping = "murmur2" only: the source partition, decimal ASCII.
inline constexpr const char* source_partition_header = "replicatord.source.partition";

struct partition_plan {
    int32_t partition = 0;                // in the backup
    std::vector<segment_entry> segments;  // those holding records in the window
    std::uint64_t records = 0;            // records in the window (exact)
    std::uint64_t stored_bytes = 0;       // bytes of the segments to read
    int64_t first_offset = -1;            // first and last offset in the window
    int64_t last_offset = -1;
    int64_t min_timestamp = -1;  // of the records in the window
    int64_t max_timestamp = -1;
};

struct topic_plan {
    std::string topic;         // in the backup
    std::string target_topic;  // on the target
    int32_t backup_partitions = 0;
    int32_t target_partitions = 0;  // existing count, or what will be created
    bool create = false;
    std::map<std::string, std::string> configs;  // for a created topic
    std::vector<partition_plan> partitions;
};

struct group_plan {
    std::string group;
    std::vector<group_offset> offsets;  // committed on the source (backup topic names)
    std::string refused;                // non-empty: why it will not be set
};

struct restore_plan {
    backup_meta meta;
    std::string store;   // masked
    std::string target;  // "target (bootstrap)"
    std::vector<topic_plan> topics;
    std::optional<int64_t> snapshot_ms;  // group snapshot used
    std::vector<group_plan> groups;
    std::vector<damage> damaged;  // found while counting (only segments read)
    std::uint64_t records = 0;
    std::uint64_t stored_bytes = 0;
};

// Dry-run and the first half of every run. Errors: errc::invalid_config
// (no topic selected, two topics renamed into one), errc::not_found (backup
// missing: the message lists the ids present), errc::unreachable (store or
// target), errc::conflict (a target topic with fewer partitions than the
// backup and partition_mapping = "preserve": names the topic and both counts).
[[nodiscard]] Result<restore_plan> plan_restore(const conf::restore_config& cfg,
                                                object_store& store, const Logger& log);

// The runbook view: per topic/partition what would be restored, then groups.
void print_plan(const restore_plan& plan, const conf::restore_config& cfg, std::ostream& out);

struct restore_options {
    bool skip_damaged = false;
    bool progress = false;                    // \r progress line on stderr
    const std::atomic<bool>* stop = nullptr;  // set by a signal handler: stop cleanly
};

struct group_result {
    std::string group;
    std::vector<std::pair<group_offset, int64_t>> offsets;  // source -> committed target offset
    std::string refused;
};

struct restore_result {
    std::uint64_t records = 0;  // produced in this run
    std::uint64_t bytes = 0;    // key + value + headers produced
    std::uint64_t already = 0;  // found restored by an earlier run (resume)
    double seconds = 0;
    std::vector<damage> skipped;
    std::vector<group_result> groups;
};

// Runs a plan. A damaged range fails with errc::corrupt naming the object
// and range, unless options.skip_damaged (then it is listed in skipped).
[[nodiscard]] Result<restore_result> run_restore(const conf::restore_config& cfg,
                                                 object_store& store, const restore_plan& plan,
                                                 const restore_options& options, const Logger& log);

// Kafka's default partitioner for keyed records (murmur2, positive, modulo).
[[nodiscard]] int32_t murmur2_partition(std::string_view key, int32_t partitions) noexcept;

}  // namespace rpl::backup
