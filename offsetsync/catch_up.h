// Resumable catch-up: rebuilds (or refreshes) the offset index from a runs
// topic, saving in the store how far it has read, so a start that is cut
// short (stopped, crashed, the cluster slow) continues where it stopped next
// time instead of reading the topic from the beginning again.
//
//   store::catch_up_position(source) ──from──> runs topic ──apply/remove──> store
//                    ^                                          │
//                    └──── save_catch_up_position every batch ──┘
//
// Invariant: every record of the topic below the saved position has been
// applied to the store (positions are saved after the runs they cover), and
// applying a record twice changes nothing, so resuming is exact.
// There is no overall deadline: it runs while it makes progress, and fails
// only when `stall` passes without a record applied (or on a store error).
// Thread model: a plain blocking call; `stop` may be set from another thread.
#pragma once

#include "kafka/client.h"
#include "kafka/result.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"

#include <atomic>
#include <chrono>
#include <string>

namespace rpl::offsetsync {

struct resume_options {
    std::string topic = runs_topic;
    // Fails with errc::timeout when this passes with no record read.
    std::chrono::milliseconds stall{60'000};
    // Saves the position after this many records (and at the end).
    size_t save_every = 10'000;
    // When set (from another thread) the call stops with errc::cancelled;
    // the position read so far is saved.
    const std::atomic<bool>* stop = nullptr;
};

struct resume_stats {
    catch_up_stats applied;  // what this call applied (not the whole topic)
    int64_t resumed_from = 0;
    int64_t end_offset = 0;
};

// The name a catch-up position is saved under: topic and bootstrap address
// (not the cluster id, which kafka/ does not expose yet: a cluster replaced
// behind the same address is only noticed if its topic is shorter).
[[nodiscard]] std::string catch_up_source(const kafka::endpoint& target, const std::string& topic);

// Reads `topic` partition 0 from the saved position to its end offset (as of
// each slice; it keeps going while the topic grows only as far as that end),
// applying every record and saving the position as it goes. A topic whose
// end is below the saved position was recreated: it is read from 0 again.
[[nodiscard]] Result<resume_stats> resume_catch_up(const kafka::endpoint& target, store& s,
                                                   const Logger& log,
                                                   const resume_options& opts = {});

}  // namespace rpl::offsetsync
