// Failover and failback of consumer groups, as replicatorctl runs them.
//
//   translate:  checkpoints (target topic, or the local store) ──> where G resumes on the target
//   failover:   translate ──> commit into G on the target (idle groups only)
//   failback:   G's commits on the target ──reverse through the runs──> commit into G on the source
//
// Nothing here needs the source cluster except failback's final commit, so
// translate and failover work with the source region gone.
#pragma once

#include "conf/config.h"
#include "kafka/client.h"
#include "kafka/mm2.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rpl::checkpoint {

struct stored_checkpoint {
    kafka::mm2::checkpoint cp;
    int64_t timestamp_ms = 0;  // when it was written
};

// The latest checkpoint per (group, target topic, partition) in
// `<source>.checkpoints.internal` on the target, read from the beginning to
// the end as of the call. A missing topic gives an empty map.
[[nodiscard]] Result<std::vector<stored_checkpoint>> read_checkpoints(
    const kafka::endpoint& target, const std::string& source_alias, kafka::deadline_ms deadline,
    const Logger& log);

// The daemon's local copy of the latest checkpoints (RocksDB under
// state_dir/checkpoints), so lookups need no cluster at all.
class local_checkpoints {
public:
    // read_only opens alongside a running daemon.
    [[nodiscard]] static Result<std::unique_ptr<local_checkpoints>> open(
        const std::filesystem::path& dir, bool read_only);
    ~local_checkpoints();
    [[nodiscard]] Result<void> put(const std::string& flow,
                                   const std::vector<stored_checkpoint>& cps);
    [[nodiscard]] Result<std::vector<stored_checkpoint>> all(const std::string& flow) const;
    // The checkpointer's group sync state: per (group, target topic,
    // partition), the source group's offset (upstream_offset) that its target
    // group was last synced to, so that a rewind still owed to a target group
    // survives a restart. Kept under keys of their own: all() (and older
    // binaries reading this store) never see them.
    [[nodiscard]] Result<void> put_synced(const std::string& flow,
                                          const std::vector<kafka::mm2::checkpoint>& cps);
    [[nodiscard]] Result<std::vector<kafka::mm2::checkpoint>> synced(const std::string& flow) const;

private:
    struct impl;
    explicit local_checkpoints(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

struct translation_row {
    std::string group;
    std::string topic;  // target-side
    std::string source_topic;
    int32_t partition = 0;
    int64_t upstream_offset = -1;
    int64_t target_offset = -1;
    int64_t log_end_offset = -1;  // -1: unknown (target not asked or down)
    int64_t checkpoint_age_ms = -1;
};

// Rows for the flow's target topics, for one group ("" = every group), from
// the checkpoints given. Target end offsets are filled in if `target` is set.
[[nodiscard]] std::vector<translation_row> rows_for(const conf::flow_config& flow,
                                                    const std::vector<stored_checkpoint>& cps,
                                                    const std::string& group);
[[nodiscard]] Result<void> fill_end_offsets(std::vector<translation_row>& rows,
                                            const kafka::endpoint& target,
                                            kafka::deadline_ms deadline, const Logger& log);

struct group_plan {
    std::string group;
    std::string cluster;  // where the commit goes
    std::string refused;  // non-empty: why the group is left alone
    struct row {
        std::string topic;
        int32_t partition = 0;
        int64_t current = -1;     // the group's committed offset there now, -1 if none
        int64_t next = -1;        // what failover commits
        int64_t translated = -1;  // what the checkpoint said (next differs when clamped)
        int64_t log_start = -1;   // the partition's range on that cluster, -1 if not asked
        int64_t log_end = -1;
        std::string note;  // why next differs from translated, or why the group is refused
    };
    std::vector<row> rows;
};

// Forward failover: commit the checkpointed target offsets into each group on
// the target. `apply` false only plans, with the same checks:
//   - each offset is checked against the target partition's log range
//     [start, end], read before anything is committed;
//   - below the log start, those records are gone (retention): the group
//     resumes at the log start, with a warning naming both offsets;
//   - past the log end (the target topic was recreated or lost records) or on
//     a partition the target lacks, the group is refused, nothing of it
//     committed: it would skip the records written there next.
[[nodiscard]] Result<std::vector<group_plan>> failover(const conf::Config& cfg,
                                                       const conf::flow_config& flow,
                                                       const std::vector<translation_row>& rows,
                                                       bool apply, const Logger& log);
// Failback: the groups' commits on the target, reverse-translated through
// the runs (caught up from the target's runs topic into `scratch_dir`), into
// the same groups on the source, checked against the source's log range as
// failover() checks against the target's. groups empty: every group with commits on
// the flow's target topics.
[[nodiscard]] Result<std::vector<group_plan>> failback(const conf::Config& cfg,
                                                       const conf::flow_config& flow,
                                                       const std::vector<std::string>& groups,
                                                       const std::filesystem::path& scratch_dir,
                                                       bool apply, const Logger& log);

}  // namespace rpl::checkpoint
