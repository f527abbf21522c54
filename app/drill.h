// DR drills (replicatorctl drill). Two kinds share the command line, the
// targets and the exit codes:
//
//   drill --flow NAME   app/ctl_drill.cpp  RPO at T0, exact resume per group
//                                          and partition, RTO through drill.
//                                          copies of the groups
//   drill --tap NAME    app/drill_tap.cpp  restore the archive's last window
//                                          into a scratch cluster under drill.
//                                          topics, verify by content, clean up
//
// ctl_drill parses the arguments and loads the config; the tap drill is
// entered through run_tap_drill. Both write a Markdown report (--report) or
// JSON (--json) and return exit_ok only when every target was met and every
// check passed; exit_drill_failed otherwise.
#pragma once

#include "conf/config.h"

#include <chrono>
#include <optional>
#include <string>

namespace rpl::app {

inline constexpr int exit_drill_failed = 5;

struct drill_args {
    std::string config_path;
    std::string flow;           // --flow
    std::string tap;            // --tap
    std::string cluster;        // --cluster: the scratch cluster of a tap drill
    std::string groups_regex;   // --groups (flow drill; default: the flow's groups)
    std::string report_path;    // --report FILE.md ("" = stdout only)
    bool json = false;          // --json: JSON on stdout instead of Markdown
    bool keep = false;          // --keep: leave the drill.* topics/groups in place
    std::optional<int> sample;  // --sample N: check N partitions/records, not all
    std::chrono::milliseconds window{std::chrono::minutes(10)};  // --window (tap drill)
    std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // --timeout
};

// The replication drill (app/drill_flow.cpp).
[[nodiscard]] int run_flow_drill(const conf::Config& cfg, const conf::flow_config& flow,
                                 const drill_args& args);

// The archive drill (app/drill_tap.cpp).
[[nodiscard]] int run_tap_drill(const conf::Config& cfg, const conf::tap_config& tap,
                                const drill_args& args);

}  // namespace rpl::app
