// Bidirectional pairs on the real test bed: primary and dr both take writes,
// each ends up with the other's data, nothing loops, and a consumer group
// moves between them and back. Data is checked with kcat.
#include "tests/integration/group_consumer.h"
#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <thread>

using namespace rpl::test;

namespace {

constexpr int partitions = 6;
constexpr const char* origin_header = "replicatord.origin";

// A config running one [[pair]] over `topic`; `extra` adds keys to the pair.
std::string pair_config(const std::string& topic, const std::string& naming,
                        const std::string& extra = "") {
    const auto& b = testbed();
    return "[daemon]\nstate_dir = \"" + temp_dir() + "/" + unique("state") +
           "\"\nadmin_listen = \"127.0.0.1:0\"\n\n[clusters.primary]\nbootstrap = \"" + b.primary +
           "\"\n\n[clusters.dr]\nbootstrap = \"" + b.dr +
           "\"\n\n[[pair]]\nclusters = [\"primary\", \"dr\"]\ntopics = [\"" + topic +
           "\"]\nnaming = \"" + naming +
           "\"\nrefresh_interval = \"1s\"\ncheckpoint_interval = \"1s\"\n" +
           // Heartbeats would pull in every *.heartbeats topic that other
           // tests leave on the shared test bed.
           "heartbeats = false\n" + extra + "\n";
}

// `per_cluster` records on each cluster, written in alternating rounds so
// both directions carry traffic at once. Values are unique ids: "primary-<i>"
// and "dr-<i>".
void write_interleaved(const std::string& topic, int per_cluster, int rounds = 10) {
    const auto& b = testbed();
    producer on_primary(b.primary);
    producer on_dr(b.dr);
    const int per_round = per_cluster / rounds;
    for (int r = 0; r < rounds; ++r) {
        for (auto* side : {&on_primary, &on_dr}) {
            const std::string tag = side == &on_primary ? "primary-" : "dr-";
            for (int i = r * per_round; i < (r + 1) * per_round; ++i) {
                record rec;
                rec.partition = i % partitions;
                rec.key = "k" + std::to_string(i);
                rec.value = tag + std::to_string(i);
                side->produce(topic, rec);
            }
            side->flush();
        }
    }
}

std::optional<std::string> header_value(const record& r, const std::string& name) {
    std::optional<std::string> v;
    for (const auto& [n, value] : r.headers)
        if (n == name) v = value;
    return v;
}

// One phase of writes on one cluster: `per_partition` records on each
// partition, ids "<tag>-<phase>-<n>".
void write_phase(const std::string& bootstrap, const std::string& topic, const std::string& tag,
                 int phase, int per_partition) {
    producer out(bootstrap);
    for (int32_t p = 0; p < partitions; ++p) {
        for (int i = 0; i < per_partition; ++i) {
            record rec;
            rec.partition = p;
            rec.key = "k" + std::to_string(i);
            rec.value = tag + "-" + std::to_string(phase) + "-" + std::to_string(p) + "-" +
                        std::to_string(i);
            out.produce(topic, rec);
        }
    }
    out.flush();
}

// id -> how many times it appears in the topic on that cluster.
std::map<std::string, int> id_counts(const std::string& bootstrap, const std::string& topic) {
    std::map<std::string, int> out;
    for (const auto& r : kcat_read(bootstrap, topic)) ++out[r.value.value_or("<null>")];
    return out;
}

std::map<std::string, int64_t> ends_of(const std::string& bootstrap,
                                       const std::vector<std::string>& topics) {
    std::map<std::string, int64_t> out;
    for (const auto& t : topics) out[t] = end_offsets(bootstrap, t);
    return out;
}

// The exact rule for moving a group: its new position on a partition is the
// smallest offset there whose record the group had not consumed where it was
// (compared by content: the unique id). Below it, everything was consumed
// (nothing is skipped); at it, a record that was not (no avoidable re-read).
offsets expected_positions(const std::string& bootstrap, const std::string& topic,
                           const std::set<std::string>& consumed) {
    offsets out;
    for (int32_t p = 0; p < partitions; ++p) {
        const auto recs = kcat_read(bootstrap, topic, p);
        int64_t pos = recs.empty() ? 0 : recs.back().offset + 1;
        for (const auto& r : recs) {
            if (!consumed.count(r.value.value_or(""))) {
                pos = r.offset;
                break;
            }
        }
        out[p] = pos;
    }
    return out;
}

// Ids of the records below `stops` on each partition.
std::set<std::string> ids_below(const std::string& bootstrap, const std::string& topic,
                                const offsets& stops) {
    std::set<std::string> out;
    for (int32_t p = 0; p < partitions; ++p) {
        for (const auto& r : kcat_read(bootstrap, topic, p))
            if (r.offset < stops.at(p)) out.insert(r.value.value_or(""));
    }
    return out;
}

// The checkpoints replicatorctl translate reports for a group, per partition:
// (upstream, target).
std::map<int32_t, std::pair<int64_t, int64_t>> checkpoints(const std::string& cfg,
                                                           const std::string& flow,
                                                           const std::string& group) {
    const auto r =
        run({ctl_bin(), "translate", "--config", cfg, "--flow", flow, "--group", group, "--json"});
    std::map<int32_t, std::pair<int64_t, int64_t>> out;
    if (r.exit_code != 0) return out;
    static const std::regex row(
        R"re("partition":(\d+),"upstream_offset":(-?\d+),"target_offset":(-?\d+))re");
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), row);
         it != std::sregex_iterator(); ++it)
        out[std::stoi((*it)[1])] = {std::stoll((*it)[2]), std::stoll((*it)[3])};
    return out;
}

bool checkpoints_reached(const std::string& cfg, const std::string& flow, const std::string& group,
                         const offsets& upstream) {
    const auto cps = checkpoints(cfg, flow, group);
    for (const auto& [p, o] : upstream) {
        const auto it = cps.find(p);
        if (it == cps.end() || it->second.first != o) return false;
    }
    return true;
}

}  // namespace

TEST_SUITE("pair") {
    TEST_CASE("prefix_pair_copies_each_side_to_the_other_byte_exact_and_stops_without_ping_pong") {
        const auto& b = testbed();
        const std::string topic = unique("events");
        create_topic(b.primary, topic, partitions);
        create_topic(b.dr, topic, partitions);
        const std::string cfg =
            write_file(unique("pair-prefix") + ".toml", pair_config(topic, "prefix"));
        daemon_process d(cfg, temp_dir() + "/" + unique("pair-prefix") + ".log");
        write_interleaved(topic, 50'000);

        const std::string on_dr = "primary." + topic;
        const std::string on_primary = "dr." + topic;
        REQUIRE_EVENTUALLY(180s, end_offsets(b.dr, on_dr) == 50'000 &&
                                     end_offsets(b.primary, on_primary) == 50'000);
        for (int32_t p = 0; p < partitions; ++p) {
            const auto src_p = kcat_read(b.primary, topic, p);
            const auto src_d = kcat_read(b.dr, topic, p);
            CHECK(src_p == kcat_read(b.dr, on_dr, p));
            CHECK(src_d == kcat_read(b.primary, on_primary, p));
            // Each side's own topic holds only its own writes.
            for (const auto& r : src_p) CHECK(r.value->rfind("primary-", 0) == 0);
            for (const auto& r : src_d) CHECK(r.value->rfind("dr-", 0) == 0);
        }
        CHECK(end_offsets(b.primary, topic) == 50'000);
        CHECK(end_offsets(b.dr, topic) == 50'000);

        const auto before_p = ends_of(b.primary, {topic, on_primary});
        const auto before_d = ends_of(b.dr, {topic, on_dr});
        std::this_thread::sleep_for(30s);
        CHECK(ends_of(b.primary, {topic, on_primary}) == before_p);
        CHECK(ends_of(b.dr, {topic, on_dr}) == before_d);
        // Cycle detection: nothing came back under a second prefix.
        for (const auto& t : kcat_topics(b.primary)) CHECK(t != "dr.primary." + topic);
        for (const auto& t : kcat_topics(b.dr)) CHECK(t != "primary.dr." + topic);
        std::cout << "prefix pair: 50000 records each way, byte-exact per partition; end offsets "
                     "unchanged 30 s after the last write\n";
        d.signal(SIGTERM);
        CHECK(d.wait(30s) == 0);
    }

    TEST_CASE("identity_pair_merges_both_sides_exactly_once_with_provenance_on_the_far_side") {
        const auto& b = testbed();
        const std::string topic = unique("events");
        create_topic(b.primary, topic, partitions);
        create_topic(b.dr, topic, partitions);
        const std::string cfg =
            write_file(unique("pair-identity") + ".toml", pair_config(topic, "identity"));
        daemon_process d(cfg, temp_dir() + "/" + unique("pair-identity") + ".log");
        write_interleaved(topic, 50'000);

        REQUIRE_EVENTUALLY(
            180s, end_offsets(b.dr, topic) >= 100'000 && end_offsets(b.primary, topic) >= 100'000);
        for (const auto* bootstrap : {&b.primary, &b.dr}) {
            const auto counts = id_counts(*bootstrap, topic);
            CHECK(counts.size() == 100'000);
            int dups = 0;
            for (const auto& [id, n] : counts) dups += n - 1;
            CHECK(dups == 0);
        }
        for (const auto& [bootstrap, here, there] :
             {std::tuple{b.primary, "primary-", "dr"}, std::tuple{b.dr, "dr-", "primary"}}) {
            for (const auto& r : kcat_read(bootstrap, topic)) {
                const auto origin = header_value(r, origin_header);
                if (r.value->rfind(here, 0) == 0) {
                    CHECK_MESSAGE(!origin,
                                  "local record " << *r.value << " carries " << origin_header);
                } else {
                    CHECK(origin == std::optional<std::string>(there));
                }
            }
        }
        const auto before_p = end_offsets(b.primary, topic);
        const auto before_d = end_offsets(b.dr, topic);
        std::this_thread::sleep_for(30s);
        CHECK(end_offsets(b.primary, topic) == before_p);
        CHECK(end_offsets(b.dr, topic) == before_d);
        const std::string metrics = http_get(d.admin_port(), "/metrics");
        CHECK(metrics.find("replicatord_records_filtered_total{flow=\"dr-to-primary\",topic=\"" +
                           topic + "\"} 50000") != std::string::npos);
        std::cout << "identity pair: each cluster holds 100000 distinct ids, no duplicate, "
                     "end offsets unchanged 30 s later\n";
        d.signal(SIGTERM);
        CHECK(d.wait(30s) == 0);
    }

    TEST_CASE("identity_pair_in_two_processes_survives_sigkill_of_one_direction_without_loss") {
        const auto& b = testbed();
        const std::string topic = unique("events");
        create_topic(b.primary, topic, partitions);
        create_topic(b.dr, topic, partitions);
        const int64_t bound = 2000;
        const std::string extra = "max_in_flight_records = " + std::to_string(bound) + "\n";
        // One process near each cluster, each running one direction.
        const std::string east = write_file(
            unique("pair-east") + ".toml",
            pair_config(topic, "identity", extra + "directions = [\"primary-to-dr\"]\n"));
        const std::string west = write_file(
            unique("pair-west") + ".toml",
            pair_config(topic, "identity", extra + "directions = [\"dr-to-primary\"]\n"));
        auto p1 =
            std::make_unique<daemon_process>(east, temp_dir() + "/" + unique("east") + ".log");
        daemon_process p2(west, temp_dir() + "/" + unique("west") + ".log");

        std::thread writer([&] { write_interleaved(topic, 50'000, 25); });
        REQUIRE_EVENTUALLY(120s, end_offsets(b.dr, topic) >= 30'000);
        p1->signal(SIGKILL);
        CHECK(p1->wait(10s) == -SIGKILL);
        p1 = std::make_unique<daemon_process>(east, temp_dir() + "/" + unique("east") + ".log");
        writer.join();

        const auto converged = [&] {
            return end_offsets(b.dr, topic) >= 100'000 &&
                   end_offsets(b.primary, topic) >= 100'000 &&
                   id_counts(b.dr, topic).size() == 100'000 &&
                   id_counts(b.primary, topic).size() == 100'000;
        };
        REQUIRE_EVENTUALLY(240s, converged());
        const auto on_dr = id_counts(b.dr, topic);
        const auto on_primary = id_counts(b.primary, topic);
        int dr_dups = 0;
        for (const auto& [id, n] : on_dr) {
            dr_dups += n - 1;
            // dr's own records never went to primary and back.
            if (id.rfind("dr-", 0) == 0) CHECK(n == 1);
        }
        for (const auto& [id, n] : on_primary) CHECK_MESSAGE(n == 1, id << " x" << n);
        CHECK(dr_dups <= bound);
        for (const auto& r : kcat_read(b.primary, topic))
            CHECK(header_value(r, origin_header) != std::optional<std::string>("primary"));
        const auto before = std::pair{end_offsets(b.primary, topic), end_offsets(b.dr, topic)};
        std::this_thread::sleep_for(10s);
        CHECK(std::pair{end_offsets(b.primary, topic), end_offsets(b.dr, topic)} == before);
        std::cout << "identity pair, SIGKILL of primary-to-dr mid-run: nothing lost, " << dr_dups
                  << " re-sent record(s) on dr (bound " << bound << "), no loop\n";
        p1->signal(SIGTERM);
        p2.signal(SIGTERM);
        CHECK(p1->wait(30s) == 0);
        CHECK(p2.wait(30s) == 0);
    }

    TEST_CASE("a_group_moves_primary_to_dr_and_back_under_identity_naming_without_skips") {
        // The rule asserted at each move: the group's new position on each
        // partition is the smallest offset whose record (by id) it had not
        // consumed on the cluster it left. Everything below was consumed
        // there, so nothing is skipped; the record at it was not, so no
        // re-read could have been avoided by a later position.
        const auto& b = testbed();
        const std::string topic = unique("events");
        const std::string group = unique("mover");
        create_topic(b.primary, topic, partitions);
        create_topic(b.dr, topic, partitions);
        const std::string cfg =
            write_file(unique("pair-move") + ".toml",
                       pair_config(topic, "identity", "sync_group_offsets = false\n"));
        daemon_process d(cfg, temp_dir() + "/" + unique("pair-move") + ".log");
        // Three phases, each replicated before the next, so both clusters
        // hold [primary-0 | dr-1 | primary-2] in the same order on every
        // partition. A group that stopped inside primary-0 resumes on dr
        // inside primary-0; one that stopped inside dr-1 resumes inside dr-1,
        // which only the reverse flow's runs can tell (the first unconsumed
        // primary record is far later, in primary-2).
        constexpr int per_phase = 500;
        write_phase(b.primary, topic, "primary", 0, per_phase);
        REQUIRE_EVENTUALLY(120s, end_offsets(b.dr, topic) == partitions * per_phase);
        write_phase(b.dr, topic, "dr", 1, per_phase);
        REQUIRE_EVENTUALLY(120s, end_offsets(b.primary, topic) == 2 * partitions * per_phase);
        write_phase(b.primary, topic, "primary", 2, per_phase);
        REQUIRE_EVENTUALLY(120s, end_offsets(b.dr, topic) == 3 * partitions * per_phase);

        // On primary: consume about half of every partition and commit.
        offsets on_primary;
        for (int32_t p = 0; p < partitions; ++p) on_primary[p] = per_phase - 50 + 20 * p;
        consume_and_commit(b.primary, topic, group, on_primary, "earliest");
        REQUIRE_EVENTUALLY(60s, checkpoints_reached(cfg, "primary-to-dr", group, on_primary));
        const auto expected_dr =
            expected_positions(b.dr, topic, ids_below(b.primary, topic, on_primary));
        const auto moved = run({ctl_bin(), "failover", "--config", cfg, "--flow", "primary-to-dr",
                                "--group", group, "--apply"});
        REQUIRE_MESSAGE(moved.exit_code == 0, show(moved));
        CHECK(moved.out.find("identity naming") != std::string::npos);
        const auto at_dr = committed_offsets(b.dr, group, topic, partitions);
        CHECK(at_dr == expected_dr);
        // How often dr's own records decided the position: then a
        // translation through primary-to-dr's runs alone would have skipped
        // dr records the group never saw.
        const auto consumed = ids_below(b.primary, topic, on_primary);
        int decided_by_own = 0;
        for (int32_t p = 0; p < partitions; ++p) {
            for (const auto& r : kcat_read(b.dr, topic, p)) {
                if (r.value->rfind("primary-", 0) == 0 && !consumed.count(*r.value)) {
                    if (r.offset > expected_dr.at(p)) ++decided_by_own;
                    break;
                }
            }
        }
        std::cout << "identity move: on " << decided_by_own << " of " << partitions
                  << " partitions dr's own records set the position\n";
        // Partitions 3-5 stopped inside dr-1 on primary (by construction).
        CHECK(decided_by_own == 3);

        // On dr: read on from there and commit further; then move back.
        offsets on_dr;
        for (const auto& [p, o] : at_dr) {
            // Into primary-2 on some partitions, still inside dr-1 on others.
            on_dr[p] = std::min<int64_t>(3 * per_phase, o + 300 + 150 * p);
        }
        consume_and_commit(b.dr, topic, group, on_dr, "error");
        REQUIRE_EVENTUALLY(60s, checkpoints_reached(cfg, "dr-to-primary", group, on_dr));
        const auto expected_primary =
            expected_positions(b.primary, topic, ids_below(b.dr, topic, on_dr));
        // Failback through the forward flow's runs (--reverse, a plan) gives
        // the same positions as a failover through the reverse flow.
        const auto plan = run({ctl_bin(), "failover", "--config", cfg, "--flow", "primary-to-dr",
                               "--group", group, "--reverse", "--json"});
        REQUIRE_MESSAGE(plan.exit_code == 0, show(plan));
        offsets planned;
        static const std::regex row(
            R"re("partition":(\d+),"current_offset":(-?\d+),"new_offset":(-?\d+))re");
        for (auto it = std::sregex_iterator(plan.out.begin(), plan.out.end(), row);
             it != std::sregex_iterator(); ++it)
            planned[std::stoi((*it)[1])] = std::stoll((*it)[3]);
        CHECK(planned == expected_primary);
        const auto back = run({ctl_bin(), "failover", "--config", cfg, "--flow", "dr-to-primary",
                               "--group", group, "--apply"});
        REQUIRE_MESSAGE(back.exit_code == 0, show(back));
        const auto at_primary = committed_offsets(b.primary, group, topic, partitions);
        CHECK(at_primary == expected_primary);
        std::cout << "identity pair: group moved primary -> dr -> primary; each new position is "
                     "the first record it had not consumed\n";
        d.signal(SIGTERM);
        CHECK(d.wait(30s) == 0);
    }
}
