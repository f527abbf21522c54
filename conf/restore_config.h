// conf/: the restore file (R.toml) that `replicatorctl restore --config R`
// reads: which backup, from which store, to which cluster, which topics and
// which window.
//
//   R.toml --parse--> toml::table --validate--> restore_config (plain struct)
//                                   \--errors--> one line each: file:line:col: key.path: what
//
// Same rules as the daemon's config (conf/config.h): every problem in the
// file is reported at once, each naming file, line, column and key path,
// unknown keys get a "did you mean"; the S3 secret and secret librdkafka
// properties never appear in a message or in describe().
// Thread model: a restore_config is immutable after load and may be shared.
//
//   store = "s3://bucket/prefix?endpoint=..&path_style=true"  (or file:///path)
//   backup = "primary-tap"
//   topics = ["orders\\..*"]        exclude_topics = [...]
//   topic_prefix = "restored."      [rename] "orders" = "orders.v2"
//   partition_mapping = "preserve"  # or "murmur2"
//   rate_limit = "50MiB"            # bytes per second; absent = unlimited
//   restore_groups = true           groups = [".*"]   exclude_groups = [...]
//   skip_damaged = false
//   [target]   bootstrap = "host:port"   [target.client] librdkafka properties
//   [window]   from / to  (RFC 3339, TOML date-time or epoch ms; inclusive)
//              or from_offset / to_offset (inclusive, every partition)
#pragma once

#include "conf/config.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::conf {

// How a record's target partition is chosen.
enum class partition_mapping {
    // Same partition number as in the backup. A target topic with fewer
    // partitions than the backup recorded is an error.
    preserve,
    // murmur2(key) % target partitions, as Kafka's default partitioner does
    // (librdkafka's "murmur2_random"): a record with a key lands where a
    // Java producer would put it. Records with a null key keep their source
    // partition modulo the target's partition count (deterministic, so a
    // resumed restore puts them where the first attempt did).
    murmur2,
};
[[nodiscard]] const char* to_string(partition_mapping m) noexcept;

// Which records of each partition are restored. Bounds are inclusive;
// absent bounds are open. Timestamps and offsets are never mixed.
struct restore_window {
    std::optional<int64_t> from_ms;  // record timestamp >= from_ms
    std::optional<int64_t> to_ms;    // record timestamp <= to_ms
    std::optional<int64_t> from_offset;
    std::optional<int64_t> to_offset;

    [[nodiscard]] bool by_time() const noexcept { return from_ms || to_ms; }
    [[nodiscard]] bool by_offset() const noexcept { return from_offset || to_offset; }
    [[nodiscard]] bool contains(int64_t offset, int64_t timestamp) const noexcept {
        if (from_offset && offset < *from_offset) return false;
        if (to_offset && offset > *to_offset) return false;
        if (from_ms && timestamp < *from_ms) return false;
        if (to_ms && timestamp > *to_ms) return false;
        return true;
    }
};

struct restore_config {
    std::string path;                   // the file, for messages
    std::vector<reference> references;  // ${env:..} and ${file:..} values, as in Config

    std::string store;          // file:///abs, file://rel or s3://bucket/prefix?...
    std::string s3_access_key;  // optional; else AWS_ACCESS_KEY_ID
    std::string s3_secret_key;  // secret; optional; else AWS_SECRET_ACCESS_KEY
    std::string backup;         // backup id (the tap's name)

    cluster_config target;  // name "target"; bootstrap + librdkafka properties

    std::vector<std::string> topics = {".*"};  // full-match regexes over backed-up topics
    std::vector<std::string> exclude_topics;
    restore_window window;

    std::map<std::string, std::string> rename;  // backed-up topic -> target topic
    std::string topic_prefix;                   // for topics not in rename; default none

    partition_mapping mapping = partition_mapping::preserve;
    int replication_factor = -1;   // topics created on the target; -1: min(3, brokers)
    std::uint64_t rate_limit = 0;  // bytes per second of key+value+headers; 0 = unlimited

    bool restore_groups = true;                // commit translated group offsets on the target
    std::vector<std::string> groups = {".*"};  // full-match regexes
    std::vector<std::string> exclude_groups;

    bool skip_damaged = false;  // skip damaged ranges (and list them) instead of stopping

    // The name a backed-up topic gets on the target.
    [[nodiscard]] std::string target_topic(const std::string& source_topic) const;
};

// Parse and validate; errors as conf::load (errc::invalid_config, one line
// per problem; errc::io if the file cannot be read).
[[nodiscard]] Result<restore_config> load_restore(const std::string& path);
[[nodiscard]] Result<restore_config> parse_restore(std::string_view text, const std::string& path);

// RFC 3339 ("2026-11-26T12:00:00Z", "2026-11-26T13:00:00.250+01:00") or
// epoch milliseconds ("1764158400000") -> ms since the epoch.
[[nodiscard]] Result<int64_t> parse_timestamp(std::string_view s);
// ms since the epoch -> RFC 3339 in UTC with milliseconds; "-" for < 0.
[[nodiscard]] std::string format_timestamp(int64_t ms);

// Human-readable dump, secrets masked.
[[nodiscard]] std::string describe(const restore_config& c);

}  // namespace rpl::conf
