// replicator/: the data path of one flow, source cluster -> target cluster.
//
//   source ──poll(batch ≤ window)──> flow ──produce(same partition, value not copied)──> target
//     ▲                                │            delivery report (src offset -> dst offset)
//     │                                ├─ acked_next[p] advances, in order per partition
//     └──── commit acked_next ◄────────┘  (only what the target acknowledged)
//
// One recovery rule: on any delivery failure or a fatal producer error, purge
// what is in flight, recreate the producer if librdkafka declared it broken,
// seek every partition back to its last acknowledged offset and resume after
// a backoff (100 ms doubling to 10 s, reset on the first acknowledgement).
// Retriable failures (target down, leader moves) are retried inside
// librdkafka with no message timeout, so they never skip a record.
//
// Bounds: at most max_in_flight_records records are read and not yet
// committed back to the source (so a crash re-sends at most that many), and
// at most max_in_flight_bytes are read and not yet acknowledged (memory).
// Beyond either, the consumer is paused, not starved of polls.
//
// Thread model: each flow runs on its own thread; librdkafka callbacks run
// inside poll() on that thread. status() may be read from any thread.
#pragma once

#include "conf/config.h"
#include "conf/topic_policy.h"
#include "kafka/admin.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"
#include "kafka/rpo_meter.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
#include "replicator/metrics.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

namespace rpl::replicator {

enum class flow_state { starting, running, backing_off, failed, stopped };
[[nodiscard]] const char* to_string(flow_state s) noexcept;

struct flow_status {
    std::string name;
    flow_state state = flow_state::starting;
    std::string last_error;
    std::vector<std::string> topics;  // source topics being mirrored
    int64_t lag = 0;                  // sum over partitions
    double rpo_seconds = 0;
    int32_t partitions_assigned = 0;  // to this member, now
    // Taken from this member by a session timeout (the source unreachable)
    // and not yet given back: still counted in the figures.
    int32_t partitions_lost = 0;
    // Fetching stopped by back-pressure until the in-flight window drains.
    bool paused = false;
    // When the run loop last went round: a wedged flow thread stops it.
    std::chrono::steady_clock::time_point loop_at = std::chrono::steady_clock::now();
};

// Fault injection, for tests only: hooks at the points where a production
// fault is real but cannot be had on demand (an exhausted resource, a seek
// that librdkafka reports failed). The daemon never sets them; any hook may
// be left empty.
struct flow_faults {
    // Called for every record the flow is about to send: a throw stands for
    // one from the data path (bad_alloc, a library's own exception).
    std::function<void(const std::string& topic, int32_t partition, int64_t offset)> on_record;
    // Called at every commit of the flow's own (the timer's, the window's,
    // the drain's at shutdown; not a revoke's): a throw reaches shutdown too.
    std::function<void()> on_commit;
    // Consulted for each partition of every seek: true makes that
    // partition's seek fail as librdkafka's can (not performed, an error
    // returned).
    std::function<bool(const std::string& topic, int32_t partition, int64_t offset)> fail_seek;
    // After each record the consumer takes into a batch: how long its poll
    // waits for the next record of that batch (0, as in the daemon, takes
    // only what is queued). A rebalance then runs between records of one
    // batch, where it otherwise lands only now and then.
    std::function<std::chrono::milliseconds(const std::string& topic, int32_t partition,
                                            int64_t offset)>
        poll_wait;
    // On each assignment, after the flow read the group's commits: true
    // makes it go on as if that read had failed (as it does while the
    // coordinator moves), so librdkafka queries the commits itself.
    std::function<bool()> lose_committed_read;
};

// Things a flow needs from outside, injected by the app.
struct flow_env {
    const conf::Config* config = nullptr;
    mirror_metric_families* metrics = nullptr;
    // Exact offset runs: every acknowledged record is recorded here and the
    // runs are published to the target before the source commit that covers
    // them. nullptr runs the flow without translation (tests only).
    offsetsync::store* offsets = nullptr;
    // Tests only: see flow_faults. nullptr in the daemon.
    const flow_faults* faults = nullptr;
};

class flow {
public:
    flow(const conf::flow_config& cfg, flow_env env);
    ~flow();
    flow(const flow&) = delete;
    flow& operator=(const flow&) = delete;

    // Connects to both clusters (10 s deadline each) and starts the thread.
    // errc::unreachable names the cluster that did not answer.
    [[nodiscard]] Result<void> start();
    // Stops fetching, drains in-flight records (bounded), commits, leaves the
    // group. Idempotent.
    void stop() noexcept;

    [[nodiscard]] flow_status status() const;
    [[nodiscard]] const std::string& name() const noexcept { return cfg_.name; }

private:
    struct partition_state;
    struct topic_state;

    void run() noexcept;
    void loop();
    [[nodiscard]] Result<void> connect();
    [[nodiscard]] Result<void> discover();
    [[nodiscard]] Result<void> ensure_target(topic_state& t, int source_partitions,
                                             bool created_here);
    [[nodiscard]] Result<void> sync_configs(topic_state& t);
    void heartbeat();
    void prune_runs();
    // One delivery into the offset runs; stale runs (target partition
    // recreated) are dropped and the partition indexed afresh.
    void record_run(partition_state& ps, int64_t src, int64_t dst);
    void handle(kafka::message& m);
    void on_delivery(const kafka::delivery& d);
    void on_assign(kafka::partition_list& parts);
    // Re-assigns partitions that have had no fetch position for
    // fetch_stall_after while the source holds records for them.
    void watch_fetching(const kafka::rpo_meter::figures& f);
    void on_revoke(const kafka::partition_list& parts);
    void drop_lag_gauge(partition_state& ps);
    // Publishes how many partitions this member holds and has lost.
    void count_partitions();
    void set_paused(bool paused);  // paused_ and the status's copy
    void on_committed(const kafka::partition_list& parts);
    void commit(bool sync);
    // "" after a commit that went through, else what stopped it.
    void commit_health(const std::string& problem);
    // Writes the runs recorded since the last call to RocksDB and the runs
    // topic and waits for the topic's acknowledgement. False: do not commit.
    [[nodiscard]] bool persist_runs();
    void rewind();
    // The consumer's seek, 10 s deadline, through flow_faults::fail_seek.
    [[nodiscard]] Result<void> seek(const kafka::partition_list& positions);
    // A record of this partition was not taken by the target: hold the
    // partition, and resend it from its last acknowledged record.
    void fail_partition(partition_state& ps, int64_t offset, const std::string& cause);
    void recover_partitions();
    // Whether a record at `offset`, not the next one expected, is to be
    // handled; says what retention or a recreated topic did.
    [[nodiscard]] bool explained(partition_state& ps, int64_t offset);
    // The first record of a partition the group has no position for.
    void fresh_start(partition_state& ps, int64_t offset);
    void update_window();
    // Whether ps holds its even share of the window among busy partitions.
    [[nodiscard]] bool over_share(const partition_state& ps, int64_t max_records) const;
    void update_metrics();
    void publish_figures(const kafka::rpo_meter::figures& f);
    void shutdown() noexcept;
    // Fails the flow with the cause of an exception out of the run loop.
    void fail_unit(const char* cause) noexcept;
    // One step of shutdown(): an exception ends the step, logged.
    template <class F>
    void guarded(const char* step, F&& f) noexcept;
    void set_state(flow_state s, std::string error = {});
    void count_error(const std::string& kind);
    [[nodiscard]] partition_state* find(const kafka::message& m);
    [[nodiscard]] partition_state& part(const std::string& topic, int32_t partition);
    [[nodiscard]] int64_t commit_position(const partition_state& p,
                                          int64_t consumer_position) const;
    // (partition, offset safe to commit) for every known partition.
    [[nodiscard]] std::vector<std::pair<partition_state*, int64_t>> safe_positions(
        bool assigned_only);
    bool sleep_for(std::chrono::milliseconds d);

    const conf::flow_config cfg_;
    const flow_env env_;
    const conf::topic_policy policy_;
    Logger log_;
    kafka::endpoint source_;
    kafka::endpoint target_;

    // Declaration order is destruction order, reversed: the consumer goes
    // first (its revoke callback uses the producer and the state maps), then
    // the producers, then the state their delivery reports point into.
    std::map<std::string, std::unique_ptr<topic_state>> topics_;
    std::unordered_map<const void*, topic_state*> by_handle_;  // consumer rkt -> topic
    std::unique_ptr<offsetsync::publisher> runs_;              // runs topic on the target
    std::optional<kafka::producer> source_producer_;  // heartbeats, source admin and metadata
    std::optional<kafka::producer> producer_;         // the target
    std::optional<kafka::consumer> consumer_;         // the source, group replicatord.<flow>
    // RPO and lag from end offsets sampled on its own thread through
    // source_producer_'s handle: stopped before that handle goes. It outlives
    // a failed run so the figure keeps growing until the flow runs again.
    std::unique_ptr<kafka::rpo_meter> meter_;

    // The batch being polled and handled; on_revoke looks into it.
    std::vector<kafka::message> batch_;
    std::vector<std::string> subscribed_;
    // -1 before the first discovery, then 0 when no topic matches, 1 when some
    // do (read by the meter's thread).
    std::atomic<int> topics_known_{-1};
    int metadata_failures_ = 0;  // discovery's metadata reads failed in a row
    // This instance has published an RPO figure (the meter's thread only).
    bool figure_published_ = false;
    std::set<std::pair<std::string, int32_t>> primed_;  // followed by the meter, not yet assigned
    std::set<std::pair<std::string, int32_t>> lost_;    // of those, taken by a session timeout
    bool rewind_needed_ = false;
    bool paused_ = false;
    int64_t window_records_ = 0;  // read and not committed, summed over partitions
    // Assigned partitions holding window or with records waiting on the
    // source, as of the last update_window().
    int64_t busy_partitions_ = 0;
    int64_t in_flight_bytes_ = 0;  // read and not acknowledged
    std::chrono::milliseconds backoff_{100};
    int failures_without_progress_ = 0;
    std::optional<std::chrono::steady_clock::time_point> commit_failing_since_;
    bool commit_stalled_ = false;
    std::chrono::steady_clock::time_point next_refresh_{};
    std::chrono::steady_clock::time_point next_config_sync_{};
    std::chrono::steady_clock::time_point next_heartbeat_{};
    std::chrono::steady_clock::time_point next_commit_{};
    std::chrono::steady_clock::time_point last_commit_at_{};
    std::chrono::steady_clock::time_point next_metrics_{};

    latency_accumulator latency_;                         // flushed by update_metrics()
    prometheus::Histogram* latency_histogram_ = nullptr;  // {flow}

    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
    mutable std::mutex status_mu_;
    flow_status status_;
    std::mutex wake_mu_;
    std::condition_variable wake_;
};

}  // namespace rpl::replicator
