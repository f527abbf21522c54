// offsetsync: runs, their lookup rule, the RocksDB store and the run record
// codec. A wrong answer here moves a consumer group past records it never
// read on failover (data loss) or far behind (a flood of duplicates), so the
// lookup is checked against a brute-force oracle on thousands of random
// delivery histories, not only on hand-picked cases.

#include "offsetsync/offsetsync.h"

#include <doctest/doctest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

using rpl::errc;
using namespace rpl::offsetsync;

namespace {

// A fresh directory, removed at the end of the test.
struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "offsetsync-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

std::unique_ptr<store> open_store(const std::filesystem::path& p) {
    auto s = store::open(p / "offsets");
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    return std::move(s.value());
}

translation tr(int64_t t, match_kind k) { return translation{t, k}; }

translation lookup(const partition_runs& p, int64_t o) {
    auto t = p.lookup(o);
    REQUIRE(t.has_value());
    return *t;
}

// The oracle, straight from the definition and deliberately naive: F(s) is
// the greatest target offset holding a copy of s; the answer for o is the
// smallest F(s) over replicated s >= o, or one past the greatest target
// offset if nothing at or after o was replicated.
translation oracle(const std::vector<std::pair<int64_t, int64_t>>& pairs, int64_t o) {
    std::map<int64_t, int64_t> latest;  // s -> F(s)
    int64_t max_dst = -1;
    for (const auto& [s, d] : pairs) {
        auto [it, fresh] = latest.try_emplace(s, d);
        if (!fresh) it->second = std::max(it->second, d);
        max_dst = std::max(max_dst, d);
    }
    std::optional<int64_t> best;
    for (const auto& [s, f] : latest)
        if (s >= o && (!best || f < *best)) best = f;
    if (!best) return {max_dst + 1, match_kind::past_end};
    auto own = latest.find(o);
    if (own == latest.end()) return {*best, match_kind::gap};
    return {*best, *best == own->second ? match_kind::exact : match_kind::resend_pending};
}

// Target offsets a consumer starting at t reads, as source offsets, checked
// against the guarantee itself: every replicated s >= o is among them.
bool skips_nothing(const std::vector<std::pair<int64_t, int64_t>>& pairs, int64_t o, int64_t t) {
    std::map<int64_t, bool> seen;
    for (const auto& [s, d] : pairs)
        if (s >= o) seen[s] = seen[s] || d >= t;
    return std::all_of(seen.begin(), seen.end(), [](const auto& e) { return e.second; });
}

// A random delivery history of one partition: mostly contiguous deliveries,
// with source holes (compaction, aborted records, markers), target holes
// (markers, purged in-flight records the target kept), and restarts where
// the source goes back and the target goes on.
std::vector<std::pair<int64_t, int64_t>> random_history(std::mt19937_64& rng) {
    std::uniform_int_distribution<int> pct(0, 99);
    std::uniform_int_distribution<int> small(1, 4);
    const int n = std::uniform_int_distribution<int>(1, 60)(rng);
    int64_t src = std::uniform_int_distribution<int64_t>(0, 5)(rng);
    int64_t dst = std::uniform_int_distribution<int64_t>(0, 5)(rng);
    int64_t max_src = src;
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int i = 0; i < n; ++i) {
        const int p = pct(rng);
        if (p < 10)
            src += small(rng);  // source hole
        else if (p < 18)
            dst += small(rng);  // target hole
        else if (p < 22) {      // both skip
            src += small(rng);
            dst += small(rng);
        } else if (p < 30 && !out.empty()) {  // restart: source goes back
            src = std::uniform_int_distribution<int64_t>(std::max<int64_t>(0, max_src - 12),
                                                         max_src)(rng);
            dst += std::uniform_int_distribution<int64_t>(0, 3)(rng);
        }
        out.emplace_back(src, dst);
        max_src = std::max(max_src, src);
        ++src;
        ++dst;
    }
    return out;
}

}  // namespace

TEST_SUITE_BEGIN("offsetsync");

// ---------------------------------------------------------------- runs

TEST_CASE("a_gap_free_partition_costs_one_run") {
    // Guards against storing one entry per record: a busy topic would grow
    // the index and the runs topic by one record per replicated record.
    partition_runs p;
    CHECK(p.add(1000, 0) == add_result::started);
    for (int64_t i = 1; i < 100000; ++i) REQUIRE(p.add(1000 + i, i) == add_result::extended);
    REQUIRE(p.runs().size() == 1);
    CHECK(p.runs()[0] == run{1000, 0, 100000});
    CHECK(lookup(p, 1000) == tr(0, match_kind::exact));
    CHECK(lookup(p, 51234) == tr(50234, match_kind::exact));
    CHECK(lookup(p, 101000) == tr(100000, match_kind::past_end));
}

TEST_CASE("a_new_run_starts_where_the_target_skips_or_the_source_goes_back") {
    // Guards against extending a run across a skip it cannot describe, which
    // would translate every later offset in it by the size of the skip
    // (wrong answers that look plausible). A source hole with the target
    // contiguous is kept inside the run instead (exactly, as a hole).
    partition_runs p;
    (void)p.add(0, 0);
    (void)p.add(1, 1);
    CHECK(p.add(5, 2) == add_result::extended);  // source hole: 2..4 compacted away
    CHECK(p.add(6, 3) == add_result::extended);
    CHECK(p.add(7, 5) == add_result::started);  // target hole: a marker at target 4
    CHECK(p.add(9, 8) == add_result::started);  // both skip
    CHECK(p.add(3, 9) == add_result::started);  // restart: source back to 3, target goes on
    CHECK(p.add(4, 10) == add_result::extended);
    run gapped{0, 0, 2};
    gapped.add_hole(3);
    gapped.length = 4;
    CHECK(p.runs() == std::vector<run>{gapped, {7, 5, 1}, {9, 8, 1}, {3, 9, 2}});
    CHECK(p.runs()[0].src_end() == 7);
    CHECK(lookup(p, 1) == tr(1, match_kind::exact));
    CHECK(lookup(p, 2) == tr(2, match_kind::gap));  // the hole: where 5 is
    CHECK(lookup(p, 5) == tr(2, match_kind::exact));
    CHECK(lookup(p, 6) == tr(3, match_kind::exact));
    // 3 and 4 were re-sent at 9 and 10 after the restart, but 5 and 6 not yet.
    CHECK(lookup(p, 4) == tr(2, match_kind::resend_pending));
}

TEST_CASE("a_compacted_source_keeps_few_runs_and_translates_every_offset_exactly") {
    // Guards against the index growing by one run (one RocksDB entry, one
    // runs-topic record) per compaction hole or transaction marker, which
    // made a daemon on a compacted or transactional source slower to start
    // until it could not start at all; and against "merging" holes in a way
    // that loses them (a hole must still answer the next record's target
    // offset, a replicated offset its own copy).
    temp_dir dir;
    constexpr int64_t records = 20000;
    // Every other source offset compacted away; the target is contiguous.
    auto src_of = [](int64_t i) { return 2 * i + 7; };
    {
        auto s = open_store(dir.path);
        for (int64_t i = 0; i < records; ++i) {
            REQUIRE(s->record("f", "t", 0, "x.t", src_of(i), 100 + i));
            if (i % 1000 == 999) REQUIRE(s->flush("f"));
        }
        REQUIRE(s->flush("f"));
        // One run per max_holes_per_run holes, not one per hole.
        CHECK(s->runs("f", "t", 0).size() <= static_cast<size_t>(records / max_holes_per_run + 1));
    }
    auto s = open_store(dir.path);  // the runs as RocksDB holds them
    const auto rs = s->runs("f", "t", 0);
    CHECK(rs.size() <= static_cast<size_t>(records / max_holes_per_run + 1));
    for (int64_t i = 0; i < records; ++i) {
        CAPTURE(i);
        auto exact = s->translate("f", "t", 0, src_of(i));
        REQUIRE(exact);
        REQUIRE(exact.value() == tr(100 + i, match_kind::exact));
        auto hole = s->translate("f", "t", 0, src_of(i) - 1);
        REQUIRE(hole);
        REQUIRE(hole.value() == tr(100 + i, match_kind::gap));
    }
    CHECK(s->translate("f", "t", 0, src_of(records)).value() ==
          tr(100 + records, match_kind::past_end));
    // The same runs, read back from the records another host would see.
    partition_runs rebuilt;
    for (const auto& r : rs) {
        auto back = decode_record(encode_key("f", "t", 0, r.dst_start), encode_value(r, "x.t"));
        REQUIRE(back);
        REQUIRE(rebuilt.merge(back.value().r) == merge_result::inserted);
    }
    CHECK(rebuilt.runs() == rs);
}

TEST_CASE("lookup_is_exact_for_replicated_offsets_and_never_skips_across_a_gap") {
    // Guards against a gap answer that points past the first record after
    // the gap (a skipped record) or before the gap's preceding record (a
    // needless duplicate).
    partition_runs p;
    for (int64_t s = 0; s < 10; ++s) (void)p.add(s, s);        // 0..9 -> 0..9
    for (int64_t s = 20; s < 25; ++s) (void)p.add(s, s - 10);  // 10..19 compacted; 20..24 -> 10..14
    CHECK(lookup(p, 0) == tr(0, match_kind::exact));
    CHECK(lookup(p, 9) == tr(9, match_kind::exact));
    CHECK(lookup(p, 10) == tr(10, match_kind::gap));
    CHECK(lookup(p, 19) == tr(10, match_kind::gap));
    CHECK(lookup(p, 20) == tr(10, match_kind::exact));
    CHECK(lookup(p, 24) == tr(14, match_kind::exact));
    CHECK(lookup(p, 25) == tr(15, match_kind::past_end));
    CHECK(lookup(p, 1000) == tr(15, match_kind::past_end));
}

TEST_CASE("lookup_before_the_first_replicated_record_points_at_it") {
    // Guards against answering "not found" (or 0) for a group that committed
    // before the flow started: it must resume at the first record replicated.
    partition_runs p;
    for (int64_t s = 500; s < 510; ++s) (void)p.add(s, s - 500);
    CHECK(lookup(p, 0) == tr(0, match_kind::gap));
    CHECK(lookup(p, 499) == tr(0, match_kind::gap));
}

TEST_CASE("lookup_never_skips_a_record_after_a_resend") {
    // Guards against answering o's old copy when a restart re-sent o: the old
    // copy is fine, but after a completed re-send the later copy re-reads
    // less; and against answering the later copy while the re-send has not
    // yet reached the records after o (those would be skipped).
    partition_runs p;
    for (int64_t s = 0; s < 10; ++s) (void)p.add(s, s);  // first pass: 0..9 -> 0..9
    (void)p.add(5, 12);                                  // restart from 5 (10, 11 purged on target)
    (void)p.add(6, 13);
    (void)p.add(7, 14);
    // The re-send reached 7 only: 8 and 9 exist once, at 8 and 9.
    CHECK(lookup(p, 7) == tr(8, match_kind::resend_pending));
    CHECK(lookup(p, 5) == tr(8, match_kind::resend_pending));
    CHECK(lookup(p, 8) == tr(8, match_kind::exact));
    CHECK(lookup(p, 3) == tr(3, match_kind::exact));
    (void)p.add(8, 15);
    (void)p.add(9, 16);
    (void)p.add(10, 17);
    // Caught up: every record from 5 on has a later copy, followed by all
    // later records.
    CHECK(lookup(p, 7) == tr(14, match_kind::exact));
    CHECK(lookup(p, 5) == tr(12, match_kind::exact));
    CHECK(lookup(p, 4) == tr(4, match_kind::exact));
    CHECK(lookup(p, 11) == tr(18, match_kind::past_end));
}

TEST_CASE("lookup_never_skips_records_a_resend_does_not_revisit") {
    // Guards against trusting that a re-send always covers everything after
    // it: records compacted away between the two passes are never re-sent,
    // so their first copy is the only one and must stay reachable.
    partition_runs p;
    for (int64_t s = 0; s < 10; ++s) (void)p.add(s, s);  // 0..9 -> 0..9
    (void)p.add(5, 10);                                  // re-send 5..7
    (void)p.add(6, 11);
    (void)p.add(7, 12);
    (void)p.add(20, 13);  // 8..19 compacted before the re-send got there
    CHECK(lookup(p, 6) == tr(8, match_kind::resend_pending));
    CHECK(lookup(p, 8) == tr(8, match_kind::exact));
    CHECK(lookup(p, 10) == tr(13, match_kind::gap));
    CHECK(lookup(p, 20) == tr(13, match_kind::exact));
}

TEST_CASE("the_worked_example_in_docs_offset_runs_holds") {
    // Guards against the documentation and the code telling operators
    // different things about where a group resumes.
    partition_runs p;
    for (int64_t s = 0; s < 10; ++s) (void)p.add(s, s);
    for (int64_t s = 15; s < 20; ++s) (void)p.add(s, s - 5);
    partition_runs cut_short = p;
    for (int64_t s = 17; s < 20; ++s) (void)p.add(s, s);
    (void)cut_short.add(17, 17);
    run compacted{0, 0, 10};
    compacted.add_hole(5);
    compacted.length = 15;
    CHECK(p.runs() == std::vector<run>{compacted, {17, 17, 3}});
    CHECK(lookup(p, 4) == tr(4, match_kind::exact));
    CHECK(lookup(p, 12) == tr(10, match_kind::gap));
    CHECK(lookup(p, 16) == tr(11, match_kind::exact));
    CHECK(lookup(p, 17) == tr(17, match_kind::exact));
    CHECK(lookup(p, 20) == tr(20, match_kind::past_end));
    CHECK(lookup(cut_short, 17) == tr(13, match_kind::resend_pending));
}

TEST_CASE("target_offsets_that_do_not_grow_are_rejected_and_not_recorded") {
    // Guards against silently mixing two incarnations of a target partition
    // (recreated topic) or two partitions into one set of runs.
    partition_runs p;
    (void)p.add(0, 10);
    (void)p.add(1, 11);
    CHECK(p.add(2, 11) == add_result::rejected);
    CHECK(p.add(2, 3) == add_result::rejected);
    CHECK(p.add(-1, 20) == add_result::rejected);
    CHECK(p.runs() == std::vector<run>{{0, 10, 2}});
    CHECK(p.add(2, 12) == add_result::extended);
}

TEST_CASE("lookup_matches_the_brute_force_oracle_on_random_histories") {
    // Guards against every subtle case of the overlap logic at once: holes
    // on either side, restarts to any earlier offset, re-sends cut short,
    // lookups in the middle of a history (stale lazy index), and runs learnt
    // by merge in any order (catch-up) instead of add.
    std::mt19937_64 rng(20261126);
    int checked = 0;
    std::map<match_kind, int> kinds;
    int pruned_hidden = 0;
    for (int c = 0; c < 4000; ++c) {
        const auto h = random_history(rng);
        CAPTURE(c);
        // Runs with at most 0, 1, 2 or the default number of source holes:
        // run boundaries at holes and holes inside runs, in every mix.
        const int64_t cap = c % 4 == 3 ? max_holes_per_run : c % 4;
        CAPTURE(cap);
        partition_runs p(cap);
        std::vector<std::pair<int64_t, int64_t>> so_far;
        for (const auto& [s, d] : h) {
            REQUIRE(p.add(s, d) != add_result::rejected);
            so_far.emplace_back(s, d);
            if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) {
                const int64_t o = std::uniform_int_distribution<int64_t>(0, s + 3)(rng);
                CAPTURE(o);
                REQUIRE(lookup(p, o) == oracle(so_far, o));
            }
        }
        int64_t max_src = 0;
        for (const auto& [s, d] : h) max_src = std::max(max_src, s);

        // Same runs, learnt by merge in a shuffled order.
        partition_runs merged;
        auto rs = p.runs();
        std::shuffle(rs.begin(), rs.end(), rng);
        for (const auto& r : rs) REQUIRE(merged.merge(r) == merge_result::inserted);
        REQUIRE(merged.runs() == p.runs());

        for (int64_t o = 0; o <= max_src + 2; ++o) {
            CAPTURE(o);
            const translation want = oracle(h, o);
            REQUIRE(lookup(p, o) == want);
            REQUIRE(lookup(merged, o) == want);
            REQUIRE(skips_nothing(h, o, want.target_offset));
            ++checked;
            ++kinds[want.kind];
        }

        // Runs whose every record was copied again later (log start 0): no
        // answer of any kind changes.
        {
            partition_runs p0 = p;
            const auto hidden = p0.prune(0);
            for (const auto& r : hidden) {
                for (int64_t i = 0; i < r.length; ++i) {
                    const int64_t src = r.src_of(i);
                    REQUIRE(std::any_of(h.begin(), h.end(), [&](const auto& sd) {
                        return sd.first == src && sd.second >= r.dst_end();
                    }));
                }
            }
            if (!hidden.empty()) ++pruned_hidden;
            REQUIRE(p0.runs().size() + hidden.size() == p.runs().size());
            REQUIRE(p0.src_end() == p.src_end());
            REQUIRE(p0.dst_end() == p.dst_end());
            for (int64_t o = 0; o <= max_src + 2; ++o) {
                CAPTURE(o);
                REQUIRE(lookup(p0, o) == oracle(h, o));
            }
            for (int64_t d = 0; d <= p.dst_end() + 1; ++d) {
                CAPTURE(d);
                REQUIRE(p0.reverse_lookup(d) == p.reverse_lookup(d));
            }
        }

        // Retention: pruning below a log start changes no answer at or above it.
        const int64_t log_start = std::uniform_int_distribution<int64_t>(0, max_src + 1)(rng);
        const auto before = p.runs();
        const auto dropped = p.prune(log_start);
        REQUIRE(p.runs().size() + dropped.size() == before.size());
        REQUIRE(p.runs().back() == before.back());
        for (int64_t o = log_start; o <= max_src + 2; ++o) {
            CAPTURE(o);
            CAPTURE(log_start);
            REQUIRE(lookup(p, o) == oracle(h, o));
        }
    }
    MESSAGE("oracle comparisons: " << checked << " (exact " << kinds[match_kind::exact]
                                   << ", resend_pending " << kinds[match_kind::resend_pending]
                                   << ", gap " << kinds[match_kind::gap] << ", past_end "
                                   << kinds[match_kind::past_end] << ")");
    // The generator must exercise every kind, or the comparison proves little.
    for (auto k :
         {match_kind::exact, match_kind::resend_pending, match_kind::gap, match_kind::past_end})
        CHECK(kinds[k] > 100);
    CHECK(pruned_hidden > 100);
}

TEST_CASE("dirty_runs_are_the_runs_changed_since_the_last_flush") {
    // Guards against re-publishing every run on every flush (the runs topic
    // would grow with the number of flushes) and against forgetting the run
    // that was extended after a flush (its latest length never published).
    partition_runs p;
    (void)p.add(0, 0);
    (void)p.add(1, 1);
    (void)p.add(5, 3);
    CHECK(p.dirty_runs() == std::vector<run>{{0, 0, 2}, {5, 3, 1}});
    p.mark_clean();
    CHECK(p.dirty_runs().empty());
    (void)p.add(6, 4);
    CHECK(p.dirty_runs() == std::vector<run>{{5, 3, 2}});
    p.mark_clean();
    (void)p.add(9, 6);
    CHECK(p.dirty_runs() == std::vector<run>{{9, 6, 1}});
    p.mark_clean();
    // A source hole extends the run: the same run, longer, is dirty again.
    (void)p.add(12, 7);
    CHECK(p.dirty_runs().size() == 1);
    CHECK(p.dirty_runs()[0].dst_start == 6);
    CHECK(p.dirty_runs()[0].length == 2);
}

TEST_CASE("merge_is_idempotent_and_the_longer_version_of_a_run_wins") {
    // Guards against a catch-up that shrinks a run (an older, shorter record
    // of the same key read after a newer one) and so opens a false gap whose
    // answer would skip the records cut off.
    partition_runs p;
    CHECK(p.merge({0, 0, 10}) == merge_result::inserted);
    CHECK(p.merge({0, 0, 10}) == merge_result::unchanged);
    CHECK(p.merge({0, 0, 4}) == merge_result::unchanged);
    CHECK(p.merge({0, 0, 15}) == merge_result::extended);
    CHECK(p.runs() == std::vector<run>{{0, 0, 15}});
    CHECK(p.merge({3, 0, 20}) == merge_result::conflict);   // same target start, other source
    CHECK(p.merge({40, 10, 2}) == merge_result::conflict);  // overlaps target 10..14
    CHECK(p.merge({40, 15, 0}) == merge_result::conflict);  // empty run
    CHECK(p.runs() == std::vector<run>{{0, 0, 15}});
    // add() continues the merged run.
    CHECK(p.add(15, 15) == add_result::extended);
}

// ---------------------------------------------------------------- codec

TEST_CASE("run_records_encode_to_the_documented_bytes_and_decode_back") {
    // Guards against a format drift between what docs/offset-runs.md
    // promises, what we publish and what another host reads back.
    const std::string key = encode_key("f", "t", 1, 2);
    const std::string want_key(
        "\x00\x00"
        "\x00\x01"
        "f"
        "\x00\x01"
        "t"
        "\x00\x00\x00\x01"
        "\x00\x00\x00\x00\x00\x00\x00\x02",
        2 + 3 + 3 + 4 + 8);
    CHECK(key == want_key);
    const std::string value = encode_value({5, 2, 3}, "pt");
    const std::string want_value(
        "\x00\x00"
        "\x00\x00\x00\x00\x00\x00\x00\x05"
        "\x00\x00\x00\x00\x00\x00\x00\x02"
        "\x00\x00\x00\x00\x00\x00\x00\x03"
        "\x00\x02"
        "pt",
        2 + 24 + 4);
    CHECK(value == want_value);

    run_record r{
        "primary-to-dr", "orders.eu", 7, "primary.orders.eu", {1234567890123, 9876543210, 42}};
    auto back = decode_record(encode_key(r.key()), encode_value(r.r, r.target_topic));
    REQUIRE(back.has_value());
    CHECK(back.value() == r);
    auto k = decode_key(encode_key(r.key()));
    REQUIRE(k.has_value());
    CHECK(k.value() == r.key());
}

TEST_CASE("a_run_with_holes_is_written_as_version_1_and_read_back_exactly") {
    // Guards against losing or shifting holes on the way through RocksDB or
    // the runs topic (a rebuilt index would then skip records), and against
    // writing version 1 where version 0 says it all (an older reader would
    // skip runs it could read).
    run r{5, 2, 1};
    r.add_hole(3);  // source 6..8 compacted away
    r.length = 2;
    r.add_hole(200);  // a varint of two bytes
    r.length = 4;
    CHECK(r.src_end() == 5 + 4 + 203);
    const std::string value = encode_value(r, "pt");
    const std::string want_value(
        "\x00\x01"
        "\x00\x00\x00\x00\x00\x00\x00\x05"
        "\x00\x00\x00\x00\x00\x00\x00\x02"
        "\x00\x00\x00\x00\x00\x00\x00\x04"
        "\x00\x02"
        "pt"
        "\x00\x00\x00\x02"
        "\x00\x00\x00\x05"
        "\x01\x03"
        "\x01\xc8\x01",
        2 + 24 + 4 + 4 + 4 + 5);
    CHECK(value == want_value);
    auto back = decode_value(value);
    REQUIRE(back.has_value());
    CHECK(back.value().r == r);
    CHECK(back.value().r.src_of(2) == 5 + 2 + 3 + 200);
    // No holes: still version 0, byte for byte.
    CHECK(encode_value({5, 2, 3}, "pt").substr(0, 2) == std::string("\x00\x00", 2));

    auto corrupt = [&](std::string bytes, const std::string& says) {
        auto d = decode_value(bytes);
        REQUIRE_FALSE(d.has_value());
        CHECK(d.error().code == errc::corrupt);
        CHECK_MESSAGE(d.error().message.find(says) != std::string::npos, d.error().message);
    };
    std::string v = want_value;
    v[v.size() - 1] = '\x81';  // varint never ends
    corrupt(v, "holes do not decode");
    v = want_value;
    v[2 + 24 - 1] = 2;  // length 2: the second hole is not followed by a record
    corrupt(v, "holes do not decode");
    v = want_value;
    v[2 + 24 + 4 + 3] = 0;  // hole count 0 in a version 1 value
    corrupt(v, "hole count 0");
    corrupt(want_value + "x", "trailing");
    v = want_value;
    v[1] = 2;
    corrupt(v, "unsupported version 2");
}

TEST_CASE("corrupt_run_records_are_rejected_with_a_reason") {
    // Guards against applying garbage (a truncated record, a future format,
    // a record from another tool) as offsets, which would silently corrupt
    // translations.
    const std::string key = encode_key("flow", "topic", 3, 100);
    const std::string value = encode_value({7, 100, 5}, "target");
    auto corrupt_key = [](const std::string& bytes, const std::string& says) {
        auto r = decode_key(bytes);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::corrupt);
        CHECK_MESSAGE(r.error().message.find(says) != std::string::npos, r.error().message);
    };
    auto corrupt_value = [](const std::string& bytes, const std::string& says) {
        auto r = decode_value(bytes);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::corrupt);
        CHECK_MESSAGE(r.error().message.find(says) != std::string::npos, r.error().message);
    };
    SUBCASE("truncated anywhere") {
        for (size_t n = 0; n < key.size(); ++n) corrupt_key(key.substr(0, n), "");
        for (size_t n = 0; n < value.size(); ++n) corrupt_value(value.substr(0, n), "");
        corrupt_key(key.substr(0, key.size() - 1), "truncated: dst_start");
        corrupt_value(value.substr(0, 5), "truncated: src_start");
    }
    SUBCASE("bad version") {
        std::string k = key;
        k[1] = 1;
        corrupt_key(k, "unsupported version 1");
        std::string v = value;
        v[0] = '\x7f';
        corrupt_value(v, "unsupported version");
    }
    SUBCASE("bad string length") {
        std::string k = key;
        k[3] = 100;  // flow length 100, only a few bytes follow
        corrupt_key(k, "flow has string length 100");
        k = key;
        k[2] = '\xff';
        k[3] = '\xff';  // -1: a null string
        corrupt_key(k, "null strings are not allowed");
        std::string v = value;
        v[27] = 50;  // target topic length
        corrupt_value(v, "target topic has string length 50");
        corrupt_key(std::string("\x00\x00\x00\x00", 4) + key.substr(8), "flow is empty");
    }
    SUBCASE("trailing bytes") {
        corrupt_key(key + "x", "trailing");
        corrupt_value(value + "xy", "trailing");
    }
    SUBCASE("impossible numbers") {
        corrupt_value(encode_value({7, 100, 0}, "target"), "length 0 is not positive");
        corrupt_value(encode_value({-7, 100, 5}, "target"), "negative src_start");
        corrupt_key(encode_key("flow", "topic", -3, 100), "negative partition");
    }
    SUBCASE("key and value disagree") {
        auto r = decode_record(encode_key("flow", "topic", 3, 101), value);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::corrupt);
        CHECK(r.error().message.find("key says dst_start 101") != std::string::npos);
    }
}

// ---------------------------------------------------------------- store

TEST_CASE("store_translates_per_flow_topic_and_partition_independently") {
    // Guards against runs of one partition (or flow) answering for another.
    temp_dir dir;
    auto s = open_store(dir.path);
    for (int64_t i = 0; i < 10; ++i) {
        REQUIRE(s->record("a", "orders", 0, "p.orders", i, i + 100).has_value());
        REQUIRE(s->record("a", "orders", 1, "p.orders", i, i + 200).has_value());
        REQUIRE(s->record("b", "orders", 0, "q.orders", i + 50, i).has_value());
    }
    CHECK(s->translate("a", "orders", 0, 3).value() == tr(103, match_kind::exact));
    CHECK(s->translate("a", "orders", 1, 3).value() == tr(203, match_kind::exact));
    CHECK(s->translate("b", "orders", 0, 3).value() == tr(0, match_kind::gap));
    CHECK(s->translate("b", "orders", 0, 60).value() == tr(10, match_kind::past_end));
    auto missing = s->translate("a", "orders", 2, 3);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == errc::not_found);
    CHECK(s->end_offsets("a", "orders", 1).value() == partition_ends{10, 210});
    CHECK(s->partitions("a") ==
          std::vector<partition_ref>{{"orders", 0, "p.orders"}, {"orders", 1, "p.orders"}});
    CHECK(s->partitions("c").empty());
}

TEST_CASE("store_rejects_deliveries_that_contradict_the_partition") {
    // Guards against recording a recreated target partition (offsets going
    // back) or a renamed target topic into the old runs.
    temp_dir dir;
    auto s = open_store(dir.path);
    REQUIRE(s->record("f", "t", 0, "x.t", 0, 10).has_value());
    auto back = s->record("f", "t", 0, "x.t", 1, 5);
    REQUIRE_FALSE(back.has_value());
    CHECK(back.error().code == errc::conflict);
    auto renamed = s->record("f", "t", 0, "y.t", 1, 11);
    REQUIRE_FALSE(renamed.has_value());
    CHECK(renamed.error().code == errc::conflict);
    auto empty = s->record("", "t", 0, "x.t", 1, 11);
    REQUIRE_FALSE(empty.has_value());
    CHECK(empty.error().code == errc::invalid_config);
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{0, 10, 1}});
}

TEST_CASE("runs_survive_a_reopen_and_the_last_run_keeps_growing") {
    // Guards against a restart that loses the index (translations fail
    // until a full catch-up) or starts a new run for every restart even when
    // replication continues seamlessly (the index would grow per restart).
    temp_dir dir;
    {
        auto s = open_store(dir.path);
        for (int64_t i = 0; i < 1000; ++i) REQUIRE(s->record("f", "t", 0, "x.t", i, i).has_value());
        for (int64_t i = 2000; i < 2010; ++i)
            REQUIRE(s->record("f", "t", 0, "x.t", i, i - 990).has_value());
        for (int64_t i = 0; i < 5; ++i)
            REQUIRE(s->record("f", "u", 3, "x.u", i, i + 7).has_value());
        auto flushed = s->flush("f");
        REQUIRE(flushed.has_value());
        CHECK(flushed.value().size() == 3);
        // Recorded but never flushed: lost with the process, like in a crash.
        REQUIRE(s->record("f", "u", 3, "x.u", 5, 12).has_value());
    }
    auto s = open_store(dir.path);
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{0, 0, 1000}, {2000, 1010, 10}});
    CHECK(s->runs("f", "u", 3) == std::vector<run>{{0, 7, 5}});
    CHECK(s->translate("f", "t", 0, 1500).value() == tr(1010, match_kind::gap));
    CHECK(s->translate("f", "t", 0, 2005).value() == tr(1015, match_kind::exact));
    CHECK(s->partitions("f").size() == 2);
    // Replication resumes where it stopped: the same run grows.
    REQUIRE(s->record("f", "t", 0, "x.t", 2010, 1020).has_value());
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{0, 0, 1000}, {2000, 1010, 11}});
    auto flushed = s->flush("f");
    REQUIRE(flushed.has_value());
    REQUIRE(flushed.value().size() == 1);
    CHECK(flushed.value()[0] == run_record{"f", "t", 0, "x.t", {2000, 1010, 11}});
    CHECK(s->flush("f").value().empty());
}

TEST_CASE("a_flush_returns_only_its_own_flows_runs") {
    // Guards against one flow taking another flow's runs when both share the
    // daemon's store: they would be published to the wrong target cluster's
    // runs topic and marked clean, so never reach their own.
    temp_dir dir;
    auto s = open_store(dir.path);
    REQUIRE(s->record("a", "t", 0, "x.t", 0, 0).has_value());
    REQUIRE(s->record("b", "t", 0, "y.t", 0, 0).has_value());
    auto a = s->flush("a");
    REQUIRE(a.has_value());
    CHECK(a.value() == std::vector<run_record>{{"a", "t", 0, "x.t", {0, 0, 1}}});
    CHECK(s->flush("a").value().empty());
    REQUIRE(s->record("a", "t", 0, "x.t", 1, 1).has_value());
    auto b = s->flush("b");
    REQUIRE(b.has_value());
    CHECK(b.value() == std::vector<run_record>{{"b", "t", 0, "y.t", {0, 0, 1}}});
    CHECK(s->flush("a").value() == std::vector<run_record>{{"a", "t", 0, "x.t", {0, 0, 2}}});
}

TEST_CASE("store_apply_is_idempotent_persistent_and_keeps_the_longest_run") {
    // Guards against a catch-up that double-applies, shrinks runs, or is
    // lost on restart (forcing a full re-read of the runs topic each time).
    temp_dir dir;
    const run_record a{"f", "t", 0, "x.t", {0, 0, 10}};
    const run_record a_longer{"f", "t", 0, "x.t", {0, 0, 25}};
    const run_record b{"f", "t", 0, "x.t", {40, 30, 5}};
    {
        auto s = open_store(dir.path);
        CHECK(s->apply(a).value() == merge_result::inserted);
        CHECK(s->apply(b).value() == merge_result::inserted);
        CHECK(s->apply(a_longer).value() == merge_result::extended);
        CHECK(s->apply(a).value() == merge_result::unchanged);
        CHECK(s->apply(b).value() == merge_result::unchanged);
        auto other_target = s->apply(run_record{"f", "t", 0, "y.t", {100, 100, 1}});
        REQUIRE_FALSE(other_target.has_value());
        CHECK(other_target.error().code == errc::conflict);
        auto overlap = s->apply(run_record{"f", "t", 0, "x.t", {60, 20, 5}});
        REQUIRE_FALSE(overlap.has_value());
        CHECK(overlap.error().code == errc::conflict);
        // Applied runs came from Kafka: nothing to publish back.
        CHECK(s->flush("f").value().empty());
    }
    auto s = open_store(dir.path);
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{0, 0, 25}, {40, 30, 5}});
    CHECK(s->translate("f", "t", 0, 24).value() == tr(24, match_kind::exact));
    CHECK(s->translate("f", "t", 0, 25).value() == tr(30, match_kind::gap));
    CHECK(s->remove(b.key()).value());
    CHECK_FALSE(s->remove(b.key()).value());
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{0, 0, 25}});
}

TEST_CASE("prune_drops_runs_below_the_log_start_keeps_the_latest_and_persists") {
    // Guards against an index that grows forever with retention, and against
    // pruning the last run, which would make a fully caught-up partition
    // whose source log was emptied by retention untranslatable.
    temp_dir dir;
    {
        auto s = open_store(dir.path);
        for (int64_t i = 0; i < 30; ++i) {
            // Runs of 10 with a hole of 5 on the source and 2 on the target
            // between them.
            REQUIRE(s->record("f", "t", 0, "x.t", i + (i / 10) * 5, i + (i / 10) * 2).has_value());
        }
        REQUIRE(s->flush("f").has_value());
        CHECK(s->runs("f", "t", 0).size() == 3);
        auto dropped = s->prune("f", "t", 0, 20);
        REQUIRE(dropped.has_value());
        CHECK(dropped.value() == std::vector<run_record>{{"f", "t", 0, "x.t", {0, 0, 10}}});
        auto all = s->prune("f", "t", 0, 1000);
        REQUIRE(all.has_value());
        CHECK(all.value() == std::vector<run_record>{{"f", "t", 0, "x.t", {15, 12, 10}}});
        CHECK(s->runs("f", "t", 0) == std::vector<run>{{30, 24, 10}});
        CHECK(s->translate("f", "t", 0, 1000).value() == tr(34, match_kind::past_end));
        CHECK(s->prune("nope", "t", 0, 5).value().empty());
    }
    auto s = open_store(dir.path);
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{30, 24, 10}});
    auto forgotten = s->forget("f", "t", 0);
    REQUIRE(forgotten.has_value());
    CHECK(forgotten.value().size() == 1);
    CHECK(s->partitions("f").empty());
    s.reset();
    s = open_store(dir.path);
    CHECK(s->partitions("f").empty());
}

TEST_CASE("prune_drops_runs_that_every_record_was_copied_again_after") {
    // Guards against an index that keeps, forever, the runs of every copy a
    // restart re-sent: on a compacted source the log start never moves, so
    // pruning below it never drops them, though no translation reads them
    // (a lookup answers from the latest copy of each record).
    temp_dir dir;
    auto s = open_store(dir.path);
    auto src_of = [](int64_t i) { return 2 * i; };  // compacted source
    for (int64_t i = 0; i < 3000; ++i) REQUIRE(s->record("f", "t", 0, "x.t", src_of(i), i));
    // A restart re-sends from record 1000 on, then goes on past the end.
    for (int64_t i = 1000; i < 4000; ++i)
        REQUIRE(s->record("f", "t", 0, "x.t", src_of(i), 3000 + i - 1000 + 5));
    REQUIRE(s->flush("f"));
    const auto before = s->runs("f", "t", 0);
    std::vector<translation> answers;
    for (int64_t o = 0; o < src_of(4000) + 2; ++o)
        answers.push_back(s->translate("f", "t", 0, o).value());
    auto dropped = s->prune("f", "t", 0, 0);
    REQUIRE(dropped);
    // The first copies' runs wholly within records 1000..2999 are gone; the
    // one holding records 0..999 (no other copy) stays.
    CHECK_FALSE(dropped.value().empty());
    for (const auto& r : dropped.value()) CHECK(r.r.src_start >= src_of(1000));
    CHECK(s->runs("f", "t", 0).size() + dropped.value().size() == before.size());
    for (int64_t o = 0; o < src_of(4000) + 2; ++o) {
        CAPTURE(o);
        REQUIRE(s->translate("f", "t", 0, o).value() == answers[static_cast<size_t>(o)]);
    }
}

TEST_CASE("a_catch_up_position_survives_a_reopen_and_is_not_read_as_a_run") {
    // Guards against a cut-short catch-up starting over from offset 0 (a
    // large runs topic then never finishes within a start-up), and against
    // the position's key breaking the store's load.
    temp_dir dir;
    {
        auto s = open_store(dir.path);
        CHECK(s->catch_up_position("runs@a:1").value() == 0);
        REQUIRE(s->record("f", "t", 0, "x.t", 0, 0));
        REQUIRE(s->flush("f"));
        REQUIRE(s->save_catch_up_position("runs@a:1", 123456789012));
        REQUIRE(s->save_catch_up_position("runs@b:1", 7));
    }
    auto s = open_store(dir.path);
    CHECK(s->catch_up_position("runs@a:1").value() == 123456789012);
    CHECK(s->catch_up_position("runs@b:1").value() == 7);
    CHECK(s->runs("f", "t", 0) == std::vector<run>{{0, 0, 1}});
}

TEST_CASE("the_store_keeps_memory_within_its_budget_and_reads_evicted_partitions_back") {
    // Guards against an index held whole in memory: with many compacted
    // partitions the daemon's memory grew with every hole ever replicated.
    // RocksDB is the source of truth; memory keeps what fits the budget, and
    // an evicted partition answers exactly as before once read back.
    temp_dir dir;
    constexpr size_t budget = 64 << 10;
    constexpr int partitions = 40;
    constexpr int64_t records = 3000;
    // Source: every other offset compacted away; target: a marker every 100.
    auto src_of = [](int64_t i) { return 2 * i; };
    auto dst_of = [](int64_t i) { return i + i / 100; };
    auto check_all = [&](store& s) {
        for (int p = 0; p < partitions; ++p) {
            CAPTURE(p);
            for (int64_t i = 0; i < records; i += 7) {
                CAPTURE(i);
                REQUIRE(s.translate("f", "t", p, src_of(i)).value() ==
                        tr(dst_of(i), match_kind::exact));
                REQUIRE(s.translate("f", "t", p, src_of(i) + 1).value().target_offset ==
                        dst_of(i + 1));
            }
            REQUIRE(s.memory_bytes() <= budget);
        }
    };
    {
        auto opened =
            store::open(dir.path / "offsets", rpl::Logger("offsetsync"), max_holes_per_run, budget);
        REQUIRE(opened);
        auto& s = *opened.value();
        for (int p = 0; p < partitions; ++p) {
            for (int64_t i = 0; i < records; ++i)
                REQUIRE(s.record("f", "t", p, "x.t", src_of(i), dst_of(i)));
            REQUIRE(s.flush("f"));
            // The budget, plus the partition just replicated into (about
            // 10 KiB): it stays until it has been idle for a flush.
            REQUIRE(s.memory_bytes() <= budget + (16 << 10));
        }
        CHECK(s.loaded_partitions() < static_cast<size_t>(partitions));
        CHECK(s.partitions("f").size() == static_cast<size_t>(partitions));
        check_all(s);
        // An evicted partition goes on growing where it stopped.
        REQUIRE(s.record("f", "t", 0, "x.t", src_of(records), dst_of(records)));
        CHECK(s.runs("f", "t", 0).back().dst_end() == dst_of(records) + 1);
        REQUIRE(s.flush("f"));
    }
    auto opened =
        store::open(dir.path / "offsets", rpl::Logger("offsetsync"), max_holes_per_run, budget);
    REQUIRE(opened);
    auto& s = *opened.value();
    CHECK(s.memory_bytes() <= budget);
    CHECK(s.loaded_partitions() < static_cast<size_t>(partitions));
    check_all(s);
    CHECK(s.translate("f", "t", 0, src_of(records)).value() ==
          tr(dst_of(records), match_kind::exact));
}

TEST_CASE("a_store_directory_is_opened_by_one_store_at_a_time") {
    // Guards against two daemons (or two flows wired by mistake) writing one
    // index: RocksDB's lock refuses the second, with a message naming it.
    temp_dir dir;
    auto first = open_store(dir.path);
    auto second = store::open(dir.path / "offsets");
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error().code == errc::io);
    CHECK(second.error().message.find((dir.path / "offsets").string()) != std::string::npos);
}

TEST_CASE("a_corrupt_store_refuses_to_open_and_says_how_to_recover") {
    // Guards against serving translations from a damaged index.
    temp_dir dir;
    {
        auto s = open_store(dir.path);
        REQUIRE(s->record("f", "t", 0, "x.t", 0, 0).has_value());
        REQUIRE(s->flush("f").has_value());
    }
    {
        // A bad value under a valid key, written with RocksDB itself.
        rocksdb::DB* raw = nullptr;
        rocksdb::Options o;
        REQUIRE(rocksdb::DB::Open(o, (dir.path / "offsets").string(), &raw).ok());
        std::unique_ptr<rocksdb::DB> db(raw);
        REQUIRE(db->Put(rocksdb::WriteOptions(), encode_key("f", "t", 0, 5), "junk").ok());
    }
    auto s = store::open(dir.path / "offsets");
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().code == errc::corrupt);
    CHECK(s.error().message.find("delete the directory") != std::string::npos);
}

TEST_SUITE_END();

TEST_CASE("reverse_lookup_never_skips_a_record_the_target_consumer_has_not_read") {
    // Guards against a failback that resumes on the source past a record
    // whose only copy on the target the consumer had not reached yet.
    std::mt19937_64 rng(4242);
    for (int round = 0; round < 500; ++round) {
        rpl::offsetsync::partition_runs pr;
        std::map<int64_t, std::vector<int64_t>> copies;  // src -> its dst offsets
        int64_t src = 0, dst = static_cast<int64_t>(rng() % 3);
        const int steps = 20 + static_cast<int>(rng() % 60);
        for (int i = 0; i < steps; ++i) {
            const auto r = rng() % 10;
            if (r == 0) src += 1 + static_cast<int64_t>(rng() % 4);  // source gap
            if (r == 1) dst += 1 + static_cast<int64_t>(rng() % 3);  // target gap
            if (r == 2 && src > 0)
                src -= std::min<int64_t>(src, 1 + static_cast<int64_t>(rng() % 6));  // re-send
            pr.add(src, dst);
            copies[src].push_back(dst);
            ++src;
            ++dst;
        }
        for (int64_t d = 0; d <= pr.dst_end() + 1; ++d) {
            // Unread by a consumer at d: source records with no copy below d.
            int64_t oracle = pr.src_end();
            for (const auto& [s, ds] : copies) {
                if (std::all_of(ds.begin(), ds.end(), [d](int64_t x) { return x >= d; })) {
                    oracle = std::min(oracle, s);
                    break;  // copies is ordered by s
                }
            }
            const auto got = pr.reverse_lookup(d);
            REQUIRE(got.has_value());
            CAPTURE(round);
            CAPTURE(d);
            CHECK(*got <= oracle);
        }
    }
}

TEST_CASE("reverse_lookup_is_exact_without_resends") {
    // Guards against a failback that re-reads when it need not: with runs in
    // order on both sides, d maps to exactly its own source record.
    rpl::offsetsync::partition_runs pr;
    for (int64_t s = 0; s < 100; ++s) pr.add(s < 50 ? s : s + 10, s + 5);  // a source gap at 50..59
    CHECK(pr.reverse_lookup(5) == std::optional<int64_t>(0));
    CHECK(pr.reverse_lookup(54) == std::optional<int64_t>(49));
    CHECK(pr.reverse_lookup(55) == std::optional<int64_t>(60));
    CHECK(pr.reverse_lookup(0) == std::optional<int64_t>(0));
    CHECK(pr.reverse_lookup(105) == std::optional<int64_t>(110));
    CHECK(pr.reverse_lookup(500) == std::optional<int64_t>(110));
}
