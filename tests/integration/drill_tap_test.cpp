// The archive drill on the real test bed (issue 9, acceptance 4):
// replicatord's tap archives a topic of primary into a file:// store; then
// `replicatorctl drill --tap NAME --cluster dr` restores the archive's last
// window into dr under drill.<topic>, verifies it against primary by
// content, reports and deletes the drill topic.
//
//   producer ──> primary: topic ──tap──> file:// store
//                                             │ drill --tap --cluster dr
//                                             v
//   kcat (independent) <── dr: drill.<topic> ──verified against── primary: topic
//
// What the drill says is checked independently: kcat reads the kept drill
// topic and compares it with the source, and kcat -L shows the topic gone
// after a drill without --keep.
#include "backup/catalogue.h"
#include "backup/store.h"
#include "support.h"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace rpl;
using namespace rpl::test;

namespace {

namespace fs = std::filesystem;

bool has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// The number after "key": in the JSON object that starts at `anchor`
// (the first occurrence of each), or -1.
long long json_number(const std::string& text, const std::string& anchor, const std::string& key) {
    const auto a = text.find("\"" + anchor + "\":");
    if (a == std::string::npos) return -1;
    const auto k = text.find("\"" + key + "\":", a);
    if (k == std::string::npos) return -1;
    return std::stoll(text.substr(k + key.size() + 3));
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Records archived so far, from the store's segment keys.
std::uint64_t archived(backup::object_store& store, const std::string& backup) {
    auto c = backup::catalogue::load(store, backup);
    if (!c) return 0;
    std::uint64_t n = 0;
    for (const auto& t : c.value().topics())
        for (auto p : c.value().partitions(t))
            for (const auto& e : c.value().segments(t, p)) n += e.records;
    return n;
}

std::string config_text(const std::string& tap, const std::string& topic,
                        const std::string& storage, const std::string& targets) {
    const auto& b = testbed();
    return "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("drill-state") +
           "\"\nadmin_listen = \"127.0.0.1:0\"\n\n[clusters.primary]\nbootstrap = \"" + b.primary +
           "\"\n\n[clusters.dr]\nbootstrap = \"" + b.dr + "\"\n\n[[tap]]\nname = \"" + tap +
           "\"\nsource = \"primary\"\ntopics = [\"" + topic + "\"]\nstorage = \"" + storage +
           "\"\nsegment_max_interval = \"2s\"\n" + targets;
}

bool topic_listed(const std::string& bootstrap, const std::string& topic) {
    for (const auto& t : kcat_topics(bootstrap))
        if (t == topic) return true;
    return false;
}

}  // namespace

// Guards against a drill that reports success without having restored or
// compared anything, that leaves its drill topics behind, or that passes
// while a target is missed.
TEST_CASE("tap drill restores the archive's last window into dr, verifies it, and cleans up") {
    const auto& b = testbed();
    const std::string topic = unique("tapdrill");
    const std::string drill_topic = "drill." + topic;
    const std::string tap = unique("drilltap");
    const std::string dir = temp_dir() + "/" + unique("drill-store");
    fs::create_directories(dir);
    const std::string storage = "file://" + dir;
    constexpr int partitions = 3;
    constexpr int count = 3000;
    create_topic(b.primary, topic, partitions);

    const std::string cfg =
        write_file(unique("drill") + ".toml",
                   config_text(tap, topic, storage, "rpo_target = \"1m\"\nrto_target = \"5m\"\n"));
    daemon_process daemon(cfg, temp_dir() + "/" + unique("drill") + ".log");

    // Known contents: null keys, empty values, headers, timestamps slightly
    // out of order.
    {
        producer p(b.primary);
        const int64_t base = now_ms();
        for (int i = 0; i < count; ++i) {
            record r;
            r.partition = i % partitions;
            if (i % 10 != 0) r.key = "k-" + std::to_string(i);
            r.value = i % 97 == 0 ? std::string() : "v-" + std::to_string(i) + "-payload";
            if (i % 3 == 0) r.headers = {{"seq", std::to_string(i)}, {"origin", "drilltest"}};
            r.timestamp = base - (i % 50);
            p.produce(topic, r);
        }
        p.flush();
    }
    auto store = backup::open_store(storage, {});
    REQUIRE_MESSAGE(store, store.error().message);
    REQUIRE_EVENTUALLY(30s, archived(*store.value(), tap) >= count);
    REQUIRE(archived(*store.value(), tap) == count);

    const std::vector<std::string> base_args = {
        ctl_bin(), "drill", "--config", cfg, "--tap", tap, "--cluster", "dr", "--window", "10m"};
    auto drill = [&](std::vector<std::string> extra, const std::string& config) {
        auto argv = base_args;
        argv[3] = config;
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run(argv, 60s);
    };

    // 1. Kept: the report says everything was restored and equal, and kcat
    //    reads on dr exactly what primary holds.
    {
        const std::string report = temp_dir() + "/" + unique("drill-report") + ".md";
        const auto r = drill({"--json", "--keep", "--report", report}, cfg);
        INFO(show(r));
        REQUIRE(r.exit_code == 0);
        CHECK(json_number(r.out, "restore", "records") == count);
        CHECK(json_number(r.out, "verification", "restored") == count);
        CHECK(json_number(r.out, "verification", "checked") == count);
        CHECK(json_number(r.out, "verification", "equal") == count);
        CHECK(json_number(r.out, "verification", "differ") == 0);
        CHECK(json_number(r.out, "verification", "missing") == 0);
        CHECK(json_number(r.out, "rpo", "records") == 0);
        CHECK(has(r.out, "\"result\":\"pass\""));
        CHECK(has(r.out, "\"kept\":true"));
        // The Markdown report went to the file.
        std::ifstream in(report);
        std::stringstream md;
        md << in.rdbuf();
        CHECK(has(md.str(), "# DR drill: archive tap `" + tap + "`"));
        CHECK(has(md.str(), "**PASS**"));
        const std::string n = std::to_string(count);
        CHECK(has(md.str(),
                  "| total |  | " + n + " | " + n + " | " + n + " | " + n + " | 0 | 0 | 0 |"));

        // The independent client: per partition, in order, the same records.
        for (int p = 0; p < partitions; ++p) {
            CAPTURE(p);
            const auto src = kcat_read(b.primary, topic, p);
            auto got = kcat_read(b.dr, drill_topic, p);
            REQUIRE(src.size() == count / partitions);
            REQUIRE(got.size() == src.size());
            for (std::size_t i = 0; i < src.size(); ++i) {
                CAPTURE(src[i].offset);
                REQUIRE(!got[i].headers.empty());
                CHECK(got[i].headers.back() ==
                      std::make_pair(std::string("replicatord.source.offset"),
                                     std::to_string(src[i].offset)));
                got[i].headers.pop_back();
                CHECK(got[i] == src[i]);
            }
        }
    }

    // 2. A drill topic already on dr (here: the kept one) is never touched.
    {
        const auto r = drill({}, cfg);
        INFO(show(r));
        CHECK(r.exit_code == 4);
        CHECK(has(r.err, drill_topic + " already exist"));
        CHECK(topic_listed(b.dr, drill_topic));
        CHECK(kcat_read(b.dr, drill_topic).size() == count);
        delete_topic(b.dr, drill_topic);
        REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, drill_topic));
    }

    // 3. Not kept: the report names the deleted topic and kcat no longer
    //    lists it.
    {
        const auto r = drill({"--json"}, cfg);
        INFO(show(r));
        REQUIRE(r.exit_code == 0);
        CHECK(json_number(r.out, "verification", "equal") == count);
        CHECK(json_number(r.out, "verification", "differ") == 0);
        CHECK(has(r.out, "\"deleted\":[\"" + drill_topic + "\"]"));
        REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, drill_topic));
    }

    // 4. An impossible rto_target fails the drill, naming the target.
    {
        const std::string tight =
            write_file(unique("drill-tight") + ".toml",
                       config_text(tap, topic, storage, "rto_target = \"1ms\"\n"));
        const auto r = drill({}, tight);
        INFO(show(r));
        CHECK(r.exit_code == 5);
        CHECK(has(r.err, "rto_target 1ms missed"));
        CHECK(has(r.out, "**FAIL**"));
        CHECK(has(r.out, "FAIL: rto_target 1ms missed"));
        // Every record still checked out; only the target failed.
        const std::string n = std::to_string(count);
        CHECK(
            has(r.out, "| total |  | " + n + " | " + n + " | " + n + " | " + n + " | 0 | 0 | 0 |"));
        REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, drill_topic));
    }

    // 5. An unknown scratch cluster is a usage error naming it.
    {
        auto argv = base_args;
        argv[7] = "nosuch";
        const auto r = run(argv, 30s);
        INFO(show(r));
        CHECK(r.exit_code == 2);
        CHECK(has(r.err, "--cluster nosuch"));
    }

    daemon.signal(SIGTERM);
    CHECK(daemon.wait(30s).has_value());

    // 6. The verification reads content: the source topic recreated with
    //    other values at the same offsets makes every restored record differ.
    {
        delete_topic(b.primary, topic);
        REQUIRE_EVENTUALLY(30s, !topic_listed(b.primary, topic));
        REQUIRE_EVENTUALLY(30s, [&] {
            try {
                create_topic(b.primary, topic, partitions);
                return true;
            } catch (const std::exception&) {
                return false;  // still being deleted
            }
        }());
        {
            producer p(b.primary);
            for (int i = 0; i < count; ++i) {
                record r;
                r.partition = i % partitions;
                r.key = "k-" + std::to_string(i);
                r.value = "recreated-" + std::to_string(i);
                r.timestamp = now_ms();
                p.produce(topic, r);
            }
            p.flush();
        }
        const auto r = drill({"--json"}, cfg);
        INFO(show(r));
        CHECK(r.exit_code == 5);
        CHECK(json_number(r.out, "verification", "checked") == count);
        CHECK(json_number(r.out, "verification", "differ") == count);
        CHECK(json_number(r.out, "verification", "equal") == 0);
        CHECK(has(r.err, std::to_string(count) + " restored record(s) differ from the source"));
        REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, drill_topic));
    }
}

// Guards against a drill that compares archive offsets with source offsets
// after the source topic was recreated: the tap archives the new topic's
// records in a new epoch, from the archive's old end on (catalogue.h), so the
// old epoch's records were compared with the new topic's records at the same
// offsets (reported as differing), and the new records with offsets the new
// topic never reached (reported as gone, never checked).
TEST_CASE(
    "tap drill checks a recreated topic's new records against the source, and reports the "
    "old epoch's as gone") {
    const auto& b = testbed();
    const std::string topic = unique("tapdrill-epoch");
    const std::string tap = unique("drilltap-epoch");
    const std::string dir = temp_dir() + "/" + unique("drill-store");
    fs::create_directories(dir);
    const std::string storage = "file://" + dir;
    create_topic(b.primary, topic, 1);
    const std::string cfg =
        write_file(unique("drill-epoch") + ".toml", config_text(tap, topic, storage, ""));
    const std::string log = temp_dir() + "/" + unique("drill-epoch") + ".log";
    auto store = backup::open_store(storage, {});
    REQUIRE_MESSAGE(store, store.error().message);
    {
        daemon_process daemon(cfg, log);
        produce_numbered(topic, 0, 0, 10);
        REQUIRE_EVENTUALLY(30s, archived(*store.value(), tap) == 10);
        daemon.signal(SIGTERM);
        REQUIRE(daemon.wait(30s).has_value());
    }
    // The topic recreated with other records, fewer than were archived.
    delete_topic(b.primary, topic);
    REQUIRE_EVENTUALLY(30s, !topic_listed(b.primary, topic));
    REQUIRE_EVENTUALLY(60s, [&] {
        try {
            create_topic(b.primary, topic, 1);
            return true;
        } catch (const std::exception&) {
            return false;  // still being deleted
        }
    }());
    produce_numbered(topic, 0, 100, 4);  // k100..k103 at offsets 0..3
    daemon_process daemon(cfg, log);
    REQUIRE_EVENTUALLY(30s, archived(*store.value(), tap) == 14);
    {
        auto cat = backup::catalogue::load(*store.value(), tap);
        REQUIRE(cat);
        REQUIRE(cat.value().epochs(topic, 0).size() == 1);
        REQUIRE(cat.value().epochs(topic, 0)[0].base == 10);
    }

    const auto r = run({ctl_bin(), "drill", "--config", cfg, "--tap", tap, "--cluster", "dr",
                        "--window", "10m", "--json"},
                       60s);
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK(has(r.out, "\"result\":\"pass\""));
    CHECK(json_number(r.out, "verification", "restored") == 14);
    // The new topic's 4 records, each against the source record it came from.
    CHECK(json_number(r.out, "verification", "checked") == 4);
    CHECK(json_number(r.out, "verification", "equal") == 4);
    CHECK(json_number(r.out, "verification", "differ") == 0);
    // The old topic's 10: no longer on the source, and said to be from before
    // the recreation.
    CHECK(json_number(r.out, "verification", "gone") == 10);
    CHECK(json_number(r.out, "verification", "earlier_epoch") == 10);
    CHECK(json_number(r.out, "verification", "missing") == 0);
    CHECK(json_number(r.out, "rpo", "records") == 0);
    CHECK(has(r.out, topic + "/0 was recreated or truncated"));
    REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, "drill." + topic));
    // The Markdown report says the same.
    const auto m = run(
        {ctl_bin(), "drill", "--config", cfg, "--tap", tap, "--cluster", "dr", "--window", "10m"},
        60s);
    INFO(show(m));
    CHECK(m.exit_code == 0);
    CHECK(has(m.out, "| total |  | 14 | 14 | 4 | 4 | 0 | 10 | 0 |"));
    CHECK(has(m.out, "Recreated topics (10 restored record(s) from before a recreation"));
    CHECK(has(m.out, "| 0 | 14 | 0..13 (archive offsets) |"));
    REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, "drill." + topic));
    // So does a sampled drill, which fetches each source record where it is.
    const auto s = run({ctl_bin(), "drill", "--config", cfg, "--tap", tap, "--cluster", "dr",
                        "--window", "10m", "--sample", "14", "--json"},
                       60s);
    INFO(show(s));
    CHECK(s.exit_code == 0);
    CHECK(json_number(s.out, "verification", "equal") == 4);
    CHECK(json_number(s.out, "verification", "differ") == 0);
    CHECK(json_number(s.out, "verification", "earlier_epoch") == 10);
    REQUIRE_EVENTUALLY(30s, !topic_listed(b.dr, "drill." + topic));
    daemon.signal(SIGTERM);
    CHECK(daemon.wait(30s).has_value());
    delete_topic(b.primary, topic);
}
