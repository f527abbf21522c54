// conf/restore_config: every mistake in a restore file (R.toml) gets one
// line naming file, line, column and key; good files load with the values
// written and the documented defaults. Guards against a restore that
// silently restores the wrong window, the wrong topics, or leaks the S3
// secret into its output.
//
// Snippets start on line 1 right after R"( so positions can be counted.

#include "conf/restore_config.h"

#include <doctest/doctest.h>

#include <string>

using rpl::conf::restore_config;

namespace {

std::string errors_of(std::string_view text) {
    auto r = rpl::conf::parse_restore(text, "r.toml");
    REQUIRE_MESSAGE(!r, "expected errors, but the restore config loaded");
    CHECK(r.error().code == rpl::errc::invalid_config);
    return r.error().message;
}

restore_config load_ok(std::string_view text) {
    auto r = rpl::conf::parse_restore(text, "r.toml");
    if (!r) FAIL("unexpected errors:\n" << r.error().message);
    return std::move(r).value();
}

}  // namespace

TEST_CASE("a minimal restore file takes the documented defaults") {
    const auto c = load_ok(R"(store = "file:///var/backups/kafka"
backup = "primary-tap"
[target]
bootstrap = "127.0.0.1:29092"
)");
    CHECK(c.store == "file:///var/backups/kafka");
    CHECK(c.backup == "primary-tap");
    CHECK(c.target.bootstrap == "127.0.0.1:29092");
    CHECK(c.topics == std::vector<std::string>{".*"});
    CHECK(c.exclude_topics.empty());
    CHECK(!c.window.by_time());
    CHECK(!c.window.by_offset());
    CHECK(c.mapping == rpl::conf::partition_mapping::preserve);
    CHECK(c.rate_limit == 0);
    CHECK(c.restore_groups);
    CHECK(c.groups == std::vector<std::string>{".*"});
    CHECK(!c.skip_damaged);
    CHECK(c.replication_factor == -1);
    CHECK(c.target_topic("orders") == "orders");
}

TEST_CASE("a full restore file reads every field") {
    const auto c =
        load_ok(R"(store = "s3://bucket/prefix?endpoint=http://127.0.0.1:8333&path_style=true"
s3_access_key = "AKIA"
s3_secret_key = "very-secret-value"
backup = "primary-tap"
topics = ["orders\\..*", "payments"]
exclude_topics = [".*\\.tmp"]
topic_prefix = "restored."
partition_mapping = "murmur2"
rate_limit = "50MiB"
replication_factor = 1
restore_groups = false
groups = ["billing-.*"]
exclude_groups = ["billing-test"]
skip_damaged = true
[target]
bootstrap = "127.0.0.1:29092"
[target.client]
"client.id" = "restore"
[window]
from = "2026-11-26T10:00:00Z"
to = 1795694400000
[rename]
"orders.eu" = "orders.eu.v2"
)");
    CHECK(c.s3_access_key == "AKIA");
    CHECK(c.s3_secret_key == "very-secret-value");
    CHECK(c.topics == std::vector<std::string>{"orders\\..*", "payments"});
    CHECK(c.exclude_topics == std::vector<std::string>{".*\\.tmp"});
    CHECK(c.mapping == rpl::conf::partition_mapping::murmur2);
    CHECK(c.rate_limit == 50ull << 20);
    CHECK(c.replication_factor == 1);
    CHECK(!c.restore_groups);
    CHECK(c.exclude_groups == std::vector<std::string>{"billing-test"});
    CHECK(c.skip_damaged);
    CHECK(c.target.client.at("client.id") == "restore");
    CHECK(c.window.from_ms == 1795687200000);
    CHECK(c.window.to_ms == 1795694400000);
    CHECK(c.target_topic("orders.eu") == "orders.eu.v2");
    CHECK(c.target_topic("orders.us") == "restored.orders.us");

    const std::string d = rpl::conf::describe(c);
    CHECK(d.find("very-secret-value") == std::string::npos);
    CHECK(d.find("AKIA") == std::string::npos);
    CHECK(d.find("window.from = 2026-11-26T10:00:00.000Z") != std::string::npos);
}

TEST_CASE("window bounds accept RFC 3339 with offsets, TOML date-times and epoch ms") {
    const auto c = load_ok(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[window]
from = 2026-11-26T13:00:00.250+01:00
to = "2026-11-26T12:30:00.5-00:30"
)");
    CHECK(c.window.from_ms == 1795694400250);
    CHECK(c.window.to_ms == 1795698000500);

    CHECK(rpl::conf::parse_timestamp("1970-01-01T00:00:00Z").value() == 0);
    CHECK(rpl::conf::parse_timestamp("2000-02-29T23:59:59.999Z").value() == 951868799999);
    CHECK(rpl::conf::parse_timestamp("42").value() == 42);
    CHECK(!rpl::conf::parse_timestamp("2026-11-26T12:00:00"));  // no offset
    CHECK(!rpl::conf::parse_timestamp("2026-02-30T12:00:00Z"));
    CHECK(!rpl::conf::parse_timestamp("yesterday"));
    CHECK(rpl::conf::format_timestamp(951868799999) == "2000-02-29T23:59:59.999Z");
    CHECK(rpl::conf::format_timestamp(1795694400250) == "2026-11-26T12:00:00.250Z");
    CHECK(rpl::conf::format_timestamp(-1) == "-");
}

TEST_CASE("an offset window is inclusive on both ends") {
    const auto c = load_ok(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[window]
from_offset = 10
to_offset = 20
)");
    CHECK(c.window.by_offset());
    CHECK(!c.window.contains(9, 0));
    CHECK(c.window.contains(10, 0));
    CHECK(c.window.contains(20, 0));
    CHECK(!c.window.contains(21, 0));
}

TEST_CASE("missing store, backup and target are each named") {
    const std::string e = errors_of(R"(topics = [".*"]
)");
    CHECK(e ==
          "r.toml:1:1: store: required key is missing\n"
          "r.toml:1:1: backup: required key is missing\n"
          "r.toml:1:1: target: required table is missing; add [target] with bootstrap = "
          "\"host:port\"");
}

TEST_CASE("unknown keys get a did-you-mean, in every table") {
    const std::string e = errors_of(R"(store = "file:///b"
backup = "b"
skip_damage = true
[target]
bootstrap = "h:1"
bootstrp = "x"
[window]
too = "2026-11-26T12:00:00Z"
)");
    CHECK(e ==
          "r.toml:3:1: skip_damage: unknown key; did you mean 'skip_damaged'?\n"
          "r.toml:6:1: target.bootstrp: unknown key; did you mean 'bootstrap'?\n"
          "r.toml:8:1: window.too: unknown key; did you mean 'to'?");
}

TEST_CASE("bad values each name their key and position") {
    const std::string e = errors_of(R"(store = "ftp://host/x"
backup = "b"
topics = "orders"
exclude_topics = ["(unclosed"]
partition_mapping = "random"
rate_limit = "fast"
restore_groups = "yes"
[target]
bootstrap = "h:1"
[window]
from = "2026-11-26T12:00:00"
to_offset = -5
)");
    CHECK(e.find("r.toml:1:9: store: unsupported store scheme 'ftp' in 'ftp://host/x'; only "
                 "file:// and s3:// are supported") != std::string::npos);
    CHECK(e.find("r.toml:3:10: topics: expected an array of strings, got a string; write topics "
                 "= [\"orders\"]") != std::string::npos);
    CHECK(e.find("r.toml:4:19: exclude_topics[0]: invalid regex '(unclosed'") != std::string::npos);
    CHECK(e.find("r.toml:5:21: partition_mapping: expected \"preserve\" or \"murmur2\", got "
                 "'random'") != std::string::npos);
    CHECK(e.find("r.toml:6:14: rate_limit: invalid size \"fast\"") != std::string::npos);
    CHECK(e.find("r.toml:7:18: restore_groups: expected a boolean (true or false), got a string") !=
          std::string::npos);
    CHECK(e.find("r.toml:11:8: window.from: invalid timestamp \"2026-11-26T12:00:00\": expected "
                 "RFC 3339") != std::string::npos);
    CHECK(e.find("r.toml:12:13: window.to_offset: must not be negative, got -5") !=
          std::string::npos);
}

TEST_CASE("a window mixing time and offsets, or ending before it starts, is refused") {
    CHECK(errors_of(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[window]
to = "2026-11-26T12:00:00Z"
to_offset = 5
)") == "r.toml:7:13: window.to_offset: a window is either by time (from/to) or by offset "
       "(from_offset/to_offset), not both");
    CHECK(errors_of(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[window]
from = "2026-11-26T12:00:00Z"
to = "2026-11-26T11:00:00Z"
)") == "r.toml:7:6: window.to: is before window.from (2026-11-26T11:00:00.000Z < "
       "2026-11-26T12:00:00.000Z)");
    CHECK(errors_of(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[window]
from_offset = 9
to_offset = 3
)") == "r.toml:7:13: window.to_offset: is less than window.from_offset (3 < 9)");
}

TEST_CASE("renames must be legal and must not merge two topics") {
    const std::string e = errors_of(R"(store = "file:///b"
backup = "b"
topic_prefix = "bad prefix"
[target]
bootstrap = "h:1"
[rename]
"a" = "x"
"b" = "x"
"c" = "no/slash"
)");
    CHECK(e ==
          "r.toml:3:16: topic_prefix: must use only letters, digits, '.', '_' and '-', got 'bad "
          "prefix'\n"
          "r.toml:8:7: rename.'b': topics 'a' and 'b' would both be restored into 'x'\n"
          "r.toml:9:7: rename.'c': target topic 'no/slash' is not a legal Kafka topic name "
          "(letters, digits, '.', '_', '-', at most 249)");
}

TEST_CASE("S3 keys: both or neither, only for s3://, and the secret never echoed") {
    CHECK(errors_of(R"(store = "file:///b"
s3_access_key = "AKIA"
s3_secret_key = "shh-secret"
backup = "b"
[target]
bootstrap = "h:1"
)") == "r.toml:2:17: s3_access_key: only applies to an s3:// store");
    const std::string e = errors_of(R"(store = "s3://bucket/p"
s3_secret_key = "shh-secret"
backup = "b"
[target]
bootstrap = "h:1"
)");
    CHECK(e ==
          "r.toml:2:17: s3_secret_key: set both s3_access_key and s3_secret_key, or neither (to "
          "use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    CHECK(e.find("shh-secret") == std::string::npos);
}

TEST_CASE("target client properties are checked by librdkafka, secrets masked") {
    const std::string e = errors_of(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[target.client]
"no.such.property" = "1"
"bootstrap.servers" = "x:1"
)");
    CHECK(e.find("r.toml:6:22: target.client.no.such.property: rejected by librdkafka: No such "
                 "configuration property") != std::string::npos);
    CHECK(e.find("r.toml:7:23: target.client.bootstrap.servers: set the brokers with "
                 "target.bootstrap instead") != std::string::npos);

    const auto c = load_ok(R"(store = "file:///b"
backup = "b"
[target]
bootstrap = "h:1"
[target.client]
"sasl.password" = "hunter2"
)");
    CHECK(rpl::conf::describe(c).find("hunter2") == std::string::npos);
}

TEST_CASE("a syntax error names the position") {
    const std::string e = errors_of("store = \"file:///b\nbackup = 1\n");
    CHECK(e.starts_with("r.toml:1:"));
    CHECK(e.find("syntax error") != std::string::npos);
}
