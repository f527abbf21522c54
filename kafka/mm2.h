// MirrorMaker 2's record formats, byte for byte, so that Kafka's own tooling
// (RemoteClusterUtils.translateOffsets, MirrorClient) reads what we write.
// All fields big-endian; STRING = INT16 length + UTF-8.
//
//   heartbeat   key: source alias STRING, target alias STRING
//               value: version INT16 (0), timestamp INT64 (ms)
//   checkpoint  key: group STRING, topic STRING (target-side name), partition INT32
//               value: version INT16 (0), upstream offset INT64,
//                      downstream offset INT64, metadata STRING
#pragma once

#include "kafka/result.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace rpl::kafka::mm2 {

struct heartbeat {
    std::string source_alias;
    std::string target_alias;
    int64_t timestamp_ms = 0;
};

struct checkpoint {
    std::string group;
    std::string topic;  // the target-side topic name
    int32_t partition = 0;
    int64_t upstream_offset = 0;
    int64_t downstream_offset = 0;
    std::string metadata;
};

[[nodiscard]] std::string heartbeat_key(const heartbeat& h);
[[nodiscard]] std::string heartbeat_value(const heartbeat& h);
[[nodiscard]] Result<heartbeat> decode_heartbeat(std::string_view key, std::string_view value);

[[nodiscard]] std::string checkpoint_key(const checkpoint& c);
[[nodiscard]] std::string checkpoint_value(const checkpoint& c);
[[nodiscard]] Result<checkpoint> decode_checkpoint(std::string_view key, std::string_view value);

// `<source alias>.checkpoints.internal`, MirrorMaker 2's default name.
[[nodiscard]] inline std::string checkpoints_topic(std::string_view source_alias) {
    return std::string(source_alias) + ".checkpoints.internal";
}

}  // namespace rpl::kafka::mm2
