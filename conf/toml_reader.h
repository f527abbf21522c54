// conf/ internal: the pieces every TOML reader in conf/ shares (config.cpp
// for the daemon's file, restore_config.cpp for R.toml). Not installed, not
// included outside conf/: only conf/ reads TOML.
//
//   toml::table --table_reader (one per table)--> typed values
//                      |  remembers the keys asked for; finish() reports the
//                      |  rest as unknown keys, with a "did you mean"
//                      v
//                diagnostics --joined()--> "file:line:col: key.path: what\n..."
//
// Invariants: errors are collected, never thrown, and sorted by position in
// joined(); every message stays on one line (control characters escaped);
// values of secret librdkafka properties never reach a message.
// Thread model: plain single-threaded helpers used during one load.
#pragma once

#include "conf/config.h"

#include <toml++/toml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::conf::detail {

using pos_t = toml::source_position;

// A value or key written into a message: quoted, and with control characters
// escaped so that every error stays on one line whatever the file contains.
[[nodiscard]] std::string quote(std::string_view s);
// quote() without the quotes.
[[nodiscard]] std::string one_line(std::string_view s);

// "a string", "an integer", ... for "expected X, got Y" messages.
[[nodiscard]] std::string type_name(const toml::node& n);

// The closest candidate, if it is close enough to be what was meant.
[[nodiscard]] std::optional<std::string> closest(std::string_view word,
                                                 const std::vector<std::string>& candidates);
// "; did you mean 'x'?" or "".
[[nodiscard]] std::string did_you_mean(std::string_view word,
                                       const std::vector<std::string>& candidates);

struct diagnostic {
    std::uint32_t line;
    std::uint32_t column;
    std::string text;
};

// Every error found in one file, each "file:line:col: key.path: what".
class diagnostics {
public:
    explicit diagnostics(std::string file) : file_(std::move(file)) {}

    void error(pos_t pos, std::string_view key_path, std::string_view what);

    [[nodiscard]] bool empty() const { return list_.empty(); }
    [[nodiscard]] const std::string& file() const { return file_; }

    // Sorted by position, one per line.
    [[nodiscard]] std::string joined();

private:
    std::string file_;
    std::vector<diagnostic> list_;
};

// Typed access to one table, with unknown-key detection. The typed readers
// leave `out` untouched unless the key is present and valid, so it keeps its
// default; they return true only then.
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
    bool required(std::string_view key);
    void wrong_type(std::string_view key, const toml::node& n, std::string_view expected);

    bool string(std::string_view key, std::string& out);
    bool boolean(std::string_view key, bool& out);
    bool integer(std::string_view key, int& out, std::int64_t lo, std::int64_t hi);
    // A positive duration: every duration in the schema is an interval or a
    // target, and zero or less would mean a busy loop or a meaningless goal.
    bool interval(std::string_view key, duration& out);
    bool interval(std::string_view key, std::optional<duration>& out);
    // A positive count (records, messages): a TOML integer.
    bool count(std::string_view key, std::uint64_t& out);
    // A positive size: a string with a unit, or a TOML integer of bytes.
    bool size(std::string_view key, std::uint64_t& out);
    // An array of strings. A bare string is the most common slip, so the
    // message shows the fix.
    bool strings(std::string_view key, std::vector<std::string>& out);
    // Full-match regexes: each must compile, so that a typo fails at start-up
    // rather than silently matching nothing.
    bool regexes(std::string_view key, std::vector<std::string>& out, bool allow_empty);

    // Reports every key nobody asked for.
    void finish();

private:
    diagnostics& diag_;
    const toml::table& table_;
    std::string path_;
    std::vector<std::string> known_;
};

// A backup store URL (file:// or s3://) under `key`: reports a missing path
// or bucket, or an unsupported scheme ("unsupported <key> scheme ..."). The
// URL is shown through masked_url(), never with credentials.
void check_store_url(table_reader& r, std::string_view key, const std::string& url);

// A TOML scalar as librdkafka wants it: strings as is, numbers and booleans
// in their TOML spelling.
[[nodiscard]] std::string scalar_to_string(const toml::node& n);

// Where errors that are about a client property's name point: at the key
// (the daemon's config) or at its value (R.toml).
enum class name_errors_at { key, value };

// A [<owner>.client] table of librdkafka properties, each checked by
// librdkafka, into `out`. Dotted keys are flattened back into one property
// name; brokers must come from <owner>.bootstrap instead.
void read_client(diagnostics& diag, const toml::table& t, const std::string& owner_path,
                 std::map<std::string, std::string>& out,
                 name_errors_at where = name_errors_at::key);

// Replaces ${env:NAME} and ${file:PATH} in every string value under root
// (keys are never expanded), reporting each reference that cannot be
// resolved at its value; `out` gains one entry per expanded value.
void resolve_references(toml::table& root, diagnostics& diag, std::vector<reference>& out);

}  // namespace rpl::conf::detail
