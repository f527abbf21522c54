#include "app/supervisor.h"

#include "app/plan.h"
#include "backup/store.h"
#include "backup/tap.h"
#include "checkpoint/failover.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
#include "replicator/flow.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>

namespace rpl::app {

struct supervisor::flow_unit {
    std::shared_ptr<const conf::Config> cfg;  // the flow and checkpointer refer into it
    const conf::flow_config* fc = nullptr;
    std::unique_ptr<replicator::flow> flow;
    std::unique_ptr<checkpoint::checkpointer> checkpoints;  // may be null
};

struct supervisor::tap_unit {
    std::shared_ptr<const conf::Config> cfg;
    const conf::tap_config* tc = nullptr;
    std::unique_ptr<backup::tap> tap;
};

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string json_strings(const std::vector<std::string>& v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); ++i) o += (i ? "," : "") + conf::quoted_string(v[i]);
    return o + "]";
}

std::string json_seconds(const std::optional<conf::duration>& d) {
    if (!d) return "null";
    std::ostringstream o;
    o << static_cast<double>(d->count()) / 1000.0;
    return o.str();
}

std::string join(const std::vector<std::string>& v) {
    std::string o;
    for (const auto& s : v) o += (o.empty() ? "" : ", ") + s;
    return o.empty() ? "-" : o;
}

}  // namespace

supervisor::supervisor(prometheus::Registry& registry, Logger log)
    : log_(std::move(log)),
      mirror_metrics_(replicator::make_mirror_metrics(registry)),
      checkpoint_metrics_(checkpoint::make_checkpoint_metrics(registry)),
      tap_metrics_(backup::make_tap_metrics(registry)),
      reloads_(prometheus::BuildCounter()
                   .Name("replicatord_config_reloads_total")
                   .Help("Config reloads (SIGHUP) by result: applied or rejected")
                   .Register(registry)) {
    // Both series exist from the start, so a dashboard sees 0, not nothing.
    reloads_.Add({{"result", "applied"}});
    reloads_.Add({{"result", "rejected"}});
}

supervisor::~supervisor() { stop(); }

Result<void> supervisor::prepare_offsets(const conf::Config& cfg) {
    if (cfg.flows.empty()) return ok();
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
    for (const auto& f : cfg.flows) {
        const auto* target = cfg.cluster(f.target);
        if (caught_up_.count(target->bootstrap) != 0) continue;
        auto r = offsetsync::catch_up(endpoint_of(*target), *offsets_, std::chrono::seconds(60),
                                      log_.child("offsetsync"));
        if (!r)
            return fail(r.error().code, "cannot catch up the offset index from " + f.target + ": " +
                                            r.error().message);
        log_.info("offset index caught up from " + f.target + ": " +
                  std::to_string(r.value().applied) + " run(s) applied, " +
                  std::to_string(r.value().unchanged) + " already known");
        caught_up_.insert(target->bootstrap);
    }
    return ok();
}

Result<std::unique_ptr<supervisor::flow_unit>> supervisor::start_flow(
    const std::shared_ptr<const conf::Config>& cfg, const conf::flow_config& fc) {
    auto u = std::make_unique<flow_unit>();
    u->cfg = cfg;
    u->fc = &fc;
    u->flow = std::make_unique<replicator::flow>(
        fc, replicator::flow_env{cfg.get(), &mirror_metrics_, offsets_.get()});
    if (auto r = u->flow->start(); !r)
        return fail(r.error().code, "flow " + fc.name + " cannot start: " + r.error().message);
    if (fc.emit_checkpoints || fc.sync_group_offsets) {
        auto c = std::make_unique<checkpoint::checkpointer>(
            fc, *cfg, *offsets_, &checkpoint_metrics_, local_checkpoints_.get());
        if (auto r = c->start(); !r)
            log_.error("checkpoints of flow " + fc.name + " cannot start: " + r.error().message);
        else
            u->checkpoints = std::move(c);
    }
    return u;
}

Result<std::unique_ptr<supervisor::tap_unit>> supervisor::start_tap(
    const std::shared_ptr<const conf::Config>& cfg, const conf::tap_config& tc) {
    backup::store_options so;
    so.access_key = tc.s3_access_key;
    so.secret_key = tc.s3_secret_key;
    // The embedded default needs no set-up: a file:// root is created like
    // state_dir. A missing S3 bucket stays an error (the tap's start checks).
    if (auto r = backup::create_file_store_root(tc.storage); !r)
        return fail(r.error().code, "tap " + tc.name + ": " + r.error().message);
    RPL_TRY(store, backup::open_store(tc.storage, so));
    auto u = std::make_unique<tap_unit>();
    u->cfg = cfg;
    u->tc = &tc;
    u->tap = std::make_unique<backup::tap>(tc, backup::tap_env{cfg.get(), &tap_metrics_},
                                           std::move(store));
    if (auto r = u->tap->start(); !r)
        return fail(r.error().code, "tap " + tc.name + " cannot start: " + r.error().message);
    return u;
}

void supervisor::stop_flow(flow_unit& u, bool forget) noexcept {
    if (u.checkpoints) u.checkpoints->stop();
    u.flow->stop();  // drains, commits what the target acknowledged, leaves the group
    if (forget) {
        replicator::forget_flow(mirror_metrics_, u.fc->name);
        checkpoint::forget_flow(checkpoint_metrics_, u.fc->name);
    }
}

void supervisor::stop_tap(tap_unit& u, bool forget) noexcept {
    u.tap->stop();  // rolls and stores what it buffered, then commits
    if (forget) backup::forget_tap(tap_metrics_, u.tc->name);
}

Result<void> supervisor::start(std::shared_ptr<const conf::Config> cfg) {
    if (auto r = prepare_offsets(*cfg); !r) return r;
    for (const auto& fc : cfg->flows) {
        auto u = start_flow(cfg, fc);
        if (!u) {
            stop();
            return fail(u.error().code, u.error().message);
        }
        flows_.push_back(std::move(u).value());
    }
    for (const auto& tc : cfg->taps) {
        auto u = start_tap(cfg, tc);
        if (!u) {
            stop();
            return fail(u.error().code, u.error().message);
        }
        taps_.push_back(std::move(u).value());
    }
    current_ = std::move(cfg);
    log_.info("started " + std::to_string(flows_.size()) + " flow(s) and " +
              std::to_string(taps_.size()) + " tap(s)");
    return ok();
}

reload_outcome supervisor::reload(const std::string& path) {
    reload_outcome out;
    last_reload_unix_ms_ = now_ms();
    auto loaded = conf::load(path);
    if (!loaded) {
        out.error = loaded.error().message;
        log_.error("reload of " + path +
                   " rejected, the running flows and taps stay as they were:");
        std::istringstream lines(out.error);
        for (std::string line; std::getline(lines, line);) log_.error("  " + line);
        reloads_.Add({{"result", "rejected"}}).Increment();
        last_reload_ = out;
        return out;
    }
    auto next = std::make_shared<const conf::Config>(std::move(loaded).value());
    const auto& old = *current_;
    if (next->daemon.state_dir != old.daemon.state_dir ||
        next->daemon.admin_listen != old.daemon.admin_listen ||
        next->daemon.admin_token != old.daemon.admin_token) {
        log_.warn(
            "reload: [daemon] state_dir, admin_listen and admin_token take effect only "
            "after a restart; keeping the running values");
    }
    if (level l{}; parse_level(next->daemon.log_level, l)) set_log_level(l);
    set_log_json(next->daemon.log_format == "json");

    // Removed and changed units stop first (taps, then flows), so a changed
    // flow's new instance does not share the consumer group with the old one.
    std::vector<std::unique_ptr<flow_unit>> kept_flows;
    std::vector<std::unique_ptr<tap_unit>> kept_taps;
    for (auto it = taps_.rbegin(); it != taps_.rend(); ++it) {
        auto& u = *it;
        const auto tn = std::find_if(next->taps.begin(), next->taps.end(),
                                     [&](const auto& t) { return t.name == u->tc->name; });
        if (tn == next->taps.end()) {
            stop_tap(*u, true);
            out.removed.push_back("tap " + u->tc->name);
        } else if (!conf::same_run_settings(old, *u->tc, *next, *tn)) {
            stop_tap(*u, false);
            out.restarted.push_back("tap " + u->tc->name);
        } else {
            out.unchanged.push_back("tap " + u->tc->name);
            kept_taps.insert(kept_taps.begin(), std::move(u));
        }
    }
    for (auto it = flows_.rbegin(); it != flows_.rend(); ++it) {
        auto& u = *it;
        const auto* fn = next->flow(u->fc->name);
        if (fn == nullptr) {
            stop_flow(*u, true);
            out.removed.push_back("flow " + u->fc->name);
        } else if (!conf::same_run_settings(old, *u->fc, *next, *fn)) {
            stop_flow(*u, false);
            out.restarted.push_back("flow " + u->fc->name);
        } else {
            out.unchanged.push_back("flow " + u->fc->name);
            kept_flows.insert(kept_flows.begin(), std::move(u));
        }
    }
    flows_.clear();
    taps_.clear();

    // Start what is new or changed, in the new config's order.
    const auto is_kept_flow = [&](const std::string& n) {
        return std::any_of(kept_flows.begin(), kept_flows.end(),
                           [&](const auto& u) { return u->fc->name == n; });
    };
    const auto is_kept_tap = [&](const std::string& n) {
        return std::any_of(kept_taps.begin(), kept_taps.end(),
                           [&](const auto& u) { return u->tc->name == n; });
    };
    const auto was_restarted = [&](const std::string& what) {
        return std::find(out.restarted.begin(), out.restarted.end(), what) != out.restarted.end();
    };
    const auto start_failed = [&](const std::string& what, const Error& e) {
        log_.error("reload: " + e.message);
        out.failed.push_back(what);
        out.error += (out.error.empty() ? "" : "\n") + e.message;
    };
    bool offsets_ready = true;
    if (auto r = prepare_offsets(*next); !r) {
        offsets_ready = false;
        log_.error("reload: " + r.error().message);
        out.error = r.error().message;
    }
    for (const auto& fc : next->flows) {
        if (is_kept_flow(fc.name)) continue;
        const std::string what = "flow " + fc.name;
        if (!was_restarted(what)) out.added.push_back(what);
        if (!offsets_ready) {
            out.failed.push_back(what);
            continue;
        }
        auto u = start_flow(next, fc);
        if (!u)
            start_failed(what, u.error());
        else
            kept_flows.push_back(std::move(u).value());
    }
    for (const auto& tc : next->taps) {
        if (is_kept_tap(tc.name)) continue;
        const std::string what = "tap " + tc.name;
        if (!was_restarted(what)) out.added.push_back(what);
        auto u = start_tap(next, tc);
        if (!u)
            start_failed(what, u.error());
        else
            kept_taps.push_back(std::move(u).value());
    }
    flows_ = std::move(kept_flows);
    taps_ = std::move(kept_taps);
    current_ = std::move(next);
    out.applied = true;
    reloads_.Add({{"result", "applied"}}).Increment();
    log_.info("reloaded " + path + ": added " + join(out.added) + "; removed " + join(out.removed) +
              "; restarted " + join(out.restarted) + "; unchanged " + join(out.unchanged) +
              (out.failed.empty() ? "" : "; FAILED " + join(out.failed)));
    last_reload_ = out;
    return out;
}

void supervisor::stop() noexcept {
    for (auto it = taps_.rbegin(); it != taps_.rend(); ++it) stop_tap(**it, false);
    taps_.clear();
    for (auto it = flows_.rbegin(); it != flows_.rend(); ++it)
        if ((*it)->checkpoints) (*it)->checkpoints->stop();
    for (auto it = flows_.rbegin(); it != flows_.rend(); ++it) (*it)->flow->stop();
    flows_.clear();
}

std::string supervisor::not_ready() const {
    for (const auto& u : flows_) {
        const auto s = u->flow->status().state;
        if (s != replicator::flow_state::running)
            return "flow " + u->fc->name + " is " + replicator::to_string(s);
    }
    for (const auto& u : taps_) {
        const auto s = u->tap->status().state;
        if (s != backup::tap_state::running)
            return "tap " + u->tc->name + " is " + backup::to_string(s);
    }
    if (last_reload_ && !last_reload_->failed.empty())
        return "not started after the last reload: " + join(last_reload_->failed);
    return {};
}

std::string supervisor::status_json() const {
    const int64_t now = now_ms();
    std::ostringstream o;
    o << "{\"config\":" << conf::quoted_string(current_ ? current_->path : "")
      << ",\"now_unix_ms\":" << now << ",\"flows\":[";
    for (size_t i = 0; i < flows_.size(); ++i) {
        const auto& u = *flows_[i];
        const auto s = u.flow->status();
        // name and state first: scripts match `"name":"X","state":"Y"`.
        o << (i ? "," : "") << "{\"name\":" << conf::quoted_string(s.name) << ",\"state\":\""
          << replicator::to_string(s.state) << "\",\"source\":" << conf::quoted_string(u.fc->source)
          << ",\"target\":" << conf::quoted_string(u.fc->target) << ",\"lag\":" << s.lag
          << ",\"rpo_seconds\":" << s.rpo_seconds
          << ",\"rpo_target_seconds\":" << json_seconds(u.fc->rpo_target)
          << ",\"rto_target_seconds\":" << json_seconds(u.fc->rto_target)
          << ",\"last_error\":" << conf::quoted_string(s.last_error)
          << ",\"topics\":" << json_strings(s.topics) << ",\"checkpoints\":";
        if (!u.checkpoints) {
            o << "null";
        } else {
            const auto c = u.checkpoints->status();
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
    for (size_t i = 0; i < taps_.size(); ++i) {
        const auto& u = *taps_[i];
        const auto s = u.tap->status();
        o << (i ? "," : "") << "{\"name\":" << conf::quoted_string(s.name) << ",\"state\":\""
          << backup::to_string(s.state) << "\",\"source\":" << conf::quoted_string(u.tc->source)
          << ",\"storage\":" << conf::quoted_string(conf::masked_url(u.tc->storage))
          << ",\"lag\":" << s.lag << ",\"rpo_seconds\":" << s.rpo_seconds
          << ",\"rpo_target_seconds\":" << json_seconds(u.tc->rpo_target)
          << ",\"rto_target_seconds\":" << json_seconds(u.tc->rto_target)
          << ",\"segments\":" << s.segments
          << ",\"last_error\":" << conf::quoted_string(s.last_error)
          << ",\"topics\":" << json_strings(s.topics) << "}";
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
