// The archival tap's metrics from the first scrape: every family that a
// dashboard or an alert rule reads is exported for each tap, at 0, as soon
// as the tap exists, before it has stored, lagged or failed anything.
// Guards against panels that say "No data" for a healthy (or not yet
// started) tap, and against an alert on a series that does not exist yet.
#include "backup/metrics.h"
#include "backup/store.h"
#include "backup/tap.h"
#include "conf/config.h"

#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace {

// replicatord_tap_* names the dashboards and alert rules use, without the
// histogram suffixes.
std::set<std::string> tap_families_in_dashboards() {
    std::set<std::string> out;
    const std::string dir = std::string(RPL_SOURCE_DIR) + "/dashboards/";
    for (const char* f : {"overview.json", "taps.json", "alerts.yml"}) {
        std::ifstream in(dir + f);
        REQUIRE_MESSAGE(in, (dir + f));
        std::stringstream ss;
        ss << in.rdbuf();
        const std::string text = ss.str();
        const std::regex name("replicatord_tap_[a-z_]+");
        for (auto it = std::sregex_iterator(text.begin(), text.end(), name);
             it != std::sregex_iterator(); ++it) {
            std::string n = it->str();
            for (const char* suffix : {"_bucket", "_sum", "_count"})
                if (n.ends_with(suffix) && n.find("_seconds") != std::string::npos)
                    n.resize(n.size() - std::string(suffix).size());
            out.insert(n);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("every tap family a dashboard or alert uses is exported from the first scrape") {
    auto cfg = rpl::conf::parse(R"([clusters.primary]
bootstrap = "127.0.0.1:1"

[[tap]]
name = "t1"
source = "primary"
topics = ["orders"]
storage = "file:///tmp/rpl-tap-metrics-test"
rpo_target = "5m"
)",
                                "tap_metrics.toml");
    REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().message));
    prometheus::Registry registry;
    auto families = rpl::backup::make_tap_metrics(registry);
    auto store = rpl::backup::open_store("file:///tmp/rpl-tap-metrics-test", {});
    REQUIRE(store);
    rpl::backup::tap t(cfg.value().taps.at(0), rpl::backup::tap_env{&cfg.value(), &families},
                       std::move(store.value()));

    std::set<std::string> exported;  // families with a series labelled tap="t1"
    for (const auto& f : registry.Collect())
        for (const auto& m : f.metric)
            for (const auto& l : m.label)
                if (l.name == "tap" && l.value == "t1") exported.insert(f.name);
    const auto wanted = tap_families_in_dashboards();
    CHECK(wanted.size() >= 10);
    for (const auto& name : wanted) CHECK_MESSAGE(exported.contains(name), name);
    CHECK(exported.contains("replicatord_records_lost_to_retention_total"));
    CHECK(exported.contains("replicatord_tap_topic_resets_total"));
}
