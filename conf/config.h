// conf/: the one config tree.
//
//   flows.toml --parse--> toml::table --validate--> rpl::conf::Config (plain structs)
//                                   \--errors--> one line each: file:line:col: key.path: what
//
// Owns: reading TOML (nothing else in the project does), defaults, typed
// durations and sizes, cross-reference checks, and masking of secrets.
// Invariants: a Config returned by load() has passed every check below; every
// flow and tap names a known cluster; names are unique; regexes compile.
// Layering: defaults -> TOML -> forced invariants (kafka/ forces the
// properties the data path relies on, such as enable.auto.commit=false).
// Thread model: a Config is immutable after load() and may be shared freely.
#pragma once

#include "kafka/result.h"

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::conf {

using duration = std::chrono::milliseconds;

// Where a value came from, for messages that point back into the file.
struct source_pos {
    std::string file;
    int line = 0;
    int column = 0;
    bool operator==(const source_pos&) const = default;
};

struct daemon_config {
    std::string state_dir = "/var/lib/replicatord";  // RocksDB index; rebuilt from Kafka if lost
    std::string admin_listen = "127.0.0.1:9464";     // /metrics, /healthz, /readyz, /status
    // Bearer token; required for a non-loopback admin_listen. When the file
    // does not set it, REPLICATORD_ADMIN_TOKEN from the environment is used.
    std::string admin_token;
    std::string log_level = "info";   // trace|debug|info|warn|error
    std::string log_format = "text";  // text | json (one JSON object per line)
};

struct cluster_config {
    std::string name;                           // alias, e.g. "primary"
    std::string bootstrap;                      // bootstrap.servers
    std::map<std::string, std::string> client;  // librdkafka properties, passed through
    source_pos pos;
    bool operator==(const cluster_config&) const = default;
};

enum class naming_policy { prefix, identity };

struct flow_config {
    std::string name;
    std::string source;                        // cluster alias
    std::string target;                        // cluster alias
    std::vector<std::string> topics = {".*"};  // full-match regexes
    std::vector<std::string> exclude_topics;   // full-match regexes
    naming_policy naming = naming_policy::prefix;
    std::string separator = ".";               // prefix naming: <source><separator><topic>
    std::vector<std::string> groups = {".*"};  // consumer groups to checkpoint (full match)
    std::vector<std::string> exclude_groups;
    duration checkpoint_interval{5000};
    duration refresh_interval{5000};  // topic/partition discovery
    duration heartbeat_interval{1000};
    bool sync_group_offsets = true;
    bool emit_checkpoints = true;
    bool heartbeats = true;
    int replication_factor = -1;                      // -1: min(3, brokers on the target)
    std::uint64_t max_in_flight_bytes = 64ull << 20;  // consumption pauses beyond this
    // Records read and not yet committed back to the source; consumption
    // pauses beyond this, so a crash re-sends at most this many per flow.
    std::uint64_t max_in_flight_records = 50000;
    std::optional<duration> rpo_target;
    std::optional<duration> rto_target;
    std::string from_pair;  // name of the [[pair]] that produced it, if any
    // The flow carrying records the other way between the same clusters (the
    // pair's other direction, even when this process does not run it), or "".
    // Identity naming translates through both flows' runs.
    std::string reverse_flow;
    std::string key_path;  // "flow[0]" or "pair[1]": where messages point
    source_pos pos;
    bool operator==(const flow_config&) const = default;
};

struct pair_config {
    std::string name;                   // defaults to "<a>-<b>"
    std::vector<std::string> clusters;  // exactly two, distinct
    std::vector<std::string> topics = {".*"};
    std::vector<std::string> exclude_topics;
    naming_policy naming = naming_policy::prefix;
    std::vector<std::string> directions;  // flow names to run here; empty = both
    // The two flows' names, A->B then B->A; default "<a>-to-<b>", "<b>-to-<a>".
    std::vector<std::string> flow_names;
    std::vector<std::string> groups = {".*"};
    std::optional<duration> rpo_target;
    std::optional<duration> rto_target;
    source_pos pos;
};

struct tap_config {
    std::string name;
    std::string source;  // cluster alias
    std::vector<std::string> topics = {".*"};
    std::vector<std::string> exclude_topics;
    // file:///abs/path, file://rel/path (relative to the working directory),
    // or s3://bucket/prefix?region=..&endpoint=..
    std::string storage;
    std::string compression = "zstd";
    int compression_level = 3;  // zstd 1..22
    std::uint64_t segment_max_bytes = 64ull << 20;
    duration segment_max_interval{60000};
    duration group_snapshot_interval{30000};
    std::string s3_access_key;  // secret-bearing; also from AWS_ACCESS_KEY_ID
    std::string s3_secret_key;  // secret; also from AWS_SECRET_ACCESS_KEY
    std::optional<duration> rpo_target;
    std::optional<duration> rto_target;
    source_pos pos;
    bool operator==(const tap_config&) const = default;
};

// A string value written as, or with, ${env:NAME} or ${file:PATH}: what it
// resolved to, and the text as written (which describe() prints instead).
struct reference {
    std::string value;
    std::string text;
};

struct Config {
    std::string path;
    std::vector<reference> references;
    daemon_config daemon;
    std::map<std::string, cluster_config> clusters;
    std::vector<flow_config> flows;  // includes the two flows each [[pair]] expands to
    std::vector<pair_config> pairs;
    std::vector<tap_config> taps;

    [[nodiscard]] const cluster_config* cluster(const std::string& name) const;
    [[nodiscard]] const flow_config* flow(const std::string& name) const;
};

// Parse and validate a file. On failure the Error's message holds every
// problem found, one per line, each `file:line:column: key.path: what`,
// sorted by position; the code is errc::invalid_config (errc::io if the file
// cannot be read). Relative paths in the file (state_dir, file:// storage)
// are relative to the process's working directory, not to the file.
// Any string value may name where its text lives instead of holding it:
// "${env:NAME}" is the environment variable NAME, "${file:PATH}" the file's
// content without its final newline; "$${" is a literal "${". A variable
// that is not set or a file that cannot be read is an error at the value's
// line and column.
[[nodiscard]] Result<Config> load(const std::string& path);
// Same, from text already in memory; `path` is used only in messages.
[[nodiscard]] Result<Config> parse(std::string_view text, const std::string& path);

// Typed values. Accept "500ms", "5s", "2m", "1h", "1d"; "64MiB", "1GiB", "10KB", "123".
[[nodiscard]] Result<duration> parse_duration(std::string_view s);
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view s);
[[nodiscard]] std::string format_duration(duration d);
// Inverse of parse_size for logs and describe(): 64 MiB -> "64MiB", 10000 -> "10KB".
[[nodiscard]] std::string format_size(std::uint64_t bytes);
[[nodiscard]] const char* to_string(naming_policy p) noexcept;

// True for property names that carry secrets (password, secret, token, key
// material such as ssl.key.pem or sasl.oauthbearer.config).
[[nodiscard]] bool is_secret_key(std::string_view name);
// "******" for secrets, the value otherwise. An empty secret stays empty, so
// "not set" remains visible in describe().
[[nodiscard]] std::string masked(std::string_view name, std::string_view value);
// A storage URL with credentials in it (query or userinfo) masked.
[[nodiscard]] std::string masked_url(std::string_view url);

// s in double quotes with \" \\ \n \t \r and \uXXXX escapes: a TOML basic
// string and a JSON string alike.
[[nodiscard]] std::string quoted_string(std::string_view s);

// Topic and group regexes, compiled ECMAScript; load() validated them, so
// this does not fail for a loaded config. Matching is always a full match.
[[nodiscard]] std::vector<std::regex> compile_patterns(const std::vector<std::string>& patterns);
[[nodiscard]] bool full_match_any(const std::vector<std::regex>& res, const std::string& s);

// A topic name that both flows would mirror, or "" if none is evident from
// the patterns alone (literal names, patterns whose wildcards are only ".*"
// and ".+", patterns written the same way). The plan repeats the check
// against the real topic list.
[[nodiscard]] std::string evident_overlap(const flow_config& a, const flow_config& b);

// Rows as left-aligned columns two spaces apart (the first row is the
// header), as replicatorctl prints its tables.
void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out);

// Whether a running flow or tap can be kept as it is when the config is
// reloaded: every setting, and the clusters it talks to, the same. Where the
// section sits in the file (its line, its index) does not count.
[[nodiscard]] bool same_run_settings(const Config& a, const flow_config& fa, const Config& b,
                                     const flow_config& fb);
[[nodiscard]] bool same_run_settings(const Config& a, const tap_config& ta, const Config& b,
                                     const tap_config& tb);

// A tap's name, which is also its backup id and the first part of every key
// in its archive: letters, digits, '.', '_' and '-', and not "." or "..".
[[nodiscard]] bool is_backup_id(std::string_view s);

// Human-readable dump of the effective config, secrets masked.
[[nodiscard]] std::string describe(const Config& c);

}  // namespace rpl::conf
