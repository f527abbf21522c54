// The admin HTTP endpoint: one small Boost.Beast server on the daemon's
// io_context. Routes are plain functions from a request target to a reply;
// /metrics serialises the one Prometheus registry.
#pragma once

#include "kafka/log.h"
#include "kafka/result.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace rpl::app {

struct http_reply {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

using http_route = std::function<http_reply(const std::string& target)>;

// What one client may cost the daemon. A request over a limit gets 413, a
// malformed one 400, and either closes its connection; a client that does
// not finish its request in time is cut off; connections over the limit are
// closed as soon as they are accepted.
struct admin_limits {
    std::size_t max_connections = 64;
    std::uint32_t max_header_bytes = 8 * 1024;
    std::uint64_t max_body_bytes = 1024;  // GET and HEAD carry none
    std::chrono::milliseconds request_timeout{10000};
};

// Whether two secrets are equal, in a time that depends on their lengths
// only, never on where they first differ.
[[nodiscard]] bool same_secret(std::string_view a, std::string_view b) noexcept;

class admin_server {
public:
    // `listen` is host:port; `token`, when non-empty, is required as
    // "Authorization: Bearer <token>" on every route but /healthz and /readyz.
    admin_server(boost::asio::io_context& io, std::map<std::string, http_route> routes,
                 std::string token, Logger log, admin_limits limits = {});
    [[nodiscard]] Result<void> listen(const std::string& host_port);
    void stop() noexcept;
    [[nodiscard]] unsigned short port() const noexcept { return port_; }
    // Accepts that failed (each is retried), e.g. while out of descriptors.
    [[nodiscard]] std::uint64_t accept_errors() const noexcept { return accept_errors_.load(); }

    struct shared;  // what every session reads, and the count of open ones

private:
    void accept();
    void accept_failed(const boost::system::error_code& ec);

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_;
    std::shared_ptr<shared> shared_;
    Logger log_;
    unsigned short port_ = 0;
    std::chrono::steady_clock::time_point last_accept_warning_{};
    std::atomic<std::uint64_t> accept_errors_{0};
};

}  // namespace rpl::app
