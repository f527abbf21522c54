#include "offsetsync/runs.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>

namespace rpl::offsetsync {

const char* to_string(match_kind k) noexcept {
    switch (k) {
        case match_kind::exact: return "exact";
        case match_kind::resend_pending: return "resend_pending";
        case match_kind::gap: return "gap";
        case match_kind::past_end: return "past_end";
    }
    return "unknown";
}

add_result partition_runs::add(int64_t src, int64_t dst) noexcept {
    if (src < 0 || dst < 0) return add_result::rejected;
    if (!runs_.empty()) {
        run& last = runs_.back();
        if (dst < last.dst_end()) return add_result::rejected;
        if (src == last.src_end() && dst == last.dst_end()) {
            ++last.length;
            if (first_dirty_ == clean) first_dirty_ = runs_.size() - 1;
            return add_result::extended;
        }
        // The source went back (a re-send): from now on runs overlap on the
        // source side and lookups need the painted index.
        if (src < last.src_end()) monotone_ = false;
    }
    runs_.push_back(run{src, dst, 1});
    if (first_dirty_ == clean) first_dirty_ = runs_.size() - 1;
    return add_result::started;
}

merge_result partition_runs::classify(const run& r) const {
    if (r.length <= 0 || r.src_start < 0 || r.dst_start < 0 ||
        r.src_start > std::numeric_limits<int64_t>::max() - r.length ||
        r.dst_start > std::numeric_limits<int64_t>::max() - r.length)
        return merge_result::conflict;
    auto it = std::lower_bound(runs_.begin(), runs_.end(), r.dst_start,
                               [](const run& a, int64_t d) { return a.dst_start < d; });
    const auto pos = static_cast<size_t>(it - runs_.begin());
    if (it != runs_.end() && it->dst_start == r.dst_start) {
        if (it->src_start != r.src_start) return merge_result::conflict;
        if (r.length <= it->length) return merge_result::unchanged;
        if (pos + 1 < runs_.size() && runs_[pos + 1].dst_start < r.dst_end())
            return merge_result::conflict;
        return merge_result::extended;
    }
    if (pos > 0 && runs_[pos - 1].dst_end() > r.dst_start) return merge_result::conflict;
    if (it != runs_.end() && it->dst_start < r.dst_end()) return merge_result::conflict;
    return merge_result::inserted;
}

merge_result partition_runs::merge(const run& r) {
    const merge_result m = classify(r);
    if (m == merge_result::conflict || m == merge_result::unchanged) return m;
    auto it = std::lower_bound(runs_.begin(), runs_.end(), r.dst_start,
                               [](const run& a, int64_t d) { return a.dst_start < d; });
    const auto pos = static_cast<size_t>(it - runs_.begin());
    if (m == merge_result::extended) {
        it->length = r.length;
        // Growing the last run keeps the frozen index and the monotone flag
        // valid, exactly like add() extending it.
        if (pos + 1 != runs_.size()) {
            ++epoch_;
            recompute_monotone();
        }
        return m;
    }
    const bool append = it == runs_.end();
    runs_.insert(it, r);
    if (append) {
        // The previous last run is now frozen: the run count tells the index.
        if (pos > 0 && runs_[pos - 1].src_end() > r.src_start) monotone_ = false;
    } else {
        if (first_dirty_ != clean && pos <= first_dirty_) ++first_dirty_;
        ++epoch_;
        recompute_monotone();
    }
    return m;
}

bool partition_runs::erase(int64_t dst_start) {
    auto it = std::lower_bound(runs_.begin(), runs_.end(), dst_start,
                               [](const run& a, int64_t d) { return a.dst_start < d; });
    if (it == runs_.end() || it->dst_start != dst_start) return false;
    const auto pos = static_cast<size_t>(it - runs_.begin());
    runs_.erase(it);
    if (first_dirty_ != clean) {
        if (pos < first_dirty_) --first_dirty_;
        if (first_dirty_ >= runs_.size()) first_dirty_ = clean;
    }
    ++epoch_;
    recompute_monotone();
    return true;
}

std::vector<run> partition_runs::prune(int64_t log_start) {
    std::vector<run> dropped;
    if (runs_.size() <= 1) return dropped;
    std::vector<run> kept;
    kept.reserve(runs_.size());
    size_t new_first_dirty = 0;
    for (size_t i = 0; i < runs_.size(); ++i) {
        const bool latest = i + 1 == runs_.size();
        if (!latest && runs_[i].src_end() <= log_start) {
            dropped.push_back(runs_[i]);
            continue;
        }
        if (first_dirty_ != clean && i < first_dirty_) ++new_first_dirty;
        kept.push_back(runs_[i]);
    }
    if (dropped.empty()) return dropped;
    runs_ = std::move(kept);
    if (first_dirty_ != clean)
        first_dirty_ = new_first_dirty < runs_.size() ? new_first_dirty : clean;
    ++epoch_;
    recompute_monotone();
    return dropped;
}

int64_t partition_runs::src_end() const noexcept {
    if (runs_.empty()) return 0;
    if (monotone_) return runs_.back().src_end();
    int64_t end = 0;
    for (const auto& r : runs_) end = std::max(end, r.src_end());
    return end;
}

std::vector<run> partition_runs::dirty_runs() const {
    if (first_dirty_ == clean) return {};
    return {runs_.begin() + static_cast<std::ptrdiff_t>(first_dirty_), runs_.end()};
}

void partition_runs::recompute_monotone() noexcept {
    monotone_ = true;
    for (size_t i = 1; i < runs_.size(); ++i) {
        if (runs_[i].src_start < runs_[i - 1].src_end()) {
            monotone_ = false;
            return;
        }
    }
}

std::optional<translation> partition_runs::lookup(int64_t o) const {
    if (runs_.empty()) return std::nullopt;
    return monotone_ ? lookup_monotone(o) : lookup_general(o);
}

std::optional<int64_t> partition_runs::reverse_lookup(int64_t d) const {
    if (runs_.empty()) return std::nullopt;
    // First run whose target range ends after d: it and every later run hold
    // the records a consumer at d has not read.
    auto it = std::partition_point(runs_.begin(), runs_.end(),
                                   [d](const run& r) { return r.dst_end() <= d; });
    if (it == runs_.end()) return src_end();
    int64_t answer = it->src_start + std::max<int64_t>(0, d - it->dst_start);
    if (monotone_) return answer;
    for (auto later = std::next(it); later != runs_.end(); ++later)
        answer = std::min(answer, later->src_start);
    return answer;
}

// Runs sorted on both sides and disjoint: the answer is o's own copy, or the
// start of the first run after o, or the end.
translation partition_runs::lookup_monotone(int64_t o) const {
    auto it = std::partition_point(runs_.begin(), runs_.end(),
                                   [o](const run& r) { return r.src_end() <= o; });
    if (it == runs_.end()) return {runs_.back().dst_end(), match_kind::past_end};
    if (it->src_start <= o) return {it->dst_start + (o - it->src_start), match_kind::exact};
    return {it->dst_start, match_kind::gap};
}

// Paints the frozen runs (all but the last) in target order onto the source
// axis: a later run hides what an earlier run said about the same source
// offsets, because its copies are the later ones. Rebuilt only when a run
// other than the growing last one changed, or a new run started.
void partition_runs::rebuild_index() const {
    const size_t frozen = runs_.size() - 1;
    std::map<int64_t, run> painted;
    for (size_t i = 0; i < frozen; ++i) {
        const run& r = runs_[i];
        const int64_t a = r.src_start;
        const int64_t e = r.src_end();
        auto it = painted.lower_bound(a);
        if (it != painted.begin()) {
            run& s = std::prev(it)->second;
            if (s.src_end() > a) {
                if (s.src_end() > e)
                    painted.emplace(e, run{e, s.dst_start + (e - s.src_start), s.src_end() - e});
                s.length = a - s.src_start;
            }
        }
        it = painted.lower_bound(a);
        while (it != painted.end() && it->first < e) {
            const run s = it->second;
            it = painted.erase(it);
            if (s.src_end() > e) {
                painted.emplace(e, run{e, s.dst_start + (e - s.src_start), s.src_end() - e});
                break;
            }
        }
        painted.emplace(a, r);
    }

    frozen_index& x = index_;
    x.segments.clear();
    x.segments.reserve(painted.size());
    for (const auto& [start, seg] : painted) x.segments.push_back(seg);
    const int64_t last_src = runs_.back().src_start;
    const size_t n = x.segments.size();
    const auto before = static_cast<size_t>(
        std::partition_point(x.segments.begin(), x.segments.end(),
                             [last_src](const run& s) { return s.src_start < last_src; }) -
        x.segments.begin());
    x.min_from.assign(n, 0);
    x.min_from_before_last.assign(before, 0);
    int64_t m = std::numeric_limits<int64_t>::max();
    for (size_t i = n; i-- > 0;) x.min_from[i] = m = std::min(m, x.segments[i].dst_start);
    m = std::numeric_limits<int64_t>::max();
    for (size_t i = before; i-- > 0;)
        x.min_from_before_last[i] = m = std::min(m, x.segments[i].dst_start);
    x.epoch = epoch_;
    x.frozen_count = frozen;
    x.last_src_start = last_src;
}

// The smallest target offset of a visible frozen copy with source offset in
// [from, to). `before_last` means to == the last run's source start, whose
// suffix minima were precomputed; otherwise to is unbounded.
std::optional<int64_t> partition_runs::frozen_min(int64_t from, int64_t to,
                                                  bool before_last) const {
    const auto& segs = index_.segments;
    auto it = std::partition_point(segs.begin(), segs.end(),
                                   [from](const run& s) { return s.src_end() <= from; });
    if (it == segs.end() || it->src_start >= to) return std::nullopt;
    // Within a segment target offsets grow with source offsets: its smallest
    // candidate is its first point at or after `from`.
    int64_t best = it->dst_start + (std::max(from, it->src_start) - it->src_start);
    const auto next = static_cast<size_t>(it - segs.begin()) + 1;
    const auto& suffix = before_last ? index_.min_from_before_last : index_.min_from;
    if (next < suffix.size()) best = std::min(best, suffix[next]);
    return best;
}

// With re-sends, runs overlap on the source side. F(s), the latest copy of s,
// comes from the last run (in target order) covering s. The answer is
// min F(s) over s >= o. Every target offset of the last run is above every
// frozen one, so the last run only matters where no visible frozen copy
// remains at or after o outside its source range.
translation partition_runs::lookup_general(int64_t o) const {
    const run& last = runs_.back();
    if (index_.epoch != epoch_ || index_.frozen_count != runs_.size() - 1 ||
        index_.last_src_start != last.src_start)
        rebuild_index();

    std::optional<int64_t> latest_copy_of_o;
    if (last.src_start <= o && o < last.src_end()) {
        latest_copy_of_o = last.dst_start + (o - last.src_start);
    } else {
        const auto& segs = index_.segments;
        auto it = std::partition_point(segs.begin(), segs.end(),
                                       [o](const run& s) { return s.src_end() <= o; });
        if (it != segs.end() && it->src_start <= o)
            latest_copy_of_o = it->dst_start + (o - it->src_start);
    }

    std::optional<int64_t> best;
    if (o < last.src_start) best = frozen_min(o, last.src_start, true);
    if (auto after =
            frozen_min(std::max(o, last.src_end()), std::numeric_limits<int64_t>::max(), false))
        best = best ? std::min(*best, *after) : *after;
    if (!best && o < last.src_end())
        best = last.dst_start + (std::max(o, last.src_start) - last.src_start);
    if (!best) return {last.dst_end(), match_kind::past_end};
    if (!latest_copy_of_o) return {*best, match_kind::gap};
    return {*best, *best == *latest_copy_of_o ? match_kind::exact : match_kind::resend_pending};
}

}  // namespace rpl::offsetsync
