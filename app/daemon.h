// The daemon's wiring: the Prometheus registry, the admin endpoint, the
// running set of flows and taps, and the signals that stop or reload them.
//
//   main ──run_daemon──> io_context ── signal_set (SIGINT, SIGTERM): stop
//                             ├── signal_set (SIGHUP): supervisor::request_reload
//                             ├── admin_server (/metrics /healthz /readyz /status)
//                             └── supervisor: a keeper thread per flow and tap,
//                                             a reload thread
//
// The io thread only answers HTTP and signals: reloads, starts and stops run
// on the supervisor's threads, so the admin endpoint answers throughout.
#pragma once

#include "conf/config.h"

namespace rpl::app {

// Runs until SIGINT or SIGTERM; SIGHUP reloads cfg.path. A cluster or store
// that does not answer at start-up does not stop the daemon: the units that
// need it are reported and retried. Returns the process exit code: 0 after a
// clean stop, 1 when the daemon cannot run at all (state_dir, admin
// endpoint, two flows mirroring the same topic).
[[nodiscard]] int run_daemon(const conf::Config& cfg);

}  // namespace rpl::app
