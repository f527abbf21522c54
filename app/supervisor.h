// The running set: every flow (with its checkpointer) and every tap of the
// current config, and the reload that moves it to a new config.
//
//   SIGHUP ──> conf::load(path) ──invalid──> rejected, nothing touched
//                    │
//                    └─valid──> diff by name against the running set
//                                 removed   stop (commits), series dropped
//                                 changed   stop, start with the new settings
//                                 added     start
//                                 same      untouched: no pause, no rewind
//
// "Same" is conf::same_run_settings: every setting and the clusters it talks
// to are equal; where it sits in the file does not matter.
//
// Each unit keeps the Config it was started with alive (flows, checkpointers
// and taps hold references into it), so an old unit and a new one can run
// side by side while a reload is applied.
//
// Thread model: owned by the daemon's io thread. start(), reload(), stop()
// and the status and readiness views are all called from that thread (the
// admin routes and the signal handler run there), so no lock is needed.
#pragma once

#include "backup/metrics.h"
#include "checkpoint/checkpointer.h"
#include "conf/config.h"
#include "kafka/log.h"
#include "kafka/result.h"
#include "replicator/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace rpl::offsetsync {
class store;
}
namespace rpl::replicator {
class flow;
}
namespace rpl::backup {
class tap;
}

namespace rpl::app {

// What a reload did, for the log line and /status.
struct reload_outcome {
    bool applied = false;  // false: the new config was invalid, nothing changed
    std::string error;     // the --check messages when rejected; start failures otherwise
    std::vector<std::string> added, removed, restarted, unchanged, failed;
};

class supervisor {
public:
    supervisor(prometheus::Registry& registry, Logger log);
    ~supervisor();
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    // Starts everything in `cfg`, in config order (flows, then taps). The
    // first unit that cannot start stops the ones already running and its
    // error is returned: at start-up, a broken flow is a broken daemon.
    [[nodiscard]] Result<void> start(std::shared_ptr<const conf::Config> cfg);
    // Applies the config in `path`. A unit that fails to start is reported
    // (and counted in `failed`) while the others keep running.
    [[nodiscard]] reload_outcome reload(const std::string& path);
    // Taps first, then checkpointers, then flows, each in reverse start order.
    void stop() noexcept;

    [[nodiscard]] std::string status_json() const;
    // "" when every flow and tap runs, else what does not.
    [[nodiscard]] std::string not_ready() const;

private:
    struct flow_unit;
    struct tap_unit;

    [[nodiscard]] Result<void> prepare_offsets(const conf::Config& cfg);
    [[nodiscard]] Result<std::unique_ptr<flow_unit>> start_flow(
        const std::shared_ptr<const conf::Config>& cfg, const conf::flow_config& fc);
    [[nodiscard]] Result<std::unique_ptr<tap_unit>> start_tap(
        const std::shared_ptr<const conf::Config>& cfg, const conf::tap_config& tc);
    void stop_flow(flow_unit& u, bool forget) noexcept;
    void stop_tap(tap_unit& u, bool forget) noexcept;

    Logger log_;
    replicator::mirror_metric_families mirror_metrics_;
    checkpoint::checkpoint_metric_families checkpoint_metrics_;
    backup::tap_metric_families tap_metrics_;
    prometheus::Family<prometheus::Counter>& reloads_;  // {result}

    std::shared_ptr<const conf::Config> current_;
    std::unique_ptr<offsetsync::store> offsets_;
    std::unique_ptr<checkpoint::local_checkpoints> local_checkpoints_;
    std::set<std::string> caught_up_;  // target bootstraps whose runs are in `offsets_`
    std::vector<std::unique_ptr<flow_unit>> flows_;  // start order
    std::vector<std::unique_ptr<tap_unit>> taps_;
    std::optional<reload_outcome> last_reload_;
    int64_t last_reload_unix_ms_ = 0;
};

}  // namespace rpl::app
