#include "app/daemon.h"

#include "app/admin_server.h"
#include "app/plan.h"
#include "app/supervisor.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <string>

namespace rpl::app {

namespace {

// Two flows copying the same topic is a config error, checked on the real
// topics of the clusters that answer now (10 s each, in parallel). Clusters
// that do not answer are only logged: their units report and retry.
Result<void> check_overlaps_now(const conf::Config& cfg, const Logger& log) {
    std::vector<std::string> sources;
    for (const auto& f : cfg.flows)
        if (std::find(sources.begin(), sources.end(), f.source) == sources.end())
            sources.push_back(f.source);
    std::vector<std::future<Result<kafka::cluster_metadata>>> pending;
    pending.reserve(sources.size());
    for (const auto& name : sources) {
        pending.push_back(
            std::async(std::launch::async, [ep = endpoint_of(*cfg.cluster(name)), &log] {
                return kafka::probe(ep, std::chrono::seconds(10), log.child("cluster " + ep.alias));
            }));
    }
    std::map<std::string, kafka::cluster_metadata> answered;
    for (size_t i = 0; i < sources.size(); ++i) {
        auto md = pending[i].get();
        if (md)
            answered.emplace(sources[i], std::move(md).value());
        else
            log.warn(md.error().message + "; the flows that read it start when it answers");
    }
    return check_overlaps(cfg, answered);
}

// The value of `key` in the request target's query (no percent-decoding:
// the values the routes take need none).
std::optional<std::string> query_value(const std::string& target, const std::string& key) {
    const auto q = target.find('?');
    if (q == std::string::npos) return std::nullopt;
    size_t pos = q + 1;
    while (pos <= target.size()) {
        auto amp = target.find('&', pos);
        if (amp == std::string::npos) amp = target.size();
        const std::string item = target.substr(pos, amp - pos);
        if (item.starts_with(key + "=")) return item.substr(key.size() + 1);
        pos = amp + 1;
    }
    return std::nullopt;
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
    if (auto r = check_overlaps_now(cfg, log.child("probe")); !r) {
        log.error(r.error().message);
        return exit_failure;
    }

    auto registry = std::make_shared<prometheus::Registry>();
    supervisor running(*registry, log);

    boost::asio::io_context io;
    std::map<std::string, http_route> routes;
    routes["/metrics"] = [&registry](const std::string&) {
        return http_reply{200, "text/plain; version=0.0.4; charset=utf-8",
                          prometheus::TextSerializer().Serialize(registry->Collect())};
    };
    // Alive means every running unit's loop goes round, not just that this
    // thread answers: a wedged flow thread makes a liveness probe restart us.
    // ?stall=DUR lets the probe set the bound to fit its own period and
    // failure threshold (default stall_bound).
    routes["/healthz"] = [&running](const std::string& target) {
        auto bound = std::chrono::duration_cast<std::chrono::milliseconds>(stall_bound);
        if (const auto stall = query_value(target, "stall")) {
            auto d = conf::parse_duration(*stall);
            if (!d || d.value().count() <= 0)
                return http_reply{400, "text/plain",
                                  "stall: " + (d ? "must be positive" : d.error().message) + "\n"};
            bound = d.value();
        }
        const std::string why = running.not_healthy(bound);
        return why.empty() ? http_reply{200, "text/plain", "ok\n"}
                           : http_reply{503, "text/plain", why + "\n"};
    };
    routes["/readyz"] = [&running](const std::string&) {
        const std::string why = running.not_ready();
        return why.empty() ? http_reply{200, "text/plain", "ready\n"}
                           : http_reply{503, "text/plain", why + "\n"};
    };
    routes["/status"] = [&running](const std::string&) {
        return http_reply{200, "application/json", running.status_json()};
    };
    admin_server admin(io, std::move(routes), cfg.daemon.admin_token, log.child("admin"));
    if (!cfg.daemon.admin_listen.empty()) {
        if (auto r = admin.listen(cfg.daemon.admin_listen); !r) {
            log.error(r.error().message);
            return exit_failure;
        }
    }

    if (auto r = running.start(std::make_shared<const conf::Config>(cfg)); !r) {
        log.error(r.error().message);
        return exit_failure;
    }

    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log.info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
        admin.stop();
        io.stop();
    });
    // SIGHUP hands the file to the supervisor's reload thread: this thread
    // keeps answering /healthz while flows catch up, stop and start.
    boost::asio::signal_set reload_signal(io, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hup;
    on_hup = [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        log.info("received SIGHUP, reloading " + cfg.path);
        running.request_reload(cfg.path);
        reload_signal.async_wait(on_hup);
    };
    reload_signal.async_wait(on_hup);
    io.run();

    // Every unit at once: taps store what they buffered, flows drain, and
    // each commits what is safe.
    running.stop();
    log.info("stopped");
    return exit_ok;
}

}  // namespace rpl::app
