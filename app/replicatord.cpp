// replicatord: the daemon. Runs every flow and tap in the config file.
//
//   replicatord --config flows.toml [--check] [--log-level LEVEL]
//
// --check validates the file, connects to each cluster (10 s deadline) and
// prints the plan without copying anything. Exit codes: 0 fine, 2 invalid
// config (every error listed), 3 a cluster unreachable (--check only: the
// daemon itself keeps running and retries what does not answer).
#include "app/daemon.h"
#include "app/plan.h"
#include "conf/config.h"
#include "kafka/log.h"

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

namespace {

constexpr const char* usage =
    R"(usage: replicatord --config FILE [--check [--offline]] [--log-level LEVEL]

  --config FILE      flows, pairs and taps to run (TOML; see conf/examples/)
  --check            validate FILE, connect to each cluster, print the plan, exit
  --offline          with --check: validate FILE only, connect to nothing
  --log-level LEVEL  trace|debug|info|warn|error (default: [daemon] log_level)
  --version          print the version and exit

exit codes: 0 ok, 1 runtime failure, 2 invalid config, 3 cluster unreachable (--check)
)";

}  // namespace

int main(int argc, char** argv) {
    using namespace rpl;
    report_fatal_signals("replicatord");
    // A peer closing a socket is an error to handle, not a reason to die.
    std::signal(SIGPIPE, SIG_IGN);
    std::string config_path;
    std::string level_arg;
    bool check = false;
    bool offline = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* name) -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "replicatord: " << name << " needs a value\n" << usage;
                std::exit(app::exit_invalid_config);
            }
            return argv[++i];
        };
        if (a == "--config" || a == "-c")
            config_path = value("--config");
        else if (a.starts_with("--config="))
            config_path = a.substr(9);
        else if (a == "--check")
            check = true;
        else if (a == "--offline")
            offline = true;
        else if (a == "--log-level")
            level_arg = value("--log-level");
        else if (a == "--version") {
            std::cout << "replicatord " << RPL_VERSION << "\n";
            return app::exit_ok;
        } else if (a == "--help" || a == "-h") {
            std::cout << usage;
            return app::exit_ok;
        } else {
            std::cerr << "replicatord: unknown argument '" << a << "'\n" << usage;
            return app::exit_invalid_config;
        }
    }
    if (config_path.empty()) {
        std::cerr << "replicatord: --config FILE is required\n" << usage;
        return app::exit_invalid_config;
    }

    auto cfg = conf::load(config_path);
    if (!cfg) {
        std::cerr << cfg.error().message << "\n";
        std::cerr << "replicatord: " << config_path << " is invalid\n";
        return app::exit_invalid_config;
    }
    level lvl = level::info;
    const std::string& lvl_name = level_arg.empty() ? cfg.value().daemon.log_level : level_arg;
    if (!parse_level(lvl_name, lvl)) {
        std::cerr << "replicatord: unknown log level '" << lvl_name << "'\n";
        return app::exit_invalid_config;
    }
    set_log_level(lvl);
    set_log_json(cfg.value().daemon.log_format == "json");

    if (offline && !check) {
        std::cerr << "replicatord: --offline only goes with --check\n" << usage;
        return app::exit_invalid_config;
    }
    if (check && offline) {
        std::cout << "config " << config_path << ": valid (--offline: no cluster contacted)\n";
        return app::exit_ok;
    }
    if (check) {
        const Logger log("check");
        auto md = app::probe_clusters(cfg.value(), std::chrono::seconds(10), log);
        if (!md) {
            std::cerr << "replicatord: " << md.error().message << "\n";
            switch (md.error().code) {
                case errc::unreachable:
                case errc::timeout: return app::exit_unreachable;
                // Client properties that rd_kafka_conf_set accepts but
                // rd_kafka_new rejects (an unsupported SASL mechanism).
                case errc::invalid_config: return app::exit_invalid_config;
                default: return app::exit_failure;
            }
        }
        std::cout << "config " << config_path << ": ok\n";
        app::print_plan(cfg.value(), md.value(), std::cout);
        return app::exit_ok;
    }
    return app::run_daemon(cfg.value());
}
