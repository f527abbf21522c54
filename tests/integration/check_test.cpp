// `replicatord --config F --check`, the real binary against the real test bed:
// the plan it prints, its exit codes (0 ok, 2 invalid config, 3 a cluster
// unreachable) and that no secret from the config reaches its output.
#include "tests/integration/support.h"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace rpl::test;

namespace {

constexpr auto check_deadline = 15s;  // the product promises 10 s per probe
constexpr std::string_view secret = "hunter2-secret";

command_result check(const std::string& config_path, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{REPLICATORD_BIN, "--config", config_path, "--check"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, check_deadline);
}

// A config file in the test's temp dir under a name no other test uses.
std::string config_file(const std::string& text) {
    return write_file(unique("check") + ".toml", text);
}

// Escapes a literal for a TOML basic string holding an ECMAScript regex.
std::string toml_regex_literal(const std::string& s) {
    std::string out;
    for (const char c : s) {
        if (std::string_view(".+*?^$()[]{}|\\").find(c) != std::string_view::npos) out += "\\\\";
        out += c;
    }
    return out;
}

// The TOML text with each ${name} replaced by vars[name], so that a config
// reads as one block.
std::string fill(std::string text, const std::map<std::string, std::string>& vars) {
    for (const auto& [name, value] : vars) {
        const std::string var = "${" + name + "}";
        for (auto at = text.find(var); at != std::string::npos;
             at = text.find(var, at + value.size()))
            text.replace(at, var.size(), value);
    }
    return text;
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The plan row of one source topic: "  <topic>  <partitions>  <target>  (<state>)".
std::string row_of(const std::string& out, const std::string& topic) {
    for (const auto& line : lines_of(out)) {
        if (line.starts_with("  " + topic + " ")) return line;
    }
    return {};
}

bool has(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

#define CHECK_HAS(text, needle) \
    CHECK_MESSAGE(has(text, needle), "missing: " << (needle) << "\nin:\n" << (text))

// Waits until the broker's metadata lists the topic with all its partitions,
// so that --check cannot race topic creation.
void require_visible(const std::string& bootstrap, const std::string& topic, int partitions) {
    REQUIRE_MESSAGE(
        eventually(30s, [&] { return kcat_partitions(bootstrap, topic) == partitions; }),
        topic << " not visible on " << bootstrap);
}

// Other tests restart the brokers (a target down for 30 s); wait until both
// answer, so that an exit code 3 here means --check is wrong, not the bed.
void require_bed_up() {
    const auto& b = testbed();
    for (const auto& bootstrap : {b.primary, b.dr}) {
        REQUIRE_MESSAGE(eventually(
                            90s, [&] { return broker_answers(bootstrap); }, 1s),
                        bootstrap << " does not answer");
    }
}

}  // namespace

TEST_CASE("check_prints_each_selected_topic_with_its_target_name_state_and_skips") {
    // Guards against a plan that disagrees with what the daemon would do: a
    // cycle topic listed as mirrored, an excluded topic shown, the target name
    // computed differently from the data path, or a partition-count conflict
    // that --check stays silent about; and against a plan that lists every
    // remote topic on the source as a skipped cycle, asked for or not.
    const auto& b = testbed();
    require_bed_up();
    const std::string base = unique("chk-plan");
    const std::string a = base + ".a";
    const std::string bb = base + ".b";
    const std::string skip = base + ".skip";
    const std::string remote = "dr." + base + ".c";         // came from dr: a cycle
    const std::string wide = base + ".wide";                // target exists, too narrow
    const std::string unasked = "dr." + base + "-unasked";  // a cycle, but not in `topics`
    create_topic(b.primary, a, 2);
    create_topic(b.primary, bb, 1);
    create_topic(b.primary, skip, 1);
    create_topic(b.primary, remote, 1);
    create_topic(b.primary, wide, 3);
    create_topic(b.primary, unasked, 1);
    create_topic(b.dr, "primary." + wide, 1);
    require_visible(b.primary, a, 2);
    require_visible(b.primary, bb, 1);
    require_visible(b.primary, skip, 1);
    require_visible(b.primary, remote, 1);
    require_visible(b.primary, wide, 3);
    require_visible(b.primary, unasked, 1);
    require_visible(b.dr, "primary." + wide, 1);

    // The include regex also matches the remote topic, so only cycle
    // detection keeps it out.
    const std::string cfg = config_file(
        fill(R"([clusters.primary]
bootstrap = "${primary}"
[clusters.dr]
bootstrap = "${dr}"
[[flow]]
name = "check-plan"
source = "primary"
target = "dr"
topics = ["(dr\\.)?${base}\\..*"]
exclude_topics = [".*\\.skip"]
)",
             {{"primary", b.primary}, {"dr", b.dr}, {"base", toml_regex_literal(base)}}));
    require_bed_up();
    const auto r = check(cfg);
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK_HAS(r.out, "flow check-plan: primary (" + b.primary + ") -> dr (" + b.dr + ")");

    const std::string row_a = row_of(r.out, a);
    CHECK_HAS(row_a, " primary." + a + " ");
    CHECK_HAS(row_a, "(will be created)");
    CHECK_HAS(row_a, " 2 ");
    const std::string row_b = row_of(r.out, bb);
    CHECK_HAS(row_b, " primary." + bb + " ");
    CHECK_HAS(row_b, "(will be created)");

    CHECK_HAS(row_of(r.out, wide), "(conflict: target has 1 partitions, source has 3)");

    CHECK_HAS(r.out, "skipped " + remote + ": cycle");
    CHECK_HAS(r.out, "skipped " + skip + ": excluded");
    CHECK(row_of(r.out, remote).empty());
    CHECK(row_of(r.out, skip).empty());
    CHECK_FALSE(has(r.out, "primary." + remote));
    CHECK_FALSE(has(r.out, "primary." + skip));
    // Cycles are explained only for topics the regexes ask for; every other
    // remote topic from dr would bury the plan.
    CHECK_FALSE(has(r.out, unasked));

    // --check copies nothing and creates nothing.
    CHECK(kcat_partitions(b.dr, "primary." + a) == 0);
    CHECK(kcat_partitions(b.dr, "primary." + bb) == 0);
}

TEST_CASE("check_accepts_the_shipped_demo_config") {
    // Guards against conf/examples/demo.toml drifting from what the parser
    // accepts; it is the first file a new user runs.
    require_bed_up();
    const auto r = check(std::string(RPL_SOURCE_DIR) + "/conf/examples/demo.toml");
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK_HAS(r.out, "flow primary-to-dr");
}

TEST_CASE("check_exits_3_naming_the_cluster_and_bootstrap_that_does_not_answer") {
    // Guards against --check hanging on an unreachable cluster (librdkafka
    // retries forever by default) or reporting it without saying which one.
    const auto& b = testbed();
    require_bed_up();  // so that only far-dr can be the one that does not answer
    for (const std::string bootstrap : {"127.0.0.1:1", "127.0.0.1:39999"}) {
        CAPTURE(bootstrap);
        const std::string cfg = config_file(fill(R"([clusters.primary]
bootstrap = "${primary}"
[clusters.far-dr]
bootstrap = "${far}"
[[flow]]
name = "to-nowhere"
source = "primary"
target = "far-dr"
)",
                                                 {{"primary", b.primary}, {"far", bootstrap}}));
        const auto r = check(cfg);
        INFO(show(r));
        CHECK(r.exit_code == 3);
        CHECK_HAS(r.err, "far-dr (" + bootstrap + ")");
        CHECK_HAS(r.err, "unreachable");
    }
}

TEST_CASE("check_exits_2_listing_every_config_error_with_line_and_column") {
    // Guards against stopping at the first error (one fix-and-retry round per
    // mistake) and against --check connecting before the file is valid: both
    // clusters are closed ports, so a connection attempt would mean exit 3.
    const std::string cfg = config_file(R"([clusters.primary]
bootstrap = "127.0.0.1:1"
[clusters.dr]
bootstrap = "127.0.0.1:1"
[[flow]]
name = "f"
source = "primary"
target = "nowhere"
checkpoint_interval = "5 parsecs"
)");
    const auto r = check(cfg);
    INFO(show(r));
    CHECK(r.exit_code == 2);
    CHECK_HAS(r.err, cfg + ":8:10: flow[0].target: unknown cluster 'nowhere'");
    CHECK_HAS(r.err, cfg + ":9:23: flow[0].checkpoint_interval: invalid duration \"5 parsecs\"");
    CHECK(r.out.empty());
}

TEST_CASE("check_exits_2_when_librdkafka_rejects_the_client_settings_at_connect") {
    // Guards against a config mistake that only rd_kafka_new detects (an
    // unsupported SASL mechanism) being reported as a runtime failure (exit 1)
    // instead of an invalid config (exit 2).
    const auto& b = testbed();
    require_bed_up();  // else primary's probe could fail first, with exit 3
    const std::string cfg = config_file(fill(R"([clusters.primary]
bootstrap = "${primary}"
[clusters.dr]
bootstrap = "${dr}"
[clusters.dr.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanisms" = "NO-SUCH-MECHANISM"
[[flow]]
name = "f"
source = "primary"
target = "dr"
)",
                                             {{"primary", b.primary}, {"dr", b.dr}}));
    const auto r = check(cfg);
    INFO(show(r));
    CHECK(r.exit_code == 2);
    CHECK_HAS(r.err, "dr (" + b.dr + ")");
    CHECK_HAS(r.err, "NO-SUCH-MECHANISM");
}

TEST_CASE("check_never_prints_a_sasl_password") {
    // Guards against credentials in terminal scrollback and CI logs: neither
    // the unreachable-cluster path (librdkafka errors, logged at trace) nor the
    // invalid-config path (error messages quoting values) may echo a secret.
    const auto& b = testbed();
    // The dr cluster is a closed port with SASL settings librdkafka accepts;
    // ${extra} is spliced in to break the file in different ways.
    const std::string text = R"([clusters.primary]
bootstrap = "${primary}"
[clusters.dr]
bootstrap = "127.0.0.1:1"
[clusters.dr.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanisms" = "PLAIN"
"sasl.username" = "u"
"sasl.password" = "${secret}"
${extra}
[[flow]]
name = "f"
source = "primary"
target = "dr"
${flow_extra}
)";
    auto with = [&](const std::string& extra, const std::string& flow_extra) {
        const auto spliced = fill(text, {{"extra", extra}, {"flow_extra", flow_extra}});
        const auto path =
            config_file(fill(spliced, {{"primary", b.primary}, {"secret", std::string(secret)}}));
        std::ostringstream written;
        written << std::ifstream(path).rdbuf();
        REQUIRE(has(written.str(), secret));  // else the assertions below prove nothing
        return path;
    };

    SUBCASE("unreachable") {
        const auto r = check(with("", ""), {"--log-level", "trace"});
        INFO(show(r));
        CHECK(r.exit_code == 3);
        CHECK_FALSE(has(r.out, secret));
        CHECK_FALSE(has(r.err, secret));
    }
    SUBCASE("invalid config, another key wrong") {
        const auto r =
            check(with(R"("no.such.property" = "x")", R"(checkpoint_interval = "soon")"));
        INFO(show(r));
        CHECK(r.exit_code == 2);
        CHECK_HAS(r.err, "no.such.property");
        CHECK_HAS(r.err, "checkpoint_interval");
        CHECK_FALSE(has(r.out, secret));
        CHECK_FALSE(has(r.err, secret));
    }
    SUBCASE("invalid config, the password itself set twice") {
        const auto r = check(with(R"("sasl.password" = "${secret}")", ""));
        INFO(show(r));
        CHECK(r.exit_code == 2);
        CHECK_FALSE(has(r.out, secret));
        CHECK_FALSE(has(r.err, secret));
    }
}
