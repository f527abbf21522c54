#include "app/supervisor.h"

#include "app/plan.h"
#include "backup/store.h"
#include "backup/tap.h"
#include "checkpoint/failover.h"
#include "offsetsync/catch_up.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
#include "replicator/flow.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <utility>

namespace rpl::app {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// Restart policy of every unit.
constexpr auto first_backoff = 1s;
constexpr auto max_backoff = 30s;
// A restarted unit that stays out of "failed" this long runs again.
constexpr auto stable_after = 5s;
constexpr auto watch_every = 200ms;
// How long a reload waits for the first start of the units it launched, to
// report those that could not start (they keep retrying after it).
constexpr auto first_start_wait = 90s;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double seconds(steady::duration d) { return std::chrono::duration<double>(d).count(); }

std::string json_number(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
}

std::string json_strings(const std::vector<std::string>& v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); ++i) o += (i ? "," : "") + conf::quoted_string(v[i]);
    return o + "]";
}

std::string json_seconds(const std::optional<conf::duration>& d) {
    if (!d) return "null";
    return json_number(static_cast<double>(d->count()) / 1000.0);
}

std::string join(const std::vector<std::string>& v) {
    std::string o;
    for (const auto& s : v) o += (o.empty() ? "" : ", ") + s;
    return o.empty() ? "-" : o;
}

std::string whole_seconds(steady::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

}  // namespace

// One flow (with its checkpointer) or one tap, and the keeper thread that
// starts it, watches it and starts it again when it fails. The instance is
// replaced only by the keeper; readers see it under mu_. A stopped instance
// stays in place until the next attempt replaces it, so /status keeps its
// last figures and error.
class supervisor::unit {
public:
    unit(supervisor& sup, std::shared_ptr<const conf::Config> cfg, const conf::flow_config* fc,
         const conf::tap_config* tc)
        : sup_(sup), cfg_(std::move(cfg)), fc_(fc), tc_(tc) {
        sup_.restarts_.Add(labels());  // 0 from the first scrape
        // The unit's own series too, before its first start attempt.
        if (fc_ != nullptr) {
            replicator::declare_flow(sup_.mirror_metrics_, *fc_);
            checkpoint::declare_flow(sup_.checkpoint_metrics_, fc_->name);
        } else {
            backup::declare_tap(sup_.tap_metrics_, *tc_);
        }
    }
    ~unit() {
        request_stop();
        join();
    }
    unit(const unit&) = delete;
    unit& operator=(const unit&) = delete;

    [[nodiscard]] const std::string& name() const { return fc_ ? fc_->name : tc_->name; }
    [[nodiscard]] std::string label() const { return (fc_ ? "flow " : "tap ") + name(); }
    [[nodiscard]] prometheus::Labels labels() const { return {{fc_ ? "flow" : "tap", name()}}; }
    [[nodiscard]] const conf::Config& config() const { return *cfg_; }
    [[nodiscard]] const conf::flow_config* flow_config() const { return fc_; }
    [[nodiscard]] const conf::tap_config* tap_config() const { return tc_; }

    void launch() {
        thread_ = std::thread([this] { keep(); });
    }
    void request_stop() noexcept {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        wake_.notify_all();
    }
    void join() noexcept {
        if (thread_.joinable()) thread_.join();
    }
    // The first start attempt has finished (either way).
    [[nodiscard]] bool tried() const {
        std::lock_guard lock(mu_);
        return tried_;
    }
    // Failed (to start, or while running) and not yet running again.
    [[nodiscard]] bool failing() const {
        std::lock_guard lock(mu_);
        return failing_;
    }

    struct view {
        std::string state;
        std::string last_error;
        int restarts = 0;
        std::optional<double> retry_in_seconds;
        bool ran = false;  // some instance started: its lag and RPO mean something
        // In a running state (its run loop should go round) and how long ago
        // it last did.
        bool loops = false;
        steady::duration loop_age{};
        std::optional<replicator::flow_status> flow;
        std::optional<checkpoint::checkpointer_status> checkpoints;
        std::optional<backup::tap_status> tap;
    };

    [[nodiscard]] view look() const {
        view v;
        const auto now = steady::now();
        std::lock_guard lock(mu_);
        v.restarts = restarts_;
        v.ran = ran_;
        if (retry_at_) v.retry_in_seconds = std::max(0.0, seconds(*retry_at_ - now));
        std::string state = "starting";
        std::string error;
        steady::time_point loop_at = now;
        if (flow_) {
            v.flow = flow_->status();
            state = replicator::to_string(v.flow->state);
            error = v.flow->last_error;
            loop_at = v.flow->loop_at;
            v.loops = v.flow->state == replicator::flow_state::running ||
                      v.flow->state == replicator::flow_state::backing_off;
        }
        // Until the new instance starts, the figures are the kept one's.
        if (v.flow && retired_flow_) v.flow->lag = retired_flow_->status().lag;
        if (checkpoints_) v.checkpoints = checkpoints_->status();
        if (tap_) {
            v.tap = tap_->status();
            state = backup::to_string(v.tap->state);
            error = v.tap->last_error;
            loop_at = v.tap->loop_at;
            v.loops = v.tap->state == backup::tap_state::running ||
                      v.tap->state == backup::tap_state::backing_off;
            if (retired_tap_) v.tap->lag = retired_tap_->status().lag;
        }
        // Until it has run for stable_after, a unit that failed stays failed
        // with the cause: a restart attempt does not flicker to "running".
        if (!tried_)
            v.state = "starting";
        else if (failing_)
            v.state = "failed";
        else
            v.state = state;
        v.last_error = failing_ || error.empty() ? cause_ : error;
        v.loops = v.loops && !failing_ && !stop_;
        v.loop_age = now - loop_at;
        return v;
    }

private:
    // Stops waiting early when a stop is requested; false then.
    bool wait(steady::duration d) {
        std::unique_lock lock(mu_);
        return !wake_.wait_for(lock, d, [this] { return stop_; });
    }

    Result<void> attempt() {
        if (fc_ != nullptr) {
            RPL_TRY(sup_.open_shared(*cfg_));
            RPL_TRY(sup_.catch_up_target(*cfg_, *fc_));
            install(std::make_unique<replicator::flow>(
                        *fc_, replicator::flow_env{cfg_.get(), &sup_.mirror_metrics_,
                                                   sup_.offsets_.get()}),
                    nullptr);
            if (auto r = flow_->start(); !r)
                return fail(r.error().code, "cannot start: " + r.error().message);
            started();
            if (fc_->emit_checkpoints || fc_->sync_group_offsets) {
                auto c = std::make_unique<checkpoint::checkpointer>(*fc_, *cfg_, *sup_.offsets_,
                                                                    &sup_.checkpoint_metrics_,
                                                                    sup_.local_checkpoints_.get());
                if (auto r = c->start(); !r) {
                    sup_.log_.error("checkpoints of flow " + fc_->name +
                                    " cannot start: " + r.error().message);
                } else {
                    std::lock_guard lock(mu_);
                    checkpoints_ = std::move(c);
                }
            }
            return ok();
        }
        backup::store_options so;
        so.access_key = tc_->s3_access_key;
        so.secret_key = tc_->s3_secret_key;
        // The embedded default needs no set-up: a file:// root is created
        // like state_dir. A missing S3 bucket stays an error (the tap's start
        // checks), retried like an unreachable store.
        RPL_TRY(backup::create_file_store_root(tc_->storage));
        RPL_TRY(store, backup::open_store(tc_->storage, so));
        install(nullptr,
                std::make_unique<backup::tap>(*tc_, backup::tap_env{cfg_.get(), &sup_.tap_metrics_},
                                              std::move(store)));
        if (auto r = tap_->start(); !r)
            return fail(r.error().code, "cannot start: " + r.error().message);
        started();
        return ok();
    }

    // Puts a new instance in place of the stopped one (destroyed outside the
    // lock, so a reader never waits for it). An instance that ran is kept
    // aside, stopped, until its successor has started: its RPO meter is what
    // keeps the figure growing from the last moment known safe while new
    // instances fail to start (a source that is down), where a gauge left
    // to itself would freeze at the last figure and read better than the
    // truth.
    void install(std::unique_ptr<replicator::flow> f, std::unique_ptr<backup::tap> t) {
        std::unique_ptr<replicator::flow> old_flow;
        std::unique_ptr<checkpoint::checkpointer> old_checkpoints;
        std::unique_ptr<backup::tap> old_tap;
        std::lock_guard lock(mu_);
        old_checkpoints = std::move(checkpoints_);
        old_flow = std::exchange(flow_, std::move(f));
        old_tap = std::exchange(tap_, std::move(t));
        if (current_started_) {
            // The one kept aside before goes (old_* are destroyed last).
            std::swap(old_flow, retired_flow_);
            std::swap(old_tap, retired_tap_);
        }
        current_started_ = false;
    }

    // The new instance has started: the one kept aside goes, and the figure
    // reads unknown until the new meter has one (the gauge would otherwise
    // hold the old meter's last, ageing, figure).
    void started() {
        std::unique_ptr<replicator::flow> old_flow;
        std::unique_ptr<backup::tap> old_tap;
        {
            std::lock_guard lock(mu_);
            current_started_ = true;
            old_flow = std::move(retired_flow_);
            old_tap = std::move(retired_tap_);
        }
        if (!old_flow && !old_tap) return;
        old_flow.reset();
        old_tap.reset();
        const double unknown = std::numeric_limits<double>::quiet_NaN();
        if (fc_ != nullptr)
            sup_.mirror_metrics_.rpo.Add(labels()).Set(unknown);
        else
            sup_.tap_metrics_.rpo.Add(labels()).Set(unknown);
    }

    // Checkpointer first (it translates through the flow's runs), then the
    // flow: drains, commits what the target acknowledged, leaves the group.
    // A tap stores what it buffered, then commits. Readers may call status()
    // meanwhile; the objects stay in place.
    void stop_instance() noexcept {
        if (checkpoints_) checkpoints_->stop();
        if (flow_) flow_->stop();
        if (tap_) tap_->stop();
    }

    [[nodiscard]] bool instance_failed(std::string& cause) const {
        if (flow_) {
            const auto s = flow_->status();
            cause = s.last_error;
            return s.state == replicator::flow_state::failed;
        }
        if (tap_) {
            const auto s = tap_->status();
            cause = s.last_error;
            return s.state == backup::tap_state::failed;
        }
        return false;
    }

    void keep() noexcept {
        steady::duration backoff = first_backoff;
        for (;;) {
            Result<void> r = ok();
            try {
                r = attempt();
            } catch (const std::exception& e) {
                r = fail(errc::internal, std::string("cannot start: ") + e.what());
            }
            std::string cause;
            if (r) {
                {
                    std::lock_guard lock(mu_);
                    tried_ = true;
                    ran_ = true;
                    retry_at_.reset();
                }
                const auto started_at = steady::now();
                bool failed = false;
                while (wait(watch_every)) {
                    if (instance_failed(cause)) {
                        failed = true;
                        break;
                    }
                    if (failing() && steady::now() - started_at >= stable_after) {
                        // Logged before /readyz can say so.
                        sup_.log_.info(label() + " runs again after " +
                                       std::to_string(look().restarts) + " restart(s)");
                        std::lock_guard lock(mu_);
                        failing_ = false;
                        backoff = first_backoff;
                    }
                }
                if (!failed) break;  // stop requested
                if (cause.empty()) cause = "failed";
            } else {
                cause = r.error().message;
            }
            stop_instance();
            {
                std::lock_guard lock(mu_);
                if (stop_) break;
                tried_ = true;
                failing_ = true;
                cause_ = cause;
                retry_at_ = steady::now() + backoff;
            }
            sup_.log_.error(label() + ": " + cause + "; retrying in " + whole_seconds(backoff));
            if (!wait(backoff)) break;
            backoff = std::min<steady::duration>(backoff * 2, max_backoff);
            int n = 0;
            {
                std::lock_guard lock(mu_);
                n = ++restarts_;
                retry_at_.reset();
            }
            sup_.restarts_.Add(labels()).Increment();
            sup_.log_.info(label() + ": restart " + std::to_string(n));
        }
        // Stop was requested (shutdown or reload): every unit asked reaches
        // this line at once, before any of them has drained.
        sup_.log_.info("stopping " + label());
        stop_instance();
    }

    supervisor& sup_;
    const std::shared_ptr<const conf::Config> cfg_;  // the instance refers into it
    const conf::flow_config* const fc_;              // one of fc_ and tc_ is set
    const conf::tap_config* const tc_;

    mutable std::mutex mu_;  // guards what follows; the instance pointers change under it
    std::condition_variable wake_;
    bool stop_ = false;
    bool tried_ = false;
    bool ran_ = false;
    bool failing_ = false;
    int restarts_ = 0;
    std::string cause_;
    std::optional<steady::time_point> retry_at_;
    // Declaration order is destruction order, reversed: the checkpointer
    // reads the flow's offset runs.
    std::unique_ptr<replicator::flow> flow_;
    std::unique_ptr<checkpoint::checkpointer> checkpoints_;
    std::unique_ptr<backup::tap> tap_;
    // The last instance that started, stopped, kept until a new one starts
    // (see install), and whether the current one has started.
    std::unique_ptr<replicator::flow> retired_flow_;
    std::unique_ptr<backup::tap> retired_tap_;
    bool current_started_ = false;
    std::thread thread_;  // the keeper
};

supervisor::supervisor(prometheus::Registry& registry, Logger log)
    : log_(std::move(log)),
      mirror_metrics_(replicator::make_mirror_metrics(registry)),
      checkpoint_metrics_(checkpoint::make_checkpoint_metrics(registry)),
      tap_metrics_(backup::make_tap_metrics(registry)),
      reloads_(prometheus::BuildCounter()
                   .Name("replicatord_config_reloads_total")
                   .Help("Config reloads (SIGHUP) by result: applied or rejected")
                   .Register(registry)),
      restarts_(prometheus::BuildCounter()
                    .Name("replicatord_unit_restarts_total")
                    .Help("Times a flow or tap was started again after it failed or could not "
                          "start, by flow or tap")
                    .Register(registry)) {
    // Both series exist from the start, so a dashboard sees 0, not nothing.
    reloads_.Add({{"result", "applied"}});
    reloads_.Add({{"result", "rejected"}});
}

supervisor::~supervisor() { stop(); }

Result<void> supervisor::open_shared(const conf::Config& cfg) {
    if (cfg.flows.empty()) return ok();
    std::lock_guard lock(shared_mu_);
    // The offset index: RocksDB under state_dir, caught up from every target
    // cluster's runs topic before anything is translated or recorded.
    if (!offsets_) {
        RPL_TRY(st, offsetsync::store::open(std::filesystem::path(cfg.daemon.state_dir) / "offsets",
                                            log_.child("offsetsync")));
        offsets_ = std::move(st);
    }
    if (!local_checkpoints_) {
        RPL_TRY(lc, checkpoint::local_checkpoints::open(
                        std::filesystem::path(cfg.daemon.state_dir) / "checkpoints", false));
        local_checkpoints_ = std::move(lc);
    }
    return ok();
}

Result<void> supervisor::catch_up_target(const conf::Config& cfg, const conf::flow_config& fc) {
    const auto* target = cfg.cluster(fc.target);
    std::mutex* one_at_a_time = nullptr;
    {
        std::lock_guard lock(shared_mu_);
        if (caught_up_.count(target->bootstrap) != 0) return ok();
        one_at_a_time = &catching_up_[target->bootstrap];
    }
    std::lock_guard serial(*one_at_a_time);
    {
        std::lock_guard lock(shared_mu_);
        if (caught_up_.count(target->bootstrap) != 0) return ok();  // done meanwhile
    }
    // A target that does not answer fails here in 10 s, not in the catch-up's 60.
    const auto ep = endpoint_of(*target);
    if (auto md = kafka::probe(ep, std::chrono::seconds(10), log_.child("cluster " + fc.target));
        !md)
        return fail(md.error().code, "cannot catch up the offset index from " + fc.target + ": " +
                                         md.error().message);
    // Resumable: a catch-up cut short (stall, stop, restart) continues from
    // the position it saved, and fails only when the topic stops answering.
    auto r = offsetsync::resume_catch_up(ep, *offsets_, log_.child("offsetsync"));
    if (!r)
        return fail(r.error().code, "cannot catch up the offset index from " + fc.target + ": " +
                                        r.error().message);
    log_.info("offset index caught up from " + fc.target + " (from offset " +
              std::to_string(r.value().resumed_from) + " to " +
              std::to_string(r.value().end_offset) +
              "): " + std::to_string(r.value().applied.applied) + " run(s) applied, " +
              std::to_string(r.value().applied.unchanged) + " already known");
    std::lock_guard lock(shared_mu_);
    caught_up_.insert(target->bootstrap);
    return ok();
}

std::vector<std::shared_ptr<supervisor::unit>> supervisor::make_units(
    const std::shared_ptr<const conf::Config>& cfg, const std::set<std::string>& which) {
    std::vector<std::shared_ptr<unit>> out;
    for (const auto& fc : cfg->flows)
        if (which.count("flow " + fc.name) != 0)
            out.push_back(std::make_shared<unit>(*this, cfg, &fc, nullptr));
    for (const auto& tc : cfg->taps)
        if (which.count("tap " + tc.name) != 0)
            out.push_back(std::make_shared<unit>(*this, cfg, nullptr, &tc));
    return out;
}

void supervisor::forget(const unit& u) noexcept {
    if (u.flow_config() != nullptr) {
        replicator::forget_flow(mirror_metrics_, u.name());
        checkpoint::forget_flow(checkpoint_metrics_, u.name());
    } else {
        backup::forget_tap(tap_metrics_, u.name());
    }
    restarts_.Remove(&restarts_.Add(u.labels()));
}

Result<void> supervisor::start(std::shared_ptr<const conf::Config> cfg) {
    RPL_TRY(open_shared(*cfg));
    std::set<std::string> all;
    for (const auto& fc : cfg->flows) all.insert("flow " + fc.name);
    for (const auto& tc : cfg->taps) all.insert("tap " + tc.name);
    auto units = make_units(cfg, all);
    {
        std::lock_guard lock(mu_);
        current_ = cfg;
        units_ = units;
    }
    for (const auto& u : units) u->launch();
    reload_thread_ = std::thread([this] { reload_loop(); });
    log_.info("starting " + std::to_string(cfg->flows.size()) + " flow(s) and " +
              std::to_string(cfg->taps.size()) + " tap(s)");
    return ok();
}

void supervisor::request_reload(const std::string& path) {
    {
        std::lock_guard lock(mu_);
        if (reloading_) log_.info("a reload is running; " + path + " is applied after it");
        reload_requested_ = path;
    }
    reload_wake_.notify_all();
}

void supervisor::reload_loop() noexcept {
    std::unique_lock lock(mu_);
    for (;;) {
        reload_wake_.wait(lock, [this] { return stopping_ || reload_requested_.has_value(); });
        if (stopping_) return;
        const std::string path = *std::exchange(reload_requested_, std::nullopt);
        reloading_ = true;
        lock.unlock();
        try {
            (void)reload(path);
        } catch (const std::exception& e) {
            log_.error("reload of " + path + ": " + e.what());
        }
        lock.lock();
        reloading_ = false;
    }
}

reload_outcome supervisor::reload(const std::string& path) {
    reload_outcome out;
    const int64_t started_ms = now_ms();
    auto loaded = conf::load(path);
    if (!loaded) {
        out.error = loaded.error().message;
        log_.error("reload of " + path +
                   " rejected, the running flows and taps stay as they were:");
        std::istringstream lines(out.error);
        for (std::string line; std::getline(lines, line);) log_.error("  " + line);
        reloads_.Add({{"result", "rejected"}}).Increment();
        std::lock_guard lock(mu_);
        last_reload_ = out;
        last_reload_unix_ms_ = started_ms;
        return out;
    }
    auto next = std::make_shared<const conf::Config>(std::move(loaded).value());
    std::vector<std::shared_ptr<unit>> running;
    {
        std::lock_guard lock(mu_);
        running = units_;
        const auto& old = *current_;
        if (next->daemon.state_dir != old.daemon.state_dir ||
            next->daemon.admin_listen != old.daemon.admin_listen ||
            next->daemon.admin_token != old.daemon.admin_token) {
            log_.warn(
                "reload: [daemon] state_dir, admin_listen and admin_token take effect only "
                "after a restart; keeping the running values");
        }
    }
    if (level l{}; parse_level(next->daemon.log_level, l)) set_log_level(l);
    set_log_json(next->daemon.log_format == "json");

    // Removed, changed and failed units stop first, all at once, so a
    // changed flow's new instance does not share its group with the old one.
    std::vector<std::shared_ptr<unit>> kept, stopping;
    std::set<std::string> to_start;
    for (const auto& u : running) {
        bool same = false;
        bool present = false;
        if (const auto* fc = u->flow_config()) {
            const auto* fn = next->flow(fc->name);
            present = fn != nullptr;
            same = present && conf::same_run_settings(u->config(), *fc, *next, *fn);
        } else {
            const auto* tc = u->tap_config();
            const auto tn = std::find_if(next->taps.begin(), next->taps.end(),
                                         [&](const auto& t) { return t.name == tc->name; });
            present = tn != next->taps.end();
            same = present && conf::same_run_settings(u->config(), *tc, *next, *tn);
        }
        if (!present) {
            out.removed.push_back(u->label());
            stopping.push_back(u);
        } else if (!same || u->failing()) {
            // A failed unit starts again now, even with the same settings.
            out.restarted.push_back(u->label());
            stopping.push_back(u);
            to_start.insert(u->label());
        } else {
            out.unchanged.push_back(u->label());
            kept.push_back(u);
        }
    }
    for (const auto& fc : next->flows) {
        const std::string what = "flow " + fc.name;
        if (to_start.count(what) == 0 &&
            std::find(out.unchanged.begin(), out.unchanged.end(), what) == out.unchanged.end()) {
            out.added.push_back(what);
            to_start.insert(what);
        }
    }
    for (const auto& tc : next->taps) {
        const std::string what = "tap " + tc.name;
        if (to_start.count(what) == 0 &&
            std::find(out.unchanged.begin(), out.unchanged.end(), what) == out.unchanged.end()) {
            out.added.push_back(what);
            to_start.insert(what);
        }
    }
    for (const auto& u : stopping) u->request_stop();
    for (const auto& u : stopping) u->join();

    // The new set, in the new config's order.
    auto started = make_units(next, to_start);
    std::vector<std::shared_ptr<unit>> next_units;
    const auto take = [&](const std::string& what) {
        for (auto* from : {&kept, &started})
            for (const auto& u : *from)
                if (u->label() == what) next_units.push_back(u);
    };
    for (const auto& fc : next->flows) take("flow " + fc.name);
    for (const auto& tc : next->taps) take("tap " + tc.name);
    {
        std::lock_guard lock(mu_);
        units_ = next_units;
        current_ = next;
    }
    // Only now, out of units_: /status reads a unit's series while it is listed.
    for (const auto& u : stopping)
        if (std::find(out.removed.begin(), out.removed.end(), u->label()) != out.removed.end())
            forget(*u);
    stopping.clear();
    for (const auto& u : started) u->launch();

    // Report what could not start; those units keep retrying on their own.
    const auto until = steady::now() + first_start_wait;
    const auto all_tried = [&] {
        return std::all_of(started.begin(), started.end(),
                           [](const auto& u) { return u->tried(); });
    };
    while (!all_tried() && steady::now() < until) {
        std::unique_lock lock(mu_);
        if (reload_wake_.wait_for(lock, 100ms, [this] { return stopping_; })) break;
    }
    for (const auto& u : started) {
        if (u->tried() && !u->failing()) continue;
        const auto v = u->look();
        out.failed.push_back(u->label());
        const std::string why =
            u->label() + (v.last_error.empty() ? " has not started yet" : ": " + v.last_error);
        log_.error("reload: " + why);
        out.error += (out.error.empty() ? "" : "\n") + why;
    }
    out.applied = true;
    reloads_.Add({{"result", "applied"}}).Increment();
    log_.info("reloaded " + path + ": added " + join(out.added) + "; removed " + join(out.removed) +
              "; restarted " + join(out.restarted) + "; unchanged " + join(out.unchanged) +
              (out.failed.empty() ? "" : "; FAILED " + join(out.failed) + " (retrying)"));
    std::lock_guard lock(mu_);
    last_reload_ = out;
    last_reload_unix_ms_ = started_ms;
    return out;
}

void supervisor::stop() noexcept {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    reload_wake_.notify_all();
    if (reload_thread_.joinable()) reload_thread_.join();
    std::vector<std::shared_ptr<unit>> units;
    {
        std::lock_guard lock(mu_);
        units.swap(units_);
    }
    // All at once: the slowest unit's drain bounds the stop, not their sum.
    for (const auto& u : units) u->request_stop();
    for (const auto& u : units) u->join();
}

std::string supervisor::not_ready() const {
    std::string out;
    std::lock_guard lock(mu_);
    for (const auto& u : units_) {
        const auto v = u->look();
        if (v.state == "running") continue;
        out += (out.empty() ? "" : "\n") + u->label() + " is " + v.state;
        if (!v.last_error.empty()) out += ": " + v.last_error;
        if (v.retry_in_seconds)
            out += " (retry in " + std::to_string(static_cast<int64_t>(*v.retry_in_seconds)) +
                   " s, " + std::to_string(v.restarts) + " restart(s) so far)";
    }
    return out;
}

std::string supervisor::not_healthy(std::chrono::milliseconds bound) const {
    std::string out;
    std::lock_guard lock(mu_);
    for (const auto& u : units_) {
        const auto v = u->look();
        if (!v.loops || v.loop_age < bound) continue;
        out += (out.empty() ? "" : "\n") + u->label() + " is " + v.state +
               " but its run loop has not gone round for " + whole_seconds(v.loop_age) +
               " (bound " + conf::format_duration(bound) + ")";
    }
    return out;
}

std::optional<double> supervisor::published_rpo(const unit& u) const {
    // The series is declared (NaN) with the unit and removed only after the
    // unit left units_, so it is there to read; Has() keeps a read from ever
    // declaring it again.
    auto& family = u.flow_config() != nullptr ? mirror_metrics_.rpo : tap_metrics_.rpo;
    const auto labels = u.labels();
    if (!family.Has(labels)) return std::nullopt;
    const double v = family.Add(labels).Value();
    if (std::isnan(v)) return std::nullopt;
    return v;
}

std::string supervisor::status_json() const {
    const int64_t now = now_ms();
    std::ostringstream o;
    std::lock_guard lock(mu_);
    o << "{\"config\":" << conf::quoted_string(current_ ? current_->path : "")
      << ",\"now_unix_ms\":" << now << ",\"reloading\":" << (reloading_ ? "true" : "false");
    // Fields every unit has, after its name and state. Lag and RPO are null
    // until the unit's meter has a figure (the gauge reads NaN until then):
    // nothing is known, and 0 would claim safety. The RPO is the published
    // gauge itself, so /status and /metrics never disagree.
    const auto common = [&](const unit& u, const unit::view& v, int64_t lag) {
        const auto rpo = published_rpo(u);
        o << ",\"restarts\":" << v.restarts << ",\"retry_in_seconds\":"
          << (v.retry_in_seconds ? json_number(*v.retry_in_seconds) : "null")
          << ",\"lag\":" << (v.ran && rpo ? std::to_string(lag) : "null")
          << ",\"rpo_seconds\":" << (v.ran && rpo ? json_number(*rpo) : "null")
          << ",\"last_error\":" << conf::quoted_string(v.last_error);
    };
    o << ",\"flows\":[";
    bool first = true;
    for (const auto& u : units_) {
        const auto* fc = u->flow_config();
        if (fc == nullptr) continue;
        const auto v = u->look();
        const replicator::flow_status s = v.flow.value_or(replicator::flow_status{});
        // name and state first: scripts match `"name":"X","state":"Y"`.
        o << (first ? "" : ",") << "{\"name\":" << conf::quoted_string(fc->name) << ",\"state\":\""
          << v.state << "\",\"source\":" << conf::quoted_string(fc->source)
          << ",\"target\":" << conf::quoted_string(fc->target);
        common(*u, v, s.lag);
        o << ",\"rpo_target_seconds\":" << json_seconds(fc->rpo_target)
          << ",\"rto_target_seconds\":" << json_seconds(fc->rto_target)
          << ",\"topics\":" << json_strings(s.topics)
          << ",\"partitions_assigned\":" << s.partitions_assigned
          << ",\"partitions_lost\":" << s.partitions_lost
          << ",\"paused\":" << (s.paused ? "true" : "false") << ",\"checkpoints\":";
        first = false;
        if (!v.checkpoints) {
            o << "null";
        } else {
            const auto& c = *v.checkpoints;
            o << "{\"last_pass_age_seconds\":";
            if (c.last_run_unix_ms > 0)
                o << static_cast<double>(now - c.last_run_unix_ms) / 1000.0;
            else
                o << "null";
            o << ",\"checkpoints\":" << c.checkpoints
              << ",\"groups_synced\":" << json_strings(c.synced)
              << ",\"groups_skipped\":" << json_strings(c.skipped)
              << ",\"last_error\":" << conf::quoted_string(c.last_error) << "}";
        }
        o << "}";
    }
    o << "],\"taps\":[";
    first = true;
    for (const auto& u : units_) {
        const auto* tc = u->tap_config();
        if (tc == nullptr) continue;
        const auto v = u->look();
        const backup::tap_status s = v.tap.value_or(backup::tap_status{});
        o << (first ? "" : ",") << "{\"name\":" << conf::quoted_string(tc->name) << ",\"state\":\""
          << v.state << "\",\"source\":" << conf::quoted_string(tc->source)
          << ",\"storage\":" << conf::quoted_string(conf::masked_url(tc->storage));
        common(*u, v, s.lag);
        o << ",\"rpo_target_seconds\":" << json_seconds(tc->rpo_target)
          << ",\"rto_target_seconds\":" << json_seconds(tc->rto_target)
          << ",\"segments\":" << s.segments << ",\"topics\":" << json_strings(s.topics) << "}";
        first = false;
    }
    o << "],\"last_reload\":";
    if (!last_reload_) {
        o << "null";
    } else {
        const auto& r = *last_reload_;
        o << "{\"unix_ms\":" << last_reload_unix_ms_
          << ",\"result\":" << (r.applied ? "\"applied\"" : "\"rejected\"")
          << ",\"added\":" << json_strings(r.added) << ",\"removed\":" << json_strings(r.removed)
          << ",\"restarted\":" << json_strings(r.restarted)
          << ",\"failed\":" << json_strings(r.failed)
          << ",\"error\":" << conf::quoted_string(r.error) << "}";
    }
    o << "}\n";
    return o.str();
}

}  // namespace rpl::app
