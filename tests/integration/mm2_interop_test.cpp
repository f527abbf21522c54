// MirrorMaker 2 interoperability on the real test bed: Kafka's own Java
// client code (connect-mirror-client's RemoteClusterUtils, MirrorClient,
// Checkpoint and Heartbeat) reads the checkpoints and heartbeats replicatord
// writes, and gets the same answer as `replicatorctl translate` and as the
// data itself.
//
//   primary: orders (3 partitions, transactions: markers and aborted records)
//      │ replicatord (checkpoint_interval 1s)
//      ▼
//   dr: primary.orders, primary.checkpoints.internal, primary.heartbeats
//      ├── TranslateOffsets (java, compiled here from tests/integration/java)
//      ├── replicatorctl translate --json
//      └── kcat: the record at each answer, compared with the source
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <variant>

using namespace rpl::test;

namespace {

// ---------------------------------------------------------------- JSON
// Just enough JSON to read replicatorctl's output (no library in the tree).

struct json;
using json_object = std::map<std::string, json>;
using json_array = std::vector<json>;
struct json {
    std::variant<std::nullptr_t, bool, double, std::string, json_array, json_object> v;
    [[nodiscard]] bool is_object() const { return std::holds_alternative<json_object>(v); }
    [[nodiscard]] const json_object& object() const { return std::get<json_object>(v); }
    [[nodiscard]] const json_array& array() const { return std::get<json_array>(v); }
    [[nodiscard]] const std::string& str() const { return std::get<std::string>(v); }
    [[nodiscard]] bool is_number() const { return std::holds_alternative<double>(v); }
    [[nodiscard]] int64_t integer() const { return static_cast<int64_t>(std::get<double>(v)); }
    [[nodiscard]] const json* find(const std::string& k) const {
        if (!is_object()) return nullptr;
        auto it = object().find(k);
        return it == object().end() ? nullptr : &it->second;
    }
};

class json_parser {
public:
    explicit json_parser(const std::string& s) : s_(s) {}
    json parse() {
        json j = value();
        ws();
        if (i_ != s_.size()) error("trailing characters");
        return j;
    }

private:
    [[noreturn]] void error(const std::string& what) const {
        throw std::runtime_error("JSON: " + what + " at byte " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    bool eat(char c) {
        ws();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) error(std::string("expected '") + c + "'");
    }
    bool word(const char* w) {
        const std::string_view sv(w);
        if (s_.compare(i_, sv.size(), sv) != 0) return false;
        i_ += sv.size();
        return true;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c == '\\') {
                if (i_ >= s_.size()) error("bad escape");
                c = s_[i_++];
                switch (c) {
                    case 'n': out += '\n'; break;
                    case 't': out += '\t'; break;
                    case 'r': out += '\r'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case 'u': {
                        if (i_ + 4 > s_.size()) error("bad \\u escape");
                        const unsigned cp =
                            static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
                        i_ += 4;
                        if (cp < 0x80) {
                            out += static_cast<char>(cp);
                        } else if (cp < 0x800) {
                            out += static_cast<char>(0xC0 | (cp >> 6));
                            out += static_cast<char>(0x80 | (cp & 0x3F));
                        } else {
                            out += static_cast<char>(0xE0 | (cp >> 12));
                            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                            out += static_cast<char>(0x80 | (cp & 0x3F));
                        }
                        break;
                    }
                    default: out += c;  // \" \\ \/
                }
            } else {
                out += c;
            }
        }
        if (i_ >= s_.size()) error("unterminated string");
        ++i_;
        return out;
    }
    json value() {
        ws();
        if (i_ >= s_.size()) error("unexpected end");
        const char c = s_[i_];
        if (c == '{') {
            ++i_;
            json_object o;
            if (eat('}')) return {o};
            do {
                ws();
                std::string k = string();
                expect(':');
                o.emplace(std::move(k), value());
            } while (eat(','));
            expect('}');
            return {o};
        }
        if (c == '[') {
            ++i_;
            json_array a;
            if (eat(']')) return {a};
            do a.push_back(value());
            while (eat(','));
            expect(']');
            return {a};
        }
        if (c == '"') return {string()};
        if (word("true")) return {true};
        if (word("false")) return {false};
        if (word("null")) return {nullptr};
        size_t used = 0;
        const double d = std::stod(s_.substr(i_), &used);
        if (used == 0) error("unexpected character");
        i_ += used;
        return {d};
    }

    const std::string& s_;
    size_t i_ = 0;
};

// ---------------------------------------------------------------- helpers

std::string config_text(const std::string& flow, const std::string& topic,
                        const std::string& group) {
    const auto& b = testbed();
    std::string c = "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("state") +
                    "\"\nadmin_listen = \"127.0.0.1:0\"\n\n";
    c += "[clusters.primary]\nbootstrap = \"" + b.primary + "\"\n\n";
    c += "[clusters.dr]\nbootstrap = \"" + b.dr + "\"\n\n";
    c += "[[flow]]\nname = \"" + flow + "\"\nsource = \"primary\"\ntarget = \"dr\"\ntopics = [\"" +
         topic + "\"]\ngroups = [\"" + group +
         "\"]\nrefresh_interval = \"1s\"\ncheckpoint_interval = \"1s\"\n";
    return c;
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) out.push_back(l);
    return out;
}

std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string f; std::getline(in, f, '\t');) out.push_back(f);
    return out;
}

// MirrorMaker 2's client classes, compiled once per run from
// tests/integration/java against the test bed's jars.
class mm2_tool {
public:
    mm2_tool() {
        const char* libs = std::getenv("KAFKA_LIBS");
        REQUIRE_MESSAGE(
            (libs != nullptr && *libs != '\0'),
            "KAFKA_LIBS is not set: source .testbed/env (scripts/testbed up writes it)");
        libs_ = std::string(libs) + "/*";
        REQUIRE_MESSAGE(
            std::filesystem::exists(
                std::string(libs) + "/connect-mirror-client-" +
                (std::getenv("KAFKA_VERSION") ? std::getenv("KAFKA_VERSION") : "4.1.1") + ".jar"),
            "connect-mirror-client jar missing from " << libs);
        const auto javac = run({"javac", "-version"}, 30s);
        REQUIRE_MESSAGE(javac.exit_code == 0,
                        "javac not found: the JDK is needed (Debian: openjdk-17-jdk-headless)");
        classes_ = temp_dir() + "/" + unique("mm2-java");
        std::filesystem::create_directories(classes_);
        const auto r =
            run({"javac", "-cp", libs_, "-d", classes_,
                 std::string(RPL_SOURCE_DIR) + "/tests/integration/java/TranslateOffsets.java"},
                120s);
        REQUIRE_MESSAGE(r.exit_code == 0, "javac TranslateOffsets.java failed:\n"
                                              << r.out << r.err);
    }
    // Runs TranslateOffsets with args; its stdout lines.
    command_result operator()(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{"java",
                                      "-Xmx256m",
                                      "-XX:TieredStopAtLevel=1",
                                      "-Dlog4j2.configurationFile=" + std::string(RPL_SOURCE_DIR) +
                                          "/testbed/tools-log4j2.properties",
                                      "-cp",
                                      classes_ + ":" + libs_,
                                      "TranslateOffsets"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, 90s);
    }

private:
    std::string libs_;
    std::string classes_;
};

// Commits, on the source, the positions of a consumer of `group` that read
// want[p] records of partition p (-1: everything) with read_committed, the
// way an application that processed them would. Returns what it committed.
std::map<int32_t, int64_t> consume_and_commit(const std::string& topic, const std::string& group,
                                              const std::map<int32_t, int64_t>& want) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] :
         std::map<std::string, std::string>{{"bootstrap.servers", testbed().primary},
                                            {"group.id", group},
                                            {"enable.auto.commit", "false"},
                                            {"enable.partition.eof", "true"},
                                            {"isolation.level", "read_committed"}}) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            throw std::runtime_error("consumer " + k + ": " + err);
    }
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) throw std::runtime_error(std::string("consumer: ") + err);
    std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> owner(rk, [](rd_kafka_t* h) {
        rd_kafka_consumer_close(h);
        rd_kafka_destroy(h);
    });
    rd_kafka_poll_set_consumer(rk);
    auto* assignment = rd_kafka_topic_partition_list_new(static_cast<int>(want.size()));
    for (const auto& [p, n] : want)
        rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    const auto aerr = rd_kafka_assign(rk, assignment);
    rd_kafka_topic_partition_list_destroy(assignment);
    if (aerr) throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(aerr));

    std::map<int32_t, int64_t> read, next;
    std::map<int32_t, bool> done;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (done.size() < want.size()) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("consumer: no progress in 60 s");
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 500);
        if (m == nullptr) continue;
        const int32_t p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (want.at(p) < 0) done[p] = true;
        } else if (m->err) {
            const std::string e = rd_kafka_message_errstr(m);
            rd_kafka_message_destroy(m);
            throw std::runtime_error("consumer: " + e);
        } else if (!done.count(p)) {
            next[p] = m->offset + 1;
            if (++read[p] == want.at(p)) done[p] = true;
        }
        rd_kafka_message_destroy(m);
    }
    auto* offsets = rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
    for (const auto& [p, o] : next)
        rd_kafka_topic_partition_list_add(offsets, topic.c_str(), p)->offset = o;
    const auto cerr = rd_kafka_commit(rk, offsets, 0);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (cerr) throw std::runtime_error(std::string("commit: ") + rd_kafka_err2str(cerr));
    return next;
}

// Where a consumer that committed source position `upstream` must resume on
// the target, from the data alone: the target copy of the first committed
// source record at or after it (records are unique by key), or the target
// end if there is none.
int64_t expected_target_offset(const std::vector<record>& src, const std::vector<record>& dst,
                               int64_t upstream) {
    for (const auto& s : src) {
        if (s.offset < upstream) continue;
        for (const auto& d : dst)
            if (d.key == s.key && d.value == s.value) return d.offset;
        throw std::runtime_error("source record at " + std::to_string(s.offset) +
                                 " is not on the target");
    }
    return dst.empty() ? 0 : dst.back().offset + 1;
}

}  // namespace

TEST_CASE("mirrormaker2_remote_cluster_utils_reads_our_checkpoints_and_agrees_with_translate") {
    // Guards against checkpoints that only replicatord can read: a byte out
    // of place in the key or value, a checkpoint written to a partition
    // other than 0 (MirrorClient reads only partition 0), a topic name other
    // than DefaultReplicationPolicy's, or a downstream offset that is not
    // where the group must resume. Transactions on the source make source
    // and target offsets differ (markers, aborted records), so an
    // implementation that copied offsets across would fail here; one
    // partition is committed on a marker followed by an aborted
    // transaction (a gap), one in the middle, one at the end.
    const auto& b = testbed();
    const auto t0_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    const std::string flow = unique("mm2");
    const std::string topic = flow + ".orders";
    const std::string target_topic = "primary." + topic;
    const std::string group = flow + "-app";
    mm2_tool java;

    create_topic(b.primary, topic, 3);
    const std::string cfg_path =
        write_file(unique("mm2") + ".toml", config_text(flow, topic, group));
    daemon_process d(cfg_path, temp_dir() + "/" + unique("mm2") + ".log");

    // 30 transactions of 33 records per partition, 10 and 20 aborted: 924
    // committed records per partition; every transaction leaves a marker.
    constexpr int txns = 30, per_partition = 33;
    {
        producer p(b.primary, {{"transactional.id", flow}});
        auto check = [&](rd_kafka_error_t* e, const char* what) {
            if (e) {
                const std::string m = std::string(what) + ": " + rd_kafka_error_string(e);
                rd_kafka_error_destroy(e);
                FAIL(m);
            }
        };
        check(rd_kafka_init_transactions(p.handle(), 30000), "init_transactions");
        for (int t = 0; t < txns; ++t) {
            check(rd_kafka_begin_transaction(p.handle()), "begin_transaction");
            for (int i = 0; i < 3 * per_partition; ++i) {
                record r;
                r.partition = i % 3;
                r.key = "k-" + std::to_string(t) + "-" + std::to_string(i);
                r.value = (t % 10 == 0 && t > 0 ? "aborted-" : "committed-") + std::to_string(t) +
                          "-" + std::to_string(i);
                p.produce(topic, r);
            }
            REQUIRE(rd_kafka_flush(p.handle(), 30000) == RD_KAFKA_RESP_ERR_NO_ERROR);
            if (t % 10 == 0 && t > 0)
                check(rd_kafka_abort_transaction(p.handle(), 30000), "abort_transaction");
            else
                check(rd_kafka_commit_transaction(p.handle(), 30000), "commit_transaction");
        }
    }
    const int64_t committed_per_partition = (txns - 2) * per_partition;
    REQUIRE_EVENTUALLY(90s, end_offsets(b.dr, target_topic) == 3 * committed_per_partition);

    // p0: the middle of a transaction; p1: 10 whole transactions, so the
    // position is transaction 9's marker and transaction 10 (aborted)
    // follows; p2: everything, so the position is past the last record.
    const auto committed =
        consume_and_commit(topic, group, {{0, 100}, {1, 10 * per_partition}, {2, -1}});
    REQUIRE(committed.size() == 3);
    MESSAGE("committed on primary: p0 " << committed.at(0) << ", p1 " << committed.at(1) << ", p2 "
                                        << committed.at(2));

    // MirrorMaker 2's Checkpoint.deserializeRecord sees our checkpoints,
    // upstream offsets exactly as the group committed them.
    std::map<int32_t, int64_t> downstream;
    std::string last_seen;
    auto checkpoints_arrived = [&] {
        const auto r = java({"--checkpoints", b.dr, "primary", group});
        last_seen = r.out + r.err;
        if (r.exit_code != 0) return false;
        std::map<int32_t, int64_t> down;
        for (const auto& l : lines(r.out)) {
            const auto f = fields(l);
            if (f.size() != 5 && f.size() != 4)
                return false;  // metadata "" may drop the last field
            if (f[0] != target_topic) return false;
            const int32_t p = std::stoi(f[1]);
            if (!committed.count(p) || std::stoll(f[2]) != committed.at(p)) return false;
            down[p] = std::stoll(f[3]);
        }
        if (down.size() != 3) return false;
        downstream = down;
        return true;
    };
    const bool arrived = eventually(90s, checkpoints_arrived, 1s);
    REQUIRE_MESSAGE(arrived, "no checkpoints for "
                                 << group << " with the committed upstream offsets; last read:\n"
                                 << last_seen << "\nreplicatord log:\n"
                                 << d.log());

    // RemoteClusterUtils.translateOffsets, the call a failing-over
    // application makes, returns all three partitions at the checkpointed
    // downstream offsets.
    const auto tr = java({b.dr, "primary", group});
    REQUIRE_MESSAGE(tr.exit_code == 0, tr.out << tr.err);
    std::map<int32_t, int64_t> java_offsets;
    for (const auto& l : lines(tr.out)) {
        const auto f = fields(l);
        REQUIRE_MESSAGE(f.size() == 3, l);
        CHECK(f[0] == target_topic);
        java_offsets[std::stoi(f[1])] = std::stoll(f[2]);
    }
    REQUIRE_MESSAGE(java_offsets.size() == 3, tr.out);
    CHECK(java_offsets == downstream);

    // Each answer is right by content: the first committed source record at
    // or after the group's position is the target record at the answer
    // (or, past the last record, the answer is the target end).
    for (int32_t p = 0; p < 3; ++p) {
        CAPTURE(p);
        const auto src = kcat_read(b.primary, topic, p);
        const auto dst = kcat_read(b.dr, target_topic, p);
        REQUIRE(static_cast<int64_t>(src.size()) == committed_per_partition);
        REQUIRE(static_cast<int64_t>(dst.size()) == committed_per_partition);
        const int64_t want = expected_target_offset(src, dst, committed.at(p));
        CHECK(java_offsets.at(p) == want);
        MESSAGE("p" << p << ": upstream " << committed.at(p) << " -> downstream "
                    << java_offsets.at(p) << " (expected " << want << ")");
    }
    // The positions really differ between the clusters (markers, aborts).
    CHECK(java_offsets.at(0) != committed.at(0));

    // MirrorClient sees primary as an upstream cluster of dr, one hop away,
    // through the mirrored heartbeats, and decodes a heartbeat from this run.
    const auto cl = java({"--clusters", b.dr, "primary"});
    REQUIRE_MESSAGE(cl.exit_code == 0, cl.out << cl.err);
    std::vector<std::vector<std::string>> facts;
    for (const auto& l : lines(cl.out)) facts.push_back(fields(l));
    auto has = [&](const std::vector<std::string>& f) {
        return std::find(facts.begin(), facts.end(), f) != facts.end();
    };
    CHECK(has({"upstream", "primary"}));
    CHECK(has({"heartbeat-topic", "primary.heartbeats"}));
    CHECK(has({"checkpoint-topic", "primary.checkpoints.internal"}));
    CHECK(has({"hops", "primary", "1"}));
    bool fresh_heartbeat = false;
    for (const auto& f : facts)
        if (f.size() == 4 && f[0] == "heartbeat" && f[1] == "primary" && f[2] == "dr" &&
            std::stoll(f[3]) >= t0_ms - 5000)
            fresh_heartbeat = true;
    CHECK_MESSAGE(fresh_heartbeat, cl.out);

    // replicatorctl translate agrees with MirrorMaker 2's reading, partition
    // by partition.
    const std::string ctl =
        (std::filesystem::path(REPLICATORD_BIN).parent_path() / "replicatorctl").string();
    REQUIRE_MESSAGE(std::filesystem::exists(ctl),
                    "replicatorctl is not built: " << ctl << " is missing");
    const auto ctl_run = run(
        {ctl, "translate", "--config", cfg_path, "--flow", flow, "--group", group, "--json"}, 60s);
    REQUIRE_MESSAGE(ctl_run.exit_code == 0, "replicatorctl translate exited "
                                                << ctl_run.exit_code << ":\n"
                                                << ctl_run.out << ctl_run.err);
    MESSAGE("replicatorctl translate --json: " << ctl_run.out);
    json doc;
    try {
        doc = json_parser(ctl_run.out).parse();
    } catch (const std::exception& e) {
        FAIL("replicatorctl translate --json: " << e.what() << "\n" << ctl_run.out);
    }
    REQUIRE(doc.is_object());
    auto text = [&](const json& j, const char* k) {
        const json* v = j.find(k);
        return v != nullptr && std::holds_alternative<std::string>(v->v) ? v->str()
                                                                         : std::string("<missing>");
    };
    auto number = [&](const json& j, const char* k) -> std::optional<int64_t> {
        const json* v = j.find(k);
        if (v == nullptr || !v->is_number()) return std::nullopt;
        return v->integer();
    };
    CHECK(text(doc, "flow") == flow);
    CHECK(text(doc, "source") == "primary");
    CHECK(text(doc, "target") == "dr");
    CHECK(text(doc, "group") == group);
    const json* parts = doc.find("partitions");
    REQUIRE_MESSAGE((parts != nullptr && std::holds_alternative<json_array>(parts->v)),
                    ctl_run.out);
    std::map<int32_t, int64_t> ctl_offsets;
    for (const auto& e : parts->array()) {
        REQUIRE(e.is_object());
        if (text(e, "source_topic") != topic) continue;
        CHECK(text(e, "topic") == target_topic);
        const auto p = number(e, "partition");
        const auto up = number(e, "upstream_offset");
        const auto to = number(e, "target_offset");
        const auto leo = number(e, "log_end_offset");
        const auto lag = number(e, "lag");
        REQUIRE_MESSAGE((p && up && to), ctl_run.out);
        CAPTURE(*p);
        CHECK(committed.count(static_cast<int32_t>(*p)) == 1);
        if (committed.count(static_cast<int32_t>(*p)))
            CHECK(*up == committed.at(static_cast<int32_t>(*p)));
        CHECK(leo == std::optional<int64_t>(committed_per_partition));
        if (leo && lag) CHECK(*lag == *leo - *to);
        CHECK(number(e, "checkpoint_age_ms").value_or(-1) >= 0);
        ctl_offsets[static_cast<int32_t>(*p)] = *to;
    }
    CHECK_MESSAGE(ctl_offsets == java_offsets, ctl_run.out);

    d.signal(SIGTERM);
    CHECK(d.wait(15s) == std::optional<int>(0));
}
