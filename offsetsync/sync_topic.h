// The durable copy of the runs: the compacted topic
// replicatord.offset-runs.internal on the TARGET cluster (one per target
// cluster, shared by every flow into it, 1 partition; never mirrored since it
// ends in .internal). Record layout: run_codec.h and docs/offset-runs.md.
//
//   store::flush(flow) ──runs──> publisher::publish ─┐
//   store::prune/forget ──> publisher::retract ──────┴─> pending (kept until acknowledged)
//        pending ──send, in the order given──> producer ──> runs topic (key per run)
//        failed delivery / not queued / producer fatal ──> back to pending, sent again
//   runs topic ──catch_up (partition 0, beginning -> end as of the call)──> store::apply/remove
//
// Invariants: every run handed to the publisher stays pending until the
// target acknowledged its latest version (the store has already marked it
// clean, so nothing else would send it again); flush() is ok only when
// nothing is pending, and only then may a flow commit. Ordering:
// compaction keeps the LAST record of a key, so a run is never re-sent in an
// older (shorter) version after a newer one: only a key's latest version is
// ever sent again. A producer that librdkafka declares fatally failed is
// replaced (backoff 100 ms doubling to 10 s, reset by an acknowledgement) and
// everything pending is sent again through the new one.
// Thread model: a publisher is used from one thread (its flow's); delivery
// reports run inside its calls. catch_up is a plain blocking call.
#pragma once

#include "kafka/client.h"
#include "kafka/producer.h"
#include "kafka/result.h"
#include "offsetsync/run_codec.h"
#include "offsetsync/store.h"

#include <chrono>
#include <cstdint>
#include <map>
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

    // Takes the runs (bytes copied) and sends as many as librdkafka will
    // queue, after anything still pending from before. Never blocks on a
    // full queue. Every run is kept until acknowledged whatever this
    // returns; an error only says the producer is failed (and is being
    // replaced) or refused a record, and flush() will retry.
    [[nodiscard]] Result<void> publish(const std::vector<run_record>& runs);
    // The same for tombstones of these runs' keys.
    [[nodiscard]] Result<void> retract(const std::vector<run_record>& runs);
    // Sends what is pending (replacing a fatally failed producer first) and
    // waits until every run ever given to this publisher is acknowledged, at
    // most `deadline`. errc::timeout names how many are left and the last
    // error (a failed producer's among them).
    [[nodiscard]] Result<void> flush(kafka::deadline_ms deadline);

    // Keys whose latest version is not acknowledged yet (sent or not).
    [[nodiscard]] size_t unacknowledged() const noexcept { return pending_.size(); }
    // False from a failure (a fatal producer error, a failed replacement, a
    // delivery or a send that failed, a flush that ran out of time) until
    // everything pending is acknowledged. While false the flow cannot
    // commit; last_error() says why (empty while healthy).
    [[nodiscard]] bool healthy() const noexcept { return healthy_; }
    [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
    // Producers replaced after a fatal error, since create().
    [[nodiscard]] uint64_t recreations() const noexcept { return recreations_; }
    [[nodiscard]] const std::string& topic() const noexcept { return topic_; }

private:
    using clock_type = std::chrono::steady_clock;

    struct entry {
        uint64_t seq = 0;                  // when this version was given: send order
        std::optional<std::string> value;  // nullopt: tombstone
        uint64_t sent = 0;                 // id of its send in flight; 0: waiting to be sent
    };

    publisher(kafka::endpoint target, std::string topic, Logger log)
        : target_(std::move(target)), topic_(std::move(topic)), log_(std::move(log)) {}
    [[nodiscard]] Result<void> make_producer();
    void accept(const std::string& key, std::optional<std::string> value);
    [[nodiscard]] Result<void> replace_failed_producer();
    [[nodiscard]] Result<void> send_pending();
    [[nodiscard]] Result<void> pump();
    void on_delivery(const kafka::delivery& d);
    void failed(level l, std::string why);
    void recovered_if_done();
    [[nodiscard]] std::string where() const;

    kafka::endpoint target_;
    std::string topic_;
    Logger log_;
    std::unordered_map<std::string, entry> pending_;  // key bytes -> latest unacked version
    std::map<uint64_t, std::string> unsent_;          // seq -> key: pending, not in librdkafka
    // send id -> key. The address of a node's id is the opaque handed to
    // librdkafka: a node lives until its send's report, or until the
    // producer that holds the send is destroyed. A report of an overtaken
    // version (its id no longer the entry's) is ignored.
    std::unordered_map<uint64_t, std::string> inflight_;
    uint64_t next_seq_ = 1;
    uint64_t next_send_ = 1;
    bool healthy_ = true;
    std::string last_error_;
    uint64_t recreations_ = 0;
    std::chrono::milliseconds backoff_{100};
    clock_type::time_point next_recreate_{};  // no replacement before this
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
