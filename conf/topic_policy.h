// Which source topics a flow mirrors, and what they are called on the target.
//
//   source topic ──internal?──cycle?──include/exclude──> selected
//                                                      └──naming──> target topic
//
// Rules, in order:
//   1. Internal topics are never mirrored: `__.*`, `*.internal`, `*-internal`.
//      replicatord's own topics (checkpoints, offset runs) end in `.internal`.
//   2. A topic that came from the flow's own target is never sent back
//      (cycle detection by name, under prefix naming; MirrorMaker 2 does the
//      same walk over `alias.alias.topic`).
//   3. `heartbeats` (and remote `<alias>.heartbeats`) are always mirrored while
//      the flow emits heartbeats, so latency is measured end to end.
//      Heartbeats topics keep the prefix under identity naming too, and rule 2
//      applies to them: their names are the only trace of the path they took
//      (as in MirrorMaker 2's identity policy). Without it an identity flow
//      beside a pair between the same clusters sent `dr.heartbeats` back to
//      dr, the pair brought it back as `dr.dr.heartbeats`, and so on, a new
//      topic on each cluster every refresh until names reached 249 bytes.
//   4. Otherwise a topic must fully match one `topics` regex and no
//      `exclude_topics` regex.
// Thread model: immutable after construction; safe to share.
#pragma once

#include "conf/config.h"

#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::conf {

inline constexpr std::string_view heartbeats_topic = "heartbeats";

// Provenance under identity naming: every record a flow sends carries this
// header, its value the alias of the cluster where the record was first
// written. A record without it originated on the flow's source and gains
// it; a record whose header names the flow's target is never sent (it came
// from there); any other record is sent with its header unchanged.
inline constexpr std::string_view provenance_header = "replicatord.origin";

enum class provenance_verdict { send_and_mark, send, skip };
// origin: the header's value, or nullptr when the record has none.
[[nodiscard]] provenance_verdict check_provenance(const std::string_view* origin,
                                                  std::string_view flow_target) noexcept;

// Topic configs that never travel from source to target: they describe the
// source cluster's durability and operations, not the data. (README lists
// the same set.)
inline constexpr std::string_view unsynced_topic_configs[] = {
    "min.insync.replicas",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
    "message.timestamp.type",
    "unclean.leader.election.enable",
};
[[nodiscard]] bool is_synced_topic_config(std::string_view name) noexcept;

enum class topic_verdict {
    mirrored,
    internal,      // rule 1
    cycle,         // rule 2
    not_included,  // rule 4: no `topics` regex matches
    excluded,      // rule 4: an `exclude_topics` regex matches
};

[[nodiscard]] const char* to_string(topic_verdict v) noexcept;
[[nodiscard]] bool is_internal_topic(std::string_view topic) noexcept;

class topic_policy {
public:
    // The flow's regexes were validated by conf/, so construction cannot fail.
    explicit topic_policy(const flow_config& flow);
    // A tap selects topics by rules 1, 3 (without heartbeats) and 4, and keeps
    // their names: a store has no alias, so there is no cycle to detect.
    explicit topic_policy(const tap_config& tap);

    [[nodiscard]] topic_verdict classify(const std::string& source_topic) const;
    [[nodiscard]] bool mirrored(const std::string& source_topic) const {
        return classify(source_topic) == topic_verdict::mirrored;
    }
    // Rule 4 alone: whether the user's regexes ask for the topic. The plan
    // uses it to report only the cycles that keep out a topic the user named.
    [[nodiscard]] bool included(const std::string& source_topic) const;
    [[nodiscard]] std::string target_topic(const std::string& source_topic) const;
    // The inverse of target_topic: the source topic a target topic name came
    // from under this flow's naming, or "" if the name is not one of ours.
    [[nodiscard]] std::string source_topic_of(const std::string& target_topic) const;

    // Under prefix naming: the cluster alias a topic name says it came from,
    // or "" for a topic that originated where it is.
    [[nodiscard]] std::string topic_source(std::string_view topic) const;

private:
    [[nodiscard]] bool is_cycle(std::string_view topic) const;
    [[nodiscard]] bool path_has_target(std::string_view topic) const;
    [[nodiscard]] bool is_heartbeats(std::string_view topic) const;

    std::string source_;
    std::string target_;
    std::string separator_;
    naming_policy naming_;
    bool heartbeats_;
    std::vector<std::regex> include_;
    std::vector<std::regex> exclude_;
};

}  // namespace rpl::conf
