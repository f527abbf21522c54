#include "app/daemon.h"

#include "app/admin_server.h"
#include "app/plan.h"
#include "app/supervisor.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <boost/asio/signal_set.hpp>

#include <filesystem>
#include <functional>

namespace rpl::app {

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
    supervisor running(*registry, log);

    // Every cluster must answer within 10 s before anything starts: an
    // unreachable cluster is exit code 3, named with its bootstrap.
    if (auto md = probe_clusters(cfg, std::chrono::seconds(10), log.child("probe")); !md) {
        log.error(md.error().message);
        return md.error().code == errc::unreachable || md.error().code == errc::timeout
                   ? exit_unreachable
                   : exit_failure;
    }

    boost::asio::io_context io;
    std::map<std::string, http_route> routes;
    routes["/metrics"] = [&registry](const std::string&) {
        return http_reply{200, "text/plain; version=0.0.4; charset=utf-8",
                          prometheus::TextSerializer().Serialize(registry->Collect())};
    };
    routes["/healthz"] = [](const std::string&) { return http_reply{200, "text/plain", "ok\n"}; };
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
        return r.error().code == errc::unreachable || r.error().code == errc::timeout
                   ? exit_unreachable
                   : exit_failure;
    }

    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log.info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
        admin.stop();
        io.stop();
    });
    // SIGHUP re-reads the file, on this thread: admin requests wait while a
    // reload starts and stops flows.
    boost::asio::signal_set reload_signal(io, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hup;
    on_hup = [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        log.info("received SIGHUP, reloading " + cfg.path);
        (void)running.reload(cfg.path);
        reload_signal.async_wait(on_hup);
    };
    reload_signal.async_wait(on_hup);
    io.run();

    // Reverse start order: taps roll and store what they buffered, then commit.
    running.stop();
    log.info("stopped");
    return exit_ok;
}

}  // namespace rpl::app
