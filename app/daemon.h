// The daemon's wiring: the Prometheus registry, the admin endpoint, the
// running set of flows and taps, and the signals that stop or reload them.
//
//   main ──run_daemon──> io_context ── signal_set (SIGINT, SIGTERM): stop
//                             ├── signal_set (SIGHUP): supervisor::reload
//                             ├── admin_server (/metrics /healthz /readyz /status)
//                             └── supervisor: flows in config order, then taps
#pragma once

#include "conf/config.h"

namespace rpl::app {

// Runs until SIGINT or SIGTERM; SIGHUP reloads cfg.path. Returns the process exit code: 0 after a
// clean stop, 3 if a cluster was unreachable at start-up, 1 otherwise.
[[nodiscard]] int run_daemon(const conf::Config& cfg);

}  // namespace rpl::app
