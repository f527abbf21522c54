// backup/: the segment, one object holding a contiguous offset range of one
// topic-partition. The byte layout is written up in docs/backup-format.md.
//
//   segment_writer::add(record)... ──finish(end)──> bytes ──object_store::put──> store
//   store ──get──> bytes ──segment_reader::open──> summary, index, gaps ──read_frame(i)──> records
//
// A segment covers [start_offset, end_offset) completely: every offset in it
// is either a record in the segment or inside one of its recorded gaps
// (offsets absent at the source: compaction, transaction markers, aborted
// records, retention). Gaps are written when the segment is made, never
// inferred when it is read.
// Records are grouped into zstd frames (about frame_bytes uncompressed each);
// every frame has a CRC-32C of its compressed bytes, and the index holds per
// frame its first and last offset, min and max timestamp and position.
// Timestamps may be out of order: min and max are true minima and maxima.
// Thread model: a writer or reader is used by one thread at a time.
#pragma once

#include "kafka/message.h"
#include "kafka/result.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::backup {

inline constexpr std::uint8_t segment_format_version = 1;

struct archived_header {
    std::string name;
    std::optional<std::string> value;  // nullopt: a null header value
    bool operator==(const archived_header&) const = default;
};

struct archived_record {
    int64_t offset = -1;
    int64_t timestamp = -1;            // ms since the epoch, -1 when the source had none
    int8_t timestamp_type = 0;         // 0 not available, 1 CreateTime, 2 LogAppendTime
    std::optional<std::string> key;    // nullopt: null key
    std::optional<std::string> value;  // nullopt: null value (tombstone)
    std::vector<archived_header> headers;
    bool operator==(const archived_record&) const = default;
};

struct offset_gap {
    int64_t from = 0;  // first absent offset
    int64_t to = 0;    // one past the last absent offset
    bool operator==(const offset_gap&) const = default;
};

struct frame_index {
    int64_t first_offset = 0;
    int64_t last_offset = 0;
    int64_t min_timestamp = 0;
    int64_t max_timestamp = 0;
    std::uint32_t records = 0;
    std::uint64_t position = 0;         // byte offset of the frame in the object
    std::uint64_t compressed_size = 0;  // bytes of the zstd frame
    std::uint32_t crc32c = 0;           // of the compressed bytes
};

struct segment_summary {
    std::string topic;
    int32_t partition = 0;
    int64_t start_offset = 0;  // first offset covered
    int64_t end_offset = 0;    // one past the last offset covered
    std::uint64_t records = 0;
    int64_t min_timestamp = 0;
    int64_t max_timestamp = 0;
    std::uint64_t uncompressed_bytes = 0;  // record bytes before compression
};

class segment_writer {
public:
    // start_offset: the first offset this segment covers (the previous
    // segment's end, or where archiving of the partition began). level: the
    // zstd level (1..22); 0 stores frames uncompressed (compression = "none").
    segment_writer(std::string topic, int32_t partition, int64_t start_offset, int level,
                   std::size_t frame_bytes = 1u << 20);

    // Records in increasing offset order; an offset skipped since the last
    // record (or start_offset) is recorded as a gap. A record below
    // next_offset() is a caller bug (std::invalid_argument). offset_shift is
    // added to the source offset (a topic recreated at the source continues
    // the archive's offsets, see epoch_entry in catalogue.h).
    void add(const kafka::message& m, int64_t offset_shift = 0);
    void add(const archived_record& r);

    // Closes the segment at end_offset (>= last record + 1; the consumer's
    // position, so trailing transaction markers become a gap) and returns
    // the object's bytes. The writer is spent afterwards.
    [[nodiscard]] std::string finish(int64_t end_offset);

    [[nodiscard]] const segment_summary& summary() const noexcept { return summary_; }
    [[nodiscard]] std::uint64_t records() const noexcept { return summary_.records; }
    // Uncompressed record bytes added so far (what segment_max_bytes bounds).
    [[nodiscard]] std::uint64_t buffered_bytes() const noexcept {
        return summary_.uncompressed_bytes;
    }
    // Compressed bytes held in memory plus the open frame.
    [[nodiscard]] std::uint64_t memory_bytes() const noexcept;
    [[nodiscard]] int64_t next_offset() const noexcept { return next_offset_; }

private:
    void flush_frame();

    segment_summary summary_;
    int level_;
    std::size_t frame_bytes_;
    int64_t next_offset_;
    std::string body_;   // finished frames
    std::string frame_;  // the open frame, uncompressed
    frame_index open_;
    std::vector<frame_index> frames_;
    std::vector<offset_gap> gaps_;
};

class segment_reader {
public:
    // Parses and checks the header, footer and index (their own checksum).
    // `name` (the object key) is used in error messages. errc::corrupt names
    // the object and what is wrong.
    [[nodiscard]] static Result<segment_reader> open(std::string bytes, std::string name);

    [[nodiscard]] const segment_summary& summary() const noexcept { return summary_; }
    [[nodiscard]] const std::vector<frame_index>& frames() const noexcept { return frames_; }
    [[nodiscard]] const std::vector<offset_gap>& gaps() const noexcept { return gaps_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    // Decompresses frame i after checking its CRC; errc::corrupt names the
    // object, the frame and its offset range.
    [[nodiscard]] Result<std::vector<archived_record>> read_frame(std::size_t i) const;

private:
    segment_reader() = default;

    std::string bytes_;
    std::string name_;
    segment_summary summary_;
    std::vector<frame_index> frames_;
    std::vector<offset_gap> gaps_;
    bool zstd_ = true;  // the codec byte of the footer: zstd frames or stored bytes
};

// CRC-32C (Castagnoli), as Kafka uses for record batches.
[[nodiscard]] std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0) noexcept;

}  // namespace rpl::backup
