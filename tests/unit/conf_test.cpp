// conf/: every class of mistake in flows.toml gets a message that names the
// file, line, column and key, and every secret stays out of logs.
//
// Each TOML snippet starts on line 1 right after R"( so that the positions
// asserted below can be counted by eye. Most snippets begin with
// `two_clusters` (lines 1-4) so that the interesting table starts on line 5.

#include "conf/config.h"
#include "conf/restore_config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using rpl::conf::Config;
using rpl::conf::duration;

namespace {

constexpr std::string_view two_clusters = R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
[clusters.dr]
bootstrap = "127.0.0.1:29092"
)";

std::string with_clusters(std::string_view rest) {
    return std::string(two_clusters) + std::string(rest);
}

// The whole error message of a file that must not load.
std::string errors_of(std::string_view text) {
    auto r = rpl::conf::parse(text, "t.toml");
    REQUIRE_MESSAGE(!r, "expected errors, but the config loaded");
    CHECK(r.error().code == rpl::errc::invalid_config);
    return r.error().message;
}

Config load_ok(std::string_view text) {
    auto r = rpl::conf::parse(text, "t.toml");
    if (!r) FAIL("unexpected errors:\n" << r.error().message);
    return std::move(r).value();
}

std::size_t line_count(const std::string& s) { return std::count(s.begin(), s.end(), '\n') + 1; }

// CHECK that `message` holds `expected`, printing the whole message if not.
#define CHECK_HAS(message, expected)                                                       \
    CHECK_MESSAGE((message).find(expected) != std::string::npos, "missing: " << (expected) \
                                                                             << "\nin:\n"  \
                                                                             << (message))

}  // namespace

// ---------------------------------------------------------------------------
// Typed values

TEST_CASE("parse_duration accepts every documented unit and combinations") {
    CHECK(rpl::conf::parse_duration("500ms").value() == 500ms);
    CHECK(rpl::conf::parse_duration("5s").value() == 5s);
    CHECK(rpl::conf::parse_duration("2m").value() == 2min);
    CHECK(rpl::conf::parse_duration("1h").value() == 1h);
    CHECK(rpl::conf::parse_duration("1d").value() == 24h);
    CHECK(rpl::conf::parse_duration("1h30m").value() == 90min);
    CHECK(rpl::conf::parse_duration("1s500ms").value() == 1500ms);
    CHECK(rpl::conf::parse_duration("0s").value() == 0ms);
    // Parsed so that callers can say "must be greater than zero".
    CHECK(rpl::conf::parse_duration("-5s").value() == -5s);
}

TEST_CASE("parse_duration rejects numbers without a unit and unknown units") {
    // Guards against "5" silently meaning 5 ms to one reader and 5 s to another.
    for (const char* bad : {"", "5", "s", "5 s", "5 parsecs", "1.5s", "5S", "5sec", "--5s", "5s-",
                            "99999999999999999999d"}) {
        auto r = rpl::conf::parse_duration(bad);
        CHECK_MESSAGE(!r, bad);
        if (!r) CHECK_HAS(r.error().message, "invalid duration");
    }
}

TEST_CASE("format_duration writes the shortest exact form and round-trips") {
    CHECK(rpl::conf::format_duration(0ms) == "0s");
    CHECK(rpl::conf::format_duration(500ms) == "500ms");
    CHECK(rpl::conf::format_duration(5s) == "5s");
    CHECK(rpl::conf::format_duration(90s) == "1m30s");
    CHECK(rpl::conf::format_duration(24h) == "1d");
    CHECK(rpl::conf::format_duration(1500ms) == "1s500ms");
    CHECK(rpl::conf::format_duration(-5s) == "-5s");
    for (const duration d :
         {duration(1ms), duration(999ms), duration(61s), duration(25h), duration(90061001ms)}) {
        CHECK(rpl::conf::parse_duration(rpl::conf::format_duration(d)).value() == d);
    }
}

TEST_CASE("parse_size reads decimal and binary units exactly") {
    CHECK(rpl::conf::parse_size("123").value() == 123);
    CHECK(rpl::conf::parse_size("123B").value() == 123);
    CHECK(rpl::conf::parse_size("10KB").value() == 10000);
    CHECK(rpl::conf::parse_size("10KiB").value() == 10240);
    CHECK(rpl::conf::parse_size("64MiB").value() == 64ull << 20);
    CHECK(rpl::conf::parse_size("1GiB").value() == 1ull << 30);
    CHECK(rpl::conf::parse_size("2TB").value() == 2'000'000'000'000ull);
}

TEST_CASE("parse_size rejects unknown units, fractions and overflow") {
    for (const char* bad :
         {"", "10XB", "MiB", "-1", "1.5MiB", "64 MiB", "64mib", "99999999999TiB"}) {
        auto r = rpl::conf::parse_size(bad);
        CHECK_MESSAGE(!r, bad);
        if (!r) CHECK_HAS(r.error().message, "invalid size");
    }
}

TEST_CASE("format_size round-trips through parse_size") {
    CHECK(rpl::conf::format_size(64ull << 20) == "64MiB");
    CHECK(rpl::conf::format_size(10000) == "10KB");
    CHECK(rpl::conf::format_size(123) == "123");
    for (const std::uint64_t b : {1ull, 1000ull, 1024ull, 1536ull, 3ull << 30, 123456789ull}) {
        CHECK(rpl::conf::parse_size(rpl::conf::format_size(b)).value() == b);
    }
}

// ---------------------------------------------------------------------------
// What a good file turns into

TEST_CASE("a minimal flow gets the documented defaults") {
    const Config c = load_ok(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
)"));
    CHECK(c.path == "t.toml");
    CHECK(c.daemon.state_dir == "/var/lib/replicatord");
    CHECK(c.daemon.admin_listen == "127.0.0.1:9464");
    CHECK(c.daemon.log_level == "info");
    REQUIRE(c.flows.size() == 1);
    const auto& f = c.flows[0];
    CHECK(f.name == "primary-to-dr");  // <source>-to-<target> when unnamed
    CHECK(f.topics == std::vector<std::string>{".*"});
    CHECK(f.exclude_topics.empty());
    CHECK(f.naming == rpl::conf::naming_policy::prefix);
    CHECK(f.separator == ".");
    CHECK(f.groups == std::vector<std::string>{".*"});
    CHECK(f.checkpoint_interval == 5s);
    CHECK(f.refresh_interval == 5s);
    CHECK(f.heartbeat_interval == 1s);
    CHECK(f.sync_group_offsets);
    CHECK(f.emit_checkpoints);
    CHECK(f.heartbeats);
    CHECK(f.replication_factor == -1);
    CHECK(f.max_in_flight_bytes == 64ull << 20);
    CHECK(f.max_in_flight_records == 50000);
    CHECK_FALSE(f.rpo_target.has_value());
    CHECK(f.from_pair.empty());
    CHECK(f.pos.file == "t.toml");
    CHECK(f.pos.line == 5);
    CHECK(f.pos.column == 1);
}

TEST_CASE("every flow and tap field is read with its type") {
    const Config c = load_ok(with_clusters(R"([daemon]
state_dir = ".testbed/state"
admin_listen = "[::1]:9000"
log_level = "debug"
[[flow]]
name = "orders"
source = "primary"
target = "dr"
topics = ["orders\\..*"]
exclude_topics = [".*\\.tmp"]
naming = "identity"
separator = "_"
groups = ["billing-.*"]
exclude_groups = ["console-.*"]
checkpoint_interval = "10s"
refresh_interval = "1m"
heartbeat_interval = "500ms"
sync_group_offsets = false
emit_checkpoints = false
heartbeats = false
replication_factor = 3
max_in_flight_bytes = 1048576
max_in_flight_records = 1000
rpo_target = "1m"
rto_target = "15m"
[[tap]]
name = "archive"
source = "primary"
topics = ["orders\\..*"]
storage = "s3://backups/primary?region=us-west-2"
compression = "none"
compression_level = 19
segment_max_bytes = "16MiB"
segment_max_interval = "2m"
group_snapshot_interval = "45s"
s3_access_key = "AKIA"
s3_secret_key = "shh"
rpo_target = "5m"
)"));
    CHECK(c.daemon.state_dir == ".testbed/state");
    CHECK(c.daemon.admin_listen == "[::1]:9000");
    CHECK(c.daemon.log_level == "debug");
    const auto* f = c.flow("orders");
    REQUIRE(f);
    CHECK(f->topics == std::vector<std::string>{"orders\\..*"});
    CHECK(f->exclude_topics == std::vector<std::string>{".*\\.tmp"});
    CHECK(f->naming == rpl::conf::naming_policy::identity);
    CHECK(f->separator == "_");
    CHECK(f->groups == std::vector<std::string>{"billing-.*"});
    CHECK(f->exclude_groups == std::vector<std::string>{"console-.*"});
    CHECK(f->checkpoint_interval == 10s);
    CHECK(f->refresh_interval == 1min);
    CHECK(f->heartbeat_interval == 500ms);
    CHECK_FALSE(f->sync_group_offsets);
    CHECK_FALSE(f->emit_checkpoints);
    CHECK_FALSE(f->heartbeats);
    CHECK(f->replication_factor == 3);
    CHECK(f->max_in_flight_bytes == 1048576);  // a TOML integer is bytes
    CHECK(f->max_in_flight_records == 1000);
    CHECK(f->rpo_target == duration(1min));
    CHECK(f->rto_target == duration(15min));
    REQUIRE(c.taps.size() == 1);
    const auto& t = c.taps[0];
    CHECK(t.name == "archive");
    CHECK(t.storage == "s3://backups/primary?region=us-west-2");
    CHECK(t.compression == "none");
    CHECK(t.compression_level == 19);
    CHECK(t.segment_max_bytes == 16ull << 20);
    CHECK(t.segment_max_interval == 2min);
    CHECK(t.group_snapshot_interval == 45s);
    CHECK(t.s3_access_key == "AKIA");
    CHECK(t.s3_secret_key == "shh");
    CHECK(t.rpo_target == duration(5min));
    CHECK_FALSE(t.rto_target.has_value());
}

TEST_CASE("client properties pass through as strings, dotted keys flattened") {
    // Unquoted sasl.mechanisms is a nested table to TOML; librdkafka needs the
    // dotted name back, or the property would be silently dropped.
    const Config c = load_ok(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
[clusters.primary.client]
"client.id" = "replicatord"
sasl.mechanisms = "PLAIN"
"fetch.max.bytes" = 52428800
"enable.ssl.certificate.verification" = false
"linger.ms" = 0.5
)");
    const auto* cl = c.cluster("primary");
    REQUIRE(cl);
    CHECK(cl->name == "primary");
    CHECK(cl->bootstrap == "127.0.0.1:19092");
    CHECK(cl->client.at("client.id") == "replicatord");
    CHECK(cl->client.at("sasl.mechanisms") == "PLAIN");
    CHECK(cl->client.at("fetch.max.bytes") == "52428800");
    CHECK(cl->client.at("enable.ssl.certificate.verification") == "false");
    CHECK(cl->client.at("linger.ms") == "0.5");
    CHECK(c.cluster("nope") == nullptr);
    CHECK(c.flow("nope") == nullptr);
}

TEST_CASE("a pair expands into two flows that inherit its settings") {
    const Config c = load_ok(R"([clusters.us-east]
bootstrap = "east:9092"
[clusters.us-west]
bootstrap = "west:9092"
[[pair]]
clusters = ["us-east", "us-west"]
topics = ["events\\..*"]
exclude_topics = [".*\\.tmp"]
groups = ["svc-.*"]
rpo_target = "1m"
rto_target = "5m"
[[flow]]
name = "explicit"
source = "us-east"
target = "us-west"
topics = ["audit"]
)");
    REQUIRE(c.pairs.size() == 1);
    CHECK(c.pairs[0].name == "us-east-us-west");
    // Explicit flows first, then each pair's flows in file order.
    REQUIRE(c.flows.size() == 3);
    CHECK(c.flows[0].name == "explicit");
    const auto* ew = c.flow("us-east-to-us-west");
    const auto* we = c.flow("us-west-to-us-east");
    REQUIRE(ew);
    REQUIRE(we);
    CHECK(ew->source == "us-east");
    CHECK(ew->target == "us-west");
    CHECK(we->source == "us-west");
    CHECK(we->target == "us-east");
    for (const auto* f : {ew, we}) {
        CHECK(f->from_pair == "us-east-us-west");
        CHECK(f->topics == std::vector<std::string>{"events\\..*"});
        CHECK(f->exclude_topics == std::vector<std::string>{".*\\.tmp"});
        CHECK(f->groups == std::vector<std::string>{"svc-.*"});
        CHECK(f->naming == rpl::conf::naming_policy::prefix);
        CHECK(f->rpo_target == duration(1min));
        CHECK(f->rto_target == duration(5min));
        CHECK(f->pos.line == 5);
    }
}

TEST_CASE("a pair passes flow settings to both directions and names its flows if asked") {
    const Config c = load_ok(with_clusters(R"([[pair]]
clusters = ["primary", "dr"]
naming = "identity"
flow_names = ["east", "west"]
max_in_flight_records = 5000
checkpoint_interval = "2s"
heartbeats = false
)"));
    REQUIRE(c.flows.size() == 2);
    CHECK(c.flows[0].name == "east");
    CHECK(c.flows[0].source == "primary");
    CHECK(c.flows[1].name == "west");
    CHECK(c.flows[1].source == "dr");
    CHECK(c.flows[0].reverse_flow == "west");
    CHECK(c.flows[1].reverse_flow == "east");
    for (const auto& f : c.flows) {
        CHECK(f.naming == rpl::conf::naming_policy::identity);
        CHECK(f.max_in_flight_records == 5000);
        CHECK(f.checkpoint_interval == duration(2s));
        CHECK_FALSE(f.heartbeats);
    }
}

TEST_CASE("a pair's flow knows its reverse even when this process runs only one direction") {
    const Config c = load_ok(with_clusters(R"([[pair]]
clusters = ["primary", "dr"]
naming = "identity"
directions = ["primary-to-dr"]
)"));
    REQUIRE(c.flows.size() == 1);
    CHECK(c.flows[0].reverse_flow == "dr-to-primary");
}

TEST_CASE("a pair and a flow mirroring the same topic in the same direction are rejected") {
    const std::string e2 = errors_of(with_clusters(R"([[pair]]
clusters = ["primary", "dr"]
topics = ["events"]
[[flow]]
name = "extra"
source = "primary"
target = "dr"
topics = ["ev.*", "audit"]
)"));
    CHECK_HAS(e2,
              "t.toml:5:1: pair[0]: flow 'primary-to-dr' of pair 'primary-dr' and flow 'extra' "
              "(line 8) both mirror topic 'events' from 'primary' to 'dr'; a topic is mirrored "
              "by one flow per direction");
    // The other direction, or topics that cannot meet, are fine.
    load_ok(with_clusters(R"([[pair]]
clusters = ["primary", "dr"]
topics = ["events"]
[[flow]]
name = "audit-only"
source = "primary"
target = "dr"
topics = ["audit\\..*"]
)"));
}

TEST_CASE("pair directions run only the named flows") {
    const Config c = load_ok(with_clusters(R"([[pair]]
name = "pd"
clusters = ["primary", "dr"]
directions = ["dr-to-primary"]
)"));
    REQUIRE(c.flows.size() == 1);
    CHECK(c.flows[0].name == "dr-to-primary");
    CHECK(c.flows[0].from_pair == "pd");
    CHECK(c.pairs[0].directions == std::vector<std::string>{"dr-to-primary"});
}

// ---------------------------------------------------------------------------
// One test per class of error: message text and exact line:column.

TEST_CASE("syntax error names file, line and column") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = primary
)"));
    CHECK_HAS(e, "t.toml:6:10: syntax error: Error while parsing value");
    CHECK(line_count(e) == 1);
}

TEST_CASE("unknown key suggests the closest known key") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
chekpoint_interval = "5s"
colour = "blue"
)"));
    CHECK_HAS(
        e,
        "t.toml:8:1: flow[0].chekpoint_interval: unknown key; did you mean 'checkpoint_interval'?");
    // Nothing is close to "colour": no misleading suggestion.
    CHECK_MESSAGE(e.ends_with("t.toml:9:1: flow[0].colour: unknown key"), e);
}

TEST_CASE("unknown top-level table suggests the right one") {
    const std::string e = errors_of(with_clusters(R"([[flows]]
source = "primary"
)"));
    CHECK_HAS(e, "t.toml:5:3: flows: unknown key; did you mean 'flow'?");
}

TEST_CASE("unknown key in daemon, cluster and tap tables is reported with its path") {
    const std::string e = errors_of(with_clusters(R"([daemon]
statedir = "/x"
[[tap]]
source = "primary"
storage = "file:///x"
compresion = "zstd"
)"));
    CHECK_HAS(e, "t.toml:6:1: daemon.statedir: unknown key; did you mean 'state_dir'?");
    CHECK_HAS(e, "t.toml:10:1: tap[0].compresion: unknown key; did you mean 'compression'?");
}

TEST_CASE("a string where an array belongs is a type error that shows the fix") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
topics = "orders"
)"));
    CHECK_HAS(
        e,
        "t.toml:8:10: flow[0].topics: expected an array of strings, got a string; write topics = "
        "[\"orders\"]");
}

TEST_CASE("a string where an integer belongs is a type error") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
replication_factor = "three"
groups = ["a", 5]
sync_group_offsets = "yes"
)"));
    CHECK_HAS(e, "t.toml:8:22: flow[0].replication_factor: expected an integer, got a string");
    CHECK_HAS(e, "t.toml:9:16: flow[0].groups[1]: expected a string, got an integer");
    CHECK_HAS(e,
              "t.toml:10:22: flow[0].sync_group_offsets: expected a boolean (true or false), got a "
              "string");
}

TEST_CASE("[flow] written as a table instead of [[flow]] is a type error") {
    const std::string e = errors_of(with_clusters(R"([flow]
source = "primary"
)"));
    CHECK_HAS(e, "t.toml:5:1: flow: expected an array of tables (write [[flow]]), got a table");
}

TEST_CASE("replication factor outside -1 or 1..32767 is rejected") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
replication_factor = 0
)"));
    CHECK_HAS(e,
              "t.toml:8:22: flow[0].replication_factor: must be -1 (automatic) or between 1 and "
              "32767, got 0");
}

TEST_CASE("invalid regex names the regex and the regex engine's reason") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
topics = ["ok", "orders\\.(eu"]
)"));
    CHECK_HAS(e, "t.toml:8:17: flow[0].topics[1]: invalid regex 'orders\\.(eu': ");
    // std::regex_error's what(), whatever libstdc++ calls it, follows.
    CHECK(e.size() > e.find("(eu': ") + 6);
}

TEST_CASE("an empty topics list is rejected because it would copy nothing") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
topics = []
)"));
    CHECK_HAS(e, "t.toml:8:10: flow[0].topics: is empty");
}

TEST_CASE("a flow naming an unknown cluster lists the known ones") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primray"
target = "backup"
)"));
    CHECK_HAS(e,
              "t.toml:6:10: flow[0].source: unknown cluster 'primray'; did you mean 'primary'? "
              "(known clusters: dr, primary)");
    CHECK_HAS(
        e, "t.toml:7:10: flow[0].target: unknown cluster 'backup' (known clusters: dr, primary)");
}

TEST_CASE("a tap naming an unknown cluster lists the known ones") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
source = "backup"
storage = "file:///var/backups"
)"));
    CHECK_HAS(e,
              "t.toml:6:10: tap[0].source: unknown cluster 'backup' (known clusters: dr, primary)");
}

TEST_CASE("a pair naming an unknown cluster lists the known ones") {
    const std::string e = errors_of(with_clusters(R"([[pair]]
clusters = ["primary", "west"]
)"));
    CHECK_HAS(
        e,
        "t.toml:6:24: pair[0].clusters[1]: unknown cluster 'west' (known clusters: dr, primary)");
}

TEST_CASE("a flow whose source is its target is rejected") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "primary"
)"));
    CHECK_HAS(e, "t.toml:7:10: flow[0].target: source and target are both 'primary'");
}

TEST_CASE("duplicate flow names point at the first definition") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
name = "mirror"
source = "primary"
target = "dr"
[[flow]]
name = "mirror"
source = "dr"
target = "primary"
)"));
    CHECK_HAS(
        e, "t.toml:10:8: flow[1].name: duplicate name 'mirror'; flow[0] at line 6 already uses it");
}

TEST_CASE("two unnamed flows between the same clusters collide on the default name") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
[[flow]]
source = "primary"
target = "dr"
)"));
    CHECK_HAS(e,
              "t.toml:8:1: flow[1].name: duplicate name 'primary-to-dr'; flow[0] at line 5 already "
              "uses it");
}

TEST_CASE("duplicate tap names point at the first definition") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
name = "archive"
source = "primary"
storage = "file:///a"
[[tap]]
name = "archive"
source = "dr"
storage = "file:///b"
)"));
    CHECK_HAS(
        e, "t.toml:10:8: tap[1].name: duplicate name 'archive'; tap[0] at line 6 already uses it");
}

TEST_CASE("a pair's flow colliding with an explicit flow is reported at the pair") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
[[pair]]
clusters = ["primary", "dr"]
)"));
    CHECK_HAS(
        e,
        "t.toml:8:1: pair[0]: its flow 'primary-to-dr' has a duplicate name; flow[0] at line 5 "
        "already uses it");
}

TEST_CASE("a pair that names one cluster twice is rejected") {
    const std::string e = errors_of(with_clusters(R"([[pair]]
clusters = ["primary", "primary"]
)"));
    CHECK_HAS(e, "t.toml:6:24: pair[0].clusters[1]: cluster 'primary' is named twice");
}

TEST_CASE("a pair needs exactly two clusters") {
    const std::string e = errors_of(with_clusters(R"([[pair]]
clusters = ["primary", "dr", "third"]
[[pair]]
name = "lonely"
)"));
    CHECK_HAS(e, "t.toml:6:12: pair[0].clusters: expected exactly two clusters, got 3");
    CHECK_HAS(e, "t.toml:7:1: pair[1].clusters: required key is missing");
}

TEST_CASE("pair directions must name one of the pair's two flows") {
    const std::string e = errors_of(with_clusters(R"([[pair]]
clusters = ["primary", "dr"]
directions = ["primary-to-dr", "sideways"]
)"));
    CHECK_HAS(e,
              "t.toml:7:32: pair[0].directions[1]: 'sideways' is not a flow of this pair; expected "
              "'primary-to-dr' or 'dr-to-primary'");
}

TEST_CASE("bad durations are rejected with the accepted units") {
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
checkpoint_interval = "5 parsecs"
refresh_interval = 5
)"));
    CHECK_HAS(e,
              "t.toml:8:23: flow[0].checkpoint_interval: invalid duration \"5 parsecs\": expected "
              "a number "
              "and a unit");
    // A bare number has no unit: 5 ms or 5 s? Refuse to guess.
    CHECK_HAS(e, "t.toml:9:20: flow[0].refresh_interval: expected a duration string with a unit");
}

TEST_CASE("bad sizes are rejected with the accepted units") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
source = "primary"
storage = "file:///x"
segment_max_bytes = "10XB"
[[flow]]
source = "primary"
target = "dr"
max_in_flight_bytes = -1
max_in_flight_records = "many"
)"));
    CHECK_HAS(e, "t.toml:8:21: tap[0].segment_max_bytes: invalid size \"10XB\"");
    CHECK_HAS(e, "t.toml:12:23: flow[0].max_in_flight_bytes: must be greater than zero, got -1");
    CHECK_HAS(e, "t.toml:13:25: flow[0].max_in_flight_records: expected an integer, got a string");
}

TEST_CASE("zero and negative intervals are rejected") {
    // A zero interval would spin; a negative one is always a typo.
    const std::string e = errors_of(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
refresh_interval = "0s"
heartbeat_interval = "-5s"
rpo_target = "0ms"
)"));
    CHECK_HAS(e, "t.toml:8:20: flow[0].refresh_interval: must be greater than zero, got \"0s\"");
    CHECK_HAS(e, "t.toml:9:22: flow[0].heartbeat_interval: must be greater than zero, got \"-5s\"");
    CHECK_HAS(e, "t.toml:10:14: flow[0].rpo_target: must be greater than zero, got \"0ms\"");
}

TEST_CASE("unsupported storage schemes are rejected") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
name = "a"
source = "primary"
storage = "gs://bucket/x"
[[tap]]
name = "b"
source = "primary"
storage = "ftp://"
[[tap]]
name = "c"
source = "primary"
storage = "/var/backups"
[[tap]]
name = "d"
source = "primary"
storage = "s3://"
)"));
    CHECK_HAS(e,
              "t.toml:8:11: tap[0].storage: unsupported storage scheme 'gs' in 'gs://bucket/x'; "
              "only file:// "
              "and s3:// are supported");
    CHECK_HAS(e, "t.toml:12:11: tap[1].storage: unsupported storage scheme 'ftp'");
    CHECK_HAS(e, "t.toml:16:11: tap[2].storage: expected a URL, got '/var/backups'");
    CHECK_HAS(e, "t.toml:20:11: tap[3].storage: s3:// URL 's3://' has no bucket");
}

TEST_CASE("a tap without storage points at its header") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
source = "primary"
)"));
    CHECK_HAS(e, "t.toml:5:1: tap[0].storage: required key is missing");
}

TEST_CASE("compression must be zstd or none, level 1..22") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
source = "primary"
storage = "file:///x"
compression = "lz4"
compression_level = 30
)"));
    CHECK_HAS(e, "t.toml:8:15: tap[0].compression: expected \"zstd\" or \"none\", got 'lz4'");
    CHECK_HAS(e, "t.toml:9:21: tap[0].compression_level: must be between 1 and 22, got 30");
}

TEST_CASE("S3 credentials must come as a pair and only for s3 storage") {
    const std::string e = errors_of(with_clusters(R"([[tap]]
name = "a"
source = "primary"
storage = "s3://bucket"
s3_access_key = "AKIA"
[[tap]]
name = "b"
source = "primary"
storage = "file:///x"
s3_access_key = "AKIA"
s3_secret_key = "shh"
)"));
    CHECK_HAS(
        e,
        "t.toml:9:17: tap[0].s3_access_key: set both s3_access_key and s3_secret_key, or neither");
    CHECK_HAS(e, "t.toml:14:17: tap[1].s3_access_key: only applies to s3:// storage");
}

TEST_CASE("a client property librdkafka rejects carries librdkafka's reason") {
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
[clusters.primary.client]
"no.such.property" = "1"
acks = "banana"
)");
    // Unknown names point at the key, bad values at the value.
    CHECK_HAS(
        e,
        "t.toml:4:1: clusters.primary.client.no.such.property: rejected by librdkafka: No such "
        "configuration property: \"no.such.property\"");
    CHECK_HAS(e, "t.toml:5:8: clusters.primary.client.acks: rejected by librdkafka: Invalid value");
}

TEST_CASE("bootstrap.servers in the client table points to bootstrap") {
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
[clusters.primary.client]
"bootstrap.servers" = "elsewhere:9092"
)");
    CHECK_HAS(e,
              "t.toml:4:1: clusters.primary.client.bootstrap.servers: set the brokers with "
              "clusters.primary.bootstrap instead");
}

TEST_CASE("a client property set twice, quoted and dotted, is rejected") {
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
[clusters.primary.client]
"client.id" = "a"
client.id = "b"
)");
    CHECK_HAS(e, "clusters.primary.client.client.id: set twice; first at line ");
}

TEST_CASE("flows without any cluster table say so once") {
    const std::string e = errors_of(R"([[flow]]
source = "primary"
target = "dr"
[[tap]]
source = "primary"
storage = "file:///x"
)");
    CHECK_HAS(e, "t.toml:1:1: clusters: no clusters defined; add a [clusters.NAME] table");
    // One message, not one "unknown cluster" per reference.
    CHECK(line_count(e) == 1);
}

TEST_CASE("a cluster without bootstrap points at its header") {
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"

[clusters.dr]
client = { "client.id" = "x" }
)");
    CHECK_HAS(e, "t.toml:4:1: clusters.dr.bootstrap: required key is missing");
}

TEST_CASE("a flow without source or target points at its header") {
    const std::string e = errors_of(with_clusters(R"(
[[flow]]
name = "half"
)"));
    CHECK_HAS(e, "t.toml:6:1: flow[0].source: required key is missing");
    CHECK_HAS(e, "t.toml:6:1: flow[0].target: required key is missing");
}

TEST_CASE("cluster aliases and names keep to the topic-name alphabet") {
    const std::string e = errors_of(R"([clusters."pri mary"]
bootstrap = "a:1"
[clusters.dr]
bootstrap = "b:1"
[[flow]]
name = "a/b"
source = "pri mary"
target = "dr"
)");
    CHECK_HAS(
        e,
        "t.toml:1:11: clusters.pri mary: cluster alias 'pri mary' must use only letters, digits");
    CHECK_HAS(e, "t.toml:6:8: flow[0].name: name 'a/b' must use only letters");
}

TEST_CASE("admin_listen must be host:port") {
    const std::string e = errors_of(R"([daemon]
admin_listen = "9464"
)");
    CHECK_HAS(e, "t.toml:2:16: daemon.admin_listen: expected host:port");
}

TEST_CASE("admin_listen off loopback requires an admin token") {
    // The admin endpoint can stop flows; an open one is a remote kill switch.
    const std::string e = errors_of(R"([daemon]
admin_listen = "0.0.0.0:9464"
)");
    CHECK_HAS(
        e,
        "t.toml:2:16: daemon.admin_listen: listening on '0.0.0.0:9464', which is not loopback, "
        "requires daemon.admin_token");
    load_ok(R"([daemon]
admin_listen = "0.0.0.0:9464"
admin_token = "t"
)");
}

TEST_CASE("log_level must be a known level") {
    const std::string e = errors_of(R"([daemon]
log_level = "verbose"
)");
    CHECK_HAS(e,
              "t.toml:2:13: daemon.log_level: unknown level 'verbose'; expected trace, debug, "
              "info, warn");
}

TEST_CASE("every error in the file is listed, one per line, in file order") {
    // Guards against the fix-one-rerun-fix-the-next loop at 3 a.m.
    const std::string e = errors_of(with_clusters(R"([[tap]]
source = "primary"
storage = "gs://x"
[[flow]]
source = "nowhere"
target = "dr"
checkpoint_interval = "0s"
[daemon]
log_level = "loud"
)"));
    CHECK(line_count(e) == 4);
    const auto a = e.find("t.toml:7:11: tap[0].storage");
    const auto b = e.find("t.toml:9:10: flow[0].source");
    const auto c = e.find("t.toml:11:23: flow[0].checkpoint_interval");
    const auto d = e.find("t.toml:13:13: daemon.log_level");
    CHECK(a < b);
    CHECK(b < c);
    CHECK(c < d);
    CHECK(d != std::string::npos);
}

TEST_CASE("a missing file is an io error naming the file") {
    auto r = rpl::conf::load("/nonexistent/flows.toml");
    REQUIRE(!r);
    CHECK(r.error().code == rpl::errc::io);
    CHECK_HAS(r.error().message, "/nonexistent/flows.toml: cannot read");
}

// ---------------------------------------------------------------------------
// Secrets

TEST_CASE("secret property names are recognised") {
    for (const char* k :
         {"sasl.password", "ssl.key.password", "ssl.key.pem", "ssl.key.location",
          "ssl.keystore.location", "ssl.keystore.password", "sasl.oauthbearer.config",
          "sasl.oauthbearer.client.secret", "sasl.jaas.config", "s3_access_key", "s3_secret_key",
          "admin_token", "SASL.PASSWORD", "my.client.key.pem"}) {
        CHECK_MESSAGE(rpl::conf::is_secret_key(k), k);
    }
    for (const char* k :
         {"bootstrap.servers", "sasl.username", "sasl.mechanisms", "security.protocol", "client.id",
          "ssl.ca.location", "ssl.certificate.location", "state_dir"}) {
        CHECK_MESSAGE(!rpl::conf::is_secret_key(k), k);
    }
}

TEST_CASE("masked hides secret values and keeps the rest") {
    CHECK(rpl::conf::masked("sasl.password", "hunter2") == "******");
    CHECK(rpl::conf::masked("sasl.username", "alice") == "alice");
    // An unset secret stays visibly unset.
    CHECK(rpl::conf::masked("sasl.password", "") == "");
}

TEST_CASE("masked_url hides userinfo and credential query parameters") {
    CHECK(rpl::conf::masked_url("s3://AKIA:secret@bucket/prefix?region=us-west-2") ==
          "s3://******@bucket/prefix?region=us-west-2");
    CHECK(rpl::conf::masked_url(
              "s3://bucket/p?region=eu&access_key=AKIA&secret_key=shh&endpoint=http://x:8333") ==
          "s3://bucket/p?region=eu&access_key=******&secret_key=******&endpoint=http://x:8333");
    CHECK(rpl::conf::masked_url(
              "https://h/o?X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=abc&token=t#frag") ==
          "https://h/o?X-Amz-Credential=******&X-Amz-Signature=******&token=******#frag");
    CHECK(rpl::conf::masked_url("file:///var/backups") == "file:///var/backups");
}

TEST_CASE("a password never appears in describe() or in any error message") {
    // Guards against credentials leaking into logs, tickets and chat when an
    // operator pastes `replicatord --check` output.
    const std::string secrets_toml = R"([daemon]
admin_listen = "0.0.0.0:9464"
admin_token = "tok-abc-123"
[clusters.primary]
bootstrap = "127.0.0.1:19092"
[clusters.primary.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "PLAIN"
sasl.username = "replicator"
sasl.password = "hunter2-very-secret"
[clusters.dr]
bootstrap = "127.0.0.1:29092"
[[tap]]
source = "primary"
storage = "s3://AKIAUSER:s3cr3t-in-url@bucket/prefix?region=us-east-1&secret_key=q-s3cr3t"
s3_access_key = "AKIAEXAMPLE2"
s3_secret_key = "wJalrXUtnFEMI"
)";
    const std::vector<std::string> secrets = {
        "tok-abc-123", "hunter2-very-secret", "AKIAUSER",     "s3cr3t-in-url",
        "q-s3cr3t",    "AKIAEXAMPLE2",        "wJalrXUtnFEMI"};
    const Config c = load_ok(secrets_toml);
    const std::string d = rpl::conf::describe(c);
    for (const auto& s : secrets)
        CHECK_MESSAGE(d.find(s) == std::string::npos, s << " leaked:\n" << d);
    CHECK_HAS(d, "sasl.password\" = \"******\"");
    CHECK_HAS(d, "sasl.username\" = \"replicator\"");  // non-secrets stay readable

    // Errors about secret-bearing values do not echo them.
    const std::vector<std::string> bad = {
        R"([clusters.primary]
bootstrap = "a:1"
[clusters.primary.client]
sasl.password = ["hunter2-very-secret"]
)",
        R"([clusters.primary]
bootstrap = "a:1"
[clusters.primary.client]
sasl.password = hunter2-very-secret
)",
        R"([clusters.primary]
bootstrap = "a:1"
[clusters.primary.client]
sasl.password.typo = "hunter2-very-secret"
)",
        R"([clusters.primary]
bootstrap = "a:1"
[[tap]]
source = "primary"
storage = "gs://AKIAUSER:s3cr3t-in-url@bucket"
s3_secret_key = 42
)",
        R"([daemon]
admin_token = ["tok-abc-123"]
)",
    };
    for (const auto& text : bad) {
        const std::string e = errors_of(text);
        for (const auto& s : secrets)
            CHECK_MESSAGE(e.find(s) == std::string::npos, s << " leaked:\n" << e);
    }
}

TEST_CASE("describe() output loads back into the same flows") {
    const Config c = load_ok(with_clusters(R"([[flow]]
source = "primary"
target = "dr"
topics = ["demo\\..*", "quote\"d"]
checkpoint_interval = "1m30s"
max_in_flight_bytes = "10KB"
max_in_flight_records = 7
naming = "identity"
rpo_target = "1m"
[[pair]]
clusters = ["primary", "dr"]
directions = ["dr-to-primary"]
[[tap]]
source = "dr"
storage = "file://.testbed/archive"
)"));
    const std::string text = rpl::conf::describe(c);
    const Config again = load_ok(text);
    REQUIRE(again.flows.size() == c.flows.size());
    for (std::size_t i = 0; i < c.flows.size(); ++i) {
        CHECK(again.flows[i].name == c.flows[i].name);
        CHECK(again.flows[i].topics == c.flows[i].topics);
        CHECK(again.flows[i].checkpoint_interval == c.flows[i].checkpoint_interval);
        CHECK(again.flows[i].max_in_flight_bytes == c.flows[i].max_in_flight_bytes);
        CHECK(again.flows[i].max_in_flight_records == c.flows[i].max_in_flight_records);
        CHECK(again.flows[i].naming == c.flows[i].naming);
        CHECK(again.flows[i].rpo_target == c.flows[i].rpo_target);
    }
    REQUIRE(again.taps.size() == 1);
    CHECK(again.taps[0].storage == "file://.testbed/archive");
    CHECK_HAS(text, "# from pair primary-dr");
}

// ---------------------------------------------------------------------------
// Shipped examples

TEST_CASE("every file in conf/examples loads without errors") {
    // Resolved from this source file, so it works from any build directory.
    const auto dir = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
                     "conf" / "examples";
    REQUIRE_MESSAGE(std::filesystem::is_directory(dir), dir.string());
    int loaded = 0;
    // compose.toml listens on 0.0.0.0 and takes its token from the
    // environment, as docker-compose.yml provides it.
    ::setenv("REPLICATORD_ADMIN_TOKEN", "example-token", 1);
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".toml") continue;
        auto r = rpl::conf::load(entry.path().string());
        CHECK_MESSAGE(r.has_value(), entry.path().string() << ":\n"
                                                           << (r ? "" : r.error().message));
        ++loaded;
    }
    ::unsetenv("REPLICATORD_ADMIN_TOKEN");
    // demo.toml, full.toml and compose.toml at least: an empty directory must not pass.
    CHECK(loaded >= 3);
}

TEST_CASE("a_tap_named_dot_dot_and_a_restore_of_backup_dot_dot_are_refused_at_their_line") {
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
[[tap]]
name = ".."
source = "primary"
storage = "file:///tmp/archive"
)");
    CHECK_HAS(e, "t.toml:4:8: tap[0].name: name '..' is not a name");

    for (const std::string id : {"..", "../orders", "a/b"}) {
        CAPTURE(id);
        auto r = rpl::conf::parse_restore("store = \"file:///tmp/archive\"\nbackup = \"" + id +
                                              "\"\n[target]\nbootstrap = \"127.0.0.1:29092\"\n",
                                          "R.toml");
        REQUIRE(!r);
        CHECK_HAS(r.error().message, "R.toml:2:10: backup: backup id '" + id + "' is not one");
    }
}
