// The daemon's wiring: the Prometheus registry, the admin endpoint, every
// flow, and the signals that stop them.
//
//   main ──run_daemon──> io_context ── signal_set (SIGINT, SIGTERM)
//                             ├── admin_server (/metrics /healthz /readyz /status)
//                             ├── flows, started in config order, stopped in reverse
//                             └── taps (backup/), started after the flows, stopped first
#pragma once

#include "conf/config.h"

namespace rpl::app {

// Runs until SIGINT or SIGTERM. Returns the process exit code: 0 after a
// clean stop, 3 if a cluster was unreachable at start-up, 1 otherwise.
[[nodiscard]] int run_daemon(const conf::Config& cfg);

}  // namespace rpl::app
