// The checkpointer's metrics from the first scrape: a dashboard panel or an
// alert on a flow that has had no checkpoint, no group and no error yet must
// find its series at 0, not "No data".
#include "checkpoint/checkpointer.h"
#include "conf/config.h"
#include "offsetsync/store.h"

#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <unistd.h>
#include <filesystem>
#include <set>
#include <string>

namespace {

// name -> the label sets of its series (each as "k=v,k=v"), value 0 checked.
std::map<std::string, std::set<std::string>> series_at_zero(prometheus::Registry& r) {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& family : r.Collect()) {
        for (const auto& m : family.metric) {
            std::string labels;
            for (const auto& l : m.label)
                labels += (labels.empty() ? "" : ",") + l.name + "=" + l.value;
            const double v =
                family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
            CHECK_MESSAGE(v == 0, family.name << "{" << labels << "} is " << v);
            out[family.name].insert(labels);
        }
    }
    return out;
}

}  // namespace

// Guards against: replicatord_checkpoints_emitted_total, _checkpoint_errors_total,
// _group_sync_total and _last_checkpoint_timestamp_seconds only appearing
// once something happened, so a healthy idle flow had empty panels and the
// stale-checkpoint alert could never fire for a flow whose passes never ran.
TEST_CASE("checkpoint_metrics_of_a_flow_are_exported_at_zero_before_its_first_pass") {
    const std::string text =
        "[daemon]\nadmin_listen = \"127.0.0.1:0\"\n"
        "[clusters.src]\nbootstrap = \"127.0.0.1:1\"\n"
        "[clusters.dst]\nbootstrap = \"127.0.0.1:2\"\n"
        "[[flow]]\nname = \"idle\"\nsource = \"src\"\ntarget = \"dst\"\n"
        "topics = [\"orders\"]\n";
    auto cfg = rpl::conf::parse(text, "metrics.toml");
    REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
    const auto dir =
        std::filesystem::temp_directory_path() / ("cp-metrics-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    auto store = rpl::offsetsync::store::open(dir);
    REQUIRE(store.has_value());

    prometheus::Registry registry;
    auto families = rpl::checkpoint::make_checkpoint_metrics(registry);
    {
        // Constructed, never started: no cluster is asked.
        rpl::checkpoint::checkpointer c(cfg.value().flows.at(0), cfg.value(), *store.value(),
                                        &families);
        const auto got = series_at_zero(registry);
        CHECK(got.at("replicatord_checkpoints_emitted_total") ==
              std::set<std::string>{"flow=idle"});
        CHECK(got.at("replicatord_group_sync_total") ==
              std::set<std::string>{"flow=idle,result=error", "flow=idle,result=skipped_active",
                                    "flow=idle,result=synced"});
        CHECK(got.at("replicatord_checkpoint_errors_total") ==
              std::set<std::string>{"flow=idle,kind=group_offsets", "flow=idle,kind=kafka",
                                    "flow=idle,kind=timeout", "flow=idle,kind=unreachable"});
        CHECK(got.at("replicatord_last_checkpoint_timestamp_seconds") ==
              std::set<std::string>{"flow=idle"});
    }
    // A removed flow leaves nothing behind.
    rpl::checkpoint::forget_flow(families, "idle");
    for (const auto& family : registry.Collect()) CHECK_MESSAGE(family.metric.empty(), family.name);
    store.value().reset();
    std::filesystem::remove_all(dir);
}
