// The config side of live reload and of the operations settings: which
// flows and taps count as unchanged, log_format, and the admin token from
// the environment.

#include "conf/config.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

namespace {

const std::string base = R"([daemon]
admin_listen = "127.0.0.1:9464"

[clusters.primary]
bootstrap = "127.0.0.1:19092"

[clusters.dr]
bootstrap = "127.0.0.1:29092"

[[flow]]
name = "a"
source = "primary"
target = "dr"
topics = ["orders"]

[[tap]]
name = "t"
source = "primary"
storage = "file:///tmp/x"
)";

rpl::conf::Config parse(const std::string& text) {
    auto r = rpl::conf::parse(text, "t.toml");
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    return std::move(r).value();
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("a flow or tap that only moved in the file is unchanged for a reload") {
    const auto a = parse(base);
    const auto b = parse("# a comment\n\n" + base);
    REQUIRE(a.flows[0].pos.line != b.flows[0].pos.line);
    CHECK(rpl::conf::same_run_settings(a, a.flows[0], b, b.flows[0]));
    CHECK(rpl::conf::same_run_settings(a, a.taps[0], b, b.taps[0]));
}

TEST_CASE("a changed setting or a changed cluster makes a flow or tap restart on reload") {
    const auto a = parse(base);
    SUBCASE("flow setting") {
        const auto b = parse(replaced(base, "topics = [\"orders\"]",
                                      "topics = [\"orders\"]\nmax_in_flight_records = 10"));
        CHECK_FALSE(rpl::conf::same_run_settings(a, a.flows[0], b, b.flows[0]));
        CHECK(rpl::conf::same_run_settings(a, a.taps[0], b, b.taps[0]));
    }
    SUBCASE("target cluster's client properties") {
        const auto b = parse(replaced(base, "bootstrap = \"127.0.0.1:29092\"",
                                      "bootstrap = \"127.0.0.1:29092\"\n[clusters.dr.client]\n"
                                      "\"linger.ms\" = \"7\""));
        CHECK_FALSE(rpl::conf::same_run_settings(a, a.flows[0], b, b.flows[0]));
        CHECK(rpl::conf::same_run_settings(a, a.taps[0], b, b.taps[0]));  // reads primary only
    }
    SUBCASE("source bootstrap") {
        const auto b = parse(replaced(base, "127.0.0.1:19092", "127.0.0.2:19092"));
        CHECK_FALSE(rpl::conf::same_run_settings(a, a.flows[0], b, b.flows[0]));
        CHECK_FALSE(rpl::conf::same_run_settings(a, a.taps[0], b, b.taps[0]));
    }
    SUBCASE("tap setting") {
        const auto b = parse(replaced(base, "storage = \"file:///tmp/x\"",
                                      "storage = \"file:///tmp/x\"\ncompression_level = 9"));
        CHECK_FALSE(rpl::conf::same_run_settings(a, a.taps[0], b, b.taps[0]));
        CHECK(rpl::conf::same_run_settings(a, a.flows[0], b, b.flows[0]));
    }
}

TEST_CASE("log_format accepts text and json and names anything else") {
    CHECK(parse(base).daemon.log_format == "text");
    CHECK(parse(replaced(base, "[daemon]\n", "[daemon]\nlog_format = \"json\"\n"))
              .daemon.log_format == "json");
    auto r = rpl::conf::parse(replaced(base, "[daemon]\n", "[daemon]\nlog_format = \"xml\"\n"),
                              "t.toml");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("t.toml:2:14: daemon.log_format: unknown format 'xml'") !=
          std::string::npos);
}

TEST_CASE("a non-loopback admin_listen takes its token from REPLICATORD_ADMIN_TOKEN") {
    const std::string open = replaced(base, "127.0.0.1:9464", "0.0.0.0:9464");
    ::unsetenv("REPLICATORD_ADMIN_TOKEN");
    auto refused = rpl::conf::parse(open, "t.toml");
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.find("requires daemon.admin_token (or REPLICATORD_ADMIN_TOKEN") !=
          std::string::npos);
    ::setenv("REPLICATORD_ADMIN_TOKEN", "from-env", 1);
    const auto from_env = parse(open);
    CHECK(from_env.daemon.admin_token == "from-env");
    // The file wins over the environment.
    const auto from_file =
        parse(replaced(open, "[daemon]\n", "[daemon]\nadmin_token = \"file\"\n"));
    CHECK(from_file.daemon.admin_token == "file");
    ::unsetenv("REPLICATORD_ADMIN_TOKEN");
}
