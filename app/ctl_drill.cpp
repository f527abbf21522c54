// replicatorctl drill: argument parsing and dispatch for the two DR drills.
//
//   drill --config F --flow NAME ...             ──> run_flow_drill (app/drill_flow.cpp)
//   drill --config F --tap NAME --cluster C ...  ──> run_tap_drill  (app/drill_tap.cpp)
//
// Bad arguments and a bad config exit 2 with a message naming what is wrong
// (an unknown flow or tap is named, with the known ones listed); the drills
// return 0 (every target met, every check passed), 5 (a target missed or a
// check failed), 3 (a cluster unreachable) or 1.
#include "app/ctl.h"
#include "app/drill.h"
#include "app/plan.h"
#include "conf/config.h"
#include "kafka/log.h"

#include <iostream>
#include <regex>
#include <string>

namespace rpl::app {
namespace {

constexpr const char* drill_usage = R"(usage:
  replicatorctl drill --config F --flow NAME [--groups REGEX] [--sample N]
                      [--report FILE.md] [--json] [--keep] [--timeout DUR]
      Replication drill, without disturbing production:
        RPO    the source end offsets at T0; records and seconds of data not yet
               on the target then; the time until the target holds all of it
        exact  each group's commits at T0 translated as failover translates
               them; the target record there must equal, by content, the
               source record the group would read next (per partition)
        RTO    read the checkpoints, commit into drill.<group> on the target
               (never into the group itself), and time a consumer there until
               it reads its first record; the drill.* groups are deleted after
      --groups REGEX  only groups fully matching REGEX (default: the flow's groups)
      --sample N      check N partitions per group instead of all
  replicatorctl drill --config F --tap NAME --cluster SCRATCH [--window DUR]
                      [--sample N] [--report FILE.md] [--json] [--keep] [--timeout DUR]
      Archive drill: restore the archive's last --window (default 10m) into the
      cluster SCRATCH under drill. topics, verify by content, report, clean up.

  Both compare with the config's rpo_target and rto_target and print a
  Markdown report (or JSON with --json); --report FILE.md also writes the
  Markdown to FILE. --keep leaves the drill.* groups or topics in place.
  --timeout bounds the waits of each step (default 5m). Durations: 30s, 10m,
  1h, 1h30m.

exit codes: 0 every target met and every check passed, 1 failure, 2 bad
  arguments or config, 3 a cluster unreachable, 5 a target missed or a check
  failed (the report says which)
)";

[[noreturn]] void bad(const std::string& msg) {
    std::cerr << "replicatorctl drill: " << msg << "\n" << drill_usage;
    std::exit(exit_invalid_config);
}

std::chrono::milliseconds duration_arg(const std::string& flag, const std::string& v) {
    auto d = conf::parse_duration(v);
    if (!d) bad(flag + " " + v + ": " + d.error().message);
    if (d.value().count() <= 0) bad(flag + " " + v + ": must be greater than zero");
    return d.value();
}

drill_args parse(int argc, char** argv) {
    drill_args a;
    for (int i = 2; i < argc; ++i) {
        const std::string s = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad(s + " needs a value");
            return argv[++i];
        };
        if (s == "--help" || s == "-h") {
            std::cout << drill_usage;
            std::exit(exit_ok);
        } else if (s == "--config" || s == "-c") {
            a.config_path = value();
        } else if (s == "--flow") {
            a.flow = value();
        } else if (s == "--tap") {
            a.tap = value();
        } else if (s == "--cluster") {
            a.cluster = value();
        } else if (s == "--groups") {
            a.groups_regex = value();
        } else if (s == "--report") {
            a.report_path = value();
        } else if (s == "--json") {
            a.json = true;
        } else if (s == "--keep") {
            a.keep = true;
        } else if (s == "--sample") {
            const std::string v = value();
            size_t used = 0;
            int n = 0;
            try {
                n = std::stoi(v, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != v.size() || n <= 0) bad("--sample " + v + ": expected a positive number");
            a.sample = n;
        } else if (s == "--window") {
            a.window = duration_arg(s, value());
        } else if (s == "--timeout") {
            a.timeout = duration_arg(s, value());
        } else {
            bad("unknown argument '" + s + "'");
        }
    }
    if (a.config_path.empty()) bad("--config is required");
    if (a.flow.empty() == a.tap.empty()) bad("give exactly one of --flow NAME and --tap NAME");
    if (!a.tap.empty() && a.cluster.empty()) bad("--tap needs --cluster SCRATCH");
    if (!a.flow.empty() && !a.cluster.empty())
        bad("--cluster goes with --tap; a flow drill uses the flow's own clusters");
    if (!a.groups_regex.empty()) {
        if (!a.tap.empty()) bad("--groups goes with --flow");
        try {
            const std::regex re(a.groups_regex, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            bad("--groups " + a.groups_regex + ": not a valid regex (" + e.what() + ")");
        }
    }
    return a;
}

}  // namespace

int ctl_drill(int argc, char** argv) {
    const drill_args a = parse(argc, argv);
    set_log_level(level::warn);
    auto cfg = conf::load(a.config_path);
    if (!cfg) {
        std::cerr << cfg.error().message << "\nreplicatorctl: " << a.config_path << " is invalid\n";
        return exit_invalid_config;
    }
    if (!a.flow.empty()) {
        const auto* flow = cfg.value().flow(a.flow);
        if (flow == nullptr) {
            std::string known;
            for (const auto& f : cfg.value().flows) known += (known.empty() ? "" : ", ") + f.name;
            std::cerr << "replicatorctl drill: no flow named '" << a.flow << "' in "
                      << a.config_path << " (flows: " << (known.empty() ? "none" : known) << ")\n";
            return exit_invalid_config;
        }
        return run_flow_drill(cfg.value(), *flow, a);
    }
    for (const auto& t : cfg.value().taps)
        if (t.name == a.tap) return run_tap_drill(cfg.value(), t, a);
    std::string known;
    for (const auto& t : cfg.value().taps) known += (known.empty() ? "" : ", ") + t.name;
    std::cerr << "replicatorctl drill: no tap named '" << a.tap << "' in " << a.config_path
              << " (taps: " << (known.empty() ? "none" : known) << ")\n";
    return exit_invalid_config;
}

}  // namespace rpl::app
