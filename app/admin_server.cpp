#include "app/admin_server.h"

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <optional>

namespace rpl::app {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

bool same_secret(std::string_view a, std::string_view b) noexcept {
    // Every byte of the longer one is looked at whatever the contents.
    const std::size_t n = std::max(a.size(), b.size());
    unsigned diff = a.size() == b.size() ? 0U : 1U;
    for (std::size_t i = 0; i < n; ++i) {
        const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
        const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
        diff |= static_cast<unsigned>(x ^ y);
    }
    return diff == 0;
}

struct admin_server::shared {
    std::map<std::string, http_route> routes;
    std::string token;
    admin_limits limits;
    std::atomic<std::size_t> open{0};
};

namespace {

constexpr auto text_plain = "text/plain; charset=utf-8";

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket s, std::shared_ptr<admin_server::shared> sh)
        : stream_(std::move(s)), shared_(std::move(sh)) {}
    ~session() { --shared_->open; }
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    void start() { read(); }

private:
    void read() {
        parser_.emplace();
        parser_->header_limit(shared_->limits.max_header_bytes);
        parser_->body_limit(shared_->limits.max_body_bytes);
        // The whole request, not each read, has the deadline: a client
        // sending a byte at a time is cut off all the same.
        stream_.expires_after(shared_->limits.request_timeout);
        http::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
            ec == boost::asio::error::operation_aborted || ec == boost::asio::error::eof ||
            ec == boost::asio::error::connection_reset) {
            return;  // the client left, or took too long: nothing to answer
        }
        if (ec == http::error::header_limit) {
            reply_and_close(413, "request header over " +
                                     std::to_string(shared_->limits.max_header_bytes) + " bytes\n");
        } else if (ec == http::error::body_limit) {
            reply_and_close(413, "request body over " +
                                     std::to_string(shared_->limits.max_body_bytes) + " bytes\n");
        } else if (ec) {
            reply_and_close(400, "malformed request\n");
        } else {
            respond(parser_->release());
        }
    }

    void respond(const http::request<http::string_body>& req) {
        std::string target(req.target());
        const auto q = target.find('?');
        const std::string path = target.substr(0, q);
        http_reply reply;
        const auto& token = shared_->token;
        const auto auth = req[http::field::authorization];
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            reply = {405, text_plain, "method not allowed\n"};
        } else if (!token.empty() && path != "/healthz" && path != "/readyz" &&
                   !same_secret(std::string_view(auth.data(), auth.size()), "Bearer " + token)) {
            reply = {401, text_plain, "missing or wrong bearer token\n"};
        } else if (auto it = shared_->routes.find(path); it != shared_->routes.end()) {
            reply = it->second(target);
        } else {
            reply = {404, text_plain, "not found\n"};
        }
        write(reply, req.version(), req.keep_alive());
    }

    void reply_and_close(int status, std::string body) {
        write({status, text_plain, std::move(body)}, 11, false);
    }

    void write(http_reply reply, unsigned version, bool keep_alive) {
        auto res = std::make_shared<http::response<http::string_body>>(
            static_cast<http::status>(reply.status), version);
        res->set(http::field::server, "replicatord");
        res->set(http::field::content_type, reply.content_type);
        res->keep_alive(keep_alive);
        res->body() = std::move(reply.body);
        res->prepare_payload();
        stream_.expires_after(shared_->limits.request_timeout);
        http::async_write(stream_, *res,
                          [self = shared_from_this(), res](beast::error_code ec, size_t) {
                              if (ec) return;
                              if (res->keep_alive()) {
                                  self->read();
                              } else {
                                  self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
                              }
                          });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::shared_ptr<admin_server::shared> shared_;
};

}  // namespace

admin_server::admin_server(boost::asio::io_context& io, std::map<std::string, http_route> routes,
                           std::string token, Logger log, admin_limits limits)
    : io_(io),
      acceptor_(io),
      retry_(io),
      shared_(std::make_shared<shared>()),
      log_(std::move(log)) {
    shared_->routes = std::move(routes);
    shared_->token = std::move(token);
    shared_->limits = limits;
}

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
    acceptor_.async_accept(
        boost::asio::make_strand(io_), [this](beast::error_code ec, tcp::socket s) {
            if (ec) {
                accept_failed(ec);
                return;
            }
            if (shared_->open.load() >= shared_->limits.max_connections) {
                s.close(ec);  // over the limit: closed at once, costs nothing more
            } else {
                ++shared_->open;
                std::make_shared<session>(std::move(s), shared_)->start();
            }
            accept();
        });
}

void admin_server::accept_failed(const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;  // stopped
    ++accept_errors_;
    // Out of file descriptors, or a connection reset before it was taken:
    // the endpoint must outlive it. Warn at most every 10 s, try again soon.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_accept_warning_ >= std::chrono::seconds(10)) {
        last_accept_warning_ = now;
        log_.warn("admin endpoint cannot accept a connection: " + ec.message() + "; trying again");
    }
    retry_.expires_after(std::chrono::milliseconds(100));
    retry_.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && acceptor_.is_open()) accept();
    });
}

void admin_server::stop() noexcept {
    beast::error_code ec;
    acceptor_.close(ec);
    retry_.cancel(ec);
}

}  // namespace rpl::app
