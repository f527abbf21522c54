#include "kafka/mm2.h"

#include "kafka/wire.h"

namespace rpl::kafka::mm2 {

std::string heartbeat_key(const heartbeat& h) {
    std::string out;
    wire::put_string(out, h.source_alias);
    wire::put_string(out, h.target_alias);
    return out;
}

std::string heartbeat_value(const heartbeat& h) {
    std::string out;
    wire::put_i16(out, 0);
    wire::put_i64(out, h.timestamp_ms);
    return out;
}

Result<heartbeat> decode_heartbeat(std::string_view key, std::string_view value) {
    heartbeat h;
    wire::reader k(key);
    RPL_TRY(src, k.string("heartbeat key source alias"));
    RPL_TRY(dst, k.string("heartbeat key target alias"));
    RPL_TRY(k.done());
    wire::reader v(value);
    RPL_TRY(version, v.i16("heartbeat value version"));
    if (version != 0)
        return fail(errc::corrupt, "heartbeat value version " + std::to_string(version));
    RPL_TRY(ts, v.i64("heartbeat timestamp"));
    RPL_TRY(v.done());
    h.source_alias = std::move(src);
    h.target_alias = std::move(dst);
    h.timestamp_ms = ts;
    return h;
}

std::string checkpoint_key(const checkpoint& c) {
    std::string out;
    wire::put_string(out, c.group);
    wire::put_string(out, c.topic);
    wire::put_i32(out, c.partition);
    return out;
}

std::string checkpoint_value(const checkpoint& c) {
    std::string out;
    wire::put_i16(out, 0);
    wire::put_i64(out, c.upstream_offset);
    wire::put_i64(out, c.downstream_offset);
    wire::put_string(out, c.metadata);
    return out;
}

Result<checkpoint> decode_checkpoint(std::string_view key, std::string_view value) {
    checkpoint c;
    wire::reader k(key);
    RPL_TRY(group, k.string("checkpoint key group"));
    RPL_TRY(topic, k.string("checkpoint key topic"));
    RPL_TRY(partition, k.i32("checkpoint key partition"));
    RPL_TRY(k.done());
    wire::reader v(value);
    RPL_TRY(version, v.i16("checkpoint value version"));
    if (version != 0)
        return fail(errc::corrupt, "checkpoint value version " + std::to_string(version));
    RPL_TRY(upstream, v.i64("checkpoint upstream offset"));
    RPL_TRY(downstream, v.i64("checkpoint downstream offset"));
    RPL_TRY(metadata, v.string("checkpoint metadata"));
    RPL_TRY(v.done());
    c.group = std::move(group);
    c.topic = std::move(topic);
    c.partition = partition;
    c.upstream_offset = upstream;
    c.downstream_offset = downstream;
    c.metadata = std::move(metadata);
    return c;
}

}  // namespace rpl::kafka::mm2
