// Every metric a shipped dashboard or alert rule reads is in the daemon's
// first scrape, for each flow and tap, before anything has happened (issue
// 16 part 2): a panel that says "No data" for a healthy flow is a defect.
// The list is read from dashboards/*.json and dashboards/alerts.yml, so a
// new panel cannot silently fall outside the test.
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace rpl::test;

namespace {

std::set<std::string> names_used_by_dashboards() {
    std::set<std::string> out;
    const std::filesystem::path dir = std::filesystem::path(RPL_SOURCE_DIR) / "dashboards";
    const std::regex name(R"(replicatord_[a-z_]+)");
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const auto ext = entry.path().extension();
        if (ext != ".json" && ext != ".yml") continue;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        const std::string s = text.str();
        for (std::sregex_iterator it(s.begin(), s.end(), name), end; it != end; ++it)
            out.insert(it->str());
    }
    return out;
}

// Series labelled by something only known once a unit runs (a topic, a
// partition, a reload's result): looked for once the flow mirrors.
bool needs_a_running_unit(const std::string& name) {
    static const std::set<std::string> later = {
        "replicatord_records_replicated_total", "replicatord_bytes_replicated_total",
        "replicatord_records_filtered_total", "replicatord_lag_records"};
    return later.count(name) > 0;
}

// A series of `name` carrying label="value", or for names without that
// label in any series, any series of `name`.
bool has_series(const std::string& page, const std::string& name, const std::string& label,
                const std::string& value) {
    std::istringstream lines(page);
    std::string line;
    bool any = false;
    bool labelled = false;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line.compare(0, name.size(), name) != 0) continue;
        std::string_view rest(line);
        rest.remove_prefix(name.size());
        // A histogram's name stands for its _bucket, _sum and _count series.
        for (const char* suffix : {"_bucket", "_sum", "_count"})
            if (rest.rfind(suffix, 0) == 0) rest.remove_prefix(std::strlen(suffix));
        const char next = rest.empty() ? ' ' : rest.front();
        if (next != '{' && next != ' ') continue;
        any = true;
        if (line.find(label + "=\"") != std::string::npos) {
            labelled = true;
            if (line.find(label + "=\"" + value + "\"") != std::string::npos) return true;
        }
    }
    return any && !labelled;
}

}  // namespace

TEST_SUITE("metrics") {
    TEST_CASE(
        "every_metric_a_dashboard_or_alert_reads_is_in_the_first_scrape_for_each_flow_and_tap") {
        const auto& b = testbed();
        const std::string flow = unique("scrape-flow");
        const std::string tap = unique("scrape-tap");
        const std::string topic = unique("scrape") + ".t";
        create_topic(b.primary, topic, 2);
        const std::string cfg = write_file(
            unique("scrape") + ".toml",
            "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("scrape-state") +
                "\"\nadmin_listen = \"127.0.0.1:0\"\n\n[clusters.primary]\nbootstrap = \"" +
                b.primary + "\"\n\n[clusters.dr]\nbootstrap = \"" + b.dr +
                "\"\n\n[[flow]]\nname = \"" + flow +
                "\"\nsource = \"primary\"\ntarget = \"dr\"\ntopics = [\"" + topic +
                "\"]\ngroups = [\"no-such-group-.*\"]\nrefresh_interval = \"1s\"\n\n[[tap]]\nname "
                "= "
                "\"" +
                tap + "\"\nsource = \"primary\"\ntopics = [\"" + topic +
                "\"]\nstorage = \"file://" + temp_dir() + "/" + unique("scrape-archive") + "\"\n");
        daemon_process d(cfg, temp_dir() + "/" + unique("scrape") + ".log");
        REQUIRE_EVENTUALLY(60s, d.admin_port() > 0);
        std::string first;
        REQUIRE_EVENTUALLY(30s, !(first = http_get(d.admin_port(), "/metrics")).empty());

        const auto names = names_used_by_dashboards();
        REQUIRE(names.size() > 20);
        std::vector<std::string> missing;
        for (const auto& name : names) {
            if (needs_a_running_unit(name)) continue;
            const bool of_tap = name.rfind("replicatord_tap_", 0) == 0;
            if (!has_series(first, name, of_tap ? "tap" : "flow", of_tap ? tap : flow))
                missing.push_back(name);
        }
        CHECK_MESSAGE(
            missing.empty(), "not in the first scrape: " << [&] {
                std::string s;
                for (const auto& m : missing) s += m + " ";
                return s;
            }());
        // The per-topic ones, once the flow mirrors.
        for (const auto& name : names) {
            if (!needs_a_running_unit(name)) continue;
            CHECK_MESSAGE(eventually(60s,
                                     [&] {
                                         return has_series(http_get(d.admin_port(), "/metrics"),
                                                           name, "flow", flow);
                                     }),
                          name << " never appeared for the flow");
        }
        d.signal(SIGTERM);
        CHECK(d.wait(30s).has_value());
    }
}
