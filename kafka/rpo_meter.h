// The recovery point of a unit that copies source partitions somewhere (a
// flow to a target cluster, a tap to an archive): per partition, how long the
// source has held the oldest record the sink has not acknowledged, and how
// many records that is. Shared by the mirror and the tap so that the figure
// means one thing everywhere.
//
//   sampler thread ──ListOffsets(earliest, latest) every interval──> samples (t_sent, end)
//   owner thread ───acknowledge(tp, next) / first_record(tp, ts)───> positions
//   publisher thread ──figures (max over partitions), every 100 ms──> on_figures callback
//
// Bound: safe_since(p) is the send time of the latest sample whose end offset
// was at most p, so every record at or after p was appended after it and the
// figure now - safe_since(p) is never below the truth; it is above it by at
// most one sampling interval plus one request's round trip. The samples are
// requests of their own, not the fetch path's cached watermarks, so they stay
// fresh while a partition is paused or the sink is throttled; when the
// source cannot be reached no sample arrives and the figure keeps growing
// from the last moment the partition was known to be safe. Across restarts
// the bound travels in the commit's metadata (commit_metadata /
// restore_since); with none, the first record's own timestamp stands in.
//
// Thread model: the owner calls everything but the callback, from its own
// thread; a sampler thread makes the requests and a publisher thread runs the
// callback, so a request that waits never holds the figure still. A mutex
// guards the state.
#pragma once

#include "kafka/client.h"
#include "kafka/consumer.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace rpl::kafka {

// Earliest (log start) and latest (end, or last stable offset for
// read_committed) offsets of each partition, by one ListOffsets round per
// leader. A partition the cluster could not answer for has offset -1.
struct offset_range {
    std::string topic;
    int32_t partition = 0;
    int64_t start = -1;
    int64_t end = -1;
};
[[nodiscard]] Result<std::vector<offset_range>> list_offset_ranges(const Client& c,
                                                                   const partition_list& parts,
                                                                   deadline_ms deadline);

class rpo_meter {
public:
    using wall_clock = std::chrono::system_clock;

    struct partition_figures {
        std::string topic;
        int32_t partition = 0;
        int64_t lag = 0;         // records the source holds past the acknowledged position
        double rpo_seconds = 0;  // see the bound above
        bool sampled = false;    // false until one sample of this partition arrived
    };
    struct figures {
        double rpo_seconds = 0;  // largest over the partitions
        int64_t lag = 0;         // sum over the partitions
        // False while some partition has neither a sample nor an earlier
        // bound: the figures would only be a guess.
        bool complete = true;
        std::vector<partition_figures> partitions;
        // When the last sample of every partition succeeded; default when
        // none has yet.
        wall_clock::time_point last_sample{};
    };

    // `source` must outlive the meter (stop() before it goes).
    rpo_meter(const Client& source, Logger log, std::chrono::milliseconds interval,
              std::function<void(const figures&)> on_figures);
    ~rpo_meter();
    rpo_meter(const rpo_meter&) = delete;
    rpo_meter& operator=(const rpo_meter&) = delete;

    void start();
    void stop() noexcept;

    // A partition now owned. `next` is where the sink stands (-1 unknown:
    // the log start counts); `since` is the bound a previous run committed
    // (see restore_since), if any. A partition followed already (primed, or
    // lost and still counted) keeps its samples, and its bound wherever the
    // new position is not behind the old one.
    void assign(const std::string& topic, int32_t partition, int64_t next,
                std::optional<wall_clock::time_point> since);
    void revoke(const std::string& topic, int32_t partition);
    // Before the group hands out partitions (a join takes seconds), follows
    // every partition of `topics` from `group`'s commits and their bounds,
    // so that the figure starts from the truth after a restart. Returns the
    // partitions followed; the owner revokes those it is not assigned.
    std::set<std::pair<std::string, int32_t>> follow_commits(
        consumer& group, const std::vector<std::string>& topics);
    // Everything below `next` is acknowledged by the sink.
    void acknowledge(const std::string& topic, int32_t partition, int64_t next);
    // The timestamp of the first record read after assignment: the stand-in
    // for a partition whose backlog predates every sample and every commit.
    void first_record(const std::string& topic, int32_t partition, int64_t offset,
                      int64_t timestamp_ms);

    // The log start last sampled (-1 if none).
    [[nodiscard]] int64_t log_start(const std::string& topic, int32_t partition);

    // For a commit of `next`: the metadata that carries the bound to the
    // next run, and reading it back.
    [[nodiscard]] std::string commit_metadata(const std::string& topic, int32_t partition,
                                              int64_t next);
    [[nodiscard]] static std::optional<wall_clock::time_point> restore_since(
        const std::string& metadata);

    // Figures as of now (the publisher thread also hands them to the callback
    // after each round). Public for tests.
    [[nodiscard]] figures compute();
    // One sampling round now, on the caller's thread (tests).
    void sample_once();

private:
    struct sample {
        wall_clock::time_point sent;
        int64_t end;
    };
    struct partition_state {
        int64_t next = -1;                            // acknowledged position, -1 unknown
        int64_t start = -1;                           // last sampled log start
        std::deque<sample> samples;                   // increasing time, non-decreasing end
        std::optional<wall_clock::time_point> since;  // from a commit, or the first record
        bool from_record = false;                     // `since` is a record timestamp
    };
    using key = std::pair<std::string, int32_t>;

    void run() noexcept;          // publishes figures
    void sample_loop() noexcept;  // samples end offsets
    // The bound for position `next`: latest sample with end <= next, else
    // the bound from a commit or the first record; nullopt when nothing
    // vouches for it (the figure is then unknown, never a guess).
    [[nodiscard]] std::optional<wall_clock::time_point> safe_since(partition_state& p,
                                                                   int64_t next) const;

    const Client& source_;
    Logger log_;
    const std::chrono::milliseconds interval_;
    std::function<void(const figures&)> on_figures_;

    std::mutex mu_;
    std::map<key, partition_state> parts_;
    wall_clock::time_point last_sample_{};
    bool warned_ = false;

    std::mutex wake_mu_;
    std::condition_variable wake_;
    bool stopping_ = false;
    bool sample_soon_ = false;  // a partition was assigned
    // Last: joined before the state above goes.
    std::thread thread_;   // publishes, every 100 ms
    std::thread sampler_;  // samples, every interval (a request may wait)
};

}  // namespace rpl::kafka
