// Removing a component's series from the one registry when the component
// goes away (a flow or tap removed by a config reload), so that dashboards
// and alerts do not keep seeing a stopped flow that no longer exists.
//
// prometheus-cpp 1.0 offers Family::Remove(T*) but no lookup by a single
// label, so the family's own Collect() lists the label sets and Add()
// returns the existing series for each one (it never creates a new one here:
// the labels come from the family itself).
#pragma once

#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <string>
#include <type_traits>
#include <vector>

namespace rpl {

template <typename T>
void remove_series(prometheus::Family<T>& family, const std::string& label,
                   const std::string& value) {
    std::vector<prometheus::Labels> doomed;
    for (const auto& mf : family.Collect()) {
        for (const auto& m : mf.metric) {
            prometheus::Labels labels;
            for (const auto& l : m.label) labels[l.name] = l.value;
            const auto it = labels.find(label);
            if (it != labels.end() && it->second == value) doomed.push_back(std::move(labels));
        }
    }
    for (const auto& labels : doomed) {
        if (!family.Has(labels)) continue;
        if constexpr (std::is_same_v<T, prometheus::Histogram>)
            family.Remove(&family.Add(labels, prometheus::Histogram::BucketBoundaries{}));
        else
            family.Remove(&family.Add(labels));
    }
}

}  // namespace rpl
