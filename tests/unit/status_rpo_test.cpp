// /status as the supervisor renders it, for a flow and a tap on librdkafka's
// mock cluster: what it says about RPO and lag before the units' meters have
// a figure.
#include "app/supervisor.h"
#include "conf/config.h"
#include "offsetsync/sync_topic.h"
#include "tests/mock_cluster.h"
#include "tests/scratch_dir.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using rpl::test::scratch_dir;

using rpl::test::mock_cluster;

constexpr int16_t list_offsets_api = 2;

bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& pred) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

// The JSON object of the unit named `name` in a /status document, as text
// (from its name to the next unit or the end of the list).
std::string unit_json(const std::string& doc, const std::string& name) {
    const auto at = doc.find("{\"name\":\"" + name + "\"");
    if (at == std::string::npos) return "";
    const auto end = doc.find("{\"name\":", at + 1);
    return doc.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

bool has(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

double gauge(prometheus::Registry& r, const std::string& name) {
    for (const auto& family : r.Collect())
        if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
    return -1;
}

}  // namespace

TEST_CASE("status_says_rpo_and_lag_unknown_until_the_meter_has_a_figure") {
    // Guards against /status (and replicatorctl status, which renders it)
    // reading "rpo_seconds":0 and "lag":0 for a running flow or tap whose
    // meter has no figure yet (its gauge reads NaN): 0 claims that nothing
    // is at risk when nothing is known. Here the source answers no
    // ListOffsets request, so no meter can sample, for as long as the test
    // needs: the window that is ~100 ms after every start stays open.
    mock_cluster src(1), dst(1);
    src.create_topic("orders", 1);
    dst.create_topic("src.orders", 1);
    dst.create_topic(rpl::offsetsync::runs_topic, 1);
    std::vector<rd_kafka_resp_err_t> refusals(100000, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
    rd_kafka_mock_push_request_errors_array(src.get(), list_offsets_api, refusals.size(),
                                            refusals.data());

    scratch_dir dir;
    const std::string text = "[daemon]\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = \"" +
                             (dir.path / "state").string() + "\"\n[clusters.src]\nbootstrap = \"" +
                             src.bootstrap() + "\"\n[clusters.dst]\nbootstrap = \"" +
                             dst.bootstrap() +
                             "\"\n[[flow]]\nname = \"mock\"\nsource = \"src\"\ntarget = \"dst\"\n"
                             "topics = [\"orders\"]\nheartbeats = false\nemit_checkpoints = false\n"
                             "sync_group_offsets = false\nrefresh_interval = \"1s\"\n"
                             "[[tap]]\nname = \"archive\"\nsource = \"src\"\ntopics = "
                             "[\"orders\"]\nstorage = \"file://" +
                             (dir.path / "store").string() + "\"\n";
    auto cfg = rpl::conf::parse(text, "status.toml");
    REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));

    prometheus::Registry registry;
    rpl::app::supervisor sup(registry, rpl::Logger("test"));
    REQUIRE(sup.start(std::make_shared<const rpl::conf::Config>(std::move(cfg).value())));

    // Both units run: their instances started, so only the missing figure
    // can make the RPO unknown.
    std::string doc;
    REQUIRE(eventually(30s, [&] {
        doc = sup.status_json();
        return has(unit_json(doc, "mock"), "\"state\":\"running\"") &&
               has(unit_json(doc, "archive"), "\"state\":\"running\"");
    }));
    INFO(doc);
    // The gauges say "no figure" ...
    CHECK(std::isnan(gauge(registry, "replicatord_rpo_seconds")));
    CHECK(std::isnan(gauge(registry, "replicatord_tap_rpo_seconds")));
    // ... and so does /status, for both kinds of unit.
    for (const auto* name : {"mock", "archive"}) {
        const std::string u = unit_json(doc, name);
        CHECK_MESSAGE(has(u, "\"rpo_seconds\":null"), u);
        CHECK_MESSAGE(has(u, "\"lag\":null"), u);
    }

    // Once the source answers, the figures appear: unknown was the truth,
    // not a rendering that never shows a number.
    rd_kafka_mock_clear_request_errors(src.get(), list_offsets_api);
    CHECK(eventually(30s, [&] {
        doc = sup.status_json();
        return !has(unit_json(doc, "mock"), "\"rpo_seconds\":null") &&
               !has(unit_json(doc, "archive"), "\"rpo_seconds\":null");
    }));
    sup.stop();
}
