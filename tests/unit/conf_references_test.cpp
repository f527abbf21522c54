// conf/: ${env:NAME} and ${file:PATH} in string values. A secret can live
// outside the TOML file, a reference that cannot be resolved is an error at
// its line and column, and describe() prints the reference, never the value.
//
// Each TOML snippet starts on line 1 right after R"( so that the positions
// asserted below can be counted by eye.

#include "conf/config.h"
#include "conf/restore_config.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

// An environment variable set for one test, and unset after it.
class env_var {
public:
    env_var(std::string name, const std::string& value) : name_(std::move(name)) {
        ::setenv(name_.c_str(), value.c_str(), 1);
    }
    ~env_var() { ::unsetenv(name_.c_str()); }
    env_var(const env_var&) = delete;
    env_var& operator=(const env_var&) = delete;

private:
    std::string name_;
};

// A file with `content` in a fresh directory, removed after the test.
class temp_file {
public:
    explicit temp_file(const std::string& content) {
        dir_ = std::filesystem::temp_directory_path() /
               ("rpl-ref-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_));
        std::filesystem::create_directories(dir_);
        std::ofstream(path(), std::ios::binary) << content;
    }
    ~temp_file() { std::filesystem::remove_all(dir_); }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    [[nodiscard]] std::string path() const { return (dir_ / "secret").string(); }

private:
    static inline int counter_ = 0;
    std::filesystem::path dir_;
};

std::string errors_of(std::string_view text) {
    auto r = rpl::conf::parse(text, "t.toml");
    REQUIRE_MESSAGE(!r, "expected errors, but the config loaded");
    CHECK(r.error().code == rpl::errc::invalid_config);
    return r.error().message;
}

rpl::conf::Config load_ok(std::string_view text) {
    auto r = rpl::conf::parse(text, "t.toml");
    if (!r) FAIL("unexpected errors:\n" << r.error().message);
    return std::move(r).value();
}

#define CHECK_HAS(message, expected)                                                       \
    CHECK_MESSAGE((message).find(expected) != std::string::npos, "missing: " << (expected) \
                                                                             << "\nin:\n"  \
                                                                             << (message))
#define CHECK_LACKS(message, unexpected)                                                       \
    CHECK_MESSAGE((message).find(unexpected) == std::string::npos, "present: " << (unexpected) \
                                                                               << "\nin:\n"    \
                                                                               << (message))

}  // namespace

TEST_CASE("a_client_password_from_the_environment_reaches_the_client_and_never_describe") {
    const env_var pw("RPL_TEST_SCRAM_PASSWORD", "canary-env-7f3a9c");
    const env_var bs("RPL_TEST_BOOTSTRAP", "127.0.0.1:19092");
    const auto c = load_ok(R"([clusters.primary]
bootstrap = "${env:RPL_TEST_BOOTSTRAP}"
client.sasl.username = "replicator"
client.sasl.password = "${env:RPL_TEST_SCRAM_PASSWORD}"
)");
    const auto& cl = c.clusters.at("primary");
    CHECK(cl.bootstrap == "127.0.0.1:19092");
    CHECK(cl.client.at("sasl.password") == "canary-env-7f3a9c");
    const std::string d = rpl::conf::describe(c);
    CHECK_LACKS(d, "canary-env-7f3a9c");
    CHECK_HAS(d, "sasl.password\" = \"${env:RPL_TEST_SCRAM_PASSWORD}\"");
    CHECK_HAS(d, "bootstrap = \"${env:RPL_TEST_BOOTSTRAP}\"");
}

TEST_CASE("a_secret_from_a_file_loses_its_final_newline_and_only_that") {
    // A config whose SASL password is ${file:path}.
    const auto with_password_file = [](const std::string& path) {
        return load_ok(
            "[clusters.primary]\nbootstrap = \"127.0.0.1:19092\"\n"
            "client.sasl.password = \"${file:" +
            path + "}\"\n");
    };
    const temp_file f("  canary-file-51d0\t\n");
    const auto c = with_password_file(f.path());
    CHECK(c.clusters.at("primary").client.at("sasl.password") == "  canary-file-51d0\t");
    const std::string d = rpl::conf::describe(c);
    CHECK_LACKS(d, "canary-file-51d0");
    CHECK_HAS(d, "${file:" + f.path() + "}");

    const temp_file crlf("canary-crlf\r\n");
    CHECK(with_password_file(crlf.path()).clusters.at("primary").client.at("sasl.password") ==
          "canary-crlf");
}

TEST_CASE("a_reference_inside_a_longer_value_is_expanded_in_place_and_dollar_dollar_is_literal") {
    const env_var host("RPL_TEST_S3_HOST", "127.0.0.1:8333");
    const auto c = load_ok(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
client.client.id = "app-$${x}-$$"
[[tap]]
name = "t"
source = "primary"
storage = "s3://bucket/p?endpoint=http://${env:RPL_TEST_S3_HOST}&region=us-east-1"
topics = ["orders", "${env:RPL_TEST_S3_HOST}"]
)");
    CHECK(c.clusters.at("primary").client.at("client.id") == "app-${x}-$$");
    REQUIRE(c.taps.size() == 1);
    CHECK(c.taps[0].storage == "s3://bucket/p?endpoint=http://127.0.0.1:8333&region=us-east-1");
    REQUIRE(c.taps[0].topics.size() == 2);
    CHECK(c.taps[0].topics[1] == "127.0.0.1:8333");
    const std::string d = rpl::conf::describe(c);
    CHECK_HAS(
        d, "storage = \"s3://bucket/p?endpoint=http://${env:RPL_TEST_S3_HOST}&region=us-east-1\"");
    CHECK_HAS(d, "topics = [\"orders\", \"${env:RPL_TEST_S3_HOST}\"]");
}

TEST_CASE("an_unset_variable_a_missing_file_and_a_malformed_reference_are_errors_at_their_value") {
    ::unsetenv("RPL_TEST_NOT_SET");
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
client.sasl.password = "${env:RPL_TEST_NOT_SET}"
client.sasl.username = "${file:/nonexistent/rpl-secret}"
client.ssl.key.password = "${vault:x}"
client.ssl.ca.location = "${env:RPL_TEST_NOT_SET"
client.client.id = "${env:BAD-NAME}"
)");
    CHECK_HAS(e,
              "t.toml:3:24: clusters.primary.client.sasl.password: ${env:RPL_TEST_NOT_SET}: "
              "environment variable RPL_TEST_NOT_SET is not set");
    CHECK_HAS(e,
              "t.toml:4:24: clusters.primary.client.sasl.username: "
              "${file:/nonexistent/rpl-secret}: cannot read '/nonexistent/rpl-secret'");
    CHECK_HAS(e,
              "t.toml:5:27: clusters.primary.client.ssl.key.password: unknown reference "
              "${vault:x}");
    CHECK_HAS(e, "t.toml:6:26: clusters.primary.client.ssl.ca.location: unterminated reference");
    CHECK_HAS(e,
              "t.toml:7:20: clusters.primary.client.client.id: ${env:BAD-NAME}: not an "
              "environment variable name");
}

TEST_CASE("a_referenced_file_too_large_to_be_one_value_is_refused") {
    const temp_file big(std::string(2 << 20, 'x'));
    const std::string e = errors_of(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
client.sasl.password = "${file:)" + big.path() +
                                    R"(}"
)");
    CHECK_HAS(e, "t.toml:3:24: clusters.primary.client.sasl.password: ${file:" + big.path() +
                     "}: '" + big.path() + "' is 2097152 bytes");
}

TEST_CASE("a_secret_key_holding_a_literal_and_a_reference_stays_masked_in_describe") {
    const env_var pw("RPL_TEST_PART", "canary-part-88e1");
    const auto c = load_ok(R"([clusters.primary]
bootstrap = "127.0.0.1:19092"
client.sasl.password = "literal-${env:RPL_TEST_PART}"
)");
    CHECK(c.clusters.at("primary").client.at("sasl.password") == "literal-canary-part-88e1");
    const std::string d = rpl::conf::describe(c);
    CHECK_LACKS(d, "canary-part-88e1");
    CHECK_LACKS(d, "literal-");
    CHECK_HAS(d, "sasl.password\" = \"******\"");
}

TEST_CASE("a_restore_file_takes_references_too") {
    const env_var key("RPL_TEST_RESTORE_SECRET", "canary-restore-0b2c");
    const std::string text =
        R"(store = "s3://bucket/p?endpoint=http://127.0.0.1:8333&region=us-east-1"
backup = "orders"
s3_access_key = "AKIDEXAMPLE"
s3_secret_key = "${env:RPL_TEST_RESTORE_SECRET}"
[target]
bootstrap = "127.0.0.1:29092"
)";
    auto r = rpl::conf::parse_restore(text, "R.toml");
    if (!r) FAIL("unexpected errors:\n" << r.error().message);
    CHECK(r.value().s3_secret_key == "canary-restore-0b2c");

    ::unsetenv("RPL_TEST_RESTORE_UNSET");
    auto bad = rpl::conf::parse_restore(R"(store = "${env:RPL_TEST_RESTORE_UNSET}"
backup = "orders"
[target]
bootstrap = "127.0.0.1:29092"
)",
                                        "R.toml");
    REQUIRE(!bad);
    CHECK_HAS(bad.error().message,
              "R.toml:1:9: store: ${env:RPL_TEST_RESTORE_UNSET}: "
              "environment variable RPL_TEST_RESTORE_UNSET is not set");
}
