// backup/: how a backup's objects are laid out and found, without one
// ever-growing manifest. Every object is written once; finding segments is a
// listing, and the segment key itself carries what a listing needs.
//
//   <backup>/backup.meta                                      written when the tap first starts
//   <backup>/topics/<topic>/<taken_ms:020>.meta               partition count (+ configs), on
//   change
//   <backup>/segments/<topic>/<partition:06>/<start:020>-<end:020>_<min_ts>_<max_ts>_<records>.seg
//   <backup>/groups/<taken_ms:020>.groups                     group offset snapshot
//   <backup>/losses/<topic>/<partition:06>/<from:020>-<to:020>_<noticed_ms>.lost
//   <backup>/epochs/<topic>/<partition:06>/<base:020>_<taken_ms>.epoch
//
// Zero-padded offsets make a listing sort by offset. min_ts and max_ts are
// plain signed decimals (-1 when the source had no timestamp, or for a
// segment holding only a gap); '_' never occurs in them, so a key splits
// unambiguously. A backup's id is the
// tap's name. Topic names are Kafka-legal ([a-zA-Z0-9._-]) so they are safe
// in keys. Small metadata objects use the binary encoding of kafka/wire.h
// with a leading version byte (docs/backup-format.md).
// Thread model: plain values and free functions; safe to share.
#pragma once

#include "backup/store.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::backup {

struct segment_entry {
    std::string key;  // the object key, relative to the store root
    std::string topic;
    int32_t partition = 0;
    int64_t start_offset = 0;
    int64_t end_offset = 0;  // exclusive
    int64_t min_timestamp = -1;
    int64_t max_timestamp = -1;
    std::uint64_t records = 0;
    std::uint64_t size = 0;  // stored bytes
};

[[nodiscard]] std::string segment_key(const std::string& backup, const segment_entry& e);
// errc::corrupt for a key that is not a segment key.
[[nodiscard]] Result<segment_entry> parse_segment_key(std::string_view key, std::uint64_t size);

// Offsets [from, to) the source no longer held when the tap came to them
// (retention or DeleteRecords moved the log start past them): records lost to
// the archive. The segments still tile these offsets with an ordinary gap (so
// code that knows no losses reads the archive as before); this object marks
// that gap as a loss rather than offsets that never held a record.
struct loss_entry {
    std::string key;
    std::string topic;
    int32_t partition = 0;
    int64_t from = 0;  // first lost offset (archive offsets, see epoch_entry)
    int64_t to = 0;    // one past the last
    int64_t noticed_ms = 0;
    bool operator==(const loss_entry&) const = default;
};

// The source topic was recreated (or truncated below what was archived):
// from archive offset `base` on, the partition's segments hold the new
// topic's records, and archive offset = source offset + base. Before the
// first epoch of a partition, base is 0 (archive offsets are source offsets).
// Segments keep tiling one growing offset range, so restore and verify read
// an archive with epochs like any other.
struct epoch_entry {
    std::string key;
    std::string topic;
    int32_t partition = 0;
    int64_t base = 0;
    int64_t taken_ms = 0;
    bool operator==(const epoch_entry&) const = default;
};

[[nodiscard]] std::string loss_key(const std::string& backup, const loss_entry& l);
[[nodiscard]] Result<loss_entry> parse_loss_key(std::string_view key);
[[nodiscard]] std::string epoch_key(const std::string& backup, const epoch_entry& e);
[[nodiscard]] Result<epoch_entry> parse_epoch_key(std::string_view key);
// Prefixes of one partition's losses and epochs (for a listing).
[[nodiscard]] std::string loss_prefix(const std::string& backup, const std::string& topic,
                                      int32_t partition);
[[nodiscard]] std::string epoch_prefix(const std::string& backup, const std::string& topic,
                                       int32_t partition);

struct backup_meta {
    std::string id;              // the tap's name
    std::string source_cluster;  // alias
    std::string source_bootstrap;
    int64_t created_ms = 0;
    int compression_level = 3;
};

struct topic_meta {
    std::string topic;
    int32_t partitions = 0;
    std::map<std::string, std::string> configs;  // dynamic topic configs at the source
    int64_t taken_ms = 0;
};

struct group_offset {
    std::string topic;
    int32_t partition = 0;
    int64_t offset = 0;  // the group's committed offset (next record to read)
    bool operator==(const group_offset&) const = default;
};

struct group_snapshot {
    int64_t taken_ms = 0;
    std::map<std::string, std::vector<group_offset>> groups;  // group -> offsets
};

[[nodiscard]] std::string encode(const backup_meta& m);
[[nodiscard]] std::string encode(const topic_meta& m);
[[nodiscard]] std::string encode(const group_snapshot& s);
[[nodiscard]] Result<backup_meta> decode_backup_meta(std::string_view bytes, std::string_view name);
[[nodiscard]] Result<topic_meta> decode_topic_meta(std::string_view bytes, std::string_view name);
[[nodiscard]] Result<group_snapshot> decode_group_snapshot(std::string_view bytes,
                                                           std::string_view name);

[[nodiscard]] std::string backup_meta_key(const std::string& backup);
[[nodiscard]] std::string topic_meta_key(const std::string& backup, const topic_meta& m);
[[nodiscard]] std::string group_snapshot_key(const std::string& backup, int64_t taken_ms);

// Backup ids in the store, sorted (one listing of the store, keeping the
// keys <id>/backup.meta).
[[nodiscard]] Result<std::vector<std::string>> list_backups(object_store& store);

// Everything a listing of one backup tells: built from a handful of LIST
// calls plus small metadata gets, never from reading segments.
class catalogue {
public:
    // errc::not_found when the backup does not exist in the store.
    [[nodiscard]] static Result<catalogue> load(object_store& store, const std::string& backup);

    [[nodiscard]] const backup_meta& meta() const noexcept { return meta_; }
    [[nodiscard]] std::vector<std::string> topics() const;
    // The newest topic_meta at or before taken_ms (the newest when nullopt).
    [[nodiscard]] const topic_meta* topic(const std::string& topic,
                                          std::optional<int64_t> at_ms = std::nullopt) const;
    // Segments of one partition, sorted by start offset.
    [[nodiscard]] const std::vector<segment_entry>& segments(const std::string& topic,
                                                             int32_t partition) const;
    // Partitions with segments, plus 0..partitions-1 of the newest topic_meta.
    [[nodiscard]] std::vector<int32_t> partitions(const std::string& topic) const;
    // Recorded losses of one partition, and of the whole backup, by offset.
    [[nodiscard]] const std::vector<loss_entry>& losses(const std::string& topic,
                                                        int32_t partition) const;
    [[nodiscard]] std::vector<loss_entry> all_losses() const;
    // Epochs of one partition (topic recreations), oldest first.
    [[nodiscard]] const std::vector<epoch_entry>& epochs(const std::string& topic,
                                                         int32_t partition) const;
    // Archive offset = source offset + base_at(...) for source offsets seen at
    // taken_ms (a group snapshot's time): the base of the newest epoch at or
    // before it, 0 without one.
    [[nodiscard]] int64_t base_at(const std::string& topic, int32_t partition,
                                  int64_t taken_ms) const;
    // Keys of the group snapshots, oldest first, with their times.
    [[nodiscard]] const std::vector<std::pair<int64_t, std::string>>& group_snapshots()
        const noexcept {
        return snapshots_;
    }
    // The snapshot taken at or before at_ms (the newest when nullopt).
    [[nodiscard]] Result<std::optional<group_snapshot>> load_group_snapshot(
        object_store& store, std::optional<int64_t> at_ms) const;

private:
    backup_meta meta_;
    std::map<std::string, std::vector<topic_meta>> topics_;
    std::map<std::pair<std::string, int32_t>, std::vector<segment_entry>> segments_;
    std::vector<std::pair<int64_t, std::string>> snapshots_;
    std::map<std::pair<std::string, int32_t>, std::vector<loss_entry>> losses_;
    std::map<std::pair<std::string, int32_t>, std::vector<epoch_entry>> epochs_;
};

}  // namespace rpl::backup
