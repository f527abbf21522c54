// backup/: the archival tap, one [[tap]] of the config: its topics on a
// source cluster, continuously written as segments to an object store.
//
//   source ──poll──> tap ──add──> segment_writer per partition
//     ▲               │ roll: segment_max_bytes, segment_max_interval, memory bound
//     │               ├──finish(consumer position)──> pending segments (in order)
//     │               └──put──> object_store ──ok──> archived_end[p] = segment end
//     └──── commit archived_end[p] (only after the put succeeded) ◄──┘
//
// The archive is the truth: a newly assigned partition is placed by the run
// loop (never inside a rebalance callback) at the largest end offset of its
// stored segments, or at the source's log start when the archive holds
// nothing for it, so a crash at any instant leaves neither a hole nor an
// overlap. Every segment covers [start, end) exactly; offsets the consumer
// skipped (compaction, transaction markers, aborted records) are recorded as
// gaps by the writer. Offsets the source deleted before the tap archived them
// (retention, DeleteRecords) are a gap too, and also a loss object, counted
// and logged as an error; a source partition whose log end fell below the
// archive's end (a recreated topic) starts a new epoch, whose records continue
// the archive's offsets (catalogue.h).
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
// inside poll() on it. A segment upload runs on a worker thread while the run
// loop keeps polling (the group membership survives a slow store); the run
// loop uses the store only while no upload is in flight. An exception fails
// the tap (state failed, the cause in last_error), never the process.
// status() may be read from any thread.
#pragma once

#include "backup/catalogue.h"
#include "backup/metrics.h"
#include "backup/segment.h"
#include "backup/store.h"
#include "conf/config.h"
#include "conf/topic_policy.h"
#include "kafka/admin.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"
#include "kafka/reader.h"
#include "kafka/rpo_meter.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
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
    using clock_type = std::chrono::steady_clock;

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
    void run_loop();
    [[nodiscard]] Result<void> connect();
    [[nodiscard]] Result<void> write_backup_meta();
    [[nodiscard]] Result<void> load_topic_metas();
    [[nodiscard]] Result<void> discover();
    void snapshot_groups();
    void handle(kafka::message& m);
    void on_assign(kafka::partition_list& parts);
    void on_revoke(const kafka::partition_list& parts);
    // Where a newly assigned partition resumes (run loop only): the archive's
    // end; the log start when the archive holds nothing. Records a loss, or a
    // new epoch for a recreated topic, before the partition is read.
    [[nodiscard]] Result<void> place(partition_state& ps);
    void place_partitions();
    // Stores a loss object for [from, to) (source offsets), counts and logs it.
    [[nodiscard]] Result<void> record_loss(partition_state& ps, int64_t from, int64_t to,
                                           const std::string& why);
    // A loss seen on the data path (the log start moved past the next offset
    // while reading): queued ahead of the segment holding its gap.
    void queue_loss(partition_state& ps, int64_t from, int64_t to);
    // Closes ps's open segment into pending_. use_position: end it at the
    // consumer's position (covering trailing markers); false inside a
    // rebalance callback, where records already fetched are not yet added.
    void roll(partition_state& ps, bool use_position = true);
    void roll_due();
    // Stores pending segments in order, waiting for each; false when a put
    // failed (shutdown only).
    bool store_pending();
    // The run loop's upload step: collects a finished upload and, with
    // start_next, starts the next one on a worker thread; never waits.
    void pump_uploads(bool start_next);
    // After a put of pending_.front(): bookkeeping and the commit, or the backoff.
    void finish_put(const Result<void>& r, double seconds);
    [[nodiscard]] bool store_busy() const noexcept { return upload_.valid(); }
    void drop_pending(partition_state& ps);
    void apply_backpressure();
    void update_metrics();
    void publish_figures(const kafka::rpo_meter::figures& f);
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
    std::optional<kafka::producer> source_client_;      // metadata and admin on the source
    std::optional<kafka::group_client> source_groups_;  // other groups' commits
    std::optional<kafka::reader> offsets_client_;  // log start and end of the source partitions
    std::optional<kafka::consumer> consumer_;      // group replicatord.tap.<name>
    // RPO and lag from end offsets sampled on its own thread through
    // source_client_'s handle (stopped before that handle goes).
    std::unique_ptr<kafka::rpo_meter> meter_;
    std::set<std::pair<std::string, int32_t>> primed_;  // followed before being placed
    std::atomic<int> topics_known_{-1};                 // -1 before discovery, 0 none, 1 some
    bool figure_published_ = false;  // an RPO figure was published (the meter's thread only)
    // The put of pending_.front(), on a worker thread; waited for before the
    // pending segments, the store or the consumer go.
    std::future<Result<void>> upload_;
    clock_type::time_point upload_started_{};
    // An exception thrown inside a rebalance callback, rethrown after poll().
    std::exception_ptr callback_error_;

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
