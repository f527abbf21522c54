// R.toml -> restore_config, checking everything on the way.
//
// The same approach as config.cpp, with the same helpers (conf/toml_reader.h):
// a table_reader per table that remembers the keys it was asked for (what is
// left over is an unknown key, with a "did you mean"), errors collected and
// sorted by position, values never echoed for secrets.

#include "conf/restore_config.h"

#include "conf/toml_reader.h"

#include "kafka/properties.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

namespace rpl::conf {

const char* to_string(partition_mapping m) noexcept {
    switch (m) {
        case partition_mapping::preserve: return "preserve";
        case partition_mapping::murmur2: return "murmur2";
    }
    return "?";
}

std::string restore_config::target_topic(const std::string& source_topic) const {
    const auto it = rename.find(source_topic);
    if (it != rename.end()) return it->second;
    return topic_prefix + source_topic;
}

// ---------------------------------------------------------------------------
// Timestamps

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

unsigned days_in_month(int y, int m) {
    static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

Error bad_timestamp(std::string_view s) {
    return Error{errc::invalid_config,
                 "invalid timestamp \"" + std::string(s) +
                     "\": expected RFC 3339 such as \"2026-11-26T12:00:00Z\" or "
                     "\"2026-11-26T13:00:00.250+01:00\", or epoch milliseconds"};
}

}  // namespace

Result<int64_t> parse_timestamp(std::string_view s) {
    if (!s.empty() &&
        std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || end != s.data() + s.size()) return bad_timestamp(s);
        return v;
    }
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, sec))
        return bad_timestamp(s);
    if (mo < 1 || mo > 12 || d < 1 || static_cast<unsigned>(d) > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 60)
        return bad_timestamp(s);
    std::size_t i = 19;
    int64_t frac_ms = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        int n = 0;
        int64_t scale = 100;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            frac_ms += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
            ++n;
        }
        if (n == 0) return bad_timestamp(s);
    }
    int64_t offset_min = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
            !digits(s, i + 4, 2, om) || oh > 23 || om > 59)
            return bad_timestamp(s);
        offset_min = (s[i] == '-' ? -1 : 1) * (int64_t{oh} * 60 + om);
        i += 6;
    } else {
        return bad_timestamp(s);  // RFC 3339 requires the offset
    }
    if (i != s.size()) return bad_timestamp(s);
    const int64_t secs =
        days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
        int64_t{h} * 3600 + int64_t{mi} * 60 + std::min(sec, 59) - int64_t{offset_min} * 60;
    return secs * 1000 + frac_ms;
}

std::string format_timestamp(int64_t ms) {
    if (ms < 0) return "-";
    const int64_t days = ms / 86'400'000;
    const int64_t rem = ms % 86'400'000;
    // civil_from_days
    const int64_t z = days + 719468;
    const int64_t era = z / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t y0 = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const int64_t y = y0 + (m <= 2);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                  static_cast<long long>(y), m, d, static_cast<long long>(rem / 3'600'000),
                  static_cast<long long>(rem / 60'000 % 60),
                  static_cast<long long>(rem / 1000 % 60), static_cast<long long>(rem % 1000));
    return buf;
}

// ---------------------------------------------------------------------------
// Reading

namespace {

using detail::diagnostics;
using detail::pos_t;
using detail::quote;
using detail::table_reader;
using detail::type_name;

bool is_topic_name(std::string_view s) {
    return !s.empty() && s.size() <= 249 && s != "." && s != ".." &&
           std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
           });
}

// [target]: bootstrap and [target.client], as a [clusters.NAME] table.
void read_target(table_reader& top, diagnostics& diag, restore_config& c) {
    const toml::node* n = top.find("target");
    if (!n) {
        top.error_at(pos_t{1, 1}, "target",
                     "required table is missing; add [target] with bootstrap = \"host:port\"");
        return;
    }
    const auto* t = n->as_table();
    if (!t) {
        top.wrong_type("target", *n, "a table ([target] with bootstrap = \"host:port\")");
        return;
    }
    table_reader r(diag, *t, "target");
    c.target.name = "target";
    c.target.pos = source_pos{diag.file(), static_cast<int>(r.header().line),
                              static_cast<int>(r.header().column)};
    if (r.required("bootstrap") && r.string("bootstrap", c.target.bootstrap)) {
        bool good = !c.target.bootstrap.empty();
        std::stringstream ss(c.target.bootstrap);
        for (std::string item; std::getline(ss, item, ',');)
            if (item.find_first_not_of(" \t") == std::string::npos) good = false;
        if (!good)
            r.error("bootstrap", "expected a comma-separated list of host:port, got " +
                                     quote(c.target.bootstrap));
    }
    if (const toml::node* cl = r.find("client")) {
        if (const auto* clt = cl->as_table()) {
            detail::read_client(diag, *clt, "target", c.target.client,
                                detail::name_errors_at::value);
        } else {
            r.wrong_type("client", *cl, "a table of librdkafka properties");
        }
    }
    r.finish();
}

// A window bound: RFC 3339 string, TOML date-time with an offset, or an
// integer of epoch milliseconds.
void read_time(table_reader& r, std::string_view key, std::optional<int64_t>& out) {
    const toml::node* n = r.find(key);
    if (!n) return;
    if (const auto* i = n->as_integer()) {
        if (i->get() < 0) {
            r.error(key, "must not be negative, got " + std::to_string(i->get()));
            return;
        }
        out = i->get();
    } else if (const auto* s = n->as_string()) {
        auto ts = parse_timestamp(s->get());
        if (!ts) {
            r.error(key, ts.error().message);
            return;
        }
        out = ts.value();
    } else if (const auto* dt = n->as_date_time()) {
        const toml::date_time& v = dt->get();
        if (!v.offset) {
            r.error(key, "a local date-time is ambiguous; add Z or an offset such as +01:00");
            return;
        }
        const int64_t days = days_from_civil(v.date.year, v.date.month, v.date.day);
        out = (days * 86400 + int64_t{v.time.hour} * 3600 + int64_t{v.time.minute} * 60 +
               v.time.second - static_cast<int64_t>(v.offset->minutes) * 60) *
                  1000 +
              v.time.nanosecond / 1'000'000;
    } else {
        r.wrong_type(
            key, *n,
            "an RFC 3339 timestamp such as \"2026-11-26T12:00:00Z\" or epoch milliseconds");
    }
}

void read_offset(table_reader& r, std::string_view key, std::optional<int64_t>& out) {
    const toml::node* n = r.find(key);
    if (!n) return;
    const auto* i = n->as_integer();
    if (!i) {
        r.wrong_type(key, *n, "an integer offset");
        return;
    }
    if (i->get() < 0) {
        r.error(key, "must not be negative, got " + std::to_string(i->get()));
        return;
    }
    out = i->get();
}

void read_window(table_reader& top, diagnostics& diag, restore_config& c) {
    const toml::node* n = top.find("window");
    if (!n) return;
    const auto* t = n->as_table();
    if (!t) {
        top.wrong_type("window", *n, "a table ([window] with from/to or from_offset/to_offset)");
        return;
    }
    table_reader r(diag, *t, "window");
    restore_window& w = c.window;
    read_time(r, "from", w.from_ms);
    read_time(r, "to", w.to_ms);
    read_offset(r, "from_offset", w.from_offset);
    read_offset(r, "to_offset", w.to_offset);
    if (w.by_time() && w.by_offset()) {
        r.error(w.from_offset ? "from_offset" : "to_offset",
                "a window is either by time (from/to) or by offset (from_offset/to_offset), not "
                "both");
    }
    if (w.from_ms && w.to_ms && *w.from_ms > *w.to_ms) {
        r.error("to", "is before window.from (" + format_timestamp(*w.to_ms) + " < " +
                          format_timestamp(*w.from_ms) + ")");
    }
    if (w.from_offset && w.to_offset && *w.from_offset > *w.to_offset) {
        r.error("to_offset", "is less than window.from_offset (" + std::to_string(*w.to_offset) +
                                 " < " + std::to_string(*w.from_offset) + ")");
    }
    r.finish();
}

void read_rename(table_reader& top, diagnostics& diag, restore_config& c) {
    const toml::node* n = top.find("rename");
    if (!n) return;
    const auto* t = n->as_table();
    if (!t) {
        top.wrong_type("rename", *n, "a table of \"source topic\" = \"target topic\"");
        return;
    }
    table_reader r(diag, *t, "rename");
    std::map<std::string, std::string> seen;  // target -> source
    for (auto&& [k, v] : *t) {
        const std::string src(k.str());
        const std::string kp = "rename." + quote(src);
        r.find(src);
        const auto* s = v.as_string();
        if (!s) {
            r.error_at(v.source().begin, kp,
                       "expected a string (the topic name on the target), got " + type_name(v));
            continue;
        }
        if (!is_topic_name(s->get())) {
            r.error_at(v.source().begin, kp,
                       "target topic " + quote(s->get()) +
                           " is not a legal Kafka topic name (letters, digits, '.', '_', '-', at "
                           "most 249)");
            continue;
        }
        if (const auto [it, fresh] = seen.emplace(s->get(), src); !fresh) {
            r.error_at(v.source().begin, kp,
                       "topics " + quote(it->second) + " and " + quote(src) +
                           " would both be restored into " + quote(s->get()));
            continue;
        }
        c.rename[src] = s->get();
    }
}

}  // namespace

Result<restore_config> parse_restore(std::string_view text, const std::string& path) {
    toml::table root;
    try {
        root = toml::parse(text, std::string_view(path));
    } catch (const toml::parse_error& e) {
        const auto p = e.source().begin;
        return fail(errc::invalid_config, path + ":" + std::to_string(p.line) + ":" +
                                              std::to_string(p.column) +
                                              ": syntax error: " + std::string(e.description()));
    }
    diagnostics diag(path);
    restore_config c;
    c.path = path;
    resolve_references(root, diag, c.references);
    table_reader r(diag, root, "");

    if (r.required("store") && r.string("store", c.store))
        detail::check_store_url(r, "store", c.store);
    if (r.required("backup") && r.string("backup", c.backup)) {
        if (c.backup.empty()) {
            r.error("backup",
                    "must not be empty; `replicatorctl backup list --store URL` shows the ids");
        } else if (!is_backup_id(c.backup)) {
            r.error("backup", "backup id " + quote(c.backup) +
                                  " is not one: a backup id is the tap's name (letters, digits, "
                                  "'.', '_' and '-'; not '.' or '..')");
        }
    }

    const bool has_access = r.string("s3_access_key", c.s3_access_key) && !c.s3_access_key.empty();
    const bool has_secret = r.string("s3_secret_key", c.s3_secret_key) && !c.s3_secret_key.empty();
    if ((has_access || has_secret) && !c.store.empty() && !c.store.starts_with("s3://")) {
        r.error(has_access ? "s3_access_key" : "s3_secret_key", "only applies to an s3:// store");
    } else if (has_access != has_secret) {
        r.error(has_access ? "s3_access_key" : "s3_secret_key",
                "set both s3_access_key and s3_secret_key, or neither (to use AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY)");
    }

    read_target(r, diag, c);
    r.regexes("topics", c.topics, false);
    r.regexes("exclude_topics", c.exclude_topics, true);
    read_window(r, diag, c);
    read_rename(r, diag, c);
    if (r.string("topic_prefix", c.topic_prefix) && !c.topic_prefix.empty() &&
        !is_topic_name(c.topic_prefix)) {
        r.error("topic_prefix",
                "must use only letters, digits, '.', '_' and '-', got " + quote(c.topic_prefix));
    }
    std::string mapping;
    if (r.string("partition_mapping", mapping)) {
        if (mapping == "preserve") {
            c.mapping = partition_mapping::preserve;
        } else if (mapping == "murmur2") {
            c.mapping = partition_mapping::murmur2;
        } else {
            r.error("partition_mapping",
                    "expected \"preserve\" or \"murmur2\", got " + quote(mapping));
        }
    }
    if (const toml::node* n = r.find("replication_factor")) {
        const auto* i = n->as_integer();
        if (!i) {
            r.wrong_type("replication_factor", *n, "an integer");
        } else if (i->get() == -1 || (i->get() >= 1 && i->get() <= 32767)) {
            c.replication_factor = static_cast<int>(i->get());
        } else {
            r.error("replication_factor", "must be -1 (automatic) or between 1 and 32767, got " +
                                              std::to_string(i->get()));
        }
    }
    if (const toml::node* n = r.find("rate_limit")) {
        if (const auto* i = n->as_integer()) {
            if (i->get() <= 0)
                r.error("rate_limit", "must be greater than zero (bytes per second), got " +
                                          std::to_string(i->get()) + "; omit it for no limit");
            else
                c.rate_limit = static_cast<std::uint64_t>(i->get());
        } else if (const auto* s = n->as_string()) {
            auto v = parse_size(s->get());
            if (!v)
                r.error("rate_limit", v.error().message);
            else if (v.value() == 0)
                r.error("rate_limit",
                        "must be greater than zero (bytes per second); omit it for "
                        "no limit");
            else
                c.rate_limit = v.value();
        } else {
            r.wrong_type("rate_limit", *n, "a size per second such as \"50MiB\" or an integer");
        }
    }
    r.boolean("restore_groups", c.restore_groups);
    r.regexes("groups", c.groups, true);
    r.regexes("exclude_groups", c.exclude_groups, true);
    r.boolean("skip_damaged", c.skip_damaged);
    r.finish();

    if (diag.empty()) return c;
    return fail(errc::invalid_config, diag.joined());
}

Result<restore_config> load_restore(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(errc::io, path + ": cannot read: " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    return parse_restore(text.str(), path);
}

std::string describe(const restore_config& c) {
    std::ostringstream o;
    o << "store = " << quoted_string(masked_url(c.store)) << "\n";
    if (!c.s3_access_key.empty()) o << "s3_access_key = \"******\"\n";
    if (!c.s3_secret_key.empty()) o << "s3_secret_key = \"******\"\n";
    o << "backup = " << quoted_string(c.backup) << "\n";
    o << "target = " << quoted_string(c.target.bootstrap) << "\n";
    for (const auto& [k, v] : c.target.client)
        o << "target.client." << k << " = " << quoted_string(masked(k, v)) << "\n";
    auto list = [](const std::vector<std::string>& v) {
        std::string s = "[";
        for (const auto& x : v) s += (s.size() > 1 ? ", " : "") + quoted_string(x);
        return s + "]";
    };
    o << "topics = " << list(c.topics) << "\n";
    o << "exclude_topics = " << list(c.exclude_topics) << "\n";
    const auto& w = c.window;
    if (w.from_ms) o << "window.from = " << format_timestamp(*w.from_ms) << "\n";
    if (w.to_ms) o << "window.to = " << format_timestamp(*w.to_ms) << "\n";
    if (w.from_offset) o << "window.from_offset = " << *w.from_offset << "\n";
    if (w.to_offset) o << "window.to_offset = " << *w.to_offset << "\n";
    for (const auto& [k, v] : c.rename) o << "rename." << k << " = " << quoted_string(v) << "\n";
    if (!c.topic_prefix.empty()) o << "topic_prefix = " << quoted_string(c.topic_prefix) << "\n";
    o << "partition_mapping = " << to_string(c.mapping) << "\n";
    o << "rate_limit = " << (c.rate_limit ? format_size(c.rate_limit) + "/s" : "unlimited") << "\n";
    o << "restore_groups = " << (c.restore_groups ? "true" : "false") << "\n";
    o << "skip_damaged = " << (c.skip_damaged ? "true" : "false") << "\n";
    return o.str();
}

}  // namespace rpl::conf
