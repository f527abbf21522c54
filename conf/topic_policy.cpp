#include "conf/topic_policy.h"

namespace rpl::conf {

const char* to_string(topic_verdict v) noexcept {
    switch (v) {
        case topic_verdict::mirrored: return "mirrored";
        case topic_verdict::internal: return "internal";
        case topic_verdict::cycle: return "cycle";
        case topic_verdict::not_included: return "not included";
        case topic_verdict::excluded: return "excluded";
    }
    return "?";
}

bool is_synced_topic_config(std::string_view name) noexcept {
    for (const auto n : unsynced_topic_configs) {
        if (n == name) return false;
    }
    return true;
}

bool is_internal_topic(std::string_view t) noexcept {
    return t.starts_with("__") || t.ends_with(".internal") || t.ends_with("-internal");
}

topic_policy::topic_policy(const flow_config& flow)
    : source_(flow.source),
      target_(flow.target),
      separator_(flow.separator),
      naming_(flow.naming),
      heartbeats_(flow.heartbeats),
      include_(compile_patterns(flow.topics)),
      exclude_(compile_patterns(flow.exclude_topics)) {}

topic_policy::topic_policy(const tap_config& tap)
    : source_(tap.source),
      naming_(naming_policy::identity),
      heartbeats_(false),
      include_(compile_patterns(tap.topics)),
      exclude_(compile_patterns(tap.exclude_topics)) {}

std::string topic_policy::topic_source(std::string_view topic) const {
    const auto pos = topic.find(separator_);
    if (pos == std::string_view::npos || pos == 0) return {};
    return std::string(topic.substr(0, pos));
}

bool topic_policy::is_cycle(std::string_view topic) const {
    if (naming_ != naming_policy::prefix && !is_heartbeats(topic)) return false;
    return path_has_target(topic);
}

bool topic_policy::path_has_target(std::string_view topic) const {
    // Walk `a.b.topic`: a topic is a cycle if any alias on its path is the
    // target. A plain name such as `orders.eu` walks `orders`, `eu` harmlessly.
    while (true) {
        const auto pos = topic.find(separator_);
        if (pos == std::string_view::npos || pos == 0) return false;
        if (topic.substr(0, pos) == target_) return true;
        topic.remove_prefix(pos + separator_.size());
    }
}

bool topic_policy::is_heartbeats(std::string_view topic) const {
    if (topic == heartbeats_topic) return true;
    return topic.size() > heartbeats_topic.size() + separator_.size() &&
           topic.ends_with(heartbeats_topic) &&
           topic.substr(topic.size() - heartbeats_topic.size() - separator_.size(),
                        separator_.size()) == separator_;
}

topic_verdict topic_policy::classify(const std::string& t) const {
    if (is_internal_topic(t)) return topic_verdict::internal;
    if (is_cycle(t)) return topic_verdict::cycle;
    if (heartbeats_ && is_heartbeats(t)) return topic_verdict::mirrored;
    if (!full_match_any(include_, t)) return topic_verdict::not_included;
    if (full_match_any(exclude_, t)) return topic_verdict::excluded;
    return topic_verdict::mirrored;
}

bool topic_policy::included(const std::string& t) const {
    return full_match_any(include_, t) && !full_match_any(exclude_, t);
}

std::string topic_policy::source_topic_of(const std::string& target_topic) const {
    if (naming_ == naming_policy::identity && !is_heartbeats(target_topic))
        return mirrored(target_topic) ? target_topic : "";
    const std::string prefix = source_ + separator_;
    if (target_topic.size() <= prefix.size() || target_topic.compare(0, prefix.size(), prefix) != 0)
        return "";
    std::string source = target_topic.substr(prefix.size());
    return mirrored(source) ? source : "";
}

std::string topic_policy::target_topic(const std::string& source_topic) const {
    if (naming_ == naming_policy::identity && !is_heartbeats(source_topic)) return source_topic;
    return source_ + separator_ + source_topic;
}

provenance_verdict check_provenance(const std::string_view* origin,
                                    std::string_view flow_target) noexcept {
    if (origin == nullptr) return provenance_verdict::send_and_mark;
    return *origin == flow_target ? provenance_verdict::skip : provenance_verdict::send;
}

}  // namespace rpl::conf
