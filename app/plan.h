// The plan `replicatord --check` prints: for each flow and tap, which source
// topics it takes and what each is called on the target. Shared by
// replicatord --check and replicatorctl plan.
#pragma once

#include "conf/config.h"
#include "kafka/client.h"

#include <iosfwd>
#include <map>

namespace rpl::app {

// Exit codes shared by both binaries.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_invalid_config = 2;
inline constexpr int exit_unreachable = 3;

[[nodiscard]] kafka::endpoint endpoint_of(const conf::cluster_config& c);

// Metadata of every cluster a flow or tap uses, probed in parallel, each
// within `deadline`. Fails with errc::unreachable naming the first cluster
// (in config order) that did not answer.
[[nodiscard]] Result<std::map<std::string, kafka::cluster_metadata>> probe_clusters(
    const conf::Config& cfg, kafka::deadline_ms deadline, const Logger& log);

// Two flows in the same direction that both select an existing topic would
// each copy it: errc::invalid_config naming the flows and topics. The config
// check does the same from the patterns alone; this one sees the real topics.
[[nodiscard]] Result<void> check_overlaps(
    const conf::Config& cfg, const std::map<std::string, kafka::cluster_metadata>& metadata);

void print_plan(const conf::Config& cfg,
                const std::map<std::string, kafka::cluster_metadata>& metadata, std::ostream& out);

}  // namespace rpl::app
