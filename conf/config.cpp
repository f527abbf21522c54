// TOML -> Config, checking everything on the way.
//
// One pass over the document with a table_reader per table: each reader
// records the keys it was asked for, so whatever is left over is an unknown
// key and gets a "did you mean" from the keys that table does know. Errors are
// collected, never thrown, so that one run of `replicatord --check` shows
// every mistake in the file; they are sorted by position at the end because
// cross-reference checks run after the tables they refer to.
//
// Secrets never reach a message: type errors do not echo values, storage URLs
// go through masked_url(), and librdkafka's own text is scrubbed of the value
// when the property is a secret.

#include "conf/config.h"

#include "kafka/log.h"
#include "kafka/properties.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <system_error>

namespace rpl::conf {

const cluster_config* Config::cluster(const std::string& name) const {
    const auto it = clusters.find(name);
    return it == clusters.end() ? nullptr : &it->second;
}

const flow_config* Config::flow(const std::string& name) const {
    for (const auto& f : flows) {
        if (f.name == name) return &f;
    }
    return nullptr;
}

namespace {

using pos_t = toml::source_position;

// ---------------------------------------------------------------------------
// Messages

// A value or key written into a message: quoted, and with control characters
// escaped so that every error stays on one line whatever the file contains.
std::string quote(std::string_view s) {
    std::string out = "'";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "'";
}

std::string one_line(std::string_view s) {
    std::string q = quote(s);
    return q.substr(1, q.size() - 2);
}

struct diagnostic {
    std::uint32_t line;
    std::uint32_t column;
    std::string text;
};

class diagnostics {
public:
    explicit diagnostics(std::string file) : file_(std::move(file)) {}

    void error(pos_t pos, std::string_view key_path, std::string_view what) {
        std::string text = file_ + ":" + std::to_string(pos.line) + ":" +
                           std::to_string(pos.column) + ": " + one_line(key_path) + ": " +
                           one_line(what);
        list_.push_back({pos.line, pos.column, std::move(text)});
    }

    [[nodiscard]] bool empty() const { return list_.empty(); }

    [[nodiscard]] std::string joined() {
        std::stable_sort(list_.begin(), list_.end(), [](const diagnostic& a, const diagnostic& b) {
            return a.line != b.line ? a.line < b.line : a.column < b.column;
        });
        std::string out;
        for (const auto& d : list_) {
            if (!out.empty()) out += '\n';
            out += d.text;
        }
        return out;
    }

private:
    std::string file_;
    std::vector<diagnostic> list_;
};

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// The closest candidate, if it is close enough to be what was meant. The
// bound grows with the word so that "src" still finds "source" but "foo"
// does not find "tap".
std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
    std::optional<std::string> best;
    std::size_t best_d = 0;
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(word, c);
        const std::size_t bound =
            std::min<std::size_t>(3, std::max<std::size_t>(1, std::max(word.size(), c.size()) / 2));
        if (d <= bound && (!best || d < best_d)) {
            best = c;
            best_d = d;
        }
    }
    return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    const auto c = closest(word, candidates);
    return c ? "; did you mean " + quote(*c) + "?" : std::string();
}

std::string type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        case toml::node_type::none: break;
    }
    return "nothing";
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

// Aliases and names end up in topic names (prefix naming), consumer group
// ids and metric labels, so they keep to Kafka's topic alphabet.
bool is_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

constexpr std::string_view name_rule = "use only letters, digits, '.', '_' and '-'";

// ---------------------------------------------------------------------------
// table_reader: typed access to one table, with unknown-key detection.

class table_reader {
public:
    table_reader(diagnostics& diag, const toml::table& table, std::string path)
        : diag_(diag), table_(table), path_(std::move(path)) {}

    table_reader(const table_reader&) = delete;
    table_reader& operator=(const table_reader&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string path(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }
    [[nodiscard]] pos_t header() const { return table_.source().begin; }

    // The node for key, or nullptr; either way the key becomes known.
    const toml::node* find(std::string_view key) {
        known_.emplace_back(key);
        return table_.get(key);
    }

    // Where messages about key should point: its value, or the table header
    // when the key is absent.
    [[nodiscard]] pos_t pos(std::string_view key) const {
        const toml::node* n = table_.get(key);
        return n ? n->source().begin : header();
    }

    void error(std::string_view key, std::string_view what) {
        diag_.error(pos(key), path(key), what);
    }
    void error_at(pos_t p, std::string_view key_path, std::string_view what) {
        diag_.error(p, key_path, what);
    }

    // Reports a missing key at the table header; true if present.
    bool required(std::string_view key) {
        if (find(key)) return true;
        diag_.error(header(), path(key), "required key is missing");
        return false;
    }

    void wrong_type(std::string_view key, const toml::node& n, std::string_view expected) {
        diag_.error(n.source().begin, path(key),
                    "expected " + std::string(expected) + ", got " + type_name(n));
    }

    // The typed readers below leave `out` untouched unless the key is present
    // and valid, so it keeps its default; they return true only then.

    bool string(std::string_view key, std::string& out) {
        const toml::node* n = find(key);
        if (!n) return false;
        if (const auto* v = n->as_string()) {
            out = v->get();
            return true;
        }
        wrong_type(key, *n, "a string");
        return false;
    }

    bool boolean(std::string_view key, bool& out) {
        const toml::node* n = find(key);
        if (!n) return false;
        if (const auto* v = n->as_boolean()) {
            out = v->get();
            return true;
        }
        wrong_type(key, *n, "a boolean (true or false)");
        return false;
    }

    bool integer(std::string_view key, int& out, std::int64_t lo, std::int64_t hi) {
        const toml::node* n = find(key);
        if (!n) return false;
        const auto* v = n->as_integer();
        if (!v) {
            wrong_type(key, *n, "an integer");
            return false;
        }
        if (v->get() < lo || v->get() > hi) {
            error(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                           ", got " + std::to_string(v->get()));
            return false;
        }
        out = static_cast<int>(v->get());
        return true;
    }

    // A positive duration: every duration in the schema is an interval or a
    // target, and zero or less would mean a busy loop or a meaningless goal.
    bool interval(std::string_view key, duration& out) {
        const toml::node* n = find(key);
        if (!n) return false;
        const auto* v = n->as_string();
        if (!v) {
            if (n->is_number()) {
                error(key,
                      "expected a duration string with a unit, e.g. \"5s\", got " + type_name(*n));
            } else {
                wrong_type(key, *n, "a duration string such as \"5s\"");
            }
            return false;
        }
        auto d = parse_duration(v->get());
        if (!d) {
            error(key, d.error().message);
            return false;
        }
        if (d.value().count() <= 0) {
            error(key, "must be greater than zero, got \"" + v->get() + "\"");
            return false;
        }
        out = d.value();
        return true;
    }

    bool interval(std::string_view key, std::optional<duration>& out) {
        duration d{};
        if (!interval(key, d)) return false;
        out = d;
        return true;
    }

    // A positive count (records, messages): a TOML integer.
    bool count(std::string_view key, std::uint64_t& out) {
        const toml::node* n = find(key);
        if (!n) return false;
        const auto* i = n->as_integer();
        if (!i) {
            wrong_type(key, *n, "an integer");
            return false;
        }
        if (i->get() <= 0) {
            error(key, "must be greater than zero, got " + std::to_string(i->get()));
            return false;
        }
        out = static_cast<std::uint64_t>(i->get());
        return true;
    }

    // A positive size: a string with a unit, or a TOML integer of bytes.
    bool size(std::string_view key, std::uint64_t& out) {
        const toml::node* n = find(key);
        if (!n) return false;
        std::uint64_t bytes = 0;
        if (const auto* i = n->as_integer()) {
            if (i->get() <= 0) {
                error(key, "must be greater than zero, got " + std::to_string(i->get()));
                return false;
            }
            bytes = static_cast<std::uint64_t>(i->get());
        } else if (const auto* s = n->as_string()) {
            auto r = parse_size(s->get());
            if (!r) {
                error(key, r.error().message);
                return false;
            }
            if (r.value() == 0) {
                error(key, "must be greater than zero, got \"" + s->get() + "\"");
                return false;
            }
            bytes = r.value();
        } else {
            wrong_type(key, *n, "a size such as \"64MiB\" or an integer number of bytes");
            return false;
        }
        out = bytes;
        return true;
    }

    // An array of strings. A bare string is the most common slip, so the
    // message shows the fix.
    bool strings(std::string_view key, std::vector<std::string>& out) {
        const toml::node* n = find(key);
        if (!n) return false;
        const auto* arr = n->as_array();
        if (!arr) {
            if (const auto* s = n->as_string()) {
                error(key, "expected an array of strings, got a string; write " + std::string(key) +
                               " = [\"" + s->get() + "\"]");
            } else {
                wrong_type(key, *n, "an array of strings");
            }
            return false;
        }
        std::vector<std::string> values;
        bool good = true;
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const toml::node& e = *arr->get(i);
            if (const auto* s = e.as_string()) {
                values.push_back(s->get());
            } else {
                diag_.error(e.source().begin, path(key) + "[" + std::to_string(i) + "]",
                            "expected a string, got " + type_name(e));
                good = false;
            }
        }
        if (!good) return false;
        out = std::move(values);
        return true;
    }

    // Full-match regexes: each must compile, so that a typo fails at start-up
    // rather than silently matching nothing.
    bool regexes(std::string_view key, std::vector<std::string>& out, bool allow_empty) {
        std::vector<std::string> values;
        if (!strings(key, values)) return false;
        if (values.empty() && !allow_empty) {
            error(key, "is empty, so nothing would match; use [\".*\"] for everything");
            return false;
        }
        bool good = true;
        const auto* arr = table_.get(key)->as_array();
        for (std::size_t i = 0; i < values.size(); ++i) {
            try {
                std::regex re(values[i], std::regex::ECMAScript);
            } catch (const std::regex_error& e) {
                diag_.error(arr->get(i)->source().begin, path(key) + "[" + std::to_string(i) + "]",
                            "invalid regex " + quote(values[i]) + ": " + e.what());
                good = false;
            }
        }
        if (!good) return false;
        out = std::move(values);
        return true;
    }

    // Reports every key nobody asked for.
    void finish() {
        for (auto&& [k, v] : table_) {
            if (std::find(known_.begin(), known_.end(), k.str()) != known_.end()) continue;
            diag_.error(k.source().begin, path(k.str()),
                        "unknown key" + did_you_mean(k.str(), known_));
        }
    }

private:
    diagnostics& diag_;
    const toml::table& table_;
    std::string path_;
    std::vector<std::string> known_;
};

// ---------------------------------------------------------------------------
// Sections

source_pos to_pos(const std::string& file, pos_t p) {
    return source_pos{file, static_cast<int>(p.line), static_cast<int>(p.column)};
}

bool is_loopback(std::string_view host) {
    return host == "localhost" || host == "::1" || host.starts_with("127.");
}

void read_daemon(table_reader& r, daemon_config& d) {
    if (r.string("state_dir", d.state_dir) && d.state_dir.empty())
        r.error("state_dir", "must not be empty");

    r.string("admin_token", d.admin_token);
    if (r.string("admin_listen", d.admin_listen)) {
        // host:port, with IPv6 hosts in brackets: [::1]:9464.
        const std::string& a = d.admin_listen;
        const auto colon = a.rfind(':');
        std::string host = colon == std::string::npos ? a : a.substr(0, colon);
        const std::string port = colon == std::string::npos ? "" : a.substr(colon + 1);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
            host = host.substr(1, host.size() - 2);
        unsigned long port_n = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_n);
        const bool port_ok = !port.empty() && ec == std::errc{} &&
                             end == port.data() + port.size() && port_n <= 65535;
        const bool host_ok = !host.empty() && host.find_first_of(" /[]") == std::string::npos &&
                             (host.find(':') == std::string::npos || a.front() == '[');
        if (!port_ok || !host_ok) {
            r.error(
                "admin_listen",
                "expected host:port, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\", got " + quote(a));
        } else if (!is_loopback(host)) {
            // The admin endpoint can stop flows; off loopback it needs a token.
            if (d.admin_token.empty()) {
                r.error("admin_listen", "listening on " + quote(a) +
                                            ", which is not loopback, requires daemon.admin_token");
            }
        }
    }

    if (r.string("log_level", d.log_level)) {
        level l{};
        if (!parse_level(d.log_level, l)) {
            r.error("log_level", "unknown level " + quote(d.log_level) +
                                     "; expected trace, debug, info, warn, error or off");
        }
    }
    r.finish();
}

std::string scalar_to_string(const toml::node& n) {
    if (const auto* s = n.as_string()) return s->get();
    if (const auto* i = n.as_integer()) return std::to_string(i->get());
    if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
    if (const auto* f = n.as_floating_point()) {
        char buf[64];
        const auto res = std::to_chars(buf, buf + sizeof buf, f->get());
        return std::string(buf, res.ptr);
    }
    return {};
}

struct client_entry {
    std::string name;
    const toml::node* value;
    pos_t key_pos;  // the first segment of a dotted key: where the line starts
};

// Unquoted dotted keys (sasl.password = "...") are nested tables to TOML;
// to librdkafka they are one property name, so flatten them back.
void flatten_client(const toml::table& t, const std::string& prefix, const pos_t* top_pos,
                    std::vector<client_entry>& out) {
    for (auto&& [k, v] : t) {
        const std::string name =
            prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
        const pos_t kp = top_pos ? *top_pos : k.source().begin;
        if (const auto* sub = v.as_table()) {
            flatten_client(*sub, name, &kp, out);
        } else {
            out.push_back({name, &v, kp});
        }
    }
}

void read_client(diagnostics& diag, const toml::table& t, const std::string& cluster_path,
                 std::map<std::string, std::string>& out) {
    std::vector<client_entry> entries;
    flatten_client(t, "", nullptr, entries);
    std::map<std::string, pos_t> seen;
    for (const auto& e : entries) {
        const std::string key_path = cluster_path + ".client." + e.name;
        const pos_t vpos = e.value->source().begin;
        if (!e.value->is_string() && !e.value->is_number() && !e.value->is_boolean()) {
            diag.error(vpos, key_path,
                       "expected a string, number or boolean, got " + type_name(*e.value));
            continue;
        }
        if (const auto [it, fresh] = seen.emplace(e.name, e.key_pos); !fresh) {
            diag.error(e.key_pos, key_path,
                       "set twice; first at line " + std::to_string(it->second.line));
            continue;
        }
        if (e.name == "bootstrap.servers" || e.name == "metadata.broker.list") {
            diag.error(e.key_pos, key_path,
                       "set the brokers with " + cluster_path + ".bootstrap instead");
            continue;
        }
        const std::string value = scalar_to_string(*e.value);
        if (auto r = kafka::check_property(e.name, value); !r) {
            std::string msg = r.error().message;
            if (is_secret_key(e.name) && !value.empty()) {
                for (auto at = msg.find(value); at != std::string::npos; at = msg.find(value, at)) {
                    msg.replace(at, value.size(), "******");
                    at += 6;
                }
            }
            // librdkafka objects either to the name or to the value; point at
            // whichever it means.
            const bool about_name = msg.starts_with("No such configuration property") ||
                                    msg.find("not supported in this build") != std::string::npos;
            diag.error(about_name ? e.key_pos : vpos, key_path, "rejected by librdkafka: " + msg);
            continue;
        }
        out[e.name] = value;
    }
}

void read_clusters(diagnostics& diag, const toml::node& node, Config& c) {
    const auto* t = node.as_table();
    if (!t) {
        diag.error(node.source().begin, "clusters",
                   "expected a table of clusters ([clusters.NAME]), got " + type_name(node));
        return;
    }
    for (auto&& [k, v] : *t) {
        const std::string name(k.str());
        const std::string path = "clusters." + name;
        const auto* ct = v.as_table();
        if (!ct) {
            diag.error(v.source().begin, path,
                       "expected a table ([" + path + "] with bootstrap = \"host:port\"), got " +
                           type_name(v));
            continue;
        }
        if (!is_name(name)) {
            diag.error(k.source().begin, path,
                       "cluster alias " + quote(name) + " must " + std::string(name_rule) +
                           " (it becomes a topic-name prefix)");
        }
        table_reader r(diag, *ct, path);
        cluster_config cc;
        cc.name = name;
        cc.pos = to_pos(c.path, r.header());
        if (r.required("bootstrap") && r.string("bootstrap", cc.bootstrap)) {
            bool good = !cc.bootstrap.empty();
            std::stringstream ss(cc.bootstrap);
            for (std::string item; std::getline(ss, item, ',');) {
                if (item.find_first_not_of(" \t") == std::string::npos) good = false;
            }
            if (!good)
                r.error("bootstrap",
                        "expected a comma-separated list of host:port, got " + quote(cc.bootstrap));
        }
        if (const toml::node* cl = r.find("client")) {
            if (const auto* clt = cl->as_table()) {
                read_client(diag, *clt, path, cc.client);
            } else {
                r.wrong_type("client", *cl, "a table of librdkafka properties");
            }
        }
        r.finish();
        c.clusters.emplace(name, std::move(cc));
    }
}

naming_policy read_naming(table_reader& r, naming_policy def) {
    std::string s;
    if (!r.string("naming", s)) return def;
    if (s == "prefix") return naming_policy::prefix;
    if (s == "identity") return naming_policy::identity;
    r.error("naming", "expected \"prefix\" or \"identity\", got " + quote(s));
    return def;
}

// Cross-reference checks need to know what each name refers to.
struct known_names {
    const Config& config;
    std::vector<std::string> clusters;

    explicit known_names(const Config& c) : config(c) {
        for (const auto& [name, cc] : c.clusters) clusters.push_back(name);
    }

    // Empty when the name is a known cluster; the message otherwise.
    [[nodiscard]] std::string check_cluster(const std::string& name) const {
        if (config.clusters.count(name)) return {};
        return "unknown cluster " + quote(name) + did_you_mean(name, clusters) +
               " (known clusters: " + join(clusters) + ")";
    }
};

// Flows and taps share one namespace: their names key consumer groups,
// state directories and metric labels, where a collision would mix them up.
struct name_registry {
    struct entry {
        std::string owner;  // "flow[0]", "pair[1]", "tap[2]"
        std::uint32_t line;
    };
    std::map<std::string, entry> names;

    // Empty if the name is new (and records it); otherwise where it was
    // first used, as "flow[0] at line 12".
    std::string claim(const std::string& name, const std::string& owner, std::uint32_t line) {
        const auto [it, fresh] = names.emplace(name, entry{owner, line});
        if (fresh) return {};
        return it->second.owner + " at line " + std::to_string(it->second.line);
    }
};

// Reads a flow's optional name; validates it if written, claims it either way.
void claim_name(table_reader& r, name_registry& names, const std::string& name, bool explicit_name,
                const std::string& owner) {
    if (explicit_name && !is_name(name)) {
        r.error("name", "name " + quote(name) + " must " + std::string(name_rule));
        return;
    }
    const pos_t p = r.pos("name");
    if (auto first = names.claim(name, owner, p.line); !first.empty()) {
        r.error("name", "duplicate name " + quote(name) + "; " + first + " already uses it");
    }
}

void read_flow(table_reader& r, const known_names& known, bool check_clusters, name_registry& names,
               const std::string& file, Config& c) {
    flow_config f;
    f.pos = to_pos(file, r.header());

    bool source_ok = r.required("source") && r.string("source", f.source);
    bool target_ok = r.required("target") && r.string("target", f.target);
    if (source_ok && check_clusters) {
        if (auto m = known.check_cluster(f.source); !m.empty()) {
            r.error("source", m);
            source_ok = false;
        }
    }
    if (target_ok && check_clusters) {
        if (auto m = known.check_cluster(f.target); !m.empty()) {
            r.error("target", m);
            target_ok = false;
        }
    }
    if (source_ok && target_ok && f.source == f.target) {
        r.error("target", "source and target are both " + quote(f.source) +
                              "; a flow copies between two different clusters");
    }

    const bool explicit_name = r.string("name", f.name);
    if (!explicit_name) f.name = f.source + "-to-" + f.target;
    if (explicit_name || (source_ok && target_ok))
        claim_name(r, names, f.name, explicit_name, r.path());

    r.regexes("topics", f.topics, false);
    r.regexes("exclude_topics", f.exclude_topics, true);
    f.naming = read_naming(r, f.naming);
    if (r.string("separator", f.separator) && f.naming == naming_policy::prefix &&
        !is_name(f.separator)) {
        r.error("separator", "with prefix naming the separator must be non-empty and " +
                                 std::string(name_rule) + ", got " + quote(f.separator));
    }
    r.regexes("groups", f.groups, true);
    r.regexes("exclude_groups", f.exclude_groups, true);
    r.interval("checkpoint_interval", f.checkpoint_interval);
    r.interval("refresh_interval", f.refresh_interval);
    r.interval("heartbeat_interval", f.heartbeat_interval);
    r.boolean("sync_group_offsets", f.sync_group_offsets);
    r.boolean("emit_checkpoints", f.emit_checkpoints);
    r.boolean("heartbeats", f.heartbeats);
    if (const toml::node* n = r.find("replication_factor")) {
        if (const auto* i = n->as_integer()) {
            if (i->get() == -1 || (i->get() >= 1 && i->get() <= 32767)) {
                f.replication_factor = static_cast<int>(i->get());
            } else {
                r.error("replication_factor",
                        "must be -1 (automatic) or between 1 and 32767, got " +
                            std::to_string(i->get()));
            }
        } else {
            r.wrong_type("replication_factor", *n, "an integer");
        }
    }
    r.size("max_in_flight_bytes", f.max_in_flight_bytes);
    r.count("max_in_flight_records", f.max_in_flight_records);
    r.interval("rpo_target", f.rpo_target);
    r.interval("rto_target", f.rto_target);
    r.finish();
    c.flows.push_back(std::move(f));
}

void read_pair(table_reader& r, const known_names& known, bool check_clusters, name_registry& names,
               std::map<std::string, std::uint32_t>& pair_names, const std::string& file,
               Config& c) {
    pair_config p;
    p.pos = to_pos(file, r.header());

    bool clusters_ok = false;
    if (r.required("clusters") && r.strings("clusters", p.clusters)) {
        const auto* arr = r.find("clusters")->as_array();
        if (p.clusters.size() != 2) {
            r.error("clusters",
                    "expected exactly two clusters, got " + std::to_string(p.clusters.size()));
        } else if (p.clusters[0] == p.clusters[1]) {
            r.error_at(arr->get(1)->source().begin, r.path("clusters") + "[1]",
                       "cluster " + quote(p.clusters[1]) +
                           " is named twice; a pair joins two different clusters");
        } else {
            clusters_ok = true;
            for (std::size_t i = 0; i < 2 && check_clusters; ++i) {
                if (auto m = known.check_cluster(p.clusters[i]); !m.empty()) {
                    r.error_at(arr->get(i)->source().begin,
                               r.path("clusters") + "[" + std::to_string(i) + "]", m);
                    clusters_ok = false;
                }
            }
        }
    }

    const bool explicit_name = r.string("name", p.name);
    if (explicit_name && !is_name(p.name))
        r.error("name", "name " + quote(p.name) + " must " + std::string(name_rule));
    if (!explicit_name && p.clusters.size() == 2) p.name = p.clusters[0] + "-" + p.clusters[1];
    if (!p.name.empty()) {
        const auto [it, fresh] = pair_names.emplace(p.name, r.pos("name").line);
        if (!fresh) {
            r.error("name", "duplicate pair name " + quote(p.name) + "; first at line " +
                                std::to_string(it->second));
        }
    }

    r.regexes("topics", p.topics, false);
    r.regexes("exclude_topics", p.exclude_topics, true);
    p.naming = read_naming(r, p.naming);
    r.regexes("groups", p.groups, true);
    r.interval("rpo_target", p.rpo_target);
    r.interval("rto_target", p.rto_target);

    std::vector<std::string> flow_names;
    if (p.clusters.size() == 2) {
        flow_names = {p.clusters[0] + "-to-" + p.clusters[1],
                      p.clusters[1] + "-to-" + p.clusters[0]};
    }
    if (r.strings("directions", p.directions)) {
        const auto* arr = r.find("directions")->as_array();
        if (p.directions.empty()) {
            r.error("directions",
                    "is empty, so the pair would run no flow; omit it to run both directions");
        }
        for (std::size_t i = 0; i < p.directions.size() && !flow_names.empty(); ++i) {
            const auto& d = p.directions[i];
            if (d != flow_names[0] && d != flow_names[1]) {
                r.error_at(arr->get(i)->source().begin,
                           r.path("directions") + "[" + std::to_string(i) + "]",
                           quote(d) + " is not a flow of this pair; expected " +
                               quote(flow_names[0]) + " or " + quote(flow_names[1]));
            }
        }
    }
    r.finish();

    if (clusters_ok) {
        for (std::size_t i = 0; i < 2; ++i) {
            const std::string& name = flow_names[i];
            if (!p.directions.empty() &&
                std::find(p.directions.begin(), p.directions.end(), name) == p.directions.end()) {
                continue;
            }
            if (auto first = names.claim(name, r.path(), r.header().line); !first.empty()) {
                r.error_at(r.header(), r.path(),
                           "its flow " + quote(name) + " has a duplicate name; " + first +
                               " already uses it");
                continue;
            }
            flow_config f;
            f.name = name;
            f.source = p.clusters[i];
            f.target = p.clusters[1 - i];
            f.topics = p.topics;
            f.exclude_topics = p.exclude_topics;
            f.naming = p.naming;
            f.groups = p.groups;
            f.rpo_target = p.rpo_target;
            f.rto_target = p.rto_target;
            f.from_pair = p.name;
            f.pos = p.pos;
            c.flows.push_back(std::move(f));
        }
    }
    c.pairs.push_back(std::move(p));
}

void check_storage(table_reader& r, const std::string& url) {
    const std::string shown = quote(masked_url(url));
    const std::string_view hint =
        "use file:///absolute/path, file://relative/path or s3://bucket/prefix";
    if (url.starts_with("file://")) {
        if (url.size() == 7) r.error("storage", "file:// URL has no path; " + std::string(hint));
        return;
    }
    if (url.starts_with("s3://")) {
        std::string_view rest = std::string_view(url).substr(5);
        rest = rest.substr(0, rest.find_first_of("/?#"));
        if (const auto at = rest.rfind('@'); at != std::string_view::npos)
            rest.remove_prefix(at + 1);
        if (rest.empty())
            r.error("storage", "s3:// URL " + shown + " has no bucket; write s3://bucket/prefix");
        return;
    }
    const auto colon = url.find(':');
    if (colon == std::string::npos || colon == 0) {
        r.error("storage", "expected a URL, got " + shown + "; " + std::string(hint));
    } else if (url.substr(0, colon) == "file") {
        r.error("storage", "file URLs need two slashes, got " + shown + "; " + std::string(hint));
    } else {
        r.error("storage", "unsupported storage scheme " + quote(url.substr(0, colon)) + " in " +
                               shown + "; only file:// and s3:// are supported");
    }
}

void read_tap(table_reader& r, const known_names& known, bool check_clusters, name_registry& names,
              const std::string& file, Config& c) {
    tap_config t;
    t.pos = to_pos(file, r.header());

    bool source_ok = r.required("source") && r.string("source", t.source);
    if (source_ok && check_clusters) {
        if (auto m = known.check_cluster(t.source); !m.empty()) {
            r.error("source", m);
            source_ok = false;
        }
    }
    const bool explicit_name = r.string("name", t.name);
    if (!explicit_name) t.name = t.source + "-tap";
    if (explicit_name || source_ok) claim_name(r, names, t.name, explicit_name, r.path());

    r.regexes("topics", t.topics, false);
    r.regexes("exclude_topics", t.exclude_topics, true);
    if (r.required("storage") && r.string("storage", t.storage)) check_storage(r, t.storage);

    if (r.string("compression", t.compression) && t.compression != "zstd" &&
        t.compression != "none") {
        r.error("compression", "expected \"zstd\" or \"none\", got " + quote(t.compression));
    }
    r.integer("compression_level", t.compression_level, 1, 22);
    r.size("segment_max_bytes", t.segment_max_bytes);
    r.interval("segment_max_interval", t.segment_max_interval);
    r.interval("group_snapshot_interval", t.group_snapshot_interval);

    const bool has_access = r.string("s3_access_key", t.s3_access_key) && !t.s3_access_key.empty();
    const bool has_secret = r.string("s3_secret_key", t.s3_secret_key) && !t.s3_secret_key.empty();
    if ((has_access || has_secret) && !t.storage.empty() && !t.storage.starts_with("s3://")) {
        r.error(has_access ? "s3_access_key" : "s3_secret_key", "only applies to s3:// storage");
    } else if (has_access != has_secret) {
        // One without the other would sign with a key from the environment
        // and a secret from the file: fails late and confusingly.
        r.error(
            has_access ? "s3_access_key" : "s3_secret_key",
            "set both s3_access_key and s3_secret_key, or neither (to use AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY)");
    }
    r.interval("rpo_target", t.rpo_target);
    r.interval("rto_target", t.rto_target);
    r.finish();
    c.taps.push_back(std::move(t));
}

// The [[flow]], [[pair]] and [[tap]] arrays: each element a table.
template <class F>
void for_each_table(diagnostics& diag, const toml::node* node, std::string_view key, F&& f) {
    if (!node) return;
    const auto* arr = node->as_array();
    if (!arr) {
        diag.error(node->source().begin, key,
                   "expected an array of tables (write [[" + std::string(key) + "]]), got " +
                       type_name(*node));
        return;
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = *arr->get(i);
        const std::string path = std::string(key) + "[" + std::to_string(i) + "]";
        if (const auto* t = e.as_table()) {
            f(*t, path);
        } else {
            diag.error(e.source().begin, path, "expected a table, got " + type_name(e));
        }
    }
}

pos_t first_table_pos(const toml::table& root) {
    std::optional<pos_t> first;
    for (const char* key : {"flow", "pair", "tap"}) {
        const auto* arr = root.get_as<toml::array>(key);
        if (!arr || arr->empty()) continue;
        const pos_t p = arr->get(0)->source().begin;
        if (!first || p.line < first->line || (p.line == first->line && p.column < first->column))
            first = p;
    }
    return first.value_or(pos_t{1, 1});
}

}  // namespace

Result<Config> parse(std::string_view text, const std::string& path) {
    toml::table root;
    try {
        root = toml::parse(text, std::string_view(path));
    } catch (const toml::parse_error& e) {
        const auto p = e.source().begin;
        return fail(errc::invalid_config, path + ":" + std::to_string(p.line) + ":" +
                                              std::to_string(p.column) +
                                              ": syntax error: " + one_line(e.description()));
    }

    diagnostics diag(path);
    Config c;
    c.path = path;
    table_reader top(diag, root, "");

    if (const toml::node* d = top.find("daemon")) {
        if (const auto* t = d->as_table()) {
            table_reader r(diag, *t, "daemon");
            read_daemon(r, c.daemon);
        } else {
            top.wrong_type("daemon", *d, "a table ([daemon])");
        }
    }
    if (const toml::node* cl = top.find("clusters")) read_clusters(diag, *cl, c);

    const toml::node* flows = top.find("flow");
    const toml::node* pairs = top.find("pair");
    const toml::node* taps = top.find("tap");
    // With no cluster at all, one message says so instead of one "unknown
    // cluster" per reference.
    const bool check_clusters = !c.clusters.empty();
    const toml::node* clusters = root.get("clusters");
    if (!check_clusters && (flows || pairs || taps) && (!clusters || clusters->is_table())) {
        diag.error(first_table_pos(root), "clusters",
                   "no clusters defined; add a [clusters.NAME] table with bootstrap = "
                   "\"host:port\" for each "
                   "cluster that flows and taps name");
    }

    const known_names known(c);
    name_registry names;
    std::map<std::string, std::uint32_t> pair_names;
    for_each_table(diag, flows, "flow", [&](const toml::table& t, const std::string& p) {
        table_reader r(diag, t, p);
        read_flow(r, known, check_clusters, names, path, c);
    });
    for_each_table(diag, pairs, "pair", [&](const toml::table& t, const std::string& p) {
        table_reader r(diag, t, p);
        read_pair(r, known, check_clusters, names, pair_names, path, c);
    });
    for_each_table(diag, taps, "tap", [&](const toml::table& t, const std::string& p) {
        table_reader r(diag, t, p);
        read_tap(r, known, check_clusters, names, path, c);
    });
    top.finish();

    if (!diag.empty()) return fail(errc::invalid_config, diag.joined());
    return c;
}

Result<Config> load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(errc::io, path + ": cannot read: " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return fail(errc::io, path + ": cannot read: " + std::strerror(errno));
    return parse(text.str(), path);
}

}  // namespace rpl::conf
