// offsetsync/: exact source -> target offset translation for every flow.
//
//   delivery report (src, dst) ──store::record──> runs (src_start, dst_start, length)
//   store::flush(flow) ──> RocksDB index ──> publisher ──> replicatord.offset-runs.internal
//   catch_up(runs topic) ──> store::apply       (another host, or after disk loss)
//   resume_catch_up(runs topic) ──> store::apply, position saved in the store
//                                  (a start cut short continues where it stopped)
//   committed source offset o ──store::translate──> target offset
//
// Owns the runs and their two copies (RocksDB index, compacted topic on the
// target). Knows neither who feeds it nor who reads it.
// Invariant: a translation never skips a replicated record and never points
// past one (runs.h states it exactly; an oracle test checks it). Exact, not
// approximate, with runs that span holes: a run's records are exactly the
// source offsets [src_start, src_end) minus its holes, in order, at the
// consecutive target offsets [dst_start, dst_start + length); a run never
// starts or ends in a hole. So a compacted or transactional source costs a
// run per 1024 holes, not per hole, a replicated offset answers its own copy
// and a hole offset the target offset of the next record.
// Bounds: memory holds the runs of the partitions in use within a budget
// (RocksDB holds all); prune drops runs below the log start and runs that
// re-sends copied again; a cut-short catch-up resumes where it stopped.
// Thread model: store is mutex-protected (record/flush on the flow thread,
// translate anywhere); a publisher belongs to one thread.
#pragma once

#include "offsetsync/catch_up.h"
#include "offsetsync/run_codec.h"
#include "offsetsync/runs.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
