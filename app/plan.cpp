#include "app/plan.h"

#include "conf/topic_policy.h"

#include <future>
#include <iomanip>
#include <ostream>
#include <set>

namespace rpl::app {

kafka::endpoint endpoint_of(const conf::cluster_config& c) {
    return kafka::endpoint{c.name, c.bootstrap, c.client};
}

Result<std::map<std::string, kafka::cluster_metadata>> probe_clusters(const conf::Config& cfg,
                                                                      kafka::deadline_ms deadline,
                                                                      const Logger& log) {
    std::vector<std::string> used;
    auto use = [&](const std::string& name) {
        if (std::find(used.begin(), used.end(), name) == used.end()) used.push_back(name);
    };
    for (const auto& f : cfg.flows) {
        use(f.source);
        use(f.target);
    }
    for (const auto& t : cfg.taps) use(t.source);

    std::vector<std::future<Result<kafka::cluster_metadata>>> pending;
    for (const auto& name : used) {
        const auto* c = cfg.cluster(name);
        pending.push_back(std::async(std::launch::async, [ep = endpoint_of(*c), deadline, &log] {
            return kafka::probe(ep, deadline, log.child("cluster " + ep.alias));
        }));
    }
    std::map<std::string, kafka::cluster_metadata> out;
    std::optional<Error> first_error;
    for (size_t i = 0; i < used.size(); ++i) {
        auto r = pending[i].get();
        if (!r) {
            if (!first_error) first_error = r.error();
            continue;
        }
        out.emplace(used[i], std::move(r).value());
    }
    if (first_error) return boost::outcome_v2::failure(std::move(*first_error));
    RPL_TRY(check_overlaps(cfg, out));
    return out;
}

Result<void> check_overlaps(const conf::Config& cfg,
                            const std::map<std::string, kafka::cluster_metadata>& metadata) {
    std::string problems;
    for (size_t j = 1; j < cfg.flows.size(); ++j) {
        const auto& b = cfg.flows[j];
        const conf::topic_policy pb(b);
        for (size_t i = 0; i < j; ++i) {
            const auto& a = cfg.flows[i];
            if (a.source != b.source || a.target != b.target) continue;
            const auto md = metadata.find(a.source);
            if (md == metadata.end()) continue;
            const conf::topic_policy pa(a);
            std::vector<std::string> both;
            for (const auto& t : md->second.topics) {
                // Heartbeats are written by each flow for itself.
                if (t.name == conf::heartbeats_topic) continue;
                if (pa.mirrored(t.name) && pb.mirrored(t.name)) both.push_back(t.name);
            }
            if (both.empty()) continue;
            std::string list;
            for (size_t k = 0; k < both.size() && k < 5; ++k) list += (k ? ", " : "") + both[k];
            if (both.size() > 5) list += ", ... (" + std::to_string(both.size()) + " in all)";
            problems += (problems.empty() ? "" : "\n") + cfg.path + ":" +
                        std::to_string(b.pos.line) + ": flows '" + a.name + "' and '" + b.name +
                        "' both mirror " + list + " from " + a.source + " to " + a.target +
                        "; a topic is mirrored by one flow per direction";
        }
    }
    if (!problems.empty()) return fail(errc::invalid_config, problems);
    return ok();
}

namespace {

const char* naming_name(conf::naming_policy n) {
    return n == conf::naming_policy::prefix ? "prefix" : "identity";
}

void print_flow(const conf::flow_config& f, const conf::Config& cfg,
                const kafka::cluster_metadata& src, const kafka::cluster_metadata& dst,
                std::ostream& out) {
    const conf::topic_policy policy(f);
    out << "flow " << f.name << ": " << f.source << " (" << cfg.cluster(f.source)->bootstrap
        << ") -> " << f.target << " (" << cfg.cluster(f.target)->bootstrap << "), naming "
        << naming_name(f.naming) << "\n";
    size_t width = 12;
    for (const auto& t : src.topics) width = std::max(width, t.name.size());
    out << "  " << std::left << std::setw(static_cast<int>(width)) << "SOURCE-TOPIC"
        << "  " << std::setw(10) << "PARTITIONS"
        << "  "
        << "TARGET-TOPIC"
        << "  (STATE)\n";
    int mirrored = 0;
    std::vector<std::pair<std::string, conf::topic_verdict>> skipped;
    for (const auto& t : src.topics) {
        const auto verdict = policy.classify(t.name);
        if (verdict != conf::topic_verdict::mirrored) {
            // Explain only the topics the user's regexes name: every remote
            // topic from the target is a cycle, and listing them all would
            // bury the plan under topics nobody asked for.
            if ((verdict == conf::topic_verdict::cycle && policy.included(t.name)) ||
                verdict == conf::topic_verdict::excluded)
                skipped.emplace_back(t.name, verdict);
            continue;
        }
        ++mirrored;
        const std::string target = policy.target_topic(t.name);
        std::string state;
        if (const auto* existing = dst.topic(target)) {
            if (existing->partitions.size() < t.partitions.size())
                state = "conflict: target has " + std::to_string(existing->partitions.size()) +
                        " partitions, source has " + std::to_string(t.partitions.size());
            else
                state = "exists, " + std::to_string(existing->partitions.size()) + " partitions";
        } else {
            state = "will be created";
        }
        out << "  " << std::setw(static_cast<int>(width)) << t.name << "  " << std::setw(10)
            << t.partitions.size() << "  " << target << "  (" << state << ")\n";
    }
    if (mirrored == 0)
        out << "  (no source topic matches yet; new ones are picked up as they appear)\n";
    for (const auto& [name, verdict] : skipped)
        out << "  skipped " << name << ": " << conf::to_string(verdict) << "\n";
}

void print_tap(const conf::tap_config& t, const kafka::cluster_metadata& src, std::ostream& out) {
    const conf::topic_policy policy(t);
    out << "tap " << t.name << ": " << t.source << " -> " << conf::masked_url(t.storage) << " ("
        << t.compression;
    if (t.compression == "zstd") out << " level " << t.compression_level;
    out << ", segments up to " << t.segment_max_bytes << " bytes or "
        << conf::format_duration(t.segment_max_interval) << ")\n";
    int n = 0;
    for (const auto& topic : src.topics) {
        if (!policy.mirrored(topic.name)) continue;
        ++n;
        out << "  " << topic.name << " (" << topic.partitions.size() << " partitions)\n";
    }
    if (n == 0) out << "  (no source topic matches yet)\n";
}

}  // namespace

void print_plan(const conf::Config& cfg,
                const std::map<std::string, kafka::cluster_metadata>& metadata, std::ostream& out) {
    for (const auto& [name, md] : metadata) {
        out << "cluster " << name << " (" << cfg.cluster(name)->bootstrap
            << "): " << md.brokers.size() << " broker(s), " << md.topics.size() << " topic(s)\n";
    }
    for (const auto& f : cfg.flows)
        print_flow(f, cfg, metadata.at(f.source), metadata.at(f.target), out);
    for (const auto& t : cfg.taps) print_tap(t, metadata.at(t.source), out);
}

}  // namespace rpl::app
