// Live reload (SIGHUP) and the daemon's logs, on the real test bed.
//
// Reload: four flows, one per topic, under continuous writes. Reloads add a
// flow, remove one (and later bring it back), change one, leave one alone,
// and offer a broken file in between. Every topic is then checked by content
// with kcat: the unchanged flow copied each record exactly once and was
// never reassigned; the removed flow committed what it had copied, so
// bringing it back neither lost nor re-sent anything; the changed and added
// flows lost nothing.
//
// Logs: a run with log_format = "json" at debug level, with a SASL password
// in the cluster's client properties and the test bed's S3 secret in a tap,
// through a reload, a rejected reload and replicatorctl status. Every line is
// a JSON object and neither secret appears in any line, in /metrics, in
// /status or in replicatorctl's output.

#include "support.h"

#include <doctest/doctest.h>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace rpl::test;

namespace {

bool has(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

size_t count(const std::string& haystack, const std::string& needle) {
    size_t n = 0;
    for (auto at = haystack.find(needle); at != std::string::npos;
         at = haystack.find(needle, at + 1))
        ++n;
    return n;
}

std::string flow_section(const std::string& name, const std::string& topic,
                         const std::string& extra = "") {
    return "[[flow]]\nname = \"" + name +
           "\"\nsource = \"primary\"\ntarget = \"dr\"\ntopics = [\"" + topic +
           "\"]\nrefresh_interval = \"1s\"\nheartbeats = false\nemit_checkpoints = false\n" +
           "sync_group_offsets = false\n" + extra + "\n";
}

void rewrite(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".new";
    std::ofstream(tmp) << text;
    REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
}

// Values "<topic>#<id>" written round-robin over the topics' partitions.
struct writer {
    std::vector<std::string> topics;
    std::atomic<bool> stop{false};
    std::map<std::string, int64_t> written;  // per topic, after join()
    std::thread thread;

    void start() {
        thread = std::thread([this] {
            producer p(testbed().primary);
            std::map<std::string, int64_t> next;
            while (!stop.load()) {
                for (const auto& t : topics) {
                    for (int i = 0; i < 50; ++i) {
                        record r;
                        r.partition = static_cast<int32_t>(next[t] % 3);
                        r.key = "k" + std::to_string(next[t]);
                        r.value = t + "#" + std::to_string(next[t]);
                        p.produce(t, r);
                        ++next[t];
                    }
                }
                p.flush();
                std::this_thread::sleep_for(50ms);
            }
            p.flush();
            written = next;
        });
    }
    void join() {
        stop = true;
        thread.join();
    }
};

// Per topic on dr: how often each id was copied.
std::map<int64_t, int> copies(const std::string& target_topic) {
    std::map<int64_t, int> out;
    // Not created yet (the flow creates it once it sees the source topic).
    if (kcat_partitions(testbed().dr, target_topic) == 0) return out;
    for (const auto& r : kcat_read(testbed().dr, target_topic)) {
        const auto hash = r.value->rfind('#');
        out[std::stoll(r.value->substr(hash + 1))] += 1;
    }
    return out;
}

// Whether dr has at least one record of target_topic. A bounded read: while
// a writer keeps adding records, `kcat -e` over a whole topic may never see
// every partition at its end at the same moment, and never returns.
bool has_a_copy(const std::string& target_topic) {
    if (kcat_partitions(testbed().dr, target_topic) == 0) return false;
    const auto r = run({"kcat", "-C", "-b", testbed().dr, "-t", target_topic, "-o", "beginning",
                        "-c", "1", "-e", "-q"},
                       30s);
    return r.exit_code == 0 && !r.out.empty();
}

int64_t total(const std::map<int64_t, int>& c) {
    int64_t n = 0;
    for (const auto& [_, k] : c) n += k;
    return n;
}

}  // namespace

TEST_CASE("sighup_adds_removes_changes_flows_keeps_the_unchanged_one_and_rejects_a_broken_file") {
    const auto& b = testbed();
    const std::string keep = unique("rl-keep"), gone = unique("rl-gone"),
                      change = unique("rl-change"), added = unique("rl-new");
    for (const auto& t : {keep, gone, change, added}) create_topic(b.primary, t, 3);

    const std::string head =
        "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("state") +
        "\"\nadmin_listen = \"127.0.0.1:0\"\n\n[clusters.primary]\nbootstrap = \"" + b.primary +
        "\"\n\n[clusters.dr]\nbootstrap = \"" + b.dr + "\"\n\n";
    const std::string v1 = head + flow_section("keep", keep) + flow_section("gone", gone) +
                           flow_section("change", change, "max_in_flight_records = 20000");
    // keep moves down the file and gains a comment: still the same flow.
    const std::string v2 = head + flow_section("change", change, "max_in_flight_records = 10000") +
                           flow_section("new", added) + "# kept as it was\n" +
                           flow_section("keep", keep);
    const std::string broken = v2 +
                               "[[flow]]\nname = \"bad\"\nsource = \"nowhere\"\ntarget = \"dr\"\n"
                               "checkpoint_interval = \"soon\"\n";
    const std::string v3 = v2 + flow_section("gone", gone);

    const std::string path = write_file(unique("reload") + ".toml", v1);
    daemon_process d(path, temp_dir() + "/" + unique("reload") + ".log");
    REQUIRE_EVENTUALLY(20s, d.admin_port() > 0);
    REQUIRE_EVENTUALLY(30s, http_get(d.admin_port(), "/readyz") == "ready\n");

    writer w;
    w.topics = {keep, gone, change, added};
    w.start();
    struct joiner {
        writer& w;
        ~joiner() {
            if (w.thread.joinable()) w.join();
        }
    } join_guard{w};
    const auto flow_log = [&](const std::string& name) { return "dr " + name + "] assigned"; };
    const auto reloaded = [&](size_t n) { return count(d.log(), "reloaded " + path) == n; };

    // Every flow has copied something, so each has had its first assignment
    // before the reload (the counts of "assigned" below rely on it).
    REQUIRE_EVENTUALLY(20s, has_a_copy("primary." + keep) && has_a_copy("primary." + gone) &&
                                has_a_copy("primary." + change));
    rewrite(path, v2);
    d.signal(SIGHUP);
    REQUIRE_EVENTUALLY(30s, reloaded(1));
    INFO(d.log());
    CHECK(has(d.log(),
              "added flow new; removed flow gone; restarted flow change; unchanged flow keep"));
    REQUIRE_EVENTUALLY(30s, http_get(d.admin_port(), "/readyz") == "ready\n");
    const std::string status = http_get(d.admin_port(), "/status");
    CHECK(has(status, "\"name\":\"keep\""));
    CHECK(has(status, "\"name\":\"new\""));
    CHECK_FALSE(has(status, "\"name\":\"gone\""));
    CHECK(has(status, "\"result\":\"applied\""));
    // The removed flow's series are gone, so no alert keeps seeing it stopped.
    const std::string metrics = http_get(d.admin_port(), "/metrics");
    CHECK_FALSE(has(metrics, "flow=\"gone\""));
    CHECK(has(metrics, "replicatord_flow_up{flow=\"new\"} 1"));

    // A broken file: rejected with --check's own messages; nothing changes.
    std::this_thread::sleep_for(1s);  // writes continue meanwhile
    rewrite(path, broken);
    d.signal(SIGHUP);
    REQUIRE_EVENTUALLY(20s, has(d.log(), "rejected"));
    const auto check = run({REPLICATORD_BIN, "--config", path, "--check", "--offline"});
    REQUIRE(check.exit_code == 2);
    std::istringstream check_lines(check.err);
    int messages = 0;
    for (std::string line; std::getline(check_lines, line);) {
        if (!has(line, path + ":")) continue;  // the file:line:col: lines
        ++messages;
        CHECK_MESSAGE(has(d.log(), line), "not in the daemon's log: " << line);
    }
    CHECK(messages >= 2);  // the unknown cluster and the bad duration
    const std::string after_reject = http_get(d.admin_port(), "/status");
    CHECK(has(after_reject, "\"result\":\"rejected\""));
    CHECK(has(after_reject, "\"name\":\"new\""));
    CHECK_FALSE(has(after_reject, "\"name\":\"bad\""));
    CHECK(http_get(d.admin_port(), "/readyz") == "ready\n");

    // Bring the removed flow back: it resumes from what it committed on stop.
    std::this_thread::sleep_for(1s);
    rewrite(path, v3);
    d.signal(SIGHUP);
    REQUIRE_EVENTUALLY(30s, reloaded(2));
    CHECK(has(d.log(), "added flow gone;"));
    std::this_thread::sleep_for(1s);
    w.join();

    // Everything written reaches dr; then count by content.
    for (const auto& t : w.topics) {
        INFO("topic " << t);
        REQUIRE_EVENTUALLY(60s,
                           static_cast<int64_t>(copies("primary." + t).size()) == w.written[t]);
    }
    const auto kept = copies("primary." + keep);
    CHECK(total(kept) == w.written[keep]);         // each record exactly once
    CHECK(count(d.log(), flow_log("keep")) == 1);  // one assignment: never restarted
    const auto back = copies("primary." + gone);
    CHECK(total(back) == w.written[gone]);  // committed on stop: nothing re-sent
    const auto changed = copies("primary." + change);
    CHECK(count(d.log(), flow_log("change")) == 2);
    MESSAGE("changed flow: " << total(changed) - w.written[change] << " record(s) re-sent of "
                             << w.written[change]);
    CHECK(total(changed) - w.written[change] <= 20000);  // at most the old in-flight bound
    CHECK(total(copies("primary." + added)) == w.written[added]);
    MESSAGE("written per topic: keep " << w.written[keep] << ", gone " << w.written[gone]
                                       << ", change " << w.written[change] << ", new "
                                       << w.written[added]);

    d.signal(SIGTERM);
    CHECK(d.wait(30s) == std::optional<int>(0));
    for (const auto& t : {keep, gone, change, added}) {
        delete_topic(b.primary, t);
        delete_topic(b.dr, "primary." + t);
    }
}

TEST_CASE("json_logs_are_one_object_per_line_and_no_output_carries_a_secret") {
    const auto& b = testbed();
    const std::string topic = unique("rl-secret");
    create_topic(b.primary, topic, 2);
    const std::string sasl_password = "sasl-" + unique("pw") + "-Zq9";
    const std::string store = "s3://" + b.s3_bucket + "/" + unique("secrets") +
                              "?endpoint=" + b.s3_endpoint + "&path_style=true&region=us-east-1";
    // PLAINTEXT with SASL settings: librdkafka takes them and ignores them,
    // so the password passes through every client the daemon builds.
    const std::string body = "[clusters.primary]\nbootstrap = \"" + b.primary +
                             "\"\n[clusters.primary.client]\n\"sasl.username\" = \"audit\"\n"
                             "\"sasl.password\" = \"" +
                             sasl_password +
                             "\"\n\n"
                             "[clusters.dr]\nbootstrap = \"" +
                             b.dr + "\"\n\n" + flow_section("secret-flow", topic) +
                             "[[tap]]\nname = \"secret-tap\"\nsource = \"primary\"\ntopics = [\"" +
                             topic + "\"]\nstorage = \"" + store + "\"\ns3_access_key = \"" +
                             b.s3_access_key + "\"\ns3_secret_key = \"" + b.s3_secret_key +
                             "\"\nsegment_max_interval = \"1s\"\n";
    const std::string head = "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("state") +
                             "\"\nadmin_listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n"
                             "log_level = \"debug\"\n\n";
    const std::string path = write_file(unique("secrets") + ".toml", head + body);
    daemon_process d(path, temp_dir() + "/" + unique("secrets") + ".log");
    REQUIRE_EVENTUALLY(20s, d.admin_port() > 0);
    REQUIRE_EVENTUALLY(30s, http_get(d.admin_port(), "/readyz") == "ready\n");
    {
        producer p(b.primary);
        for (int i = 0; i < 2000; ++i) {
            record r;
            r.partition = i % 2;
            r.value = "secret-test#" + std::to_string(i);
            p.produce(topic, r);
        }
        p.flush();
    }
    REQUIRE_EVENTUALLY(30s, total(copies("primary." + topic)) == 2000);
    REQUIRE_EVENTUALLY(30s, has(http_get(d.admin_port(), "/metrics"),
                                "replicatord_tap_records_archived_total{tap=\"secret-tap\"} 2000"));

    // A reload that changes the tap (it restarts, reconnecting to S3), then
    // one whose error is about the password's own value.
    const std::string path_text = head + body + "compression_level = 5\n";
    rewrite(path, path_text);
    d.signal(SIGHUP);
    REQUIRE_EVENTUALLY(30s, has(d.log(), "restarted tap secret-tap"));
    std::string wrong = head + body;
    const std::string quoted_pw = "\"" + sasl_password + "\"";
    wrong.replace(wrong.find(quoted_pw), quoted_pw.size(), "[" + quoted_pw + "]");
    rewrite(path, wrong);
    d.signal(SIGHUP);
    REQUIRE_EVENTUALLY(20s, has(d.log(), "rejected"));

    const auto status_out =
        run({ctl_bin(), "status", "--admin", "127.0.0.1:" + std::to_string(d.admin_port())});
    const auto status_json = run(
        {ctl_bin(), "status", "--json", "--admin", "127.0.0.1:" + std::to_string(d.admin_port())});
    const std::string metrics = http_get(d.admin_port(), "/metrics");
    const std::string status = http_get(d.admin_port(), "/status");
    d.signal(SIGTERM);
    CHECK(d.wait(30s) == std::optional<int>(0));

    MESSAGE("replicatorctl status during the run:\n" << status_out.out);
    CHECK(status_out.exit_code == 0);
    CHECK(has(status_out.out, "secret-flow"));
    CHECK(has(status_out.out, "secret-tap"));
    CHECK(has(status_json.out, "\"name\":\"secret-flow\""));

    const std::string log = d.log();
    int lines = 0;
    std::set<std::string> components;
    int from_librdkafka = 0;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        ++lines;
        boost::property_tree::ptree obj;
        std::istringstream one(line);
        try {
            boost::property_tree::read_json(one, obj);
        } catch (const std::exception& e) {
            FAIL_CHECK("not a JSON object: " << line);
            continue;
        }
        CHECK_MESSAGE(obj.count("ts") == 1, line);
        CHECK_MESSAGE(obj.count("level") == 1, line);
        CHECK_MESSAGE(obj.count("msg") == 1, line);
        components.insert(obj.get<std::string>("component", ""));
        if (obj.get<std::string>("msg", "").starts_with("librdkafka")) ++from_librdkafka;
    }
    MESSAGE(lines << " log lines from " << components.size() << " components");
    CHECK(lines > 30);
    // librdkafka's own lines come through the same logger.
    CHECK(from_librdkafka > 0);
    for (const auto& [what, text] : std::vector<std::pair<std::string, std::string>>{
             {"log", log},
             {"/metrics", metrics},
             {"/status", status},
             {"replicatorctl status", status_out.out + status_out.err},
             {"replicatorctl status --json", status_json.out + status_json.err}}) {
        INFO(what);
        CHECK_FALSE(has(text, sasl_password));
        CHECK_FALSE(has(text, b.s3_secret_key));
    }
    delete_topic(b.primary, topic);
    delete_topic(b.dr, "primary." + topic);
}
