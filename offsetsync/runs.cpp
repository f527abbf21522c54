#include "offsetsync/runs.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <string_view>

namespace rpl::offsetsync {

namespace {

void put_varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

// Reads one unsigned LEB128 varint of at most 63 bits; false if truncated,
// overlong or too large.
bool get_varint(std::string_view s, size_t& pos, int64_t& v) noexcept {
    uint64_t out = 0;
    for (int shift = 0; shift < 63; shift += 7) {
        if (pos >= s.size()) return false;
        const auto b = static_cast<unsigned char>(s[pos++]);
        out |= static_cast<uint64_t>(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            if (out > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
            v = static_cast<int64_t>(out);
            return true;
        }
    }
    return false;
}

// Walks the holes in order: f(records_before_hole, source_offset_of_hole,
// size). Stops early when f returns false. The holes are trusted (checked
// by holes_valid() where they come from outside).
template <class F>
void for_each_hole(const run& r, F&& f) {
    size_t pos = 0;
    int64_t at = 0;
    int64_t src = r.src_start;
    for (int64_t i = 0; i < r.hole_count; ++i) {
        int64_t gap = 0, size = 0;
        if (!get_varint(r.holes, pos, gap) || !get_varint(r.holes, pos, size)) return;
        // Only a corrupt record gets here with these (holes_valid() rejects it).
        constexpr int64_t max = std::numeric_limits<int64_t>::max();
        if (gap > max - src || size > max - (src + gap)) return;
        at += gap;
        src += gap;
        if (!f(at, src, size)) return;
        src += size;
    }
}

}  // namespace

void run::add_hole(int64_t size) {
    put_varint(holes, static_cast<uint64_t>(length - last_hole_at));
    put_varint(holes, static_cast<uint64_t>(size));
    ++hole_count;
    skipped += size;
    last_hole_at = length;
}

run::position run::locate(int64_t o) const noexcept {
    // Records before the current hole sit at source offsets that advance by
    // one per record; a hole moves the source on without a record.
    position p{o - src_start, true};
    int64_t before = 0;  // skipped by holes passed so far
    for_each_hole(*this, [&](int64_t at, int64_t hole_src, int64_t size) {
        if (o < hole_src) return false;
        if (o < hole_src + size) {
            p = {at, false};
            return false;
        }
        before += size;
        p = {o - src_start - before, true};
        return true;
    });
    return p;
}

int64_t run::src_of(int64_t index) const noexcept {
    int64_t before = 0;
    for_each_hole(*this, [&](int64_t at, int64_t, int64_t size) {
        if (at > index) return false;
        before += size;
        return true;
    });
    return src_start + index + before;
}

run run::prefix(int64_t n) const {
    run out{src_start, dst_start, n};
    if (n >= length) return *this;
    for_each_hole(*this, [&](int64_t at, int64_t, int64_t size) {
        if (at >= n) return false;
        out.length = at;
        out.add_hole(size);
        return true;
    });
    out.length = n;
    return out;
}

std::vector<run> run::pieces() const {
    std::vector<run> out;
    int64_t prev_at = 0;
    int64_t prev_src = src_start;
    for_each_hole(*this, [&](int64_t at, int64_t hole_src, int64_t size) {
        out.push_back(run{prev_src, dst_start + prev_at, at - prev_at});
        prev_at = at;
        prev_src = hole_src + size;
        return true;
    });
    out.push_back(run{prev_src, dst_start + prev_at, length - prev_at});
    return out;
}

bool run::holes_valid() const noexcept {
    size_t pos = 0;
    int64_t at = 0;
    int64_t total = 0;
    constexpr int64_t max = std::numeric_limits<int64_t>::max();
    if (hole_count < 0 || hole_count > max_holes_per_run) return false;
    for (int64_t i = 0; i < hole_count; ++i) {
        int64_t gap = 0, size = 0;
        if (!get_varint(holes, pos, gap) || !get_varint(holes, pos, size)) return false;
        if (gap < 1 || size < 1 || gap > max - at || size > max - total) return false;
        at += gap;
        total += size;
    }
    // Every hole is followed by a record: the run never ends in a hole.
    if (pos != holes.size() || (hole_count > 0 && at >= length)) return false;
    return skipped == total && last_hole_at == at && src_start <= max - length - total;
}

bool run::set_holes(std::string packed, int64_t count) {
    holes = std::move(packed);
    hole_count = count;
    skipped = 0;
    last_hole_at = 0;
    if (count < 0 || count > max_holes_per_run) return false;
    for_each_hole(*this, [&](int64_t at, int64_t, int64_t size) {
        if (size > std::numeric_limits<int64_t>::max() - skipped) return false;
        skipped += size;
        last_hole_at = at;
        return true;
    });
    return holes_valid();
}

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
        // A source hole, target contiguous: the run keeps it (exact, see the
        // header) while it has room.
        if (src > last.src_end() && dst == last.dst_end() && last.hole_count < max_holes_) {
            const size_t before = last.holes.size();
            last.add_hole(src - last.src_end());
            hole_bytes_ += last.holes.size() - before;
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

// Two versions of the run with the same dst_start: the shorter must be the
// longer one's prefix (a run only grows at its end), holes included.
merge_result partition_runs::compare_versions(const run& known, const run& r) {
    if (known.src_start != r.src_start) return merge_result::conflict;
    if (r.length <= known.length)
        return known.prefix(r.length) == r ? merge_result::unchanged : merge_result::conflict;
    return r.prefix(known.length) == known ? merge_result::extended : merge_result::conflict;
}

merge_result partition_runs::classify(const run& r) const {
    if (r.length <= 0 || r.src_start < 0 || r.dst_start < 0 ||
        r.src_start > std::numeric_limits<int64_t>::max() - r.length ||
        r.dst_start > std::numeric_limits<int64_t>::max() - r.length || !r.holes_valid())
        return merge_result::conflict;
    auto it = std::lower_bound(runs_.begin(), runs_.end(), r.dst_start,
                               [](const run& a, int64_t d) { return a.dst_start < d; });
    const auto pos = static_cast<size_t>(it - runs_.begin());
    if (it != runs_.end() && it->dst_start == r.dst_start) {
        const merge_result m = compare_versions(*it, r);
        if (m != merge_result::extended) return m;
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
        hole_bytes_ += r.holes.size() - it->holes.size();  // holes only grow
        *it = r;
        // Growing the last run keeps the frozen index and the monotone flag
        // valid, exactly like add() extending it.
        if (pos + 1 != runs_.size()) {
            ++epoch_;
            recompute_monotone();
        }
        return m;
    }
    const bool append = it == runs_.end();
    hole_bytes_ += r.holes.size();
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
    hole_bytes_ -= it->holes.size();
    runs_.erase(it);
    if (first_dirty_ != clean) {
        if (pos < first_dirty_) --first_dirty_;
        if (first_dirty_ >= runs_.size()) first_dirty_ = clean;
    }
    ++epoch_;
    recompute_monotone();
    return true;
}

std::vector<bool> partition_runs::prunable(int64_t log_start) const {
    std::vector<bool> drop(runs_.size(), false);
    if (runs_.size() <= 1) return drop;
    for (size_t i = 0; i + 1 < runs_.size(); ++i) drop[i] = runs_[i].src_end() <= log_start;
    // Runs overlap on the source side only after re-sends. A run all of
    // whose records were copied again later holds no latest copy: no lookup
    // reads it (F takes the latest copy), and a reverse lookup finds the same
    // source offsets in the later runs. Found by sweeping from the last run
    // back, with the later runs' records as disjoint source intervals.
    if (monotone_) return drop;
    std::map<int64_t, int64_t> later;  // start -> end of records held by later runs
    auto covered = [&later](const run& piece) {
        auto it = later.upper_bound(piece.src_start);
        if (it == later.begin()) return false;
        --it;
        return it->first <= piece.src_start && piece.src_end() <= it->second;
    };
    auto cover = [&later](const run& piece) {
        int64_t a = piece.src_start;
        int64_t e = piece.src_end();
        auto it = later.upper_bound(a);
        if (it != later.begin() && std::prev(it)->second >= a) --it;
        while (it != later.end() && it->first <= e) {
            a = std::min(a, it->first);
            e = std::max(e, it->second);
            it = later.erase(it);
        }
        later.emplace(a, e);
    };
    for (size_t i = runs_.size(); i-- > 0;) {
        const auto pieces =
            runs_[i].hole_count == 0 ? std::vector<run>{runs_[i]} : runs_[i].pieces();
        if (i + 1 < runs_.size() && !drop[i])
            drop[i] = std::all_of(pieces.begin(), pieces.end(), covered);
        for (const run& piece : pieces) cover(piece);
    }
    return drop;
}

std::vector<run> partition_runs::prune(int64_t log_start) {
    std::vector<run> dropped;
    const std::vector<bool> drop = prunable(log_start);
    if (std::find(drop.begin(), drop.end(), true) == drop.end()) return dropped;
    std::vector<run> kept;
    kept.reserve(runs_.size());
    size_t new_first_dirty = 0;
    for (size_t i = 0; i < runs_.size(); ++i) {
        if (drop[i]) {
            hole_bytes_ -= runs_[i].holes.size();
            dropped.push_back(runs_[i]);
            continue;
        }
        if (first_dirty_ != clean && i < first_dirty_) ++new_first_dirty;
        kept.push_back(runs_[i]);
    }
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

size_t partition_runs::memory_bytes() const noexcept {
    return sizeof(*this) + runs_.capacity() * sizeof(run) + hole_bytes_ +
           index_.segments.capacity() * sizeof(run) +
           (index_.min_from.capacity() + index_.min_from_before_last.capacity()) * sizeof(int64_t);
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
    int64_t answer = it->src_of(std::max<int64_t>(0, d - it->dst_start));
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
    if (it->src_start > o) return {it->dst_start, match_kind::gap};
    const run::position at = it->locate(o);
    return {it->dst_start + at.index, at.replicated ? match_kind::exact : match_kind::gap};
}

// Paints the frozen runs (all but the last) in target order onto the source
// axis: a later run hides what an earlier run said about the same source
// offsets, because its copies are the later ones. Rebuilt only when a run
// other than the growing last one changed, or a new run started.
run partition_runs::tail() const {
    const run& last = runs_.back();
    return run{last.src_start + last.last_hole_at + last.skipped,
               last.dst_start + last.last_hole_at, last.length - last.last_hole_at};
}

void partition_runs::rebuild_index() const {
    const size_t frozen = runs_.size() - 1;
    // Hole-free pieces in target order: every frozen run's, then the last
    // run's up to its tail.
    std::vector<run> frozen_pieces;
    for (size_t i = 0; i <= frozen; ++i) {
        if (runs_[i].hole_count == 0) {
            if (i < frozen) frozen_pieces.push_back(runs_[i]);
            continue;
        }
        auto p = runs_[i].pieces();
        if (i == frozen) p.pop_back();
        frozen_pieces.insert(frozen_pieces.end(), p.begin(), p.end());
    }
    std::map<int64_t, run> painted;
    for (const run& r : frozen_pieces) {
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
    const int64_t last_src = tail().src_start;
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
    x.tail_src_start = last_src;
}

// The smallest target offset of a visible frozen copy with source offset in
// [from, to). `before_last` means to == the tail's source start, whose
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
// min F(s) over s >= o. Every target offset of the tail (the last run after
// its last hole) is above every other one, so the tail only matters where no
// visible frozen copy remains at or after o outside its source range.
translation partition_runs::lookup_general(int64_t o) const {
    const run last = tail();
    if (index_.epoch != epoch_ || index_.frozen_count != runs_.size() - 1 ||
        index_.tail_src_start != last.src_start)
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
    if (!best) return {runs_.back().dst_end(), match_kind::past_end};
    if (!latest_copy_of_o) return {*best, match_kind::gap};
    return {*best, *best == *latest_copy_of_o ? match_kind::exact : match_kind::resend_pending};
}

}  // namespace rpl::offsetsync
