// The replication drill (issue 9) on the real test bed: `replicatorctl drill
// --flow` under a steady ~5 MB/s load with three groups committing as they
// consume, against generous targets (pass), an impossible one (fail, exit
// 5), and the promise that a drill never commits to a real group. Then a
// real disaster: the primary broker stopped mid-load, `failover --apply`,
// consumers resuming on dr; the test measures the RTO and the records lost
// and checks both against what the daemon and the checkpoints promised.
#include "tests/integration/group_consumer.h"
#include "tests/integration/json.h"
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

using namespace rpl::test;

namespace {

command_result ctl(std::vector<std::string> args, std::chrono::milliseconds deadline = 90s) {
    args.insert(args.begin(), ctl_bin());
    return run(args, deadline);
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ------------------------------------------------------------ a small JSON reader

json parse_json(const command_result& r) {
    const auto start = r.out.find('{');
    if (start == std::string::npos) throw std::runtime_error("no JSON on stdout:\n" + show(r));
    return json_reader(r.out.substr(start)).parse();
}

// ------------------------------------------------------------ load

// Record `seq` of a run: partition seq % partitions, ~1 KiB, unique key.
std::string key_of(const std::string& tag, int64_t seq) { return tag + "-" + std::to_string(seq); }
// 1000 pseudo-random letters and digits, a function of seq: compression
// does not shrink the load much below its nominal rate.
std::string value_of(int64_t seq) {
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string v = "v" + std::to_string(seq) + "-";
    uint64_t x = static_cast<uint64_t>(seq) * 0x9E3779B97F4A7C15ull + 1;
    while (v.size() < 1000) {
        x ^= x >> 30;  // splitmix64
        x *= 0xBF58476D1CE4E5B9ull;
        x ^= x >> 27;
        x *= 0x94D049BB133111EBull;
        x ^= x >> 31;
        for (int i = 0; i < 8 && v.size() < 1000; ++i, x >>= 8) v += alphabet[(x & 0xff) % 36];
        x += 0x9E3779B97F4A7C15ull;
    }
    return v;
}

// What the producer's delivery reports say the primary acknowledged.
struct acked {
    int32_t partition = -1;
    int64_t offset = -1;
    int64_t timestamp = -1;
    std::string key;
};

// ~rate records/s of ~1 KiB in a background thread, keeping the delivery
// report of every record (acks=all): the test knows exactly what primary
// acknowledged, with offsets and timestamps.
class load {
public:
    load(std::string topic, std::string tag, int partitions, int rate)
        : topic_(std::move(topic)), tag_(std::move(tag)), partitions_(partitions) {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        char err[512];
        const std::map<std::string, std::string> props{
            {"bootstrap.servers", testbed().primary},
            {"acks", "all"},
            {"linger.ms", "5"},
            {"message.timeout.ms", "20000"},
            {"queue.buffering.max.messages", "1000000"},
        };
        for (const auto& [k, v] : props)
            if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
                throw std::runtime_error("producer property " + k + ": " + err);
        rd_kafka_conf_set_opaque(conf, this);
        rd_kafka_conf_set_dr_msg_cb(conf, &load::on_delivery);
        rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (rk_ == nullptr) throw std::runtime_error(std::string("producer: ") + err);
        thread_ = std::thread([this, rate] { loop(rate); });
    }
    ~load() {
        stop();
        rd_kafka_destroy(rk_);
    }
    load(const load&) = delete;
    load& operator=(const load&) = delete;

    // Stops producing; what is still queued is purged (never acknowledged).
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 50 && rd_kafka_outq_len(rk_) > 0; ++i) rd_kafka_poll(rk_, 100);
    }
    std::vector<acked> acknowledged() const {
        std::lock_guard l(mu_);
        return acked_;
    }
    int64_t produced() const { return seq_; }
    int64_t failed() const { return failed_; }

private:
    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        auto* self = static_cast<load*>(opaque);
        if (m->err) {
            ++self->failed_;
            return;
        }
        acked a;
        a.partition = m->partition;
        a.offset = m->offset;
        a.timestamp = rd_kafka_message_timestamp(m, nullptr);
        a.key.assign(static_cast<const char*>(m->key), m->key_len);
        std::lock_guard l(self->mu_);
        self->acked_.push_back(std::move(a));
    }
    void loop(int rate) {
        const int per_tick = std::max(1, rate / 50);  // every 20 ms
        auto next = std::chrono::steady_clock::now();
        while (!stop_) {
            for (int i = 0; i < per_tick; ++i) {
                const int64_t seq = seq_;
                std::string k = key_of(tag_, seq);
                std::string v = value_of(seq);
                const auto err = rd_kafka_producev(
                    rk_, RD_KAFKA_V_TOPIC(topic_.c_str()),
                    RD_KAFKA_V_PARTITION(static_cast<int32_t>(seq % partitions_)),
                    RD_KAFKA_V_KEY(k.data(), k.size()), RD_KAFKA_V_VALUE(v.data(), v.size()),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(now_ms()),
                    RD_KAFKA_V_END);
                if (err) break;  // queue full: catch up next tick
                ++seq_;
            }
            rd_kafka_poll(rk_, 0);
            next += 20ms;
            std::this_thread::sleep_until(next);
        }
    }

    std::string topic_;
    std::string tag_;
    int partitions_;
    rd_kafka_t* rk_ = nullptr;
    std::atomic<bool> stop_{false};
    std::atomic<int64_t> seq_{0};
    std::atomic<int64_t> failed_{0};
    mutable std::mutex mu_;
    std::vector<acked> acked_;
    std::thread thread_;
};

// A member of an application's group on primary: consumes as fast as it can
// and commits its exact position about every 300 ms, keeping every commit
// and the last record it read per partition.
class app_group {
public:
    // rate: records/s at most (0: as fast as it can).
    app_group(std::string group, std::string topic, int rate = 0)
        : group_(std::move(group)), topic_(std::move(topic)), rate_(rate) {
        thread_ = std::thread([this] { loop(); });
    }
    ~app_group() { stop(); }
    app_group(const app_group&) = delete;
    app_group& operator=(const app_group&) = delete;
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    const std::string& name() const { return group_; }
    // partition -> every offset committed.
    std::map<int32_t, std::set<int64_t>> commits() const {
        std::lock_guard l(mu_);
        return commits_;
    }
    int64_t consumed() const { return consumed_; }
    std::string error() const {
        std::lock_guard l(mu_);
        return error_;
    }

private:
    void loop() {
        try {
            consumer c(testbed().primary, group_, "earliest");
            c.subscribe(topic_);
            std::map<int32_t, int64_t> next;
            const auto started = std::chrono::steady_clock::now();
            auto last_commit = started;
            auto commit = [&] {
                if (next.empty()) return;
                rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(3);
                for (const auto& [p, o] : next)
                    rd_kafka_topic_partition_list_add(l, topic_.c_str(), p)->offset = o;
                const auto err = rd_kafka_commit(c.rk, l, 0);
                rd_kafka_topic_partition_list_destroy(l);
                if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    std::lock_guard lk(mu_);
                    for (const auto& [p, o] : next) commits_[p].insert(o);
                }
            };
            while (!stop_) {
                rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 50);
                if (m != nullptr) {
                    if (!m->err) {
                        next[m->partition] = m->offset + 1;
                        ++consumed_;
                    }
                    rd_kafka_message_destroy(m);
                }
                if (rate_ > 0 && static_cast<double>(consumed_) >
                                     rate_ * std::chrono::duration<double>(
                                                 std::chrono::steady_clock::now() - started)
                                                 .count())
                    std::this_thread::sleep_for(5ms);
                if (std::chrono::steady_clock::now() - last_commit >= 300ms) {
                    commit();
                    last_commit = std::chrono::steady_clock::now();
                }
            }
            commit();
        } catch (const std::exception& e) {
            std::lock_guard l(mu_);
            error_ = e.what();
        }
    }

    std::string group_;
    std::string topic_;
    int rate_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int64_t> consumed_{0};
    mutable std::mutex mu_;
    std::map<int32_t, std::set<int64_t>> commits_;
    std::string error_;
    std::thread thread_;
};

// ------------------------------------------------------------ the set-up

// One topic of 3 partitions on primary, mirrored by one flow to dr with
// checkpoints every second, three application groups and the load.
struct bed_flow {
    std::string tag;
    std::string flow;
    std::string topic;
    std::string target_topic;
    std::string group_prefix;
    std::string config_path;
    std::string state_dir;
    std::string base_config;  // without the targets
    std::unique_ptr<daemon_process> daemon;
    static constexpr int partitions = 3;

    // dr_client_id: the client.id of the daemon's clients on dr ("": default).
    explicit bed_flow(const std::string& tag_, const std::string& dr_client_id = "")
        : tag(tag_),
          flow(unique("dr-" + tag_ + "-flow")),
          topic(unique("dr-" + tag_) + ".t"),
          target_topic("primary." + topic),
          group_prefix(unique("dr-" + tag_ + "-app")),
          state_dir(temp_dir() + "/" + unique("dr-state-" + tag_)) {
        const auto& b = testbed();
        base_config = "[daemon]\nstate_dir = \"" + state_dir +
                      "\"\nadmin_listen = \"127.0.0.1:0\"\n\n" +
                      "[clusters.primary]\nbootstrap = \"" + b.primary + "\"\n\n" +
                      "[clusters.dr]\nbootstrap = \"" + b.dr + "\"\n\n" +
                      (dr_client_id.empty()
                           ? std::string()
                           : "[clusters.dr.client]\n\"client.id\" = \"" + dr_client_id + "\"\n\n") +
                      "[[flow]]\nname = \"" + flow +
                      "\"\nsource = \"primary\"\ntarget = \"dr\"\ntopics = [\"" + topic +
                      "\"]\ngroups = [\"" + group_prefix +
                      "-.*\"]\nrefresh_interval = \"1s\"\ncheckpoint_interval = \"1s\"\n"
                      // The drill must not need the daemon's group sync, and with it
                      // off the real groups on dr must stay without any offset.
                      "sync_group_offsets = false\n";
        config_path = config_with("rpo_target = \"1m\"\nrto_target = \"5m\"\n");
        create_topic(b.primary, topic, partitions);
    }
    std::string config_with(const std::string& extra) const {
        return write_file(unique("dr-" + tag) + ".toml", base_config + extra);
    }
    std::string group(int i) const { return group_prefix + "-" + std::to_string(i); }
    void start_daemon() {
        daemon = std::make_unique<daemon_process>(config_path,
                                                  temp_dir() + "/" + unique("dr-" + tag) + ".log");
    }
    void stop_daemon() {
        if (!daemon) return;
        daemon->signal(SIGTERM);
        const auto rc = daemon->wait(30s);
        CHECK_MESSAGE(rc == std::optional<int>(0), ("replicatord did not stop cleanly (" +
                                                    describe(rc) + "); log:\n" + daemon->log()));
        daemon.reset();
    }
    // Every group has a checkpoint on dr (translate answers from dr).
    void wait_for_checkpoints(int groups) const {
        for (int i = 0; i < groups; ++i)
            REQUIRE_EVENTUALLY(60s, ctl({"translate", "--config", config_path, "--flow", flow,
                                         "--group", group(i), "--json"})
                                            .exit_code == 0);
    }
};

// Groups on dr, as the broker lists them (a plain librdkafka call: the
// drill's own client code is not the judge of its clean-up).
std::set<std::string> groups_on(const std::string& bootstrap) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    REQUIRE(rk != nullptr);
    const struct rd_kafka_group_list* list = nullptr;
    const auto e = rd_kafka_list_groups(rk, nullptr, &list, 15000);
    std::set<std::string> out;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < list->group_cnt; ++i) out.insert(list->groups[i].group);
        rd_kafka_group_list_destroy(list);
    }
    rd_kafka_destroy(rk);
    REQUIRE_MESSAGE(e == RD_KAFKA_RESP_ERR_NO_ERROR,
                    "list groups on " << bootstrap << ": " << rd_kafka_err2str(e));
    return out;
}

void delete_group(const std::string& bootstrap, const std::string& group) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteGroup_t* dg = rd_kafka_DeleteGroup_new(group.c_str());
    rd_kafka_DeleteGroups(rk, &dg, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 15000);
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_DeleteGroup_destroy(dg);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

// The value of `name{flow="F"}` in a Prometheus text page, or -1.
double flow_metric(const std::string& page, const std::string& name, const std::string& flow) {
    const std::string series = name + "{flow=\"" + flow + "\"} ";
    const auto at = page.find("\n" + series);
    if (at == std::string::npos) return -1;
    return std::stod(page.substr(at + 1 + series.size()));
}

// Stops the primary broker, and starts it again on scope exit whatever
// happens in between.
struct primary_outage : broker_outage {
    primary_outage() : broker_outage("primary") {}
};

}  // namespace

TEST_SUITE("drill") {
    TEST_CASE(
        "flow drill under 5 MB/s load: passes generous targets with every group exact, exits 5 "
        "naming a missed rpo_target, and never commits to a real group") {
        const auto& b = testbed();
        bed_flow s("steady");
        const auto drill_groups_before = groups_on(b.dr);

        // Bad input first (no cluster needed): an unknown flow is named, the
        // known one listed.
        const auto unknown = ctl({"drill", "--config", s.config_path, "--flow", "nope"});
        CHECK_MESSAGE(unknown.exit_code == 2, show(unknown));
        CHECK_MESSAGE(unknown.err.find("no flow named 'nope'") != std::string::npos, show(unknown));
        CHECK_MESSAGE(unknown.err.find(s.flow) != std::string::npos, show(unknown));

        load producer(s.topic, "steady", bed_flow::partitions, 5000);  // ~5 MB/s
        std::vector<std::unique_ptr<app_group>> apps;
        for (int i = 0; i < 3; ++i)
            apps.push_back(std::make_unique<app_group>(s.group(i), s.topic));
        const auto load_start = std::chrono::steady_clock::now();
        s.start_daemon();
        // ~12 s of load before the first drill.
        REQUIRE_EVENTUALLY(60s, end_offsets(b.dr, s.target_topic) > 60'000);
        s.wait_for_checkpoints(3);

        // 1. Generous targets: PASS, every group and partition exact.
        const std::string report_path = temp_dir() + "/" + unique("drill-report") + ".md";
        const auto pass = ctl({"drill", "--config", s.config_path, "--flow", s.flow, "--json",
                               "--report", report_path, "--timeout", "60s"});
        INFO(show(pass));
        REQUIRE(pass.exit_code == 0);
        const json doc = parse_json(pass);
        CHECK(doc.flag("passed"));
        CHECK(doc.str("flow") == s.flow);
        CHECK(doc.at("rpo").str("result") == "PASS");
        CHECK(doc.at("rpo").flag("caught_up"));
        CHECK(doc.at("rpo").num("target_seconds") == 60.0);
        CHECK(doc.at("rto").str("result") == "PASS");
        CHECK(doc.at("rto").num("seconds") > 0);
        CHECK(doc.at("checkpoint_age_seconds").kind == json::number_v);
        const auto& groups = doc.at("groups").a;
        REQUIRE(groups.size() == 3);
        for (int i = 0; i < 3; ++i) {
            const json& g = groups[static_cast<size_t>(i)];
            CAPTURE(g.str("group"));
            CHECK(g.str("group") == s.group(i));
            CHECK(g.str("drill_group") == "drill." + s.group(i));
            CHECK(g.flag("exact"));
            CHECK(g.num("rto_seconds") > 0);
            CHECK(g.str("error").empty());
            REQUIRE(g.at("partitions").a.size() == 3);
            for (const auto& p : g.at("partitions").a) {
                CAPTURE(p.str("detail"));
                CHECK(p.flag("exact"));
                CHECK(p.str("target_topic") == s.target_topic);
            }
        }
        CHECK(doc.str("drill_groups") == "deleted");
        std::ifstream md(report_path);
        const std::string report((std::istreambuf_iterator<char>(md)), {});
        CHECK(report.find("# DR drill: flow " + s.flow) != std::string::npos);
        CHECK(report.find("| RPO |") != std::string::npos);
        CHECK(report.find("replicatorctl failover --config " + s.config_path + " --flow " + s.flow +
                          " --all-groups --apply") != std::string::npos);
        std::cout << "flow drill (generous targets): RPO " << doc.at("rpo").num("seconds") << " s, "
                  << doc.at("rpo").num("data_at_risk_records")
                  << " records at risk at T0, catch-up " << doc.at("rpo").num("catch_up_seconds")
                  << " s; RTO " << doc.at("rto").num("seconds") << " s (slowest "
                  << doc.at("rto").str("slowest_group") << ")\n\n"
                  << report << "\n";

        // 2. rpo_target = "1ms": exit 5, and the report names the target missed.
        // One group, one partition and --keep also exercise those flags.
        const std::string strict = s.config_with("rpo_target = \"1ms\"\nrto_target = \"5m\"\n");
        const auto missed = ctl({"drill", "--config", strict, "--flow", s.flow, "--groups",
                                 s.group(1), "--sample", "1", "--keep", "--timeout", "60s"});
        INFO(show(missed));
        CHECK(missed.exit_code == 5);
        CHECK(missed.out.find("RPO target missed") != std::string::npos);
        CHECK(missed.out.find("rpo_target 1ms") != std::string::npos);
        CHECK(missed.out.find("| RPO |") != std::string::npos);
        CHECK(missed.out.find("FAIL") != std::string::npos);
        CHECK(missed.out.find("| " + s.group(1) + " | 1/1 |") != std::string::npos);
        CHECK(missed.out.find(s.group(0)) == std::string::npos);

        for (auto& a : apps) a->stop();
        producer.stop();
        for (auto& a : apps) CHECK_MESSAGE(a->error().empty(), a->error());
        const double load_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
        std::cout << "load: " << producer.produced() << " records of ~1 KiB in " << load_s << " s ("
                  << static_cast<double>(producer.produced()) * 1.0e-3 / load_s << " MB/s)\n";

        // 5. No real group has any offset on dr (group sync is off and the
        // drill commits only to drill.<group>); the drill groups are gone,
        // except the one kept with --keep.
        for (int i = 0; i < 3; ++i)
            for (const auto& [p, o] :
                 committed_offsets(b.dr, s.group(i), s.target_topic, bed_flow::partitions))
                CHECK_MESSAGE(o == RD_KAFKA_OFFSET_INVALID, "group " << s.group(i) << " has offset "
                                                                     << o << " on dr partition "
                                                                     << p);
        const auto after = groups_on(b.dr);
        CHECK(after.count("drill." + s.group(0)) == 0);
        CHECK(after.count("drill." + s.group(2)) == 0);
        CHECK(after.count("drill." + s.group(1)) == 1);  // --keep
        CHECK(drill_groups_before.count("drill." + s.group(1)) == 0);
        delete_group(b.dr, "drill." + s.group(1));
        s.stop_daemon();
    }

    TEST_CASE(
        "flow drill for real: primary stopped mid-load, failover --apply, every group resumes "
        "on dr at exactly its checkpointed record, and what was lost fits the RPO metric") {
        // The load is 5 MB/s; the DR link takes 1.5 MB/s (of data that
        // compresses to ~2/3), so replication falls behind by a couple of
        // thousand records a second and the RPO metric grows:
        // the disaster loses records, and the bound below is exercised. The
        // applications read 1,000 records/s each, slower than replication,
        // so once replication has passed them their positions stay on dr and
        // they have records to resume with.
        const auto& b = testbed();
        const std::string client_id = unique("drillflow-slow-link");
        slow_link link(client_id, 1'500'000);
        bed_flow s("disaster", client_id);
        load producer(s.topic, "disaster", bed_flow::partitions, 5000);
        std::vector<std::unique_ptr<app_group>> apps;
        for (int i = 0; i < 3; ++i)
            apps.push_back(std::make_unique<app_group>(s.group(i), s.topic, 1000));
        s.start_daemon();
        REQUIRE_EVENTUALLY(60s, end_offsets(b.dr, s.target_topic) > 20'000);
        // The applications started first; wait until replication (the
        // flow's own commits on primary) has passed every group's commit.
        // Before that, a checkpoint of a commit beyond what reached dr names
        // dr's end at that moment, and a group failing over from it would
        // re-read records, which is right but not what this test measures.
        REQUIRE_EVENTUALLY(60s, [&] {
            const auto flow_at = committed_offsets(b.primary, "replicatord." + s.flow, s.topic,
                                                   bed_flow::partitions);
            for (int i = 0; i < 3; ++i)
                for (const auto& [p, o] :
                     committed_offsets(b.primary, s.group(i), s.topic, bed_flow::partitions))
                    if (o < 0 || !flow_at.count(p) || flow_at.at(p) <= o) return false;
            return true;
        }());
        // ... and until a checkpoint pass has run since (the flow's
        // checkpoint_interval is 1 s; /status gives the last pass's age).
        s.wait_for_checkpoints(3);
        REQUIRE_EVENTUALLY(20s, s.daemon->admin_port() > 0);
        const auto passed_at = std::chrono::steady_clock::now();
        REQUIRE_EVENTUALLY(20s, [&] {
            command_result st;
            st.out = http_get(s.daemon->admin_port(), "/status");
            const json doc = parse_json(st);
            const json& cp = doc.at("flows").a.at(0).at("checkpoints");
            const double since =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - passed_at).count();
            return cp.at("last_pass_age_seconds").kind == json::number_v &&
                   cp.num("last_pass_age_seconds") + 0.2 < since;
        }());

        // The applications die with the region; their last commits stand.
        for (auto& a : apps) a->stop();
        for (auto& a : apps) REQUIRE_MESSAGE(a->error().empty(), a->error());
        const int64_t scrape_ms = now_ms();
        const std::string page = http_get(s.daemon->admin_port(), "/metrics");
        const double rpo_metric = flow_metric(page, "replicatord_rpo_seconds", s.flow);
        REQUIRE_MESSAGE(rpo_metric >= 0, "no replicatord_rpo_seconds for the flow:\n" << page);

        // The disaster: the clock starts as the broker is stopped, the load
        // still running.
        const auto t_stop = std::chrono::steady_clock::now();
        const int64_t stop_ms = now_ms();
        std::optional<primary_outage> outage;
        outage.emplace();
        producer.stop();
        const auto fo = ctl({"failover", "--config", s.config_path, "--flow", s.flow,
                             "--all-groups", "--apply", "--json"});
        REQUIRE_MESSAGE(fo.exit_code == 0, show(fo));

        // Applications start on dr in their real groups (auto.offset.reset =
        // error: no committed offset would be a failure, not a silent jump)
        // and read to the end: with primary down, dr no longer grows.
        struct resumed {
            std::map<int32_t, record> first;
            std::chrono::steady_clock::time_point first_at{};
            std::string error;
        };
        std::vector<resumed> on_dr(3);
        {
            std::vector<std::thread> threads;
            for (int i = 0; i < 3; ++i)
                threads.emplace_back([&, i] {
                    auto& out = on_dr[static_cast<size_t>(i)];
                    try {
                        consumer c(b.dr, s.group(i), "error");
                        c.subscribe(s.target_topic);
                        std::set<int32_t> eof;
                        const auto until = std::chrono::steady_clock::now() + 60s;
                        while (eof.size() < bed_flow::partitions &&
                               std::chrono::steady_clock::now() < until) {
                            rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 100);
                            if (m == nullptr) continue;
                            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                eof.insert(m->partition);
                            } else if (m->err) {
                                out.error = rd_kafka_message_errstr(m);
                            } else if (!out.first.count(m->partition)) {
                                if (out.first.empty())
                                    out.first_at = std::chrono::steady_clock::now();
                                out.first[m->partition] = to_record(m);
                            }
                            rd_kafka_message_destroy(m);
                            if (!out.error.empty()) break;
                        }
                        if (out.error.empty() && eof.size() < bed_flow::partitions)
                            out.error = "did not reach the end of every partition in 60 s";
                    } catch (const std::exception& e) {
                        out.error = e.what();
                    }
                });
            for (auto& t : threads) t.join();
        }
        // The daemon goes too, so that nothing reaches dr after this point
        // (it would copy the rest once primary is back); then primary comes
        // back at once: the checks below need only dr.
        s.daemon->signal(SIGKILL);
        CHECK(s.daemon->wait(20s).has_value());
        s.daemon.reset();
        outage->restart();
        const double down_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t_stop).count();

        // Where each group resumed, by the checkpoints failover used (read
        // from dr alone).
        const json plans = parse_json(fo);
        std::map<std::pair<std::string, int32_t>, int64_t> new_offset;
        for (const auto& g : plans.at("groups").a)
            for (const auto& p : g.at("partitions").a)
                new_offset[{g.str("group"), static_cast<int32_t>(p.num("partition"))}] =
                    static_cast<int64_t>(p.num("new_offset"));

        // Records lost: acknowledged by primary, absent on dr (by key and
        // value size, read with kcat; keys are unique per record and the
        // value is a function of the key).
        const auto acks = producer.acknowledged();
        const auto dr_read = run({"kcat", "-C", "-b", b.dr, "-t", s.target_topic, "-e", "-q", "-f",
                                  "%p\x1f%o\x1f%k\x1f%S\n"},
                                 90s);
        REQUIRE_MESSAGE(dr_read.exit_code == 0, show(dr_read));
        std::map<std::string, std::pair<int32_t, int64_t>> on_dr_by_key;  // key -> (p, dr offset)
        {
            std::istringstream in(dr_read.out);
            std::string line;
            while (std::getline(in, line)) {
                std::vector<std::string> f;
                std::string cur;
                for (char c : line) {
                    if (c == '\x1f') {
                        f.push_back(cur);
                        cur.clear();
                    } else {
                        cur += c;
                    }
                }
                f.push_back(cur);
                if (f.size() != 4) continue;
                if (std::stoll(f[3]) != 1000) continue;  // wrong value size: not a copy
                on_dr_by_key[f[2]] = {std::stoi(f[0]), std::stoll(f[1])};
            }
        }
        std::map<std::pair<int32_t, int64_t>, const acked*> acked_at;  // primary (p, offset)
        std::vector<const acked*> lost;
        for (const auto& a : acks) {
            acked_at[{a.partition, a.offset}] = &a;
            if (!on_dr_by_key.count(a.key)) lost.push_back(&a);
        }
        int64_t oldest_lost = -1;
        for (const auto* a : lost)
            if (oldest_lost < 0 || a->timestamp < oldest_lost) oldest_lost = a->timestamp;

        double rto = 0;
        std::string slowest;
        for (int i = 0; i < 3; ++i) {
            const auto& r = on_dr[static_cast<size_t>(i)];
            CAPTURE(s.group(i));
            REQUIRE_MESSAGE(r.error.empty(), r.error);
            REQUIRE_MESSAGE(!r.first.empty(), "group " << s.group(i) << " read nothing on dr");
            const double t = std::chrono::duration<double>(r.first_at - t_stop).count();
            if (t > rto) {
                rto = t;
                slowest = s.group(i);
            }
        }
        std::cout << "flow drill for real: primary stopped with replicatord_rpo_seconds = "
                  << rpo_metric << " s; acknowledged " << acks.size() << " of "
                  << producer.produced() << " records; lost " << lost.size()
                  << " (acknowledged on primary, absent on dr)"
                  << (oldest_lost >= 0
                          ? ", the oldest written " + std::to_string(stop_ms - oldest_lost) +
                                " ms before the stop"
                          : std::string())
                  << "; RTO (stop -> first record on dr, every group) " << rto << " s, slowest "
                  << slowest << "; primary was down " << down_s << " s\n";

        // Each group resumes at exactly the record at its checkpointed
        // commit on primary, which reached dr: the first record it reads in
        // a partition is the one its commit names (by content), and that
        // commit is one the application really made.
        for (int i = 0; i < 3; ++i) {
            const auto& r = on_dr[static_cast<size_t>(i)];
            auto commits = apps[static_cast<size_t>(i)]->commits();
            // The upstream offsets behind those positions: the records the
            // group would have read next on primary.
            const auto tr = ctl({"translate", "--config", s.config_path, "--flow", s.flow,
                                 "--group", s.group(i), "--json"});
            REQUIRE_MESSAGE(tr.exit_code == 0, show(tr));
            std::map<int32_t, int64_t> upstream_of;
            for (const auto& row : parse_json(tr).at("partitions").a)
                upstream_of[static_cast<int32_t>(row.num("partition"))] =
                    static_cast<int64_t>(row.num("upstream_offset"));
            for (int32_t p = 0; p < bed_flow::partitions; ++p) {
                CAPTURE(s.group(i));
                CAPTURE(p);
                const auto no = new_offset.find({s.group(i), p});
                REQUIRE_MESSAGE(no != new_offset.end(), "failover did not move the group:\n"
                                                            << fo.out);
                REQUIRE(upstream_of.count(p) == 1);
                const int64_t upstream = upstream_of[p];
                CHECK_MESSAGE(
                    commits[p].count(upstream) == 1,
                    "checkpointed position " << upstream << " is not a commit the group made");
                const auto want = acked_at.find({p, upstream});
                const auto got = r.first.find(p);
                if (want == acked_at.end() || !on_dr_by_key.count(want->second->key)) {
                    // Nothing at the commit reached dr: the group must read
                    // nothing in this partition (it resumes at dr's end).
                    CHECK_MESSAGE(got == r.first.end(),
                                  "read " << (got->second.key ? *got->second.key : "?")
                                          << " although nothing after the commit reached dr");
                    continue;
                }
                REQUIRE_MESSAGE(got != r.first.end(), "read nothing; want " << want->second->key);
                CHECK(got->second.key == std::optional<std::string>(want->second->key));
                CHECK(got->second.value ==
                      std::optional<std::string>(value_of(
                          std::stoll(want->second->key.substr(want->second->key.rfind('-') + 1)))));
                CHECK(got->second.offset == no->second);
            }
        }

        // The loss fits the RPO the daemon showed just before the stop:
        // every record written before (scrape - rpo) was on dr, because the
        // metric is now - (time a source high watermark the target now holds
        // was seen). Slack: the metric is refreshed every second (it can be
        // up to 1 s old at the scrape), and a record's timestamp is taken
        // when it is queued in the producer, up to its linger and a fetch
        // round trip before the broker appends it; 2 s covers both. The
        // scrape itself came just before the stop.
        const int64_t bound = scrape_ms - static_cast<int64_t>(rpo_metric * 1000.0) - 2000;
        CHECK(stop_ms >= scrape_ms);
        CHECK_MESSAGE(!lost.empty(),
                      "the slow link left nothing behind: the RPO bound was not exercised");
        // The oldest lost record decides (one check, not one per record).
        CHECK_MESSAGE(oldest_lost >= bound, "a lost record was written "
                                                << (scrape_ms - oldest_lost)
                                                << " ms before the scrape, beyond the RPO metric "
                                                << rpo_metric << " s + 2 s");
        outage.reset();
    }
}
