// Reload decisions: is a flow or tap in the new config the same as the one
// running? Compared by value, except for where it was written (line, column,
// index in the file), which moves whenever someone edits above it.

#include "conf/config.h"

namespace rpl::conf {

namespace {

bool same_cluster(const Config& a, const Config& b, const std::string& name) {
    const auto* ca = a.cluster(name);
    const auto* cb = b.cluster(name);
    if (ca == nullptr || cb == nullptr) return ca == cb;
    return ca->bootstrap == cb->bootstrap && ca->client == cb->client;
}

}  // namespace

bool same_run_settings(const Config& a, const flow_config& fa, const Config& b,
                       const flow_config& fb) {
    flow_config x = fa;
    flow_config y = fb;
    x.pos = y.pos = {};
    x.key_path = y.key_path = {};
    return x == y && same_cluster(a, b, fa.source) && same_cluster(a, b, fa.target);
}

bool same_run_settings(const Config& a, const tap_config& ta, const Config& b,
                       const tap_config& tb) {
    tap_config x = ta;
    tap_config y = tb;
    x.pos = y.pos = {};
    return x == y && same_cluster(a, b, ta.source);
}

}  // namespace rpl::conf
