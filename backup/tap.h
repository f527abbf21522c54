// backup/: the archival tap, one [[tap]] of the config: its topics on a
// source cluster, continuously written as segments to an object store.
//
//   source ──poll──> tap ──add──> segment_writer per partition
//     ▲               │ roll: segment_max_bytes, segment_max_interval, memory bound
//     │               ├──finish(consumer position)──> pending segments (in order)
//     │               └──put──> object_store ──ok──> archived_end[p] = segment end
//     └──── commit archived_end[p] (only after the put succeeded) ◄──┘
//
// The archive is the truth: on assignment a partition resumes at the largest
// end offset of its stored segments (the group's committed offset only when
// the archive holds nothing for it, else the earliest offset), so a crash at
// any instant leaves neither a hole nor an overlap. Every segment covers
// [start, end) exactly; offsets the consumer skipped (compaction, transaction
// markers, aborted records) are recorded as gaps by the writer.
// Failures: a put that fails (after the store's own retries) keeps the
// segment, counts the error and is retried after a backoff (1 s doubling to
// 30 s, reset on success); nothing is skipped. Memory is bounded across
// partitions: the largest open segment is rolled early past the bound, and
// consumption pauses while puts fail and the bound is reached.
// Also stored: backup.meta once, a topic_meta when a topic is first seen or
// its partition count changes, and every group_snapshot_interval the
// committed offsets of the source's consumer groups for the tap's topics
// (replicatord's own groups excluded), when they changed.
// Thread model: each tap runs on its own thread; librdkafka callbacks run
// inside poll() on it. status() may be read from any thread.
#pragma once

#include "backup/catalogue.h"
#include "backup/metrics.h"
#include "backup/segment.h"
#include "backup/store.h"
#include "conf/config.h"
#include "conf/topic_policy.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace rpl::backup {

enum class tap_state { starting, running, backing_off, failed, stopped };
[[nodiscard]] const char* to_string(tap_state s) noexcept;

struct tap_status {
    std::string name;
    tap_state state = tap_state::starting;
    std::string last_error;
    std::vector<std::string> topics;  // source topics being archived
    int64_t lag = 0;                  // records at the source not yet durably archived
    double rpo_seconds = 0;
    std::uint64_t segments = 0;  // stored since start
    // When the run loop last went round: a wedged tap thread stops it.
    std::chrono::steady_clock::time_point loop_at = std::chrono::steady_clock::now();
};

// Things a tap needs from outside, injected by the app.
struct tap_env {
    const conf::Config* config = nullptr;
    tap_metric_families* metrics = nullptr;  // may be null (tests)
};

class tap {
public:
    // `store` is the tap's storage, opened by the caller from cfg.storage.
    tap(const conf::tap_config& cfg, tap_env env, std::unique_ptr<object_store> store);
    ~tap();
    tap(const tap&) = delete;
    tap& operator=(const tap&) = delete;

    // Checks the store (its directory or bucket must exist: errc::not_found
    // names it), connects to the source (10 s deadline, errc::unreachable),
    // writes backup.meta if absent and starts the thread.
    [[nodiscard]] Result<void> start();
    // Rolls and stores what is buffered, commits, leaves the group. Idempotent.
    void stop() noexcept;

    [[nodiscard]] tap_status status() const;
    [[nodiscard]] const std::string& name() const noexcept { return cfg_.name; }

private:
    struct partition_state;
    struct pending_segment;

    void run() noexcept;
    [[nodiscard]] Result<void> connect();
    [[nodiscard]] Result<void> write_backup_meta();
    [[nodiscard]] Result<void> load_topic_metas();
    [[nodiscard]] Result<void> discover();
    void snapshot_groups();
    void handle(kafka::message& m);
    void on_assign(const kafka::partition_list& parts);
    void on_revoke(const kafka::partition_list& parts);
    // Where a newly assigned partition resumes: the archive's end, else the
    // committed offset, else -1 (the first record read).
    [[nodiscard]] Result<int64_t> resume_offset(const std::string& topic, int32_t partition,
                                                int64_t committed);
    void place_partitions();
    // Closes ps's open segment into pending_. use_position: end it at the
    // consumer's position (covering trailing markers); false inside a
    // rebalance callback, where records already fetched are not yet added.
    void roll(partition_state& ps, bool use_position = true);
    void roll_due();
    // Stores pending segments in order; false when a put failed.
    bool store_pending();
    void drop_pending(partition_state& ps);
    void apply_backpressure();
    void update_metrics();
    void shutdown() noexcept;
    void set_state(tap_state s, std::string error = {});
    void count_error(const std::string& kind);
    [[nodiscard]] std::uint64_t memory_bytes() const;
    [[nodiscard]] partition_state& part(const std::string& topic, int32_t partition);
    bool sleep_for(std::chrono::milliseconds d);

    const conf::tap_config cfg_;
    const tap_env env_;
    const conf::topic_policy policy_;
    Logger log_;
    kafka::endpoint source_;
    std::unique_ptr<object_store> store_;

    // Declaration order is destruction order, reversed: the consumer goes
    // first (its revoke callback uses the partition states and the store).
    std::map<std::pair<std::string, int32_t>, std::unique_ptr<partition_state>> parts_;
    std::deque<pending_segment> pending_;               // rolled, not yet stored; oldest first
    std::map<std::string, int32_t> stored_partitions_;  // newest topic_meta per topic
    std::map<std::string, std::vector<group_offset>> last_snapshot_;
    std::optional<kafka::producer> source_client_;  // metadata and admin on the source
    std::optional<kafka::consumer> consumer_;       // group replicatord.tap.<name>

    std::vector<std::string> subscribed_;
    bool paused_ = false;
    std::chrono::milliseconds backoff_{1000};
    std::chrono::steady_clock::time_point retry_at_{};
    std::chrono::steady_clock::time_point next_refresh_{};
    std::chrono::steady_clock::time_point next_snapshot_{};
    std::chrono::steady_clock::time_point next_metrics_{};
    std::chrono::steady_clock::time_point last_put_ = std::chrono::steady_clock::now();
    std::uint64_t record_bytes_total_ = 0;  // for the compression ratio
    std::uint64_t stored_bytes_total_ = 0;

    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
    mutable std::mutex status_mu_;
    tap_status status_;
    std::mutex wake_mu_;
    std::condition_variable wake_;
};

}  // namespace rpl::backup
