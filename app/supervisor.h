// The running set: every flow (with its checkpointer) and every tap of the
// current config, each kept running by its own keeper thread, and the reload
// that moves the set to a new config.
//
//   keeper (one per flow or tap):
//     start ──fails──> "failed" (cause kept), retry after 1 s doubling to 30 s ─┐
//       │  ▲                                                                   │
//       │  └───────────────────────────────────────────────────────────────────┘
//       └─ok──> watch ──unit state "failed"──> stop it, restarts + 1, back off, start
//               running for 5 s without failing: recovered, backoff back to 1 s
//
//   SIGHUP ──> reload thread: conf::load(path) ──invalid──> rejected, nothing touched
//                    └─valid──> diff by name against the running set
//                                 removed   stop (commits), series dropped  ┐ stopped
//                                 changed   stop, start with new settings   │ in
//                                 failed    stop, start again (even if same)┘ parallel
//                                 added     start
//                                 same      untouched: no pause, no rewind
//
// A unit that cannot start (its cluster or store does not answer) or fails
// never takes the others down: it is reported in /status and /readyz and
// retried until it runs. "Same" is conf::same_run_settings. Each unit keeps
// the Config it was started with alive (flows, checkpointers and taps hold
// references into it), so old and new units can run side by side.
//
// Thread model: units_ changes only on the reload thread, or in start() and
// stop() (the daemon's main thread, never while a reload runs); the admin
// thread reads it under mu_. Each keeper alone starts and stops its unit;
// readers see the unit under the keeper's own mutex, so /healthz, /readyz
// and /status answer while units start, stop or reload.
#pragma once

#include "backup/metrics.h"
#include "backup/store.h"
#include "checkpoint/checkpointer.h"
#include "conf/config.h"
#include "kafka/log.h"
#include "kafka/result.h"
#include "replicator/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace rpl::offsetsync {
class store;
}

namespace rpl::app {

// What a reload did, for the log line and /status.
struct reload_outcome {
    bool applied = false;  // false: the new config was invalid, nothing changed
    std::string error;     // the --check messages when rejected; start failures otherwise
    // failed: units whose first start after the reload failed (they keep retrying).
    std::vector<std::string> added, removed, restarted, unchanged, failed;
};

// A unit in a running state whose run loop has not gone round for this long
// is wedged: /healthz answers 503 naming it. A probe may ask for its own
// bound (/healthz?stall=90s) to match its own period and threshold. The
// default outlasts one store call (a tap lists its store on its loop thread
// when it is assigned partitions): a store outage is for /readyz to report,
// and a liveness probe that restarted the daemon for it would stop every
// flow as well.
inline constexpr std::chrono::milliseconds stall_bound =
    backup::default_operation_timeout + std::chrono::seconds(60);

class supervisor {
public:
    supervisor(prometheus::Registry& registry, Logger log);
    ~supervisor();
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    // Opens what every flow shares under state_dir (the offset index and the
    // local checkpoints; an error here is fatal: another daemon may hold
    // them) and launches every unit of `cfg`. Returns at once: units start
    // on their own threads, and those that cannot start yet keep retrying.
    [[nodiscard]] Result<void> start(std::shared_ptr<const conf::Config> cfg);
    // Asks the reload thread to apply the config in `path`; returns at once.
    // A request made while a reload runs is applied after it.
    void request_reload(const std::string& path);
    // Applies the config in `path` on the caller's thread (the reload thread).
    [[nodiscard]] reload_outcome reload(const std::string& path);
    // Waits for a running reload, then stops every unit at once (each flow:
    // checkpointer, then drain and commit; each tap: store what it buffered,
    // then commit). Idempotent.
    void stop() noexcept;

    [[nodiscard]] std::string status_json() const;
    // "" when every flow and tap runs, else one line per unit that does not:
    // its name, state and cause.
    [[nodiscard]] std::string not_ready() const;
    // "" unless a unit in a running state has not gone round its run loop for
    // `bound`: then one line per such unit.
    [[nodiscard]] std::string not_healthy(std::chrono::milliseconds bound = stall_bound) const;

private:
    class unit;

    // The offset index and local checkpoints, opened once.
    [[nodiscard]] Result<void> open_shared(const conf::Config& cfg);
    // Before a flow first records into the index: its target's runs topic is
    // read into it (once per target cluster).
    [[nodiscard]] Result<void> catch_up_target(const conf::Config& cfg,
                                               const conf::flow_config& fc);
    [[nodiscard]] std::vector<std::shared_ptr<unit>> make_units(
        const std::shared_ptr<const conf::Config>& cfg, const std::set<std::string>& which);
    void reload_loop() noexcept;
    void forget(const unit& u) noexcept;
    // The unit's RPO gauge, nullopt while it reads NaN (no figure yet).
    [[nodiscard]] std::optional<double> published_rpo(const unit& u) const;

    Logger log_;
    replicator::mirror_metric_families mirror_metrics_;
    checkpoint::checkpoint_metric_families checkpoint_metrics_;
    backup::tap_metric_families tap_metrics_;
    prometheus::Family<prometheus::Counter>& reloads_;   // {result}
    prometheus::Family<prometheus::Counter>& restarts_;  // {flow} or {tap}

    // Shared by every flow; opened once, never closed before the units stop.
    std::mutex shared_mu_;
    std::unique_ptr<offsetsync::store> offsets_;
    std::unique_ptr<checkpoint::local_checkpoints> local_checkpoints_;
    std::set<std::string> caught_up_;                // target bootstraps whose runs are in
    std::map<std::string, std::mutex> catching_up_;  // one catch-up per target at a time

    mutable std::mutex mu_;  // guards what follows
    std::shared_ptr<const conf::Config> current_;
    std::vector<std::shared_ptr<unit>> units_;  // flows then taps, in config order
    std::optional<reload_outcome> last_reload_;
    int64_t last_reload_unix_ms_ = 0;
    bool reloading_ = false;
    std::optional<std::string> reload_requested_;  // path of the next reload
    bool stopping_ = false;
    std::condition_variable reload_wake_;
    std::thread reload_thread_;  // last: started after everything above exists
};

}  // namespace rpl::app
