// replicatorctl: the operator's tool.
//
//   replicatorctl translate --config F --flow NAME --group G [--json] [--state-dir DIR]
//   replicatorctl failover  --config F --flow NAME (--group G | --all-groups)
//                           [--reverse] [--apply] [--json]
//   replicatorctl plan      --config F            (the same plan as replicatord --check)
//
// translate and failover read only the target cluster (or the local state),
// so they answer with the source region down. Exit codes: 0 ok, 1 failure,
// 2 bad arguments or config, 3 a cluster unreachable, 4 a group was refused.
#include "app/ctl.h"
#include "app/plan.h"
#include "checkpoint/failover.h"
#include "conf/config.h"
#include "kafka/log.h"

#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace rpl;

constexpr int exit_refused = 4;

constexpr const char* usage = R"(usage:
  replicatorctl translate --config F --flow NAME --group G [--json] [--state-dir DIR]
      Where group G resumes on the flow's target cluster, per partition, from
      the checkpoints on the target (or, with --state-dir, the daemon's local
      copy). Needs no connection to the source cluster.
  replicatorctl failover --config F --flow NAME (--group G | --all-groups)
                         [--reverse] [--apply] [--json]
      Plan (default) or --apply the commit of translated offsets into the
      groups on the target. Groups with active members there are refused.
      --reverse fails back: the groups' commits on the target are translated
      back through the offset runs and committed on the source.
  replicatorctl plan --config F
      The plan replicatord --check prints.
  replicatorctl backup list|describe|verify --store URL [--backup ID] [--deep] [--json]
  replicatorctl restore --config R.toml [--dry-run] [--skip-damaged]
      The archive side: see `replicatorctl backup --help` and `restore --help`.
  replicatorctl status [--admin URL] [--watch] [--json]
      What a running replicatord is doing, from its admin endpoint.
  replicatorctl drill --config F --flow NAME [--groups REGEX] [--report FILE.md] [--json]
  replicatorctl drill --config F --tap NAME --cluster SCRATCH [--window 10m] [--report FILE.md]
      Measure RPO and RTO against the config's targets: see `replicatorctl drill --help`.

exit codes: 0 ok, 1 failure, 2 bad arguments or config, 3 unreachable, 4 refused,
  5 damage found (backup verify, restore) or a drill missed a target
)";

struct args {
    std::string command;
    std::string config;
    std::string flow;
    std::vector<std::string> groups;
    bool all_groups = false;
    bool json = false;
    bool apply = false;
    bool reverse = false;
    std::string state_dir;
};

[[noreturn]] void bad(const std::string& msg) {
    std::cerr << "replicatorctl: " << msg << "\n" << usage;
    std::exit(app::exit_invalid_config);
}

args parse(int argc, char** argv) {
    args a;
    if (argc < 2) bad("a command is required");
    a.command = argv[1];
    if (a.command == "--help" || a.command == "-h" || a.command == "help") {
        std::cout << usage;
        std::exit(0);
    }
    for (int i = 2; i < argc; ++i) {
        const std::string s = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad(s + " needs a value");
            return argv[++i];
        };
        if (s == "--config" || s == "-c")
            a.config = value();
        else if (s == "--flow")
            a.flow = value();
        else if (s == "--group" || s == "-g")
            a.groups.push_back(value());
        else if (s == "--all-groups")
            a.all_groups = true;
        else if (s == "--json")
            a.json = true;
        else if (s == "--apply")
            a.apply = true;
        else if (s == "--reverse")
            a.reverse = true;
        else if (s == "--state-dir")
            a.state_dir = value();
        else
            bad("unknown argument '" + s + "'");
    }
    if (a.config.empty()) bad("--config is required");
    return a;
}

// Columns padded to their widest cell, as kafka-consumer-groups prints them.
std::string num(int64_t v) { return v < 0 ? "-" : std::to_string(v); }

std::string age(int64_t ms) {
    if (ms < 0) return "-";
    if (ms < 10'000) return std::to_string(ms) + "ms";
    if (ms < 600'000) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms / 60'000) + "m";
}

int exit_for(const Error& e) {
    return e.code == errc::unreachable || e.code == errc::timeout ? app::exit_unreachable
                                                                  : app::exit_failure;
}

// What a translated position means when both clusters write the same topic.
void print_identity_note(const conf::flow_config& flow, bool reverse) {
    if (flow.naming != conf::naming_policy::identity) return;
    const std::string& from = reverse ? flow.target : flow.source;
    const std::string& to = reverse ? flow.source : flow.target;
    std::cout << "\nidentity naming: on " << to << " each topic holds " << to
              << "'s own records and those replicated from " << from
              << ". The new offset is the first record on " << to
              << " that the group had not consumed on " << from << ":\n"
              << "  the smaller of (a) where the first " << from
              << "-origin record after the group's position landed (flow " << flow.name
              << ") and (b) the first " << to << "-origin record that had not reached " << from
              << " below the group's position"
              << (flow.reverse_flow.empty() ? " (no reverse flow configured: (a) only)"
                                            : " (flow " + flow.reverse_flow + ")")
              << ".\n  Nothing unconsumed is skipped; records after it that were already "
                 "consumed on "
              << from << " are read again.\n";
}

int translate(const conf::Config& cfg, const conf::flow_config& flow, const args& a,
              const Logger& log) {
    if (a.groups.size() != 1) bad("translate takes exactly one --group");
    const std::string& group = a.groups.front();
    const kafka::endpoint target = app::endpoint_of(*cfg.cluster(flow.target));
    std::vector<checkpoint::stored_checkpoint> cps;
    std::string from;
    if (!a.state_dir.empty()) {
        auto local = checkpoint::local_checkpoints::open(
            std::filesystem::path(a.state_dir) / "checkpoints", true);
        if (!local) {
            std::cerr << "replicatorctl: " << local.error().message << "\n";
            return app::exit_failure;
        }
        auto all = local.value()->all(flow.name);
        if (!all) {
            std::cerr << "replicatorctl: " << all.error().message << "\n";
            return app::exit_failure;
        }
        cps = std::move(all).value();
        from = "local state " + a.state_dir;
    } else {
        auto read =
            checkpoint::read_checkpoints(target, flow.source, std::chrono::seconds(10), log);
        if (!read) {
            std::cerr << "replicatorctl: " << read.error().message << "\n";
            return exit_for(read.error());
        }
        cps = std::move(read).value();
        from = kafka::mm2::checkpoints_topic(flow.source) + " on " + target.describe();
    }
    auto rows = checkpoint::rows_for(flow, cps, group);
    if (rows.empty()) {
        std::cerr << "replicatorctl: no checkpoint for group " << group << " of flow " << flow.name
                  << " in " << from << "\n";
        return app::exit_failure;
    }
    // End offsets are a courtesy: the answer stands without them.
    if (auto r = checkpoint::fill_end_offsets(rows, target, std::chrono::seconds(5), log);
        !r && a.state_dir.empty()) {
        std::cerr << "replicatorctl: " << r.error().message << "\n";
        return exit_for(r.error());
    }
    if (a.json) {
        std::cout << "{\"flow\":" << conf::quoted_string(flow.name)
                  << ",\"source\":" << conf::quoted_string(flow.source)
                  << ",\"target\":" << conf::quoted_string(flow.target)
                  << ",\"group\":" << conf::quoted_string(group) << ",\"partitions\":[";
        for (size_t i = 0; i < rows.size(); ++i) {
            const auto& r = rows[i];
            const int64_t lag = r.log_end_offset >= 0
                                    ? std::max<int64_t>(0, r.log_end_offset - r.target_offset)
                                    : -1;
            std::cout << (i ? "," : "") << "{\"topic\":" << conf::quoted_string(r.topic)
                      << ",\"source_topic\":" << conf::quoted_string(r.source_topic)
                      << ",\"partition\":" << r.partition
                      << ",\"upstream_offset\":" << r.upstream_offset
                      << ",\"target_offset\":" << r.target_offset
                      << ",\"log_end_offset\":" << r.log_end_offset << ",\"lag\":" << lag
                      << ",\"checkpoint_age_ms\":" << r.checkpoint_age_ms << "}";
        }
        std::cout << "]}\n";
        return app::exit_ok;
    }
    std::cout << "flow " << flow.name << ": group " << group << " on " << flow.target << " (from "
              << from << ")\n\n";
    std::vector<std::vector<std::string>> table{{"GROUP", "TOPIC", "PARTITION", "UPSTREAM-OFFSET",
                                                 "TARGET-OFFSET", "LOG-END-OFFSET", "LAG",
                                                 "CHECKPOINT-AGE"}};
    for (const auto& r : rows) {
        const int64_t lag =
            r.log_end_offset >= 0 ? std::max<int64_t>(0, r.log_end_offset - r.target_offset) : -1;
        table.push_back({r.group, r.topic, std::to_string(r.partition), num(r.upstream_offset),
                         num(r.target_offset), num(r.log_end_offset), num(lag),
                         age(r.checkpoint_age_ms)});
    }
    conf::print_table(table, std::cout);
    print_identity_note(flow, false);
    return app::exit_ok;
}

void print_plans(const std::vector<checkpoint::group_plan>& plans, bool apply, bool json) {
    if (json) {
        std::cout << "{\"applied\":" << (apply ? "true" : "false") << ",\"groups\":[";
        for (size_t g = 0; g < plans.size(); ++g) {
            const auto& p = plans[g];
            std::cout << (g ? "," : "") << "{\"group\":" << conf::quoted_string(p.group)
                      << ",\"cluster\":" << conf::quoted_string(p.cluster)
                      << ",\"refused\":" << conf::quoted_string(p.refused) << ",\"partitions\":[";
            for (size_t i = 0; i < p.rows.size(); ++i) {
                const auto& r = p.rows[i];
                std::cout << (i ? "," : "") << "{\"topic\":" << conf::quoted_string(r.topic)
                          << ",\"partition\":" << r.partition << ",\"current_offset\":" << r.current
                          << ",\"new_offset\":" << r.next << "}";
            }
            std::cout << "]}";
        }
        std::cout << "]}\n";
        return;
    }
    std::vector<std::vector<std::string>> table{{"GROUP", "CLUSTER", "TOPIC", "PARTITION",
                                                 apply ? "BEFORE" : "CURRENT-OFFSET",
                                                 apply ? "AFTER" : "NEW-OFFSET"}};
    for (const auto& p : plans) {
        if (!p.refused.empty()) continue;
        for (const auto& r : p.rows)
            table.push_back({p.group, p.cluster, r.topic, std::to_string(r.partition),
                             num(r.current), num(r.next)});
    }
    if (table.size() > 1) conf::print_table(table, std::cout);
    for (const auto& p : plans)
        if (!p.refused.empty()) std::cout << "refused: " << p.refused << "\n";
    if (!apply && table.size() > 1)
        std::cout << "\n(plan only: run again with --apply to commit)\n";
}

int failover(const conf::Config& cfg, const conf::flow_config& flow, const args& a,
             const Logger& log) {
    if (a.groups.empty() && !a.all_groups) bad("failover needs --group G or --all-groups");
    if (!a.groups.empty() && a.all_groups) bad("--group and --all-groups exclude each other");
    Result<std::vector<checkpoint::group_plan>> plans = fail(errc::internal, "not run");
    if (a.reverse) {
        char tmpl[] = "/tmp/replicatorctl-runs-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            std::cerr << "replicatorctl: cannot create a scratch directory in /tmp\n";
            return app::exit_failure;
        }
        plans = checkpoint::failback(cfg, flow, a.groups, tmpl, a.apply, log);
        std::error_code ec;
        std::filesystem::remove_all(tmpl, ec);
    } else {
        const kafka::endpoint target = app::endpoint_of(*cfg.cluster(flow.target));
        auto cps = checkpoint::read_checkpoints(target, flow.source, std::chrono::seconds(10), log);
        if (!cps) {
            std::cerr << "replicatorctl: " << cps.error().message << "\n";
            return exit_for(cps.error());
        }
        std::vector<checkpoint::translation_row> rows;
        if (a.all_groups) {
            rows = checkpoint::rows_for(flow, cps.value(), "");
        } else {
            for (const auto& g : a.groups) {
                auto mine = checkpoint::rows_for(flow, cps.value(), g);
                if (mine.empty()) {
                    std::cerr << "replicatorctl: no checkpoint for group " << g << " of flow "
                              << flow.name << " in " << kafka::mm2::checkpoints_topic(flow.source)
                              << " on " << target.describe() << "\n";
                    return app::exit_failure;
                }
                rows.insert(rows.end(), mine.begin(), mine.end());
            }
        }
        plans = checkpoint::failover(cfg, flow, rows, a.apply, log);
    }
    if (!plans) {
        std::cerr << "replicatorctl: " << plans.error().message << "\n";
        return exit_for(plans.error());
    }
    print_plans(plans.value(), a.apply, a.json);
    if (!a.json) print_identity_note(flow, a.reverse);
    const bool refused = std::any_of(plans.value().begin(), plans.value().end(),
                                     [](const auto& p) { return !p.refused.empty(); });
    return refused ? exit_refused : app::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    // Commands with their own argument parsing (app/ctl.h).
    if (argc >= 2 && std::string_view(argv[1]) == "backup") return app::ctl_backup(argc, argv);
    if (argc >= 2 && std::string_view(argv[1]) == "restore") return app::ctl_restore(argc, argv);
    if (argc >= 2 && std::string_view(argv[1]) == "status") return app::ctl_status(argc, argv);
    if (argc >= 2 && std::string_view(argv[1]) == "drill") return app::ctl_drill(argc, argv);
    const args a = parse(argc, argv);
    set_log_level(level::warn);
    auto cfg = conf::load(a.config);
    if (!cfg) {
        std::cerr << cfg.error().message << "\nreplicatorctl: " << a.config << " is invalid\n";
        return app::exit_invalid_config;
    }
    const Logger log("replicatorctl");
    if (a.command == "plan") {
        auto md = app::probe_clusters(cfg.value(), std::chrono::seconds(10), log);
        if (!md) {
            std::cerr << "replicatorctl: " << md.error().message << "\n";
            return exit_for(md.error());
        }
        app::print_plan(cfg.value(), md.value(), std::cout);
        return app::exit_ok;
    }
    if (a.flow.empty()) bad(a.command + " needs --flow NAME");
    const auto* flow = cfg.value().flow(a.flow);
    if (flow == nullptr) {
        std::string known;
        for (const auto& f : cfg.value().flows) known += (known.empty() ? "" : ", ") + f.name;
        std::cerr << "replicatorctl: no flow named '" << a.flow << "' in " << a.config
                  << " (flows: " << known << ")\n";
        return app::exit_invalid_config;
    }
    if (a.command == "translate") return translate(cfg.value(), *flow, a, log);
    if (a.command == "failover") return failover(cfg.value(), *flow, a, log);
    bad("unknown command '" + a.command + "'");
}
