// describe(): the effective config as TOML, secrets masked.
//
// Written as TOML (not a free-form dump) so that an operator can diff it
// against the file and see which defaults applied, and so that it can be
// pasted back as a starting point. Pairs appear as comments: their flows are
// already listed as [[flow]] tables, and listing both would define them twice.

#include "conf/config.h"
#include "kafka/log.h"

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace rpl::conf {

std::string quoted_string(std::string_view s) { return rpl::quoted(s); }

namespace {

std::string toml_key(std::string_view k) {
    const bool bare = !k.empty() && k.find_first_not_of(
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789_-") == std::string_view::npos;
    return bare ? std::string(k) : quoted_string(k);
}

std::string toml_array(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += quoted_string(v[i]);
    }
    return out + "]";
}

// Exactly one reference and nothing else: naming it reveals nothing.
bool only_a_reference(std::string_view text) {
    return text.starts_with("${") && text.find('}') == text.size() - 1;
}

class writer {
public:
    explicit writer(const std::vector<reference>& refs) : refs_(refs) {}

    void header(std::string_view h) {
        if (!first_) out_ << '\n';
        first_ = false;
        out_ << h << '\n';
    }
    void comment(std::string_view c) { out_ << "# " << c << '\n'; }
    void raw(std::string_view key, std::string_view value) {
        out_ << toml_key(key) << " = " << value << '\n';
    }
    // A value that came from a reference is shown as written.
    void str(std::string_view key, std::string_view value) {
        raw(key, quoted_string(as_written(value)));
    }
    void secret(std::string_view key, std::string_view value) {
        const auto* r = find(value);
        if (r != nullptr && only_a_reference(r->text)) {
            raw(key, quoted_string(r->text));
        } else {
            raw(key, quoted_string(masked(key, value)));
        }
    }
    void url(std::string_view key, std::string_view value) {
        const auto* r = find(value);
        raw(key, quoted_string(masked_url(r != nullptr ? r->text : value)));
    }
    void strs(std::string_view key, const std::vector<std::string>& v) {
        std::vector<std::string> shown;
        shown.reserve(v.size());
        for (const auto& s : v) shown.push_back(as_written(s));
        raw(key, toml_array(shown));
    }
    void boolean(std::string_view key, bool b) { raw(key, b ? "true" : "false"); }
    void integer(std::string_view key, long long i) { raw(key, std::to_string(i)); }
    void dur(std::string_view key, duration d) { str(key, format_duration(d)); }
    void dur(std::string_view key, const std::optional<duration>& d) {
        if (d) dur(key, *d);
    }
    void size(std::string_view key, std::uint64_t b) { str(key, format_size(b)); }

    [[nodiscard]] std::string str() const { return out_.str(); }

private:
    [[nodiscard]] const reference* find(std::string_view value) const {
        for (const auto& r : refs_)
            if (r.value == value) return &r;
        return nullptr;
    }
    [[nodiscard]] std::string as_written(std::string_view value) const {
        const auto* r = find(value);
        return std::string(r != nullptr ? std::string_view(r->text) : value);
    }

    const std::vector<reference>& refs_;
    std::ostringstream out_;
    bool first_ = true;
};

}  // namespace

std::string describe(const Config& c) {
    writer w(c.references);
    w.header("# replicatord effective configuration from " + c.path +
             " (defaults applied, secrets masked)");

    w.header("[daemon]");
    w.str("state_dir", c.daemon.state_dir);
    w.str("admin_listen", c.daemon.admin_listen);
    w.secret("admin_token", c.daemon.admin_token);
    w.str("log_level", c.daemon.log_level);
    w.str("log_format", c.daemon.log_format);

    for (const auto& [name, cl] : c.clusters) {
        w.header("[clusters." + toml_key(name) + "]");
        w.str("bootstrap", cl.bootstrap);
        if (!cl.client.empty()) {
            w.header("[clusters." + toml_key(name) + ".client]");
            for (const auto& [k, v] : cl.client) w.secret(k, v);
        }
    }

    for (const auto& p : c.pairs) {
        w.header("# [[pair]] " + p.name + ": clusters " + toml_array(p.clusters) +
                 ", expanded into the [[flow]] tables marked \"from pair " + p.name + "\"");
    }

    for (const auto& f : c.flows) {
        w.header("[[flow]]");
        if (!f.from_pair.empty()) w.comment("from pair " + f.from_pair);
        w.str("name", f.name);
        w.str("source", f.source);
        w.str("target", f.target);
        w.strs("topics", f.topics);
        w.strs("exclude_topics", f.exclude_topics);
        w.str("naming", to_string(f.naming));
        w.str("separator", f.separator);
        w.strs("groups", f.groups);
        w.strs("exclude_groups", f.exclude_groups);
        w.dur("checkpoint_interval", f.checkpoint_interval);
        w.dur("refresh_interval", f.refresh_interval);
        w.dur("heartbeat_interval", f.heartbeat_interval);
        w.boolean("sync_group_offsets", f.sync_group_offsets);
        w.boolean("emit_checkpoints", f.emit_checkpoints);
        w.boolean("heartbeats", f.heartbeats);
        w.integer("replication_factor", f.replication_factor);
        w.size("max_in_flight_bytes", f.max_in_flight_bytes);
        w.integer("max_in_flight_records", static_cast<long long>(f.max_in_flight_records));
        w.dur("rpo_target", f.rpo_target);
        w.dur("rto_target", f.rto_target);
    }

    for (const auto& t : c.taps) {
        w.header("[[tap]]");
        w.str("name", t.name);
        w.str("source", t.source);
        w.strs("topics", t.topics);
        w.strs("exclude_topics", t.exclude_topics);
        w.url("storage", t.storage);
        w.str("compression", t.compression);
        w.integer("compression_level", t.compression_level);
        w.size("segment_max_bytes", t.segment_max_bytes);
        w.dur("segment_max_interval", t.segment_max_interval);
        w.dur("group_snapshot_interval", t.group_snapshot_interval);
        w.secret("s3_access_key", t.s3_access_key);
        w.secret("s3_secret_key", t.s3_secret_key);
        w.dur("rpo_target", t.rpo_target);
        w.dur("rto_target", t.rto_target);
    }
    return w.str();
}

void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
    std::vector<std::size_t> width;
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    for (const auto& r : rows) {
        for (std::size_t i = 0; i < r.size(); ++i) {
            out << std::left << std::setw(static_cast<int>(width[i])) << r[i];
            if (i + 1 < r.size()) out << "  ";
        }
        out << "\n";
    }
}

}  // namespace rpl::conf
