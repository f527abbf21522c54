// The run record: one run of one source partition of one flow, as bytes.
// The same bytes are the RocksDB key/value and the Kafka key/value of the
// compacted topic replicatord.offset-runs.internal (docs/offset-runs.md).
//
//   key   = version INT16 (0) | flow STRING | source topic STRING
//           | source partition INT32 | dst_start INT64
//   value = version INT16 (0) | src_start INT64 | dst_start INT64
//           | length INT64 | target topic STRING                 (no holes)
//   value = version INT16 (1) | the same five fields | hole count INT32
//           | holes BYTES (INT32 length; per hole two unsigned varints:
//             records since the previous hole, source offsets skipped)
//
// A run without holes is always written as version 0, so a reader that
// only knows version 0 (replicatord before holes) still reads those; it
// skips version 1 records as corrupt. Both versions are read here.
//
// Kafka protocol types, big-endian; STRING = INT16 byte length + UTF-8 bytes.
// dst_start is unique within a partition, so a key names one run and the
// latest value of a key (the longest length) is the one compaction keeps.
// Decoding is strict: anything but exactly these bytes is errc::corrupt with
// a message saying what is wrong and at which byte.
#pragma once

#include "kafka/result.h"
#include "offsetsync/runs.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace rpl::offsetsync {

inline constexpr int16_t run_format_version = 0;
// The value version of a run with holes inside (runs.h).
inline constexpr int16_t run_format_version_holes = 1;
// Longest flow or topic name a STRING can hold.
inline constexpr size_t max_name_bytes = 32767;

struct run_key {
    std::string flow;
    std::string source_topic;
    int32_t partition = 0;
    int64_t dst_start = 0;
    bool operator==(const run_key&) const = default;
};

// One run with everything needed to publish, store or apply it. The target
// partition is the source partition (partitions are preserved).
struct run_record {
    std::string flow;
    std::string source_topic;
    int32_t partition = 0;
    std::string target_topic;
    run r;

    [[nodiscard]] run_key key() const { return {flow, source_topic, partition, r.dst_start}; }
    bool operator==(const run_record&) const = default;
};

// Ok if the names fit the format: non-empty and at most max_name_bytes each,
// partition >= 0; else errc::invalid_config naming the offending field.
[[nodiscard]] Result<void> check_names(std::string_view flow, std::string_view source_topic,
                                       int32_t partition, std::string_view target_topic);

// Encoders assume check_names() passed (a longer name is a bug: they throw
// std::length_error).
[[nodiscard]] std::string encode_key(std::string_view flow, std::string_view source_topic,
                                     int32_t partition, int64_t dst_start);
[[nodiscard]] inline std::string encode_key(const run_key& k) {
    return encode_key(k.flow, k.source_topic, k.partition, k.dst_start);
}
[[nodiscard]] std::string encode_value(const run& r, std::string_view target_topic);

struct run_value {
    run r;
    std::string target_topic;
};

[[nodiscard]] Result<run_key> decode_key(std::string_view bytes);
[[nodiscard]] Result<run_value> decode_value(std::string_view bytes);
// Both halves, checked against each other (the dst_start in the key and in
// the value must agree).
[[nodiscard]] Result<run_record> decode_record(std::string_view key, std::string_view value);

}  // namespace rpl::offsetsync
