// Runs of one source partition: the exact source -> target offset map, kept
// as (src_start, dst_start, length, holes) and the lookup rule.
//
//   delivery (src, dst) ──add──> extend the last run if the target advanced by
//                                exactly one and the source by one or more
//                                (a source hole), else start a new run
//   committed source position o ──lookup──> target position t
//
// Lookup invariant (tested against a brute-force oracle in
// tests/unit/offsetsync_test.cpp): with F(s) = the greatest target offset
// holding a copy of source record s,
//
//     t = min { F(s) : s >= o, s replicated }      (or the target end if none)
//
// so every source record at or after o has a copy at or after t (never skip a
// record), and t is the largest position with that property (never point past
// one, re-read as little as possible).
//
// Holes inside a run. A compacted or transactional source skips offsets the
// target does not (the target stays contiguous). Such a hole is kept inside
// the run, as (records before it, offsets skipped), instead of starting a new
// run: the run's records are its source offsets minus its holes, in order, at
// consecutive target offsets. That is exact, not an approximation: a source
// offset o inside a hole was never replicated, and its answer is the target
// offset of the first record after the hole, which is the run's next target
// offset; a replicated o answers its own copy. The hole positions themselves
// cannot be dropped (the answer for o is the count of records below it), but
// a hole costs two varints inside one record instead of a record of its own.
// A run holds at most max_holes_per_run holes, so one record stays small.
// A run never starts or ends in a hole. Not thread-safe: the store serialises.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rpl::offsetsync {

// Holes per run at most: a run is one record in RocksDB and in the runs
// topic, rewritten while it grows, so its size is bounded (a hole takes 2 to
// 6 bytes: two varints).
inline constexpr int64_t max_holes_per_run = 1024;

// Source records src_start .. src_end()-1, except the holes, sit at target
// offsets dst_start .. dst_start+length-1, in that order. Without holes that
// is src_start + i -> dst_start + i.
struct run {
    int64_t src_start = 0;
    int64_t dst_start = 0;
    int64_t length = 0;  // records (= target offsets) in the run
    // The holes, packed as they are stored and published (run_codec.h): per
    // hole, unsigned LEB128 varints (records since the previous hole or the
    // run's start, >= 1; source offsets skipped, >= 1). Empty for a plain run.
    std::string holes;
    int64_t hole_count = 0;
    int64_t skipped = 0;       // source offsets skipped by all holes
    int64_t last_hole_at = 0;  // records before the last hole (0 if none)

    [[nodiscard]] int64_t src_end() const noexcept { return src_start + length + skipped; }
    [[nodiscard]] int64_t dst_end() const noexcept { return dst_start + length; }
    bool operator==(const run&) const = default;

    // Appends a hole of `size` source offsets after the run's current last
    // record (the caller then adds the record that follows it).
    void add_hole(int64_t size);
    // Where source offset o (src_start <= o < src_end()) sits: the index of
    // its record, or of the first record after it when o is in a hole.
    struct position {
        int64_t index = 0;
        bool replicated = false;
    };
    [[nodiscard]] position locate(int64_t o) const noexcept;
    // Source offset of the run's record `index` (0 <= index < length).
    [[nodiscard]] int64_t src_of(int64_t index) const noexcept;
    // The run's first n records (1 <= n <= length), holes among them kept.
    [[nodiscard]] run prefix(int64_t n) const;
    // The run as hole-free pieces, in order.
    [[nodiscard]] std::vector<run> pieces() const;
    // Ok if `holes` decodes to hole_count well-formed holes inside the run
    // and the derived fields agree with it (a decoder's check).
    [[nodiscard]] bool holes_valid() const noexcept;
    // Takes packed holes as read from a record and derives skipped and
    // last_hole_at; false (run unusable) unless holes_valid() then holds.
    [[nodiscard]] bool set_holes(std::string packed, int64_t count);
};

// How a translation was found.
enum class match_kind {
    // o was replicated; the answer is the target offset of its latest copy.
    exact,
    // o was replicated, then re-sent, and the re-send has not yet reached
    // every record after o: the answer is the (earlier) copy of a later
    // record that has not been re-sent yet. Re-reads more, skips nothing.
    resend_pending,
    // o was never replicated (compaction hole, transaction marker, aborted
    // record, before the first replicated record): the answer is where the
    // first replicated record after o can be read from.
    gap,
    // Nothing at or after o was replicated yet: the answer is the target end
    // as replicated so far (the next record replicated lands at or after it).
    past_end,
};
[[nodiscard]] const char* to_string(match_kind k) noexcept;

struct translation {
    int64_t target_offset = -1;
    match_kind kind = match_kind::exact;
    bool operator==(const translation&) const = default;
};

enum class add_result {
    extended,  // the last run grew by one (across a source hole, if any)
    started,   // a new run began (a side skipped or the source went back)
    rejected,  // negative offset, or dst not after the last target offset
};

enum class merge_result {
    inserted,   // a run not known before
    extended,   // a known run (same dst_start, same src_start) got longer
    unchanged,  // already known at this length or longer
    conflict,   // contradicts a known run (overlapping target offsets) or invalid
};

class partition_runs {
public:
    // `max_holes` per run: max_holes_per_run but in tests, which lower it to
    // make runs end at the cap often.
    explicit partition_runs(int64_t max_holes = max_holes_per_run) noexcept
        : max_holes_(max_holes) {}

    // A delivery report, in delivery order. Target offsets of one partition
    // only grow; a dst at or before the last one is rejected (the target
    // partition was recreated or the caller mixed partitions). A source hole
    // with the target contiguous extends the last run (see the header) while
    // it has room and does not overlap earlier runs on the source side.
    add_result add(int64_t src, int64_t dst) noexcept;

    // A run learnt from elsewhere (RocksDB on start, the runs topic during
    // catch-up). Idempotent: the same run again, or shorter, changes nothing;
    // longer extends it. Not marked dirty: it is already durable.
    merge_result merge(const run& r);
    // What merge(r) would do, without doing it.
    [[nodiscard]] merge_result classify(const run& r) const;
    // Drops the run starting at dst_start (a tombstone); false if unknown.
    bool erase(int64_t dst_start);
    // Drops what no lookup at or above the source's log start offset can
    // need: every run entirely below it, and every run whose records all have
    // a later copy (hidden by re-sends); never the latest run, which keeps
    // the target end known. No answer (lookup, reverse_lookup, ends) for an
    // offset at or above log_start changes. Returns the runs dropped.
    std::vector<run> prune(int64_t log_start);
    // Per run, whether prune(log_start) would drop it.
    [[nodiscard]] std::vector<bool> prunable(int64_t log_start) const;

    // The translation of committed source position o (>= 0); nullopt when
    // no run is known.
    [[nodiscard]] std::optional<translation> lookup(int64_t o) const;

    // The inverse, for failing a consumer back: where on the source a
    // consumer resumes whose committed position on the target is d. The
    // answer is the smallest source offset among the records at target
    // offsets >= d (they may be unread), or the source end when d is past
    // every run. Without re-sends that is exactly d's own source record;
    // with them it may re-read, never skip. nullopt when no run is known.
    [[nodiscard]] std::optional<int64_t> reverse_lookup(int64_t d) const;

    // Runs in target order (dst_start ascending; target ranges disjoint).
    [[nodiscard]] const std::vector<run>& runs() const noexcept { return runs_; }
    [[nodiscard]] bool empty() const noexcept { return runs_.empty(); }
    // One past the highest source offset replicated, and one past the
    // highest target offset written (0, 0 when empty).
    [[nodiscard]] int64_t src_end() const noexcept;
    [[nodiscard]] int64_t dst_end() const noexcept {
        return runs_.empty() ? 0 : runs_.back().dst_end();
    }

    // Runs changed by add() since the last mark_clean(), in target order.
    // add() only changes the tail, so this is a suffix of runs() (it may
    // also hold a run merge() appended behind a dirty one: harmless).
    [[nodiscard]] bool dirty() const noexcept { return first_dirty_ != clean; }
    [[nodiscard]] std::vector<run> dirty_runs() const;
    // About the bytes this object holds (runs, holes, the painted index),
    // for the store's memory budget. O(1).
    [[nodiscard]] size_t memory_bytes() const noexcept;
    void mark_clean() noexcept { first_dirty_ = clean; }

private:
    static constexpr size_t clean = static_cast<size_t>(-1);

    // Visible pieces of the frozen part (every run but the last, and the
    // last run up to its last hole), sorted by source offset: where runs
    // overlap on the source side (re-sends), the later run hides the earlier
    // one, since it holds the later copy. What is left of the last run, its
    // tail after its last hole, grows without invalidating the index.
    struct frozen_index {
        uint64_t epoch = 0;
        size_t frozen_count = static_cast<size_t>(-1);
        int64_t tail_src_start = -1;
        std::vector<run> segments;
        // Minimum dst_start over segments[i..end), and over segments[i..m)
        // where m = number of segments starting before the tail's source
        // start (suffix minima for the two ranges a lookup asks about).
        std::vector<int64_t> min_from;
        std::vector<int64_t> min_from_before_last;
    };

    void recompute_monotone() noexcept;
    // The last run's final hole-free piece.
    [[nodiscard]] run tail() const;
    void rebuild_index() const;
    [[nodiscard]] std::optional<int64_t> frozen_min(int64_t from, int64_t to,
                                                    bool before_last) const;
    [[nodiscard]] translation lookup_monotone(int64_t o) const;
    [[nodiscard]] translation lookup_general(int64_t o) const;
    [[nodiscard]] static merge_result compare_versions(const run& known, const run& r);

    int64_t max_holes_ = max_holes_per_run;
    size_t hole_bytes_ = 0;  // sum of runs_[i].holes.size()
    std::vector<run> runs_;
    size_t first_dirty_ = clean;
    // True while every run starts at or after the previous run's source end:
    // then runs are sorted on both sides and a lookup is a binary search.
    bool monotone_ = true;
    // Bumped on every change to a run other than the last (merge, erase,
    // prune); with the run count it tells whether index_ is current.
    uint64_t epoch_ = 0;
    mutable frozen_index index_;
};

}  // namespace rpl::offsetsync
