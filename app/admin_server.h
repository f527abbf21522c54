// The admin HTTP endpoint: one small Boost.Beast server on the daemon's
// io_context. Routes are plain functions from a request target to a reply;
// /metrics serialises the one Prometheus registry.
#pragma once

#include "kafka/log.h"
#include "kafka/result.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace rpl::app {

struct http_reply {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

using http_route = std::function<http_reply(const std::string& target)>;

class admin_server {
public:
    // `listen` is host:port; `token`, when non-empty, is required as
    // "Authorization: Bearer <token>" on every route but /healthz.
    admin_server(boost::asio::io_context& io, std::map<std::string, http_route> routes,
                 std::string token, Logger log);
    [[nodiscard]] Result<void> listen(const std::string& host_port);
    void stop() noexcept;
    [[nodiscard]] unsigned short port() const noexcept { return port_; }

private:
    void accept();

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::shared_ptr<const std::map<std::string, http_route>> routes_;
    std::string token_;
    Logger log_;
    unsigned short port_ = 0;
};

}  // namespace rpl::app
