// MirrorMaker 2's record formats, checked against hand-assembled bytes (the
// layout of Checkpoint and Heartbeat in connect-mirror-client) and against
// our own decoder.
#include "kafka/mm2.h"

#include <doctest/doctest.h>

using namespace rpl::kafka::mm2;

namespace {
std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int x : b) s.push_back(static_cast<char>(x));
    return s;
}
}  // namespace

TEST_CASE("checkpoint_bytes_match_mirrormaker2_layout") {
    // Guards against a field order or width that Kafka's own
    // RemoteClusterUtils would misread.
    const checkpoint c{"g1", "primary.t", 3, 5, 258, "m"};
    CHECK(checkpoint_key(c) ==
          bytes({0, 2, 'g', '1', 0, 9, 'p', 'r', 'i', 'm', 'a', 'r', 'y', '.', 't', 0, 0, 0, 3}));
    CHECK(checkpoint_value(c) ==
          bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 1, 2, 0, 1, 'm'}));
    const auto back = decode_checkpoint(checkpoint_key(c), checkpoint_value(c));
    REQUIRE(back.has_value());
    CHECK(back.value().group == "g1");
    CHECK(back.value().topic == "primary.t");
    CHECK(back.value().partition == 3);
    CHECK(back.value().upstream_offset == 5);
    CHECK(back.value().downstream_offset == 258);
    CHECK(back.value().metadata == "m");
}

TEST_CASE("heartbeat_bytes_match_mirrormaker2_layout") {
    const heartbeat h{"primary", "dr", 0x0102030405LL};
    CHECK(heartbeat_key(h) == bytes({0, 7, 'p', 'r', 'i', 'm', 'a', 'r', 'y', 0, 2, 'd', 'r'}));
    CHECK(heartbeat_value(h) == bytes({0, 0, 0, 0, 0, 1, 2, 3, 4, 5}));
    const auto back = decode_heartbeat(heartbeat_key(h), heartbeat_value(h));
    REQUIRE(back.has_value());
    CHECK(back.value().source_alias == "primary");
    CHECK(back.value().target_alias == "dr");
    CHECK(back.value().timestamp_ms == 0x0102030405LL);
}

TEST_CASE("corrupt_checkpoints_are_rejected_with_the_field_named") {
    // Guards against reading garbage offsets from a truncated or foreign
    // record and failing a group over to them.
    const checkpoint c{"g", "t", 0, 1, 2, ""};
    const std::string key = checkpoint_key(c);
    const std::string value = checkpoint_value(c);
    auto truncated = decode_checkpoint(key, value.substr(0, 12));
    REQUIRE_FALSE(truncated.has_value());
    CHECK(truncated.error().code == rpl::errc::corrupt);
    CHECK(truncated.error().message.find("checkpoint downstream offset") != std::string::npos);
    std::string bad_version = value;
    bad_version[1] = 1;
    REQUIRE_FALSE(decode_checkpoint(key, bad_version).has_value());
    auto trailing = decode_checkpoint(key + "x", value);
    REQUIRE_FALSE(trailing.has_value());
    CHECK(trailing.error().message.find("trailing") != std::string::npos);
    std::string long_string = key;
    long_string[1] = 100;  // group length past the end
    REQUIRE_FALSE(decode_checkpoint(long_string, value).has_value());
}
