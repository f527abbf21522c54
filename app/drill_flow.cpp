// The replication drill, `replicatorctl drill --flow NAME`: what a failover
// of the flow would cost right now, measured against the config's targets,
// without touching a real consumer group.
//
//   just before T0: the selected groups' commits, the flow's own commits
//   T0:             source end offsets of every mirrored partition
//     │
//     ├─ RPO    records and seconds of data not yet on the target at T0; time
//     │         until the flow's commits (it commits only what the target
//     │         acknowledged) pass the T0 end offsets
//     ├─ RTO    read the checkpoints (as failover does) ──> commit into
//     │         drill.<group> on the target ──> a consumer there reads its
//     │         first record; one consumer per group, in parallel
//     └─ exact  each group's T0 commit translated through the offset runs
//               (caught up from the target into a scratch store, as the
//               checkpointer translates); the target record there equals,
//               by content, the source record the group would read next
//
// Invariants: commits go only to groups named drill.<group>, never to the
// group itself; the drill groups are deleted afterwards unless --keep; the
// waits of each step are bounded by --timeout. Thread model: the caller's
// thread, plus one thread per group while the RTO consumers read their first
// record.
#include "app/drill.h"
#include "app/plan.h"
#include "checkpoint/checkpointer.h"
#include "checkpoint/failover.h"
#include "conf/topic_policy.h"
#include "kafka/admin.h"
#include "kafka/consumer.h"
#include "kafka/mm2.h"
#include "kafka/reader.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace rpl::app {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using tp_key = std::pair<std::string, int32_t>;  // topic, partition

constexpr std::string_view drill_prefix = "drill.";

int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double secs(steady::duration d) { return std::chrono::duration<double>(d).count(); }

std::string fixed3(double v) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(3) << v;
    return o.str();
}

std::string utc(int64_t ms) {
    const std::time_t s = static_cast<std::time_t>(ms / 1000);
    std::tm t{};
    gmtime_r(&s, &t);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &t);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", date, static_cast<int>(ms % 1000));
    return out;
}

std::string with_commas(int64_t v) {
    const std::string digits = std::to_string(v < 0 ? -v : v);
    std::string out = v < 0 ? "-" : "";
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// ------------------------------------------------------------ records

// A record as the drill compares it: key, value, headers (without the
// provenance header the flow may add) and timestamp.
struct content {
    int64_t offset = -1;
    int64_t timestamp = -1;
    std::optional<std::string> key;    // nullopt: null key
    std::optional<std::string> value;  // nullopt: tombstone
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

content content_of(const kafka::message& m) {
    content c;
    c.offset = m.offset();
    c.timestamp = m.timestamp();
    if (m.key() != nullptr) c.key.emplace(static_cast<const char*>(m.key()), m.key_size());
    if (m.value() != nullptr) c.value.emplace(static_cast<const char*>(m.value()), m.value_size());
    m.for_each_header([&](const kafka::record_header& h) {
        if (h.name == conf::provenance_header) return;
        std::optional<std::string> v;
        if (h.value != nullptr) v.emplace(static_cast<const char*>(h.value), h.size);
        c.headers.emplace_back(std::string(h.name), std::move(v));
    });
    return c;
}

// Why two records differ, or "" if they are the same by content.
std::string difference(const content& src, const content& dst) {
    std::string d;
    auto add = [&](const char* what) { d += (d.empty() ? "" : ", ") + std::string(what); };
    if (src.key != dst.key) add("key");
    if (src.value != dst.value) add("value");
    if (src.headers != dst.headers) add("headers");
    if (src.timestamp != dst.timestamp) add("timestamp");
    return d;
}

// The first record at or after `offset` (nullopt: the partition ends first).
Result<std::optional<content>> first_at(kafka::reader& rd, const std::string& topic, int32_t p,
                                        int64_t offset, steady::time_point deadline) {
    RPL_TRY(rd.assign(topic, p, offset));
    const std::string where = topic + "/" + std::to_string(p) + " at offset " +
                              std::to_string(offset) + " on " + rd.client().where().describe();
    while (steady::now() < deadline) {
        kafka::message m = rd.poll(200ms);
        if (!m) continue;
        if (m.topic() != topic || m.partition() != p) continue;  // a stale assignment's
        if (m.err() == RD_KAFKA_RESP_ERR__PARTITION_EOF) return std::optional<content>{};
        if (m.err()) return fail(errc::kafka, "read " + where + ": " + m.error_string());
        if (m.offset() < offset) continue;
        return std::optional<content>{content_of(m)};
    }
    return fail(errc::timeout, "read " + where + ": no record and no end within --timeout");
}

// ------------------------------------------------------------ results

struct partition_check {
    std::string source_topic;
    std::string target_topic;
    int32_t partition = 0;
    int64_t committed = -1;   // the group's commit on the source, just before T0
    int64_t translated = -1;  // where it resumes on the target (offset runs)
    std::string translation;  // offsetsync match kind
    int64_t checkpoint_upstream = -1;
    int64_t checkpoint_target = -1;
    bool exact = false;
    std::string detail;  // why not exact, or what "exact" rests on
};

struct group_check {
    std::string group;
    std::string drill_group;
    std::vector<partition_check> parts;
    int64_t checkpoint_age_ms = -1;  // of the group's newest checkpoint
    double rto_seconds = -1;         // from the start of the failover path to its first record
    std::string first_record;        // how the RTO consumer finished
    std::string error;               // why the RTO consumer did not finish
    [[nodiscard]] size_t exact_count() const {
        return static_cast<size_t>(
            std::count_if(parts.begin(), parts.end(), [](const auto& p) { return p.exact; }));
    }
    [[nodiscard]] bool exact() const { return !parts.empty() && exact_count() == parts.size(); }
};

struct partition_t0 {
    std::string topic;
    int32_t partition = 0;
    int64_t low = 0;
    int64_t end = 0;              // at T0
    int64_t flow_committed = -1;  // the flow's commit just before T0
    [[nodiscard]] int64_t replicated() const { return std::max(flow_committed, low); }
    [[nodiscard]] int64_t behind() const { return std::max<int64_t>(0, end - replicated()); }
};

struct verdict {
    std::string text;  // PASS, FAIL, no target
    [[nodiscard]] bool failed() const { return text == "FAIL"; }
};

verdict judge(double measured, const std::optional<conf::duration>& target, bool complete) {
    if (!complete) return {"FAIL"};
    if (!target) return {"no target"};
    return {measured * 1000.0 <= static_cast<double>(target->count()) ? "PASS" : "FAIL"};
}

std::string target_text(const std::optional<conf::duration>& t) {
    return t ? conf::format_duration(*t) : "none";
}

// ------------------------------------------------------------ the drill

class flow_drill {
public:
    flow_drill(const conf::Config& cfg, const conf::flow_config& flow, const drill_args& args)
        : cfg_(cfg),
          flow_(flow),
          args_(args),
          policy_(flow),
          source_(endpoint_of(*cfg.cluster(flow.source))),
          target_(endpoint_of(*cfg.cluster(flow.target))),
          deadline_(steady::now() + args.timeout),
          log_("drill " + flow.name) {}

    // Runs every step; an error is one that leaves nothing to report
    // (a cluster that does not answer, a failed listing).
    Result<void> run();
    void clean_up();
    [[nodiscard]] std::string markdown() const;
    [[nodiscard]] std::string json() const;
    [[nodiscard]] bool passed() const { return failures_.empty(); }

private:
    [[nodiscard]] kafka::deadline_ms remaining() const {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - steady::now());
        return std::max<std::chrono::milliseconds>(left, 1s);
    }
    void next_step() { deadline_ = steady::now() + args_.timeout; }
    Result<void> take_t0();
    Result<void> wait_for_catch_up();
    Result<void> measure_rto();
    Result<void> check_exact();
    void judge_all();

    const conf::Config& cfg_;
    const conf::flow_config& flow_;
    const drill_args& args_;
    const conf::topic_policy policy_;
    const kafka::endpoint source_;
    const kafka::endpoint target_;
    // Each step (T0, catch-up, RTO, exact resume) gets --timeout of its
    // own, so a flow that never catches up still gets its other results.
    steady::time_point deadline_;
    const Logger log_;
    std::optional<kafka::Client> source_admin_;
    std::optional<kafka::Client> target_admin_;

    // T0
    int64_t t0_ms_ = 0;
    steady::time_point t0_{};
    std::vector<partition_t0> parts_;
    std::map<std::string, kafka::partition_list> commits_;  // group -> mirrored commits
    // RPO
    int64_t at_risk_records_ = 0;
    double at_risk_seconds_ = 0;
    double catch_up_seconds_ = -1;
    bool caught_up_ = false;
    std::string catch_up_note_;
    // RTO
    double translate_seconds_ = -1;
    double rto_seconds_ = -1;
    std::string slowest_group_;
    std::vector<checkpoint::stored_checkpoint> checkpoints_;
    int64_t checkpoints_read_ms_ = 0;
    int64_t newest_checkpoint_ms_ = -1;
    // Results
    std::vector<group_check> groups_;
    std::vector<std::string> drill_groups_made_;
    std::string drill_groups_state_ = "none created";
    verdict rpo_verdict_;
    verdict rto_verdict_;
    std::vector<std::string> failures_;
};

Result<void> flow_drill::run() {
    RPL_TRY(sa, kafka::Client::create(kafka::client_kind::producer, source_, {{"log_level", "3"}},
                                      log_));
    source_admin_.emplace(std::move(sa));
    RPL_TRY(ta, kafka::Client::create(kafka::client_kind::producer, target_, {{"log_level", "3"}},
                                      log_));
    target_admin_.emplace(std::move(ta));
    RPL_TRY(take_t0());
    next_step();
    RPL_TRY(wait_for_catch_up());
    next_step();
    RPL_TRY(measure_rto());
    next_step();
    RPL_TRY(check_exact());
    judge_all();
    return ok();
}

// The groups' commits and the flow's commits are read before T0 and the end
// offsets after it, so a group's commit never lies beyond the T0 end, and
// the flow's progress is if anything understated (data at risk overstated).
Result<void> flow_drill::take_t0() {
    RPL_TRY(md, kafka::probe(source_, std::min<kafka::deadline_ms>(remaining(), 15s), log_));
    RPL_TRY(tmd, kafka::probe(target_, std::min<kafka::deadline_ms>(remaining(), 15s), log_));
    (void)tmd;
    for (const auto& t : md.topics) {
        // replicatord's own heartbeats are mirrored too, but they are not data.
        if (t.err || t.name == conf::heartbeats_topic || !policy_.mirrored(t.name)) continue;
        for (const auto& p : t.partitions) parts_.push_back({t.name, p.id});
    }
    std::sort(parts_.begin(), parts_.end(), [](const auto& a, const auto& b) {
        return tp_key(a.topic, a.partition) < tp_key(b.topic, b.partition);
    });
    if (parts_.empty()) {
        std::string patterns;
        for (const auto& t : flow_.topics) patterns += (patterns.empty() ? "" : ", ") + t;
        return fail(errc::not_found, "flow " + flow_.name + " mirrors no topic on " +
                                         source_.describe() + " (topics: " + patterns + ")");
    }
    std::set<std::string> mirrored;
    for (const auto& p : parts_) mirrored.insert(p.topic);

    kafka::admin sadm(*source_admin_, std::min<kafka::deadline_ms>(remaining(), 15s));
    const checkpoint::group_filter filter(flow_);
    std::optional<std::regex> narrow;
    if (!args_.groups_regex.empty()) narrow.emplace(args_.groups_regex, std::regex::ECMAScript);
    RPL_TRY(listed, sadm.list_groups());
    std::vector<std::string> names;
    for (const auto& g : listed) {
        if (!filter.selected(g.group_id)) continue;
        if (g.group_id.rfind(drill_prefix, 0) == 0) continue;  // a drill's own copy
        if (narrow && !std::regex_match(g.group_id, *narrow)) continue;
        names.push_back(g.group_id);
    }
    std::sort(names.begin(), names.end());
    for (const auto& g : names) {
        RPL_TRY(offs, sadm.list_group_offsets(g));
        kafka::partition_list mine;
        for (const auto& tp : offs)
            if (mirrored.contains(tp.topic) && tp.offset >= 0) mine.push_back(tp);
        if (mine.empty()) continue;
        std::sort(mine.begin(), mine.end());
        commits_[g] = std::move(mine);
    }
    RPL_TRY(own, sadm.list_group_offsets("replicatord." + flow_.name));
    std::map<tp_key, int64_t> flow_commits;
    for (const auto& tp : own) flow_commits[{tp.topic, tp.partition}] = tp.offset;

    t0_ms_ = unix_ms_now();
    t0_ = steady::now();
    RPL_TRY(rd, kafka::reader::create(source_, {{"log_level", "3"}}, log_));
    for (auto& p : parts_) {
        RPL_TRY(wm, rd.query_watermarks(p.topic, p.partition,
                                        std::min<kafka::deadline_ms>(remaining(), 15s)));
        p.low = wm.low;
        p.end = wm.high;
        const auto it = flow_commits.find({p.topic, p.partition});
        if (it != flow_commits.end()) p.flow_committed = it->second;
    }
    // Data at risk: what the target did not hold at T0, and how old the
    // oldest of it was.
    int64_t oldest = -1;
    for (auto& p : parts_) {
        if (p.behind() == 0) continue;
        at_risk_records_ += p.behind();
        RPL_TRY(first, first_at(rd, p.topic, p.partition, p.replicated(), deadline_));
        if (!first) continue;  // markers only
        if (oldest < 0 || first->timestamp < oldest) oldest = first->timestamp;
    }
    if (oldest >= 0)
        at_risk_seconds_ = std::max<double>(0, static_cast<double>(t0_ms_ - oldest) / 1000.0);
    log_.info("T0 " + utc(t0_ms_) + ": " + std::to_string(parts_.size()) + " partition(s), " +
              std::to_string(at_risk_records_) + " record(s) not yet on " + flow_.target + ", " +
              std::to_string(commits_.size()) + " group(s) selected");
    return ok();
}

// The flow commits a source offset only after the target acknowledged every
// record below it (and after the offset runs covering them are published),
// so its commits passing the T0 ends means the target holds everything
// written before T0. The commit cadence (200 ms) makes this an upper bound.
Result<void> flow_drill::wait_for_catch_up() {
    if (at_risk_records_ == 0) {  // the target held everything already
        caught_up_ = true;
        catch_up_seconds_ = 0;
        return ok();
    }
    kafka::admin sadm(*source_admin_, 15s);
    const std::string group = "replicatord." + flow_.name;
    std::string behind;
    for (;;) {
        auto own = sadm.list_group_offsets(group);
        if (own) {
            std::map<tp_key, int64_t> now;
            for (const auto& tp : own.value()) now[{tp.topic, tp.partition}] = tp.offset;
            behind.clear();
            int64_t missing = 0;
            for (const auto& p : parts_) {
                const auto it = now.find({p.topic, p.partition});
                const int64_t have = std::max(it == now.end() ? int64_t{-1} : it->second, p.low);
                if (have < p.end) {
                    missing += p.end - have;
                    if (behind.size() < 200)
                        behind += " " + p.topic + "/" + std::to_string(p.partition) + ":" +
                                  std::to_string(p.end - have);
                }
            }
            if (missing == 0) {
                caught_up_ = true;
                catch_up_seconds_ = secs(steady::now() - t0_);
                return ok();
            }
        } else if (own.error().code != errc::timeout && own.error().code != errc::unreachable) {
            return own.error();
        }
        if (steady::now() >= deadline_) break;
        std::this_thread::sleep_for(100ms);
    }
    catch_up_seconds_ = secs(steady::now() - t0_);
    catch_up_note_ = "the target did not hold everything written before T0 within --timeout " +
                     conf::format_duration(args_.timeout) + "; still missing (records):" + behind;
    return ok();
}

struct rto_probe {
    std::string first_record;
    std::string error;
    steady::time_point done{};
};

// A consumer in the drill group reads its first record, as the application
// would after failover. If every committed position is at the target's end
// there is nothing to read: it then stops once the assignment and positions
// are confirmed.
rto_probe probe_group(const kafka::endpoint& target, const std::string& drill_group,
                      const std::vector<std::string>& topics, bool nothing_to_read,
                      steady::time_point deadline, const Logger& log) {
    rto_probe out;
    auto c = kafka::consumer::create(target, drill_group,
                                     {{"log_level", "3"}, {"auto.offset.reset", "latest"}}, log);
    if (!c) {
        out.error = c.error().message;
        return out;
    }
    auto& cons = c.value();
    if (auto r = cons.subscribe(topics); !r) {
        out.error = r.error().message;
        return out;
    }
    std::vector<kafka::message> batch;
    std::string last_error;
    while (steady::now() < deadline) {
        batch.clear();
        cons.poll(batch, 1, 100ms);
        for (const auto& m : batch) {
            if (m.err()) {
                last_error = m.error_string();
                continue;
            }
            out.done = steady::now();
            out.first_record = "read " + std::string(m.topic()) + "/" +
                               std::to_string(m.partition()) + " offset " +
                               std::to_string(m.offset());
            cons.close(5s);
            return out;
        }
        if (nothing_to_read) {
            const auto assigned = cons.assignment();
            if (assigned.empty()) continue;
            const auto pos = cons.positions(assigned);
            if (std::all_of(pos.begin(), pos.end(),
                            [](const auto& tp) { return tp.offset >= 0; })) {
                out.done = steady::now();
                out.first_record =
                    "nothing to read past the committed positions: assignment "
                    "and positions confirmed";
                cons.close(5s);
                return out;
            }
        }
    }
    out.error = "no first record within --timeout" +
                (last_error.empty() ? std::string() : " (last consumer error: " + last_error + ")");
    cons.close(5s);
    return out;
}

Result<void> flow_drill::measure_rto() {
    for (const auto& [g, _] : commits_) {
        group_check gc;
        gc.group = g;
        gc.drill_group = std::string(drill_prefix) + g;
        groups_.push_back(std::move(gc));
    }
    if (groups_.empty()) return ok();

    // 1. translate: the checkpoints on the target, as `failover` reads them.
    const auto start = steady::now();
    RPL_TRY(cps, checkpoint::read_checkpoints(target_, flow_.source, remaining(), log_));
    checkpoints_ = std::move(cps);
    checkpoints_read_ms_ = unix_ms_now();
    const auto rows = checkpoint::rows_for(flow_, checkpoints_, "");
    translate_seconds_ = secs(steady::now() - start);
    for (const auto& s : checkpoints_)
        if (!policy_.source_topic_of(s.cp.topic).empty())
            newest_checkpoint_ms_ = std::max(newest_checkpoint_ms_, s.timestamp_ms);

    // 2. commit into drill.<group> (never the group itself).
    kafka::admin tadm(*target_admin_, std::min<kafka::deadline_ms>(remaining(), 15s));
    RPL_TRY(rd, kafka::reader::create(target_, {{"log_level", "3"}}, log_));
    struct plan {
        std::vector<std::string> topics;
        bool nothing_to_read = true;
        bool ready = false;
    };
    std::vector<plan> plans(groups_.size());
    for (size_t i = 0; i < groups_.size(); ++i) {
        auto& gc = groups_[i];
        kafka::partition_list commit;
        std::set<std::string> topics;
        int64_t newest = -1;
        for (const auto& s : checkpoints_)
            if (s.cp.group == gc.group && !policy_.source_topic_of(s.cp.topic).empty())
                newest = std::max(newest, s.timestamp_ms);
        if (newest >= 0) gc.checkpoint_age_ms = std::max<int64_t>(0, checkpoints_read_ms_ - newest);
        for (const auto& r : rows) {
            if (r.group != gc.group) continue;
            commit.push_back({r.topic, r.partition, r.target_offset});
            topics.insert(r.topic);
            RPL_TRY(wm, rd.query_watermarks(r.topic, r.partition,
                                            std::min<kafka::deadline_ms>(remaining(), 15s)));
            if (r.target_offset < wm.high) plans[i].nothing_to_read = false;
        }
        if (commit.empty()) {
            gc.error = "no checkpoint for the group in " +
                       kafka::mm2::checkpoints_topic(flow_.source) + " on " + flow_.target +
                       ": a failover would not move it";
            continue;
        }
        if (gc.drill_group.rfind(drill_prefix, 0) != 0)  // the one rule: never a real group
            return fail(errc::internal, "refusing to commit into " + gc.drill_group);
        // A drill group in use means another drill is running; a group
        // that does not exist yet is the usual case (described as Dead).
        if (auto desc = tadm.describe_group(gc.drill_group); desc && desc.value().members > 0) {
            gc.error = "drill group " + gc.drill_group + " has " +
                       std::to_string(desc.value().members) + " active member(s) on " +
                       flow_.target + "; another drill running?";
            continue;
        }
        RPL_TRY(tadm.alter_group_offsets(gc.drill_group, commit));
        drill_groups_made_.push_back(gc.drill_group);
        plans[i].topics.assign(topics.begin(), topics.end());
        plans[i].ready = true;
    }

    // 3. one consumer per group, in parallel, as the applications would start.
    std::vector<rto_probe> probes(groups_.size());
    {
        std::vector<std::thread> threads;
        for (size_t i = 0; i < groups_.size(); ++i) {
            if (!plans[i].ready) continue;
            threads.emplace_back([&, i] {
                probes[i] = probe_group(target_, groups_[i].drill_group, plans[i].topics,
                                        plans[i].nothing_to_read, deadline_, log_);
            });
        }
        for (auto& t : threads) t.join();
    }
    double slowest = -1;
    bool all_done = true;
    for (size_t i = 0; i < groups_.size(); ++i) {
        auto& gc = groups_[i];
        if (!plans[i].ready) {
            all_done = false;
            continue;
        }
        if (!probes[i].error.empty()) {
            gc.error = probes[i].error;
            all_done = false;
            continue;
        }
        gc.first_record = probes[i].first_record;
        gc.rto_seconds = secs(probes[i].done - start);
        if (gc.rto_seconds > slowest) {
            slowest = gc.rto_seconds;
            slowest_group_ = gc.group;
        }
    }
    rto_seconds_ = all_done ? slowest : secs(steady::now() - start);
    return ok();
}

Result<void> flow_drill::check_exact() {
    if (groups_.empty()) return ok();
    // The offset runs as the checkpointer and failback translate through
    // them, caught up from the target into a scratch store.
    char tmpl[] = "/tmp/replicatorctl-drill-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
        return fail(errc::io, "cannot create a scratch directory in /tmp");
    struct remove_dir {
        std::string path;
        ~remove_dir() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    } scratch{tmpl};
    RPL_TRY(runs, offsetsync::store::open(scratch.path, log_));
    RPL_TRY(caught, offsetsync::catch_up(target_, *runs, remaining(), log_));
    (void)caught;

    std::map<tp_key, int64_t> end_t0;
    for (const auto& p : parts_) end_t0[{p.topic, p.partition}] = p.end;
    std::map<std::tuple<std::string, std::string, int32_t>, const kafka::mm2::checkpoint*> cp_of;
    for (const auto& s : checkpoints_) cp_of[{s.cp.group, s.cp.topic, s.cp.partition}] = &s.cp;

    RPL_TRY(src, kafka::reader::create(source_, {{"log_level", "3"}}, log_));
    RPL_TRY(dst, kafka::reader::create(target_, {{"log_level", "3"}}, log_));
    for (auto& gc : groups_) {
        const auto& commits = commits_.at(gc.group);
        const size_t n = args_.sample
                             ? std::min<size_t>(static_cast<size_t>(*args_.sample), commits.size())
                             : commits.size();
        for (size_t i = 0; i < n; ++i) {
            const auto& tp = commits[i];
            partition_check pc;
            pc.source_topic = tp.topic;
            pc.target_topic = policy_.target_topic(tp.topic);
            pc.partition = tp.partition;
            pc.committed = tp.offset;
            if (const auto it = cp_of.find({gc.group, pc.target_topic, pc.partition});
                it != cp_of.end()) {
                pc.checkpoint_upstream = it->second->upstream_offset;
                pc.checkpoint_target = it->second->downstream_offset;
            }
            auto tr = runs->translate(flow_.name, pc.source_topic, pc.partition, pc.committed);
            if (!tr) {
                pc.detail = "no offset runs for the partition: " + tr.error().message;
                gc.parts.push_back(std::move(pc));
                continue;
            }
            pc.translated = tr.value().target_offset;
            pc.translation = offsetsync::to_string(tr.value().kind);
            std::string why;
            if (tr.value().kind == offsetsync::match_kind::past_end) {
                // Nothing at or after the commit was replicated. Fine if the
                // group had consumed everything written before T0 and its
                // position is the end of the replicated range.
                RPL_TRY(ends, runs->end_offsets(flow_.name, pc.source_topic, pc.partition));
                if (pc.committed < end_t0[{pc.source_topic, pc.partition}])
                    why = "commit beyond replicated data (records " + std::to_string(pc.committed) +
                          ".. written before T0 are not on " + flow_.target + ")";
                else if (pc.translated != ends.dst_end)
                    why = "at the end, but the translated position " +
                          std::to_string(pc.translated) + " is not the replicated end " +
                          std::to_string(ends.dst_end);
                else
                    pc.detail = "at the end: nothing to consume on either side";
            } else {
                // A read that fails is this partition's result, not the drill's.
                auto want = first_at(src, pc.source_topic, pc.partition, pc.committed, deadline_);
                auto have =
                    want ? first_at(dst, pc.target_topic, pc.partition, pc.translated, deadline_)
                         : Result<std::optional<content>>(std::optional<content>{});
                if (!want)
                    why = "could not read the source record: " + want.error().message;
                else if (!have)
                    why = "could not read the target record: " + have.error().message;
                else if (!want.value())
                    why = "no source record at or after the commit (retention?)";
                else if (!have.value())
                    why = "no target record at the translated position";
                else if (const auto d = difference(*want.value(), *have.value()); !d.empty())
                    why = "target record differs in " + d + " (source offset " +
                          std::to_string(want.value()->offset) + ", target offset " +
                          std::to_string(have.value()->offset) + ")";
                else if (have.value()->offset != pc.translated)
                    why = "the translated position " + std::to_string(pc.translated) +
                          " holds no record; the next is at " +
                          std::to_string(have.value()->offset);
                else
                    pc.detail = "same record: source offset " +
                                std::to_string(want.value()->offset) + " = target offset " +
                                std::to_string(have.value()->offset);
            }
            if (why.empty() && pc.checkpoint_upstream < 0) why = "no checkpoint";
            if (why.empty() && pc.checkpoint_upstream == pc.committed &&
                pc.checkpoint_target != pc.translated)
                why = "checkpoint says " + std::to_string(pc.checkpoint_target) +
                      " for this commit, the offset runs say " + std::to_string(pc.translated);
            if (why.empty() && pc.checkpoint_upstream >= 0 && pc.checkpoint_upstream < pc.committed)
                pc.detail += "; the last checkpoint is " +
                             std::to_string(pc.committed - pc.checkpoint_upstream) +
                             " record(s) behind the commit (a failover now re-reads them)";
            pc.exact = why.empty();
            if (!pc.exact) pc.detail = why;
            gc.parts.push_back(std::move(pc));
        }
    }
    return ok();
}

void flow_drill::judge_all() {
    const double rpo = std::max(at_risk_seconds_, catch_up_seconds_);
    rpo_verdict_ = judge(rpo, flow_.rpo_target, caught_up_);
    if (!caught_up_)
        failures_.push_back("RPO: " + catch_up_note_);
    else if (rpo_verdict_.failed())
        failures_.push_back("RPO target missed: measured " + fixed3(rpo) + " s > rpo_target " +
                            target_text(flow_.rpo_target));
    const bool rto_complete =
        std::all_of(groups_.begin(), groups_.end(), [](const auto& g) { return g.error.empty(); });
    rto_verdict_ = groups_.empty() ? verdict{"no groups"}
                                   : judge(rto_seconds_, flow_.rto_target, rto_complete);
    if (rto_verdict_.failed() && rto_complete)
        failures_.push_back("RTO target missed: measured " + fixed3(rto_seconds_) +
                            " s > rto_target " + target_text(flow_.rto_target) +
                            " (slowest group " + slowest_group_ + ")");
    for (const auto& g : groups_) {
        if (!g.error.empty()) failures_.push_back("group " + g.group + ": " + g.error);
        for (const auto& p : g.parts)
            if (!p.exact)
                failures_.push_back("group " + g.group + " " + p.target_topic + "/" +
                                    std::to_string(p.partition) +
                                    " would not resume exactly: " + p.detail);
    }
}

// The drill groups go away unless --keep.
void flow_drill::clean_up() {
    if (drill_groups_made_.empty()) return;
    if (args_.keep) {
        drill_groups_state_ = "kept (--keep): ";
        for (size_t i = 0; i < drill_groups_made_.size(); ++i)
            drill_groups_state_ += (i ? ", " : "") + drill_groups_made_[i];
        return;
    }
    kafka::admin tadm(*target_admin_, 15s);
    std::string left;
    for (const auto& g : drill_groups_made_) {
        auto r = tadm.delete_group(g);
        if (!r && r.error().code != errc::not_found)
            left += (left.empty() ? "" : "; ") + g + ": " + r.error().message;
    }
    drill_groups_state_ = left.empty() ? "deleted" : "not all deleted: " + left;
    if (!left.empty()) log_.warn("drill groups " + drill_groups_state_);
}

// ------------------------------------------------------------ reports

std::string flow_drill::json() const {
    auto q = [](std::string_view s) { return conf::quoted_string(s); };
    auto num_or_null = [](double v) { return v < 0 ? std::string("null") : fixed3(v); };
    auto target = [&](const std::optional<conf::duration>& t) {
        return t ? fixed3(static_cast<double>(t->count()) / 1000.0) : std::string("null");
    };
    std::ostringstream o;
    size_t behind_parts = 0;
    for (const auto& p : parts_) behind_parts += p.behind() > 0 ? 1 : 0;
    const double rpo = std::max(at_risk_seconds_, catch_up_seconds_);
    o << "{\"kind\":\"flow\",\"flow\":" << q(flow_.name) << ",\"source\":" << q(flow_.source)
      << ",\"target\":" << q(flow_.target) << ",\"source_bootstrap\":" << q(source_.bootstrap)
      << ",\"target_bootstrap\":" << q(target_.bootstrap) << ",\"t0\":" << q(utc(t0_ms_))
      << ",\"t0_unix_ms\":" << t0_ms_ << ",\"passed\":" << (passed() ? "true" : "false");
    o << ",\"rpo\":{\"seconds\":" << fixed3(rpo)
      << ",\"data_at_risk_seconds\":" << fixed3(at_risk_seconds_)
      << ",\"data_at_risk_records\":" << at_risk_records_
      << ",\"catch_up_seconds\":" << num_or_null(catch_up_seconds_)
      << ",\"caught_up\":" << (caught_up_ ? "true" : "false") << ",\"partitions\":" << parts_.size()
      << ",\"partitions_behind\":" << behind_parts
      << ",\"target_seconds\":" << target(flow_.rpo_target)
      << ",\"result\":" << q(rpo_verdict_.text) << "}";
    o << ",\"rto\":{\"seconds\":" << num_or_null(rto_seconds_)
      << ",\"translate_seconds\":" << num_or_null(translate_seconds_)
      << ",\"slowest_group\":" << q(slowest_group_)
      << ",\"target_seconds\":" << target(flow_.rto_target)
      << ",\"result\":" << q(rto_verdict_.text) << "}";
    o << ",\"checkpoint_age_seconds\":"
      << (newest_checkpoint_ms_ < 0 ? std::string("null")
                                    : fixed3(static_cast<double>(std::max<int64_t>(
                                                 0, checkpoints_read_ms_ - newest_checkpoint_ms_)) /
                                             1000.0));
    o << ",\"groups\":[";
    for (size_t g = 0; g < groups_.size(); ++g) {
        const auto& gc = groups_[g];
        o << (g ? "," : "") << "{\"group\":" << q(gc.group)
          << ",\"drill_group\":" << q(gc.drill_group)
          << ",\"exact\":" << (gc.exact() ? "true" : "false")
          << ",\"partitions_checked\":" << gc.parts.size()
          << ",\"partitions_exact\":" << gc.exact_count() << ",\"checkpoint_age_seconds\":"
          << num_or_null(gc.checkpoint_age_ms < 0
                             ? -1.0
                             : static_cast<double>(gc.checkpoint_age_ms) / 1000.0)
          << ",\"rto_seconds\":" << num_or_null(gc.rto_seconds)
          << ",\"first_record\":" << q(gc.first_record) << ",\"error\":" << q(gc.error)
          << ",\"partitions\":[";
        for (size_t i = 0; i < gc.parts.size(); ++i) {
            const auto& p = gc.parts[i];
            o << (i ? "," : "") << "{\"source_topic\":" << q(p.source_topic)
              << ",\"target_topic\":" << q(p.target_topic) << ",\"partition\":" << p.partition
              << ",\"committed\":" << p.committed << ",\"translated\":" << p.translated
              << ",\"translation\":" << q(p.translation)
              << ",\"checkpoint_upstream\":" << p.checkpoint_upstream
              << ",\"checkpoint_target\":" << p.checkpoint_target
              << ",\"exact\":" << (p.exact ? "true" : "false") << ",\"detail\":" << q(p.detail)
              << "}";
        }
        o << "]}";
    }
    o << "],\"drill_groups\":" << q(drill_groups_state_) << ",\"failures\":[";
    for (size_t i = 0; i < failures_.size(); ++i) o << (i ? "," : "") << q(failures_[i]);
    o << "]}\n";
    return o.str();
}

std::string flow_drill::markdown() const {
    std::ostringstream o;
    const double rpo = std::max(at_risk_seconds_, catch_up_seconds_);
    size_t behind_parts = 0;
    for (const auto& p : parts_) behind_parts += p.behind() > 0 ? 1 : 0;
    size_t checked = 0, exact = 0;
    for (const auto& g : groups_) {
        checked += g.parts.size();
        exact += g.exact_count();
    }
    const size_t exact_groups = static_cast<size_t>(
        std::count_if(groups_.begin(), groups_.end(), [](const auto& g) { return g.exact(); }));

    o << "# DR drill: flow " << flow_.name << " (" << flow_.source << " -> " << flow_.target
      << ")\n\n";
    o << "- T0: " << utc(t0_ms_) << "\n";
    o << "- source: " << source_.describe() << "; target: " << target_.describe() << "\n";
    o << "- result: **" << (passed() ? "PASS" : "FAIL") << "**\n\n";
    o << "| measure | measured | target | result |\n| --- | --- | --- | --- |\n";
    o << "| RPO | " << fixed3(rpo) << " s (" << with_commas(at_risk_records_)
      << " records at risk at T0) | " << target_text(flow_.rpo_target) << " | " << rpo_verdict_.text
      << " |\n";
    o << "| RTO | " << (rto_seconds_ < 0 ? std::string("-") : fixed3(rto_seconds_) + " s")
      << (slowest_group_.empty() ? "" : " (slowest group: " + slowest_group_ + ")") << " | "
      << target_text(flow_.rto_target) << " | " << rto_verdict_.text << " |\n\n";

    o << "## Replication at T0\n\n";
    o << "- Data at risk had " << flow_.source
      << " been lost at T0: " << with_commas(at_risk_records_) << " records in " << behind_parts
      << " of " << parts_.size() << " partitions, the oldest written " << fixed3(at_risk_seconds_)
      << " s before T0.\n";
    if (caught_up_)
        o << "- Catch-up: " << flow_.target << " held everything written before T0 "
          << fixed3(catch_up_seconds_) << " s after T0.\n";
    else
        o << "- Catch-up: " << catch_up_note_ << "\n";
    o << "- Measured RPO = the larger of the two (" << fixed3(rpo) << " s).\n";
    if (newest_checkpoint_ms_ >= 0)
        o << "- Newest checkpoint in " << kafka::mm2::checkpoints_topic(flow_.source) << ": "
          << fixed3(static_cast<double>(
                        std::max<int64_t>(0, checkpoints_read_ms_ - newest_checkpoint_ms_)) /
                    1000.0)
          << " s old (every " << conf::format_duration(flow_.checkpoint_interval)
          << ", a checkpoint is written for each group position that changed).\n";
    else
        o << "- No checkpoint of this flow found in " << kafka::mm2::checkpoints_topic(flow_.source)
          << " on " << flow_.target << ".\n";
    o << "\n## Groups\n\n";
    if (groups_.empty()) {
        o << "No selected group has committed offsets on the flow's topics.\n";
    } else {
        o << "Exact resume: " << exact_groups << " of " << groups_.size() << " groups, " << exact
          << " of " << checked << " partitions"
          << (args_.sample ? " (sample of " + std::to_string(*args_.sample) + " per group)" : "")
          << ". RTO: reading the checkpoints took " << fixed3(translate_seconds_) << " s.\n\n";
        o << "| group | exact partitions | checkpoint age | RTO | first record on " << flow_.target
          << " |\n| --- | --- | --- | --- | --- |\n";
        for (const auto& g : groups_)
            o << "| " << g.group << " | " << g.exact_count() << "/" << g.parts.size() << " | "
              << (g.checkpoint_age_ms < 0
                      ? std::string("-")
                      : fixed3(static_cast<double>(g.checkpoint_age_ms) / 1000.0) + " s")
              << " | " << (g.rto_seconds < 0 ? std::string("-") : fixed3(g.rto_seconds) + " s")
              << " | " << (g.error.empty() ? g.first_record : "**" + g.error + "**") << " |\n";
        o << "\n| group | topic on " << flow_.target
          << " | partition | commit on source | resumes at | checkpoint | result |\n"
             "| --- | --- | --- | --- | --- | --- | --- |\n";
        for (const auto& g : groups_)
            for (const auto& p : g.parts)
                o << "| " << g.group << " | " << p.target_topic << " | " << p.partition << " | "
                  << p.committed << " | "
                  << (p.translated < 0 ? std::string("-") : std::to_string(p.translated)) << " | "
                  << (p.checkpoint_upstream < 0 ? std::string("none")
                                                : std::to_string(p.checkpoint_upstream) + " -> " +
                                                      std::to_string(p.checkpoint_target))
                  << " | " << (p.exact ? "exact: " : "**NOT exact**: ") << p.detail << " |\n";
    }
    o << "\nDrill groups (drill.<group> on " << flow_.target << "): " << drill_groups_state_
      << ". No real group was committed to.\n";
    if (!failures_.empty()) {
        o << "\n## Failures\n\n";
        for (const auto& f : failures_) o << "- " << f << "\n";
    }
    o << "\n## How this was measured\n\n"
         "- The groups' commits and the flow's own commits (group `replicatord."
      << flow_.name
      << "`) were read just before T0, the source end offsets just after. The flow commits a "
         "source offset only after "
      << flow_.target
      << " acknowledged every record below it, so its commits understate what the target "
         "held: data at risk and catch-up are upper bounds (by up to the flow's 200 ms commit "
         "cadence).\n"
         "- RPO compares the larger of the data at risk (in seconds) and the catch-up time "
         "with `rpo_target`.\n"
         "- Exact resume: each group's commit is translated through the flow's offset runs "
         "(read from "
      << flow_.target
      << ", the translation checkpoints and failover use); the record there on the target is "
         "compared with the record the group would read next on the source by key, value, "
         "headers (except `"
      << conf::provenance_header
      << "`) and timestamp.\n"
         "- RTO: from reading the checkpoints on "
      << flow_.target << " (what `failover` does) to the first record read by a consumer in "
      << "each `drill.<group>` on " << flow_.target
      << ", all groups in parallel; compared with `rto_target`.\n";
    o << "\n## The real failover\n\n"
         "1. Stop the producers on "
      << flow_.source << " (or confirm " << flow_.source
      << " is gone) and stop the consumers of the groups above.\n"
         "2. Check where the groups resume (reads only "
      << flow_.target << "):\n   `replicatorctl translate --config " << cfg_.path << " --flow "
      << flow_.name
      << " --group GROUP`\n"
         "3. Commit the translated offsets into the real groups on "
      << flow_.target << ":\n   `replicatorctl failover --config " << cfg_.path << " --flow "
      << flow_.name
      << " --all-groups --apply`\n"
         "4. Point producers and consumers at "
      << flow_.target << " (bootstrap `" << target_.bootstrap << "`)"
      << (flow_.naming == conf::naming_policy::prefix
              ? "; topics there are named `" + policy_.target_topic("TOPIC") + "`"
              : std::string("; topics keep their names"))
      << ".\n";
    return o.str();
}

int exit_for(const Error& e) {
    return e.code == errc::unreachable || e.code == errc::timeout ? exit_unreachable : exit_failure;
}

}  // namespace

int run_flow_drill(const conf::Config& cfg, const conf::flow_config& flow, const drill_args& args) {
    flow_drill d(cfg, flow, args);
    auto r = d.run();
    d.clean_up();
    if (!r) {
        std::cerr << "replicatorctl drill: flow " << flow.name << ": " << r.error().message << "\n";
        return exit_for(r.error());
    }
    const std::string md = d.markdown();
    std::cout << (args.json ? d.json() : md);
    if (!args.report_path.empty()) {
        std::ofstream f(args.report_path);
        f << md;
        if (!f.flush()) {
            std::cerr << "replicatorctl drill: cannot write the report to " << args.report_path
                      << "\n";
            return exit_failure;
        }
    }
    return d.passed() ? exit_ok : exit_drill_failed;
}

}  // namespace rpl::app
