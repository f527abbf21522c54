// checkpoint/: consumer positions carried across, for one flow.
//
//   source groups ──list, offsets──> translate (offsetsync::store)
//        │                                 ├──> <source>.checkpoints.internal on the target
//        │                                 │    (MirrorMaker 2's format; only when changed)
//        │                                 └──> commit into the same group on the target,
//        │                                      if it has no active members there
//        └── every checkpoint_interval, on this component's own thread
//
// Invariants:
//   - A checkpoint's downstream offset never moves back unless the source
//     group itself rewound (its upstream offset went back); then it follows.
//   - Group sync only moves a target group forward (same rewind exception),
//     and never touches a group with active members on the target: such a
//     group is skipped, logged and counted, never an error.
//   - A rewind stays owed to the target group until a sync of that group
//     succeeds: it is judged against the position last synced (synced_),
//     not the last checkpoint emitted, so a sync that failed or was skipped
//     (active group) does not lose it, nor does a restart (it is kept in
//     the local store). The target group then moves to the translation of
//     the source group's current position, never past it.
//   - A checkpoint counts as emitted (in last_, the metrics and the local
//     store) only once the target acknowledged it; one that failed is sent
//     again next pass.
//   - The data path never waits on this component.
// Thread model: one thread per flow; status() from any thread.
#pragma once

#include "conf/config.h"
#include "conf/topic_policy.h"
#include "kafka/admin.h"
#include "kafka/mm2.h"
#include "kafka/producer.h"
#include "offsetsync/store.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

namespace rpl::checkpoint {

struct checkpoint_metric_families {
    prometheus::Family<prometheus::Counter>& emitted;        // {flow}
    prometheus::Family<prometheus::Counter>& groups;         // {flow, result}
    prometheus::Family<prometheus::Counter>& errors;         // {flow, kind}
    prometheus::Family<prometheus::Gauge>& last_checkpoint;  // {flow}: unix seconds
};
[[nodiscard]] checkpoint_metric_families make_checkpoint_metrics(prometheus::Registry& r);
// The `kind`s of replicatord_checkpoint_errors_total: the error codes a pass
// can fail with (a checkpoint not delivered is "kafka"), and one group's
// offsets unreadable on the source.
inline constexpr const char* checkpoint_error_kinds[] = {"kafka", "unreachable", "timeout",
                                                         "group_offsets"};
// Exports every series of a flow at 0 (the checkpointer's constructor calls
// it), so dashboards and alerts have data from the first scrape.
void declare_flow(checkpoint_metric_families& m, const std::string& flow);
// Drops every series of a flow that was removed (after its checkpointer stopped).
void forget_flow(checkpoint_metric_families& m, const std::string& flow);

struct checkpointer_status {
    int64_t last_run_unix_ms = 0;      // last completed pass
    int64_t checkpoints = 0;           // distinct (group, topic, partition) known
    std::vector<std::string> synced;   // groups committed on the target in the last pass
    std::vector<std::string> skipped;  // "group: reason"
    std::string last_error;
};

// Which source groups a flow checkpoints: its `groups` regexes minus
// `exclude_groups`, never replicatord's own nor console-consumer-*.
class group_filter {
public:
    explicit group_filter(const conf::flow_config& f);
    [[nodiscard]] bool selected(const std::string& group) const;

private:
    std::vector<std::regex> include_;
    std::vector<std::regex> exclude_;
};

class checkpointer {
public:
    // `local` (may be null) receives every checkpoint emitted, for
    // replicatorctl translate --state-dir, and keeps the group sync state
    // (synced_) across restarts.
    checkpointer(const conf::flow_config& flow, const conf::Config& cfg, offsetsync::store& store,
                 checkpoint_metric_families* metrics, class local_checkpoints* local = nullptr);
    ~checkpointer();
    checkpointer(const checkpointer&) = delete;
    checkpointer& operator=(const checkpointer&) = delete;

    // Creates the clients (no connection is required to start: the source
    // may be down) and starts the thread.
    [[nodiscard]] Result<void> start();
    // Only creates the clients, for tests that drive run_once() themselves.
    [[nodiscard]] Result<void> open();
    void stop() noexcept;
    // One pass, on the caller's thread (tests; the thread calls the same).
    // A failure is logged, counted in replicatord_checkpoint_errors_total
    // and kept in status().last_error before it is returned.
    [[nodiscard]] Result<void> run_once();
    [[nodiscard]] checkpointer_status status() const;

private:
    struct last_checkpoint {
        int64_t upstream = -1;
        int64_t downstream = -1;
    };
    using key = std::tuple<std::string, std::string, int32_t>;  // group, target topic, partition

    void run() noexcept;
    // One pass; run_once() adds the logging and counting of its failure.
    [[nodiscard]] Result<void> pass();
    // Sends the checkpoints that changed; only those the target
    // acknowledged are recorded in last_ (and local_). errc::kafka if any
    // was not delivered: its entry in last_ is dropped (the record may have
    // landed all the same), so next pass sends the group's position then,
    // even if it went back to the one last acknowledged.
    [[nodiscard]] Result<void> emit(const std::vector<kafka::mm2::checkpoint>& to_emit);
    [[nodiscard]] Result<void> ensure_topic();
    // Identity naming with a reverse flow: bring its runs (published on this
    // flow's source cluster) into the store when this process does not run
    // it, and read its group's positions on the target.
    [[nodiscard]] Result<void> follow_reverse_flow();
    // Under identity naming the target topic also holds records that
    // originated on the target. The safe position is the smaller of: the
    // first record from the source the group had not consumed (this flow's
    // runs), and the first target-origin record that had not reached the
    // source below the group's position (the reverse flow's runs).
    [[nodiscard]] int64_t identity_bound(const std::string& topic, int32_t partition,
                                         int64_t upstream) const;
    // true: the target group now agrees with `cps` (committed, or already
    // there or ahead); false: skipped, it has active members on the target.
    [[nodiscard]] Result<bool> sync_group(const std::string& group,
                                          const std::vector<kafka::mm2::checkpoint>& cps,
                                          const std::map<key, bool>& rewound,
                                          checkpointer_status& st);

    const conf::flow_config flow_;
    const conf::Config& cfg_;
    offsetsync::store& store_;
    checkpoint_metric_families* metrics_;
    class local_checkpoints* local_;
    const conf::topic_policy policy_;
    const group_filter groups_;
    Logger log_;
    std::string topic_;  // <source>.checkpoints.internal

    // Delivery outcome per checkpoint in flight, by the number emit() gave
    // it as opaque. Declared before target_ so that it outlives it.
    std::map<std::uintptr_t, rd_kafka_resp_err_t> reports_;
    std::uintptr_t next_report_ = 1;
    std::optional<kafka::Client> source_;    // admin requests on the source
    std::optional<kafka::producer> target_;  // checkpoints, admin on the target
    // Groups' commits and members on each side (see kafka::group_client).
    std::optional<kafka::group_client> source_groups_;
    std::optional<kafka::group_client> target_groups_;
    bool topic_ready_ = false;
    std::map<key, last_checkpoint> last_;
    // The source group's committed offset as of the last sync of its target
    // group that succeeded (or as first seen). A source offset below it is a
    // rewind the target group still owes; last_ cannot tell, since it moves
    // on when the checkpoint is emitted, whatever became of the sync. Kept
    // in local_ too, so that a rewind owed survives a restart.
    std::map<key, int64_t> synced_;
    bool reverse_local_ = false;     // the reverse flow runs in this process
    int64_t reverse_runs_next_ = 0;  // catch-up position in the source's runs topic
    std::map<std::pair<std::string, int32_t>, int64_t> reverse_committed_;

    std::atomic<bool> stop_{false};
    std::mutex wake_mu_;
    std::condition_variable wake_;
    std::thread thread_;
    mutable std::mutex status_mu_;
    checkpointer_status status_;
};

}  // namespace rpl::checkpoint
