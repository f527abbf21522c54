// replicatorctl status: what a running replicatord is doing, read from its
// admin endpoint's /status and rendered as two tables (flows, taps).
//
//   replicatorctl status [--admin URL | --config F] [--watch [--interval 2s]] [--json]
//
// The admin address comes from --admin, else from --config's
// [daemon] admin_listen, else 127.0.0.1:9464. The bearer token comes from
// --config's admin_token or REPLICATORD_ADMIN_TOKEN; it is sent, never
// printed. On a terminal, lag and RPO are coloured against thresholds: RPO
// against the flow's rpo_target (green below half, yellow below, red at or
// over), lag against --lag-warn / --lag-crit. Plain text otherwise, or with
// NO_COLOR set. A unit whose meter has no figure yet (null in /status) shows
// "unknown" for lag and RPO, never 0.

#include "app/ctl.h"
#include "app/plan.h"
#include "conf/config.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rpl::app {

namespace {

constexpr const char* status_usage =
    R"(usage: replicatorctl status [--admin URL | --config F] [--watch [--interval DUR]] [--json]
                            [--lag-warn N] [--lag-crit N]
  --admin URL      the daemon's admin endpoint, e.g. http://127.0.0.1:9464
  --config F       take admin_listen and admin_token from F's [daemon] section
  --watch          redraw every --interval (default 2s) until interrupted
  --json           print /status as the daemon returned it
  --lag-warn N     lag (records) shown yellow from N (default 10000)
  --lag-crit N     lag (records) shown red from N (default 1000000)
  The bearer token (a non-loopback admin_listen needs one) comes from the
  config or REPLICATORD_ADMIN_TOKEN.
exit codes: 0 every flow and tap running, 1 something is not, 3 daemon unreachable
)";

struct status_args {
    std::string host = "127.0.0.1";
    std::string port = "9464";
    std::string token;
    bool watch = false;
    bool json = false;
    std::chrono::milliseconds interval{2000};
    long long lag_warn = 10000;
    long long lag_crit = 1000000;
};

[[noreturn]] void bad(const std::string& msg) {
    std::cerr << "replicatorctl status: " << msg << "\n" << status_usage;
    std::exit(exit_invalid_config);
}

// host:port or http://host:port[/...]; IPv6 in brackets.
bool split_address(std::string a, status_args& out) {
    if (a.starts_with("http://")) a = a.substr(7);
    if (a.starts_with("https://")) return false;
    if (const auto slash = a.find('/'); slash != std::string::npos) a = a.substr(0, slash);
    const auto colon = a.rfind(':');
    if (colon == std::string::npos || colon + 1 == a.size()) return false;
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty()) return false;
    out.host = host == "0.0.0.0" ? "127.0.0.1" : host;
    out.port = a.substr(colon + 1);
    return true;
}

struct fetched {
    int status = 0;
    std::string body;
    std::string error;  // transport failure
};

fetched get(const status_args& a, const std::string& target) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    fetched f;
    try {
        boost::asio::io_context io;
        boost::asio::ip::tcp::resolver resolver(io);
        beast::tcp_stream stream(io);
        stream.expires_after(std::chrono::seconds(5));
        stream.connect(resolver.resolve(a.host, a.port));
        http::request<http::string_body> req{http::verb::get, target, 11};
        req.set(http::field::host, a.host);
        if (!a.token.empty()) req.set(http::field::authorization, "Bearer " + a.token);
        http::write(stream, req);
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        http::read(stream, buf, res);
        f.status = static_cast<int>(res.result_int());
        f.body = std::move(res.body());
        beast::error_code ec;
        stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    } catch (const std::exception& e) {
        f.error = e.what();
    }
    return f;
}

enum class shade { none, green, yellow, red };

std::string paint(const std::string& s, shade c, bool colour) {
    if (!colour || c == shade::none) return s;
    const char* code = c == shade::green    ? "\x1b[32m"
                       : c == shade::yellow ? "\x1b[33m"
                                            : "\x1b[31m";
    return code + s + "\x1b[0m";
}

std::string seconds_text(double s) {
    std::ostringstream o;
    const auto whole = static_cast<long long>(s);
    if (s < 10)
        o << std::fixed << std::setprecision(1) << s << "s";
    else if (s < 120)
        o << whole << "s";
    else if (s < 7200)
        o << whole / 60 << "m" << (whole % 60 != 0 ? std::to_string(whole % 60) + "s" : "");
    else
        o << whole / 3600 << "h"
          << (whole % 3600 / 60 != 0 ? std::to_string(whole % 3600 / 60) + "m" : "");
    return o.str();
}

shade rpo_shade(double rpo, const boost::optional<double>& target) {
    if (!target) return shade::none;
    if (rpo >= *target) return shade::red;
    return rpo >= *target / 2 ? shade::yellow : shade::green;
}

shade lag_shade(long long lag, const status_args& a) {
    if (lag >= a.lag_crit) return shade::red;
    return lag >= a.lag_warn ? shade::yellow : shade::green;
}

// JSON null (no figure yet) reads as a leaf "null" that is no number: the
// cell says "unknown" in red, never a 0 that would claim safety.
std::pair<std::string, shade> lag_cell(const boost::optional<long long>& lag,
                                       const status_args& a) {
    if (!lag) return {"unknown", shade::red};
    return {std::to_string(*lag), lag_shade(*lag, a)};
}

std::pair<std::string, shade> rpo_cell(const boost::optional<double>& rpo,
                                       const boost::optional<double>& target) {
    if (!rpo) return {"unknown", shade::red};
    return {seconds_text(*rpo), rpo_shade(*rpo, target)};
}

shade state_shade(const std::string& state) {
    if (state == "running") return shade::green;
    return state == "starting" ? shade::yellow : shade::red;
}

std::string list_text(const boost::property_tree::ptree& t, const std::string& key) {
    std::string o;
    if (auto child = t.get_child_optional(key))
        for (const auto& [_, v] : *child) o += (o.empty() ? "" : ",") + v.get_value<std::string>();
    return o;
}

size_t list_size(const boost::property_tree::ptree& t, const std::string& key) {
    const auto child = t.get_child_optional(key);
    return child ? child->size() : 0;
}

// Columns with the colour codes left out of the width computation.
void print_coloured_table(const std::vector<std::vector<std::pair<std::string, shade>>>& rows,
                          bool colour, std::ostream& out) {
    std::vector<size_t> width;
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].first.size());
        }
    for (const auto& r : rows) {
        for (size_t i = 0; i < r.size(); ++i) {
            out << paint(r[i].first, r[i].second, colour);
            if (i + 1 < r.size()) out << std::string(width[i] - r[i].first.size() + 2, ' ');
        }
        out << "\n";
    }
}

// Renders one /status document; returns whether everything runs.
bool render(const std::string& body, const status_args& a, bool colour, std::ostream& out) {
    namespace pt = boost::property_tree;
    pt::ptree doc;
    std::istringstream in(body);
    pt::read_json(in, doc);
    bool all_running = true;

    out << "config " << doc.get<std::string>("config", "?") << "\n\nFLOWS\n";
    std::vector<std::vector<std::pair<std::string, shade>>> rows{
        {{"FLOW", shade::none},
         {"ROUTE", shade::none},
         {"STATE", shade::none},
         {"LAG", shade::none},
         {"RPO", shade::none},
         {"RPO TARGET", shade::none},
         {"CHECKPOINT AGE", shade::none},
         {"GROUPS SYNCED/SKIPPED", shade::none},
         {"TOPICS", shade::none},
         {"LAST ERROR", shade::none}}};
    if (auto flows = doc.get_child_optional("flows")) {
        for (const auto& [_, f] : *flows) {
            const auto state = f.get<std::string>("state", "?");
            all_running = all_running && state == "running";
            const auto lag = f.get_optional<long long>("lag");
            const auto rpo = f.get_optional<double>("rpo_seconds");
            const auto target = f.get_optional<double>("rpo_target_seconds");
            std::string cp_age = "-";
            std::string groups = "-";
            if (f.get_child_optional("checkpoints.checkpoints")) {
                if (auto age = f.get_optional<double>("checkpoints.last_pass_age_seconds"))
                    cp_age = seconds_text(*age);
                groups = std::to_string(list_size(f, "checkpoints.groups_synced")) + "/" +
                         std::to_string(list_size(f, "checkpoints.groups_skipped"));
            }
            rows.push_back(
                {{f.get<std::string>("name", "?"), shade::none},
                 {f.get<std::string>("source", "?") + "->" + f.get<std::string>("target", "?"),
                  shade::none},
                 {state, state_shade(state)},
                 lag_cell(lag, a),
                 rpo_cell(rpo, target),
                 {target ? seconds_text(*target) : "-", shade::none},
                 {cp_age, shade::none},
                 {groups, shade::none},
                 {std::to_string(list_size(f, "topics")), shade::none},
                 {f.get<std::string>("last_error", ""), shade::red}});
        }
    }
    print_coloured_table(rows, colour, out);

    out << "\nTAPS\n";
    rows = {{{"TAP", shade::none},
             {"SOURCE", shade::none},
             {"STATE", shade::none},
             {"LAG", shade::none},
             {"RPO", shade::none},
             {"RPO TARGET", shade::none},
             {"SEGMENTS", shade::none},
             {"STORAGE", shade::none},
             {"LAST ERROR", shade::none}}};
    if (auto taps = doc.get_child_optional("taps")) {
        for (const auto& [_, t] : *taps) {
            const auto state = t.get<std::string>("state", "?");
            all_running = all_running && state == "running";
            const auto lag = t.get_optional<long long>("lag");
            const auto rpo = t.get_optional<double>("rpo_seconds");
            const auto target = t.get_optional<double>("rpo_target_seconds");
            rows.push_back({{t.get<std::string>("name", "?"), shade::none},
                            {t.get<std::string>("source", "?"), shade::none},
                            {state, state_shade(state)},
                            lag_cell(lag, a),
                            rpo_cell(rpo, target),
                            {target ? seconds_text(*target) : "-", shade::none},
                            {t.get<std::string>("segments", "0"), shade::none},
                            {t.get<std::string>("storage", ""), shade::none},
                            {t.get<std::string>("last_error", ""), shade::red}});
        }
    }
    print_coloured_table(rows, colour, out);

    // JSON null reads as a leaf; a reload reads as a subtree.
    if (auto r = doc.get_child_optional("last_reload"); r && !r->empty()) {
        const auto result = r->get<std::string>("result", "?");
        out << "\nlast reload: "
            << paint(result, result == "applied" ? shade::green : shade::red, colour) << "  added ["
            << list_text(*r, "added") << "]  removed [" << list_text(*r, "removed")
            << "]  restarted [" << list_text(*r, "restarted") << "]";
        if (list_size(*r, "failed") > 0) out << "  failed [" << list_text(*r, "failed") << "]";
        out << "\n";
        if (const auto err = r->get<std::string>("error", ""); !err.empty())
            out << paint(err, shade::red, colour) << "\n";
    }
    return all_running;
}

volatile std::sig_atomic_t interrupted = 0;

}  // namespace

int ctl_status(int argc, char** argv) {
    status_args a;
    std::string config_path;
    std::string admin_url;
    for (int i = 2; i < argc; ++i) {
        const std::string s = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad(s + " needs a value");
            return argv[++i];
        };
        auto number = [&]() -> long long {
            const std::string v = value();
            char* end = nullptr;
            const long long n = std::strtoll(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n < 0) {
                std::string msg = s;
                msg += " expects a number, got '" + v + "'";
                bad(msg);
            }
            return n;
        };
        if (s == "--admin")
            admin_url = value();
        else if (s == "--config")
            config_path = value();
        else if (s == "--watch")
            a.watch = true;
        else if (s == "--json")
            a.json = true;
        else if (s == "--interval") {
            const std::string v = value();
            auto d = conf::parse_duration(v);
            if (!d || d.value().count() < 100)
                bad("--interval expects a duration >= 100ms, got '" + v + "'");
            a.interval = d.value();
        } else if (s == "--lag-warn")
            a.lag_warn = number();
        else if (s == "--lag-crit")
            a.lag_crit = number();
        else if (s == "--help" || s == "-h") {
            std::cout << status_usage;
            return exit_ok;
        } else
            bad("unknown argument '" + s + "'");
    }
    if (const char* env = std::getenv("REPLICATORD_ADMIN_TOKEN"); env != nullptr) a.token = env;
    if (!config_path.empty()) {
        auto cfg = conf::load(config_path);
        if (!cfg) {
            std::cerr << cfg.error().message << "\nreplicatorctl: " << config_path
                      << " is invalid\n";
            return exit_invalid_config;
        }
        if (admin_url.empty()) admin_url = cfg.value().daemon.admin_listen;
        if (!cfg.value().daemon.admin_token.empty()) a.token = cfg.value().daemon.admin_token;
    }
    if (!admin_url.empty() && !split_address(admin_url, a))
        bad("--admin expects http://host:port or host:port, got '" + admin_url + "'");

    const bool colour = ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
    if (a.watch) std::signal(SIGINT, [](int) { interrupted = 1; });
    int rc = exit_ok;
    do {
        const fetched f = get(a, "/status");
        std::ostringstream screen;
        if (!f.error.empty()) {
            screen << "replicatorctl status: cannot reach the admin endpoint " << a.host << ":"
                   << a.port << ": " << f.error << "\n";
            rc = exit_unreachable;
        } else if (f.status != 200) {
            screen << "replicatorctl status: " << a.host << ":" << a.port << "/status answered "
                   << f.status << ": " << f.body;
            rc = f.status == 401 ? exit_invalid_config : exit_failure;
        } else if (a.json) {
            screen << f.body;
            rc = exit_ok;
        } else {
            try {
                rc = render(f.body, a, colour, screen) ? exit_ok : exit_failure;
            } catch (const std::exception& e) {
                screen << "replicatorctl status: /status returned something that is not the "
                          "expected JSON: "
                       << e.what() << "\n";
                rc = exit_failure;
            }
        }
        if (a.watch && colour) std::cout << "\x1b[H\x1b[2J";
        (rc == exit_ok || rc == exit_failure ? std::cout : std::cerr) << screen.str();
        std::cout.flush();
        if (!a.watch) break;
        const auto until = std::chrono::steady_clock::now() + a.interval;
        while (!interrupted && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!colour && !interrupted) std::cout << "\n";
    } while (!interrupted);
    return rc;
}

}  // namespace rpl::app
