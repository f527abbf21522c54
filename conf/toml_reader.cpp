// conf/ internal: shared TOML reading helpers; see conf/toml_reader.h.

#include "conf/toml_reader.h"

#include "kafka/properties.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <regex>

namespace rpl::conf::detail {

// ---------------------------------------------------------------------------
// Messages

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
namespace {

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

}  // namespace

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

void diagnostics::error(pos_t pos, std::string_view key_path, std::string_view what) {
    std::string text = file_ + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                       ": " + one_line(key_path) + ": " + one_line(what);
    list_.push_back({pos.line, pos.column, std::move(text)});
}

std::string diagnostics::joined() {
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

// ---------------------------------------------------------------------------
// table_reader

bool table_reader::required(std::string_view key) {
    if (find(key)) return true;
    diag_.error(header(), path(key), "required key is missing");
    return false;
}

void table_reader::wrong_type(std::string_view key, const toml::node& n,
                              std::string_view expected) {
    diag_.error(n.source().begin, path(key),
                "expected " + std::string(expected) + ", got " + type_name(n));
}

bool table_reader::string(std::string_view key, std::string& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (const auto* v = n->as_string()) {
        out = v->get();
        return true;
    }
    wrong_type(key, *n, "a string");
    return false;
}

bool table_reader::boolean(std::string_view key, bool& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (const auto* v = n->as_boolean()) {
        out = v->get();
        return true;
    }
    wrong_type(key, *n, "a boolean (true or false)");
    return false;
}

bool table_reader::integer(std::string_view key, int& out, std::int64_t lo, std::int64_t hi) {
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
bool table_reader::interval(std::string_view key, duration& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    const auto* v = n->as_string();
    if (!v) {
        if (n->is_number()) {
            error(key, "expected a duration string with a unit, e.g. \"5s\", got " + type_name(*n));
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

bool table_reader::interval(std::string_view key, std::optional<duration>& out) {
    duration d{};
    if (!interval(key, d)) return false;
    out = d;
    return true;
}

// A positive count (records, messages): a TOML integer.
bool table_reader::count(std::string_view key, std::uint64_t& out) {
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
bool table_reader::size(std::string_view key, std::uint64_t& out) {
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
bool table_reader::strings(std::string_view key, std::vector<std::string>& out) {
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
bool table_reader::regexes(std::string_view key, std::vector<std::string>& out, bool allow_empty) {
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
void table_reader::finish() {
    for (auto&& [k, v] : table_) {
        if (std::find(known_.begin(), known_.end(), k.str()) != known_.end()) continue;
        diag_.error(k.source().begin, path(k.str()), "unknown key" + did_you_mean(k.str(), known_));
    }
}

// ---------------------------------------------------------------------------
// Values

void check_store_url(table_reader& r, std::string_view key, const std::string& url) {
    const std::string shown = quote(masked_url(url));
    const std::string_view hint =
        "use file:///absolute/path, file://relative/path or s3://bucket/prefix";
    if (url.starts_with("file://")) {
        if (url.size() == 7) r.error(key, "file:// URL has no path; " + std::string(hint));
        return;
    }
    if (url.starts_with("s3://")) {
        std::string_view rest = std::string_view(url).substr(5);
        rest = rest.substr(0, rest.find_first_of("/?#"));
        if (const auto at = rest.rfind('@'); at != std::string_view::npos)
            rest.remove_prefix(at + 1);
        if (rest.empty())
            r.error(key, "s3:// URL " + shown + " has no bucket; write s3://bucket/prefix");
        return;
    }
    const auto colon = url.find(':');
    if (colon == std::string::npos || colon == 0) {
        r.error(key, "expected a URL, got " + shown + "; " + std::string(hint));
    } else if (url.substr(0, colon) == "file") {
        r.error(key, "file URLs need two slashes, got " + shown + "; " + std::string(hint));
    } else {
        r.error(key, "unsupported " + std::string(key) + " scheme " + quote(url.substr(0, colon)) +
                         " in " + shown + "; only file:// and s3:// are supported");
    }
}

// ---------------------------------------------------------------------------
// Client properties

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

namespace {

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

}  // namespace

void read_client(diagnostics& diag, const toml::table& t, const std::string& owner_path,
                 std::map<std::string, std::string>& out, name_errors_at where) {
    std::vector<client_entry> entries;
    flatten_client(t, "", nullptr, entries);
    std::map<std::string, pos_t> seen;
    for (const auto& e : entries) {
        const std::string key_path = owner_path + ".client." + e.name;
        const pos_t vpos = e.value->source().begin;
        const pos_t name_pos = where == name_errors_at::key ? e.key_pos : vpos;
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
            diag.error(name_pos, key_path,
                       "set the brokers with " + owner_path + ".bootstrap instead");
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
            diag.error(about_name ? name_pos : vpos, key_path, "rejected by librdkafka: " + msg);
            continue;
        }
        out[e.name] = value;
    }
}

}  // namespace rpl::conf::detail
