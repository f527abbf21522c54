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

#include "conf/toml_reader.h"
#include "kafka/log.h"
#include "kafka/properties.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
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

using detail::diagnostics;
using detail::did_you_mean;
using detail::one_line;
using detail::pos_t;
using detail::quote;
using detail::read_client;
using detail::table_reader;
using detail::type_name;

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

    if (!r.string("admin_token", d.admin_token)) {
        if (const char* env = std::getenv("REPLICATORD_ADMIN_TOKEN"); env != nullptr)
            d.admin_token = env;
    }
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
                r.error("admin_listen",
                        "listening on " + quote(a) +
                            ", which is not loopback, requires daemon.admin_token (or "
                            "REPLICATORD_ADMIN_TOKEN in the environment)");
            }
        }
    }

    if (r.string("log_format", d.log_format) && d.log_format != "text" && d.log_format != "json")
        r.error("log_format", "unknown format " + quote(d.log_format) + "; expected text or json");

    if (r.string("log_level", d.log_level)) {
        level l{};
        if (!parse_level(d.log_level, l)) {
            r.error("log_level", "unknown level " + quote(d.log_level) +
                                     "; expected trace, debug, info, warn, error or off");
        }
    }
    r.finish();
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
    // A tap's name is the first part of its archive's keys (a directory in
    // a file:// store): "." and ".." would point elsewhere.
    if (explicit_name && !is_backup_id(name)) {
        r.error("name", "name " + quote(name) + " is not a name: write letters or digits too");
        return;
    }
    const pos_t p = r.pos("name");
    if (auto first = names.claim(name, owner, p.line); !first.empty()) {
        r.error("name", "duplicate name " + quote(name) + "; " + first + " already uses it");
    }
}

// Everything a flow and a pair share: topic and group selection, naming,
// intervals, bounds and targets.
void read_flow_settings(table_reader& r, flow_config& f) {
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
}

void read_flow(table_reader& r, const known_names& known, bool check_clusters, name_registry& names,
               const std::string& file, Config& c) {
    flow_config f;
    f.pos = to_pos(file, r.header());
    f.key_path = r.path();

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

    read_flow_settings(r, f);
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

    flow_config settings;  // what both directions share
    read_flow_settings(r, settings);
    p.topics = settings.topics;
    p.exclude_topics = settings.exclude_topics;
    p.naming = settings.naming;
    p.groups = settings.groups;
    p.rpo_target = settings.rpo_target;
    p.rto_target = settings.rto_target;

    std::vector<std::string> flow_names;
    if (p.clusters.size() == 2) {
        flow_names = {p.clusters[0] + "-to-" + p.clusters[1],
                      p.clusters[1] + "-to-" + p.clusters[0]};
    }
    if (r.strings("flow_names", p.flow_names)) {
        if (p.flow_names.size() != 2) {
            r.error("flow_names",
                    "expected two names (" + quote(p.clusters.empty() ? "A" : p.clusters[0]) +
                        " to the other, then back), got " + std::to_string(p.flow_names.size()));
        } else if (p.flow_names[0] == p.flow_names[1]) {
            r.error("flow_names", "both flows are named " + quote(p.flow_names[0]));
        } else {
            for (const auto& n : p.flow_names) {
                if (!is_name(n))
                    r.error("flow_names", "name " + quote(n) + " must " + std::string(name_rule));
            }
            if (!flow_names.empty()) flow_names = p.flow_names;
        }
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
            const std::string& reverse = flow_names[1 - i];
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
            flow_config f = settings;
            f.name = name;
            f.source = p.clusters[i];
            f.target = p.clusters[1 - i];
            f.from_pair = p.name;
            f.reverse_flow = reverse;
            f.key_path = r.path();
            f.pos = p.pos;
            c.flows.push_back(std::move(f));
        }
    }
    c.pairs.push_back(std::move(p));
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
    if (r.required("storage") && r.string("storage", t.storage))
        detail::check_store_url(r, "storage", t.storage);

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

namespace {

// Kafka's alphabet, with '.', '-' and '_' possibly escaped. An unescaped '.'
// is taken literally: "orders.eu" is almost always meant as that topic.
// A topic the pattern selects, when it is easy to name: a literal, or one
// whose only wildcards are ".*" and ".+" (each stands for "x").
std::optional<std::string> sample_topic(std::string_view pattern) {
    std::string out;
    for (size_t i = 0; i < pattern.size(); ++i) {
        char ch = pattern[i];
        if (ch == '.' && i + 1 < pattern.size() &&
            (pattern[i + 1] == '*' || pattern[i + 1] == '+')) {
            out += 'x';
            ++i;
            continue;
        }
        if (ch == '\\' && i + 1 < pattern.size()) ch = pattern[++i];
        if (!is_name(std::string_view(&ch, 1))) return std::nullopt;
        out += ch;
    }
    if (out.empty()) return std::nullopt;
    return out;
}

bool selects(const std::vector<std::regex>& include, const std::vector<std::regex>& exclude,
             const std::string& topic) {
    return full_match_any(include, topic) && !full_match_any(exclude, topic);
}

// Two flows in the same direction must not both mirror a topic: each would
// write every record to the target once more.
void check_overlaps(diagnostics& diag, const Config& c) {
    for (size_t j = 1; j < c.flows.size(); ++j) {
        const auto& b = c.flows[j];
        for (size_t i = 0; i < j; ++i) {
            const auto& a = c.flows[i];
            if (a.source != b.source || a.target != b.target) continue;
            const std::string topic = evident_overlap(a, b);
            if (topic.empty()) continue;
            const auto describe_flow = [](const flow_config& f) {
                return "flow " + quote(f.name) +
                       (f.from_pair.empty() ? "" : " of pair " + quote(f.from_pair));
            };
            diag.error(pos_t{static_cast<std::uint32_t>(b.pos.line),
                             static_cast<std::uint32_t>(b.pos.column)},
                       b.key_path.empty() ? "flow" : b.key_path,
                       describe_flow(b) + " and " + describe_flow(a) + " (line " +
                           std::to_string(a.pos.line) + ") both mirror topic " + quote(topic) +
                           " from " + quote(a.source) + " to " + quote(a.target) +
                           "; a topic is mirrored by one flow per direction: narrow topics or "
                           "add exclude_topics to one of them");
        }
    }
}

}  // namespace

bool is_backup_id(std::string_view s) { return is_name(s) && s != "." && s != ".."; }

std::string evident_overlap(const flow_config& a, const flow_config& b) {
    const auto ai = compile_patterns(a.topics), ae = compile_patterns(a.exclude_topics);
    const auto bi = compile_patterns(b.topics), be = compile_patterns(b.exclude_topics);
    for (const auto* f : {&a, &b}) {
        for (const auto& pattern : f->topics) {
            const auto topic = sample_topic(pattern);
            if (topic && selects(ai, ae, *topic) && selects(bi, be, *topic)) return *topic;
        }
    }
    // Patterns written identically select the same topics.
    for (const auto& pa : a.topics) {
        for (const auto& pb : b.topics) {
            if (pa == pb && a.exclude_topics.empty() && b.exclude_topics.empty()) return pa;
        }
    }
    return {};
}

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
    resolve_references(root, diag, c.references);
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
    check_overlaps(diag, c);
    for (auto& f : c.flows) {
        if (!f.reverse_flow.empty()) continue;
        for (const auto& g : c.flows) {
            if (g.source == f.target && g.target == f.source && g.naming == f.naming) {
                f.reverse_flow = g.name;
                break;
            }
        }
    }

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
