#include "app/admin_server.h"

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace rpl::app {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket s, std::shared_ptr<const std::map<std::string, http_route>> routes,
            const std::string& token)
        : stream_(std::move(s)), routes_(std::move(routes)), token_(token) {}

    void start() { read(); }

private:
    void read() {
        req_ = {};
        stream_.expires_after(std::chrono::seconds(30));
        http::async_read(stream_, buffer_, req_,
                         [self = shared_from_this()](beast::error_code ec, size_t) {
                             if (!ec) self->respond();
                         });
    }

    void respond() {
        std::string target(req_.target());
        const auto q = target.find('?');
        const std::string path = target.substr(0, q);
        http_reply reply;
        if (req_.method() != http::verb::get && req_.method() != http::verb::head) {
            reply = {405, "text/plain; charset=utf-8", "method not allowed\n"};
        } else if (!token_.empty() && path != "/healthz" &&
                   req_[http::field::authorization] != "Bearer " + token_) {
            reply = {401, "text/plain; charset=utf-8", "missing or wrong bearer token\n"};
        } else if (auto it = routes_->find(path); it != routes_->end()) {
            reply = it->second(target);
        } else {
            reply = {404, "text/plain; charset=utf-8", "not found: " + path + "\n"};
        }
        auto res = std::make_shared<http::response<http::string_body>>(
            static_cast<http::status>(reply.status), req_.version());
        res->set(http::field::server, "replicatord");
        res->set(http::field::content_type, reply.content_type);
        res->keep_alive(req_.keep_alive());
        res->body() = std::move(reply.body);
        res->prepare_payload();
        http::async_write(stream_, *res,
                          [self = shared_from_this(), res](beast::error_code ec, size_t) {
                              if (ec) return;
                              if (res->keep_alive())
                                  self->read();
                              else
                                  self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
                          });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> req_;
    std::shared_ptr<const std::map<std::string, http_route>> routes_;
    const std::string& token_;
};

}  // namespace

admin_server::admin_server(boost::asio::io_context& io, std::map<std::string, http_route> routes,
                           std::string token, Logger log)
    : io_(io),
      acceptor_(io),
      routes_(std::make_shared<const std::map<std::string, http_route>>(std::move(routes))),
      token_(std::move(token)),
      log_(std::move(log)) {}

Result<void> admin_server::listen(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    if (colon == std::string::npos)
        return fail(errc::invalid_config, "admin_listen '" + host_port + "' is not host:port");
    std::string host = host_port.substr(0, colon);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    const std::string port = host_port.substr(colon + 1);
    beast::error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host.empty() ? "0.0.0.0" : host, port, ec);
    if (ec || results.empty())
        return fail(errc::invalid_config, "admin_listen " + host_port + ": " + ec.message());
    const tcp::endpoint ep = results.begin()->endpoint();
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
    if (ec)
        return fail(errc::io, "admin endpoint cannot listen on " + host_port + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    log_.info("admin endpoint on http://" + host + ":" + std::to_string(port_) +
              " (/metrics /healthz /readyz /status)");
    accept();
    return ok();
}

void admin_server::accept() {
    acceptor_.async_accept(boost::asio::make_strand(io_),
                           [this](beast::error_code ec, tcp::socket s) {
                               if (ec) return;  // closed on stop
                               std::make_shared<session>(std::move(s), routes_, token_)->start();
                               accept();
                           });
}

void admin_server::stop() noexcept {
    beast::error_code ec;
    acceptor_.close(ec);
}

}  // namespace rpl::app
