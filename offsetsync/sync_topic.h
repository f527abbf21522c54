// The durable copy of the runs: the compacted topic
// replicatord.offset-runs.internal on the TARGET cluster (one per target
// cluster, shared by every flow into it, 1 partition; never mirrored since it
// ends in .internal). Record layout: run_codec.h and docs/offset-runs.md.
//
//   store::flush(flow) ──runs──> publisher::publish ──> runs topic (key per run)
//   store::prune/forget ──> publisher::retract ──> tombstones
//   runs topic ──catch_up (partition 0, beginning -> end as of the call)──> store::apply/remove
//
// Ordering: compaction keeps the LAST record of a key, so a run must never be
// re-sent in an older (shorter) version after a newer one. The publisher
// retries only the latest version of a key, and only if that version failed.
// Thread model: a publisher is used from one thread (its flow's); delivery
// reports run inside its calls. catch_up is a plain blocking call.
#pragma once

#include "kafka/client.h"
#include "kafka/producer.h"
#include "kafka/result.h"
#include "offsetsync/run_codec.h"
#include "offsetsync/store.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rpl::offsetsync {

inline constexpr const char* runs_topic = "replicatord.offset-runs.internal";

// Creates `topic` on the cluster behind `target` if it does not exist: 1
// partition, cleanup.policy=compact, replication factor min(3, brokers).
// An existing topic is left alone (a warning if it is not compacted or has
// more than one partition: only partition 0 is used).
[[nodiscard]] Result<void> ensure_runs_topic(const kafka::Client& target, const std::string& topic,
                                             const Logger& log);

class publisher {
public:
    // An idempotent producer on the target; ensures the topic exists.
    [[nodiscard]] static Result<std::unique_ptr<publisher>> create(const kafka::endpoint& target,
                                                                   const Logger& log,
                                                                   std::string topic = runs_topic);
    // Records not yet acknowledged are dropped: flush() first.
    ~publisher();
    publisher(const publisher&) = delete;
    publisher& operator=(const publisher&) = delete;

    // Queues the runs (bytes copied); returns once librdkafka took them.
    // Earlier failed runs are re-sent first (their latest version).
    [[nodiscard]] Result<void> publish(const std::vector<run_record>& runs);
    // Queues tombstones for these runs' keys.
    [[nodiscard]] Result<void> retract(const std::vector<run_record>& runs);
    // Waits until every queued record is acknowledged, re-sending failed
    // ones, at most `deadline`. errc::timeout names how many are left.
    [[nodiscard]] Result<void> flush(kafka::deadline_ms deadline);

    // Keys whose latest version is not acknowledged yet.
    [[nodiscard]] size_t unacknowledged() const noexcept { return pending_.size(); }
    [[nodiscard]] const std::string& topic() const noexcept { return topic_; }

private:
    struct entry {
        uint64_t gen = 0;                  // the latest version sent for this key
        std::optional<std::string> value;  // nullopt: tombstone
        bool failed = false;               // that version's delivery failed
    };

    publisher(std::string topic, Logger log) : topic_(std::move(topic)), log_(std::move(log)) {}
    [[nodiscard]] Result<void> send(const std::string& key, entry& e);
    [[nodiscard]] Result<void> resend_failed();
    void on_delivery(const kafka::delivery& d);

    std::string topic_;
    Logger log_;
    std::unordered_map<std::string, entry> pending_;  // key bytes -> latest unacked version
    // version -> key bytes; the address of a node's version is the opaque
    // handed to librdkafka (nodes are stable until erased in on_delivery).
    std::unordered_map<uint64_t, std::string> inflight_;
    uint64_t next_gen_ = 1;
    std::string last_error_;
    // Declared last, destroyed first: its delivery reports use the maps above.
    std::optional<kafka::producer> producer_;
};

struct catch_up_stats {
    size_t applied = 0;      // runs that were new or longer than known
    size_t unchanged = 0;    // runs already known at that length
    size_t removed = 0;      // tombstones that removed a known run
    size_t corrupt = 0;      // records that did not decode (logged, skipped)
    size_t conflicts = 0;    // runs contradicting known ones (logged, skipped)
    int64_t end_offset = 0;  // the topic's end offset read up to
};

// Reads `topic` partition 0 from the beginning up to its end offset as of the
// call and applies every record to the store. A missing topic means nothing
// to catch up. Corrupt or conflicting records are logged, counted and
// skipped; a store write failure stops with its error; errc::timeout if the
// end was not reached within `deadline`.
[[nodiscard]] Result<catch_up_stats> catch_up(const kafka::endpoint& target, store& s,
                                              kafka::deadline_ms deadline, const Logger& log,
                                              const std::string& topic = runs_topic,
                                              int64_t from = 0);

}  // namespace rpl::offsetsync
