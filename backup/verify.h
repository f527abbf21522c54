// backup/: checking a backup without restoring it (`replicatorctl backup verify`).
//
//   list segments ──parse keys──> per partition: segments tile offsets exactly
//        │                         (next.start == previous.end; a hole or an
//        │                          overlap is damage)
//        └─get──> segment_reader::open (header, index, footer checksum; summary
//                 agrees with the key)
//                 └─ deep: read_frame(i) for every frame (CRC, zstd), every
//                    record's offset increasing, inside its frame and segment,
//                    records + recorded gaps cover the segment exactly, counts
//                    and min/max timestamps equal the index and the key
//
// Every damage names the object key and the offset range it makes unusable
// ([from, to)), so an operator knows what `restore --skip-damaged` will skip.
// Losses (offsets the source deleted before the tap archived them) are not
// damage, the archive holds what the source held, but they are listed
// with the records they cost, and so are epochs (a recreated source topic).
// Thread model: plain functions; the store is used from the calling thread.
#pragma once

#include "backup/catalogue.h"
#include "backup/segment.h"
#include "backup/store.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rpl::backup {

struct damage {
    std::string key;  // the object; empty for a hole between objects
    std::string topic;
    int32_t partition = -1;
    int64_t from = 0;  // first offset affected
    int64_t to = 0;    // one past the last offset affected
    std::string what;  // what is wrong

    // "<key>: offsets [from, to) of topic/partition: what"
    [[nodiscard]] std::string describe() const;
};

struct verify_report {
    std::uint64_t partitions = 0;
    std::uint64_t segments = 0;
    std::uint64_t frames = 0;  // frames decompressed (deep only)
    std::uint64_t records = 0;
    std::uint64_t stored_bytes = 0;
    std::vector<damage> problems;
    std::vector<loss_entry> losses;  // by topic, partition and offset
    std::vector<epoch_entry> epochs;

    // No damage. Losses are reported apart (lost_records()).
    [[nodiscard]] bool clean() const noexcept { return problems.empty(); }
    // Offsets recorded as lost, overlaps counted once.
    [[nodiscard]] std::uint64_t lost_records() const noexcept;
};

// Checks one segment that was read from the store: the summary agrees with
// what its key says, the index is consistent, and with `deep` every frame
// reads back and agrees with the index. Appends to `out`; returns whether
// the segment is clean. `frames_read` counts decompressed frames.
bool check_segment(const segment_reader& seg, const segment_entry& entry, bool deep,
                   std::vector<damage>& out, std::uint64_t* frames_read = nullptr);

// Checks one decoded frame against its index entry and its segment; used by
// check_segment and by restore (which reads every frame anyway). Empty when
// the frame is fine, else what is wrong.
[[nodiscard]] std::string check_frame(const segment_reader& seg, std::size_t i,
                                      const std::vector<archived_record>& records);

// Verifies a whole backup. Fails (not damage) only when the store cannot be
// read or the backup does not exist (errc::not_found, listing the ids that
// do). `on_segment` (optional) is called after each segment, for progress.
[[nodiscard]] Result<verify_report> verify_backup(
    object_store& store, const std::string& backup, bool deep,
    const std::function<void(const segment_entry&)>& on_segment = {});

// A backup id is a tap's name, and the first part of every key under it:
// letters, digits, '.', '_' and '-', and not "." or "..". Checked before an
// id from a command line or a restore file reaches a key.
[[nodiscard]] Result<void> check_backup_id(std::string_view id);

// errc::not_found naming the backup and listing the ids present, when the
// backup is missing; errc::invalid_config for an id check_backup_id
// refuses; other errors as catalogue::load.
[[nodiscard]] Result<catalogue> load_catalogue(object_store& store, const std::string& backup);

}  // namespace rpl::backup
