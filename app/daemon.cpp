#include "app/daemon.h"

#include "app/admin_server.h"
#include "app/plan.h"
#include "backup/store.h"
#include "backup/tap.h"
#include "checkpoint/checkpointer.h"
#include "checkpoint/failover.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"
#include "replicator/flow.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <boost/asio/signal_set.hpp>

#include <filesystem>
#include <sstream>

namespace rpl::app {

namespace {

std::string status_json(const std::vector<std::unique_ptr<replicator::flow>>& flows,
                        const std::vector<std::unique_ptr<backup::tap>>& taps) {
    std::ostringstream o;
    o << "{\"flows\":[";
    bool first = true;
    for (const auto& f : flows) {
        const auto s = f->status();
        if (!first) o << ",";
        first = false;
        o << "{\"name\":" << conf::quoted_string(s.name) << ",\"state\":\""
          << replicator::to_string(s.state) << "\",\"lag\":" << s.lag
          << ",\"rpo_seconds\":" << s.rpo_seconds
          << ",\"last_error\":" << conf::quoted_string(s.last_error) << ",\"topics\":[";
        for (size_t i = 0; i < s.topics.size(); ++i)
            o << (i ? "," : "") << conf::quoted_string(s.topics[i]);
        o << "]}";
    }
    o << "],\"taps\":[";
    first = true;
    for (const auto& t : taps) {
        const auto s = t->status();
        if (!first) o << ",";
        first = false;
        o << "{\"name\":" << conf::quoted_string(s.name) << ",\"state\":\""
          << backup::to_string(s.state) << "\",\"lag\":" << s.lag
          << ",\"rpo_seconds\":" << s.rpo_seconds << ",\"segments\":" << s.segments
          << ",\"last_error\":" << conf::quoted_string(s.last_error) << ",\"topics\":[";
        for (size_t i = 0; i < s.topics.size(); ++i)
            o << (i ? "," : "") << conf::quoted_string(s.topics[i]);
        o << "]}";
    }
    o << "]}\n";
    return o.str();
}

}  // namespace

int run_daemon(const conf::Config& cfg) {
    const Logger log("replicatord");
    if (!cfg.daemon.state_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(cfg.daemon.state_dir, ec);
        if (ec) {
            log.error("cannot create state_dir " + cfg.daemon.state_dir + ": " + ec.message());
            return exit_failure;
        }
    }

    auto registry = std::make_shared<prometheus::Registry>();
    auto mirror_metrics = replicator::make_mirror_metrics(*registry);
    auto checkpoint_metrics = checkpoint::make_checkpoint_metrics(*registry);
    auto tap_metrics = backup::make_tap_metrics(*registry);

    // Every cluster must answer within 10 s before anything starts: an
    // unreachable cluster is exit code 3, named with its bootstrap.
    if (auto md = probe_clusters(cfg, std::chrono::seconds(10), log.child("probe")); !md) {
        log.error(md.error().message);
        return md.error().code == errc::unreachable || md.error().code == errc::timeout
                   ? exit_unreachable
                   : exit_failure;
    }

    // The offset index: RocksDB under state_dir, caught up from every target
    // cluster's runs topic before anything is translated or recorded.
    std::unique_ptr<offsetsync::store> offsets;
    if (!cfg.flows.empty()) {
        auto st = offsetsync::store::open(std::filesystem::path(cfg.daemon.state_dir) / "offsets",
                                          log.child("offsetsync"));
        if (!st) {
            log.error(st.error().message);
            return exit_failure;
        }
        offsets = std::move(st).value();
        std::vector<std::string> targets;
        for (const auto& f : cfg.flows)
            if (std::find(targets.begin(), targets.end(), f.target) == targets.end())
                targets.push_back(f.target);
        for (const auto& t : targets) {
            auto r = offsetsync::catch_up(endpoint_of(*cfg.cluster(t)), *offsets,
                                          std::chrono::seconds(60), log.child("offsetsync"));
            if (!r) {
                log.error("cannot catch up the offset index from " + t + ": " + r.error().message);
                return r.error().code == errc::unreachable || r.error().code == errc::timeout
                           ? exit_unreachable
                           : exit_failure;
            }
            log.info("offset index caught up from " + t + ": " + std::to_string(r.value().applied) +
                     " run(s) applied, " + std::to_string(r.value().unchanged) + " already known");
        }
    }

    std::unique_ptr<checkpoint::local_checkpoints> local_checkpoints;
    if (!cfg.flows.empty()) {
        auto lc = checkpoint::local_checkpoints::open(
            std::filesystem::path(cfg.daemon.state_dir) / "checkpoints", false);
        if (!lc) {
            log.error(lc.error().message);
            return exit_failure;
        }
        local_checkpoints = std::move(lc).value();
    }

    boost::asio::io_context io;
    std::vector<std::unique_ptr<replicator::flow>> flows;
    std::vector<std::unique_ptr<checkpoint::checkpointer>> checkpointers;
    std::vector<std::unique_ptr<backup::tap>> taps;

    std::map<std::string, http_route> routes;
    routes["/metrics"] = [&registry](const std::string&) {
        return http_reply{200, "text/plain; version=0.0.4; charset=utf-8",
                          prometheus::TextSerializer().Serialize(registry->Collect())};
    };
    routes["/healthz"] = [](const std::string&) { return http_reply{200, "text/plain", "ok\n"}; };
    routes["/readyz"] = [&flows, &taps](const std::string&) {
        for (const auto& f : flows) {
            const auto s = f->status().state;
            if (s != replicator::flow_state::running)
                return http_reply{503, "text/plain",
                                  "flow " + f->name() + " is " + replicator::to_string(s) + "\n"};
        }
        for (const auto& t : taps) {
            const auto s = t->status().state;
            if (s != backup::tap_state::running)
                return http_reply{503, "text/plain",
                                  "tap " + t->name() + " is " + backup::to_string(s) + "\n"};
        }
        return http_reply{200, "text/plain", "ready\n"};
    };
    routes["/status"] = [&flows, &taps](const std::string&) {
        return http_reply{200, "application/json", status_json(flows, taps)};
    };
    admin_server admin(io, std::move(routes), cfg.daemon.admin_token, log.child("admin"));
    if (!cfg.daemon.admin_listen.empty()) {
        if (auto r = admin.listen(cfg.daemon.admin_listen); !r) {
            log.error(r.error().message);
            return exit_failure;
        }
    }

    const replicator::flow_env env{&cfg, &mirror_metrics, offsets.get()};
    for (const auto& fc : cfg.flows) {
        auto f = std::make_unique<replicator::flow>(fc, env);
        if (auto r = f->start(); !r) {
            log.error("flow " + fc.name + " cannot start: " + r.error().message);
            for (auto it = flows.rbegin(); it != flows.rend(); ++it) (*it)->stop();
            return r.error().code == errc::unreachable || r.error().code == errc::timeout
                       ? exit_unreachable
                       : exit_failure;
        }
        flows.push_back(std::move(f));
        if (fc.emit_checkpoints || fc.sync_group_offsets) {
            auto c = std::make_unique<checkpoint::checkpointer>(
                fc, cfg, *offsets, &checkpoint_metrics, local_checkpoints.get());
            if (auto r = c->start(); !r) {
                log.error("checkpoints of flow " + fc.name + " cannot start: " + r.error().message);
                continue;
            }
            checkpointers.push_back(std::move(c));
        }
    }
    // Taps after flows (stopped before them). A tap whose store is missing
    // or whose source does not answer stops the start-up, as a flow does.
    const auto stop_all = [&] {
        for (auto it = taps.rbegin(); it != taps.rend(); ++it) (*it)->stop();
        for (auto it = checkpointers.rbegin(); it != checkpointers.rend(); ++it) (*it)->stop();
        for (auto it = flows.rbegin(); it != flows.rend(); ++it) (*it)->stop();
    };
    for (const auto& tc : cfg.taps) {
        backup::store_options so;
        so.access_key = tc.s3_access_key;
        so.secret_key = tc.s3_secret_key;
        // The embedded default needs no set-up: a file:// root is created
        // like state_dir. A missing S3 bucket stays an error (check()).
        if (auto r = backup::create_file_store_root(tc.storage); !r) {
            log.error("tap " + tc.name + ": " + r.error().message);
            stop_all();
            return exit_failure;
        }
        auto store = backup::open_store(tc.storage, so);
        if (!store) {
            log.error("tap " + tc.name + " cannot open its store: " + store.error().message);
            stop_all();
            return exit_failure;
        }
        auto t = std::make_unique<backup::tap>(tc, backup::tap_env{&cfg, &tap_metrics},
                                               std::move(store).value());
        if (auto r = t->start(); !r) {
            log.error("tap " + tc.name + " cannot start: " + r.error().message);
            stop_all();
            return r.error().code == errc::unreachable || r.error().code == errc::timeout
                       ? exit_unreachable
                       : exit_failure;
        }
        taps.push_back(std::move(t));
    }
    log.info("started " + std::to_string(flows.size()) + " flow(s) and " +
             std::to_string(taps.size()) + " tap(s)");

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log.info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
        admin.stop();
        io.stop();
    });
    io.run();

    // Reverse start order: taps roll and store what they buffered, then commit.
    for (auto it = taps.rbegin(); it != taps.rend(); ++it) (*it)->stop();
    taps.clear();
    for (auto it = checkpointers.rbegin(); it != checkpointers.rend(); ++it) (*it)->stop();
    for (auto it = flows.rbegin(); it != flows.rend(); ++it) (*it)->stop();
    flows.clear();
    log.info("stopped");
    return exit_ok;
}

}  // namespace rpl::app
