#include "checkpoint/failover.h"

#include "conf/topic_policy.h"
#include "kafka/admin.h"
#include "kafka/reader.h"
#include "kafka/wire.h"
#include "offsetsync/store.h"
#include "offsetsync/sync_topic.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

namespace rpl::checkpoint {

using namespace std::chrono_literals;

namespace {
int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}
kafka::endpoint endpoint_of(const conf::Config& cfg, const std::string& alias) {
    const auto* c = cfg.cluster(alias);
    return {c->name, c->bootstrap, c->client};
}
}  // namespace

Result<std::vector<stored_checkpoint>> read_checkpoints(const kafka::endpoint& target,
                                                        const std::string& source_alias,
                                                        kafka::deadline_ms deadline,
                                                        const Logger& log) {
    std::map<std::string, stored_checkpoint> latest;  // by key bytes
    const std::string topic = kafka::mm2::checkpoints_topic(source_alias);
    auto end = kafka::read_to_end(
        target, topic, 0, deadline, log, [&](const kafka::message& m) -> Result<void> {
            const std::string_view key(static_cast<const char*>(m.key()), m.key_size());
            if (m.value() == nullptr) {
                latest.erase(std::string(key));
                return ok();
            }
            auto cp = kafka::mm2::decode_checkpoint(
                key, std::string_view(static_cast<const char*>(m.value()), m.value_size()));
            if (!cp) {
                log.warn(topic + " offset " + std::to_string(m.offset()) + ": " +
                         cp.error().message + "; skipped");
                return ok();
            }
            latest[std::string(key)] = stored_checkpoint{std::move(cp).value(), m.timestamp()};
            return ok();
        });
    if (!end && end.error().code != errc::not_found) return end.error();
    std::vector<stored_checkpoint> out;
    out.reserve(latest.size());
    for (auto& [k, v] : latest) out.push_back(std::move(v));
    return out;
}

struct local_checkpoints::impl {
    std::unique_ptr<rocksdb::DB> db;
};

local_checkpoints::local_checkpoints(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
local_checkpoints::~local_checkpoints() = default;

Result<std::unique_ptr<local_checkpoints>> local_checkpoints::open(const std::filesystem::path& dir,
                                                                   bool read_only) {
    rocksdb::Options opts;
    opts.create_if_missing = !read_only;
    rocksdb::DB* raw = nullptr;
    const auto st = read_only ? rocksdb::DB::OpenForReadOnly(opts, dir.string(), &raw)
                              : rocksdb::DB::Open(opts, dir.string(), &raw);
    if (!st.ok()) return fail(errc::io, "checkpoint store " + dir.string() + ": " + st.ToString());
    auto p = std::make_unique<impl>();
    p->db.reset(raw);
    return std::unique_ptr<local_checkpoints>(new local_checkpoints(std::move(p)));
}

// Key: flow STRING + the checkpoint's Kafka key; value: its Kafka value +
// timestamp INT64.
Result<void> local_checkpoints::put(const std::string& flow,
                                    const std::vector<stored_checkpoint>& cps) {
    rocksdb::WriteBatch batch;
    for (const auto& s : cps) {
        std::string key;
        kafka::wire::put_string(key, flow);
        key += kafka::mm2::checkpoint_key(s.cp);
        std::string value = kafka::mm2::checkpoint_value(s.cp);
        kafka::wire::put_i64(value, s.timestamp_ms);
        batch.Put(key, value);
    }
    const auto st = impl_->db->Write(rocksdb::WriteOptions(), &batch);
    if (!st.ok()) return fail(errc::io, "checkpoint store write: " + st.ToString());
    return ok();
}

Result<std::vector<stored_checkpoint>> local_checkpoints::all(const std::string& flow) const {
    std::string prefix;
    kafka::wire::put_string(prefix, flow);
    std::vector<stored_checkpoint> out;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        const auto k = it->key();
        const auto v = it->value();
        if (v.size() < 8)
            return fail(errc::corrupt, "checkpoint store: value shorter than its timestamp");
        const std::string_view key(k.data() + prefix.size(), k.size() - prefix.size());
        const std::string_view value(v.data(), v.size() - 8);
        RPL_TRY(cp, kafka::mm2::decode_checkpoint(key, value));
        kafka::wire::reader ts(std::string_view(v.data() + v.size() - 8, 8));
        RPL_TRY(t, ts.i64("checkpoint timestamp"));
        out.push_back({std::move(cp), t});
    }
    return out;
}

namespace {
// The prefix of a flow's sync state: a flow name no configuration can hold,
// so that no prefix scan for a flow's checkpoints ever reaches it.
std::string synced_prefix(const std::string& flow) {
    std::string prefix;
    kafka::wire::put_string(prefix, "\xff" + flow);
    return prefix;
}
}  // namespace

Result<void> local_checkpoints::put_synced(const std::string& flow,
                                           const std::vector<kafka::mm2::checkpoint>& cps) {
    rocksdb::WriteBatch batch;
    const std::string prefix = synced_prefix(flow);
    for (const auto& cp : cps)
        batch.Put(prefix + kafka::mm2::checkpoint_key(cp), kafka::mm2::checkpoint_value(cp));
    const auto st = impl_->db->Write(rocksdb::WriteOptions(), &batch);
    if (!st.ok()) return fail(errc::io, "checkpoint store write: " + st.ToString());
    return ok();
}

Result<std::vector<kafka::mm2::checkpoint>> local_checkpoints::synced(
    const std::string& flow) const {
    const std::string prefix = synced_prefix(flow);
    std::vector<kafka::mm2::checkpoint> out;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        const auto k = it->key();
        const auto v = it->value();
        RPL_TRY(cp, kafka::mm2::decode_checkpoint(
                        std::string_view(k.data() + prefix.size(), k.size() - prefix.size()),
                        std::string_view(v.data(), v.size())));
        out.push_back(std::move(cp));
    }
    return out;
}

std::vector<translation_row> rows_for(const conf::flow_config& flow,
                                      const std::vector<stored_checkpoint>& cps,
                                      const std::string& group) {
    const conf::topic_policy policy(flow);
    const int64_t now = now_ms();
    std::vector<translation_row> rows;
    for (const auto& s : cps) {
        if (!group.empty() && s.cp.group != group) continue;
        std::string source = policy.source_topic_of(s.cp.topic);
        if (source.empty()) continue;  // another flow's topic in a shared checkpoints topic
        translation_row r;
        r.group = s.cp.group;
        r.topic = s.cp.topic;
        r.source_topic = std::move(source);
        r.partition = s.cp.partition;
        r.upstream_offset = s.cp.upstream_offset;
        r.target_offset = s.cp.downstream_offset;
        r.checkpoint_age_ms = s.timestamp_ms > 0 ? std::max<int64_t>(0, now - s.timestamp_ms) : -1;
        rows.push_back(std::move(r));
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return std::tie(a.group, a.topic, a.partition) < std::tie(b.group, b.topic, b.partition);
    });
    return rows;
}

Result<void> fill_end_offsets(std::vector<translation_row>& rows, const kafka::endpoint& target,
                              kafka::deadline_ms deadline, const Logger& log) {
    if (rows.empty()) return ok();
    RPL_TRY(rd, kafka::reader::create(target, {}, log));
    for (auto& r : rows) {
        RPL_TRY(wm, rd.query_watermarks(r.topic, r.partition, deadline));
        r.log_end_offset = wm.high;
    }
    return ok();
}

namespace {

// Commits `next` into group on the cluster behind `c` unless the group has
// active members there; fills current offsets before and, when applied, the
// offsets read back after.
// Checks every row of a plan against its partition's log range on the
// cluster behind `rd` (see failover() in the header for the rules). Fills
// log_start, log_end, translated and note; clamps next; sets refused.
Result<void> check_log_range(kafka::reader& rd, group_plan& plan, kafka::deadline_ms deadline,
                             const Logger& log) {
    std::string refused;
    for (auto& r : plan.rows) {
        r.translated = r.next;
        const std::string where = "group " + plan.group + " " + r.topic + "/" +
                                  std::to_string(r.partition) + " on " + plan.cluster;
        auto wm = rd.query_watermarks(r.topic, r.partition, deadline);
        if (!wm) {
            if (wm.error().code != errc::not_found) return wm.error();
            r.note = where + ": the partition does not exist there";
            refused += (refused.empty() ? "" : "; ") + r.note;
            continue;
        }
        r.log_start = wm.value().low;
        r.log_end = wm.value().high;
        if (r.next < r.log_start) {
            r.note = where + ": translated offset " + std::to_string(r.next) +
                     " is below the log start " + std::to_string(r.log_start) + " (records " +
                     std::to_string(r.next) + ".." + std::to_string(r.log_start - 1) +
                     " are gone); resuming at " + std::to_string(r.log_start);
            log.warn(r.note);
            r.next = r.log_start;
        } else if (r.next > r.log_end) {
            r.note = where + ": translated offset " + std::to_string(r.next) +
                     " is past the log end " + std::to_string(r.log_end) +
                     " (topic recreated, or records lost there?); committing it would "
                     "skip the records written there next";
            refused += (refused.empty() ? "" : "; ") + r.note;
        }
    }
    if (!refused.empty()) {
        plan.refused = refused + "; nothing of the group committed";
        log.warn(plan.refused);
    }
    return ok();
}

Result<void> plan_or_apply(const kafka::Client& c, group_plan& plan, bool apply) {
    kafka::admin adm(c, 15s);
    RPL_TRY(desc, adm.describe_group(plan.group));
    RPL_TRY(current, adm.list_group_offsets(plan.group));
    std::map<std::pair<std::string, int32_t>, int64_t> have;
    for (const auto& tp : current) have[{tp.topic, tp.partition}] = tp.offset;
    for (auto& r : plan.rows) {
        const auto it = have.find({r.topic, r.partition});
        r.current = it == have.end() ? -1 : it->second;
    }
    if (desc.members > 0) {
        plan.refused += (plan.refused.empty() ? "" : "; ") +
                        ("group " + plan.group + " has " + std::to_string(desc.members) +
                         " active member(s) on " + plan.cluster + " (" + desc.state + ")");
        return ok();
    }
    if (!apply || !plan.refused.empty()) return ok();
    kafka::partition_list commit;
    for (const auto& r : plan.rows) commit.push_back({r.topic, r.partition, r.next});
    RPL_TRY(adm.alter_group_offsets(plan.group, commit));
    return ok();
}

}  // namespace

Result<std::vector<group_plan>> failover(const conf::Config& cfg, const conf::flow_config& flow,
                                         const std::vector<translation_row>& rows, bool apply,
                                         const Logger& log) {
    std::map<std::string, group_plan> plans;
    for (const auto& r : rows) {
        auto& p = plans[r.group];
        p.group = r.group;
        p.cluster = flow.target;
        p.rows.push_back({r.topic, r.partition, -1, r.target_offset});
    }
    RPL_TRY(target,
            kafka::Client::create(kafka::client_kind::producer, endpoint_of(cfg, flow.target),
                                  {{"log_level", "3"}}, log));
    RPL_TRY(rd, kafka::reader::create(endpoint_of(cfg, flow.target), {{"log_level", "3"}}, log));
    std::vector<group_plan> out;
    for (auto& [g, p] : plans) {
        RPL_TRY(check_log_range(rd, p, 15s, log));
        RPL_TRY(plan_or_apply(target, p, apply));
        out.push_back(std::move(p));
    }
    return out;
}

Result<std::vector<group_plan>> failback(const conf::Config& cfg, const conf::flow_config& flow,
                                         const std::vector<std::string>& groups,
                                         const std::filesystem::path& scratch_dir, bool apply,
                                         const Logger& log) {
    const kafka::endpoint target_ep = endpoint_of(cfg, flow.target);
    RPL_TRY(runs, offsetsync::store::open(scratch_dir, log));
    RPL_TRY(offsetsync::catch_up(target_ep, *runs, 120s, log));
    const bool identity =
        flow.naming == conf::naming_policy::identity && !flow.reverse_flow.empty();
    // This flow's own position on the source, per partition (identity only).
    std::map<std::pair<std::string, int32_t>, int64_t> flow_position;
    if (identity) {
        // The reverse flow's runs, published on this flow's source.
        const kafka::endpoint source_ep = endpoint_of(cfg, flow.source);
        RPL_TRY(offsetsync::catch_up(source_ep, *runs, 120s, log));
        RPL_TRY(sc, kafka::Client::create(kafka::client_kind::producer, source_ep,
                                          {{"log_level", "3"}}, log));
        kafka::admin sadm(sc, 15s);
        RPL_TRY(own, sadm.list_group_offsets("replicatord." + flow.name));
        for (const auto& tp : own) flow_position[{tp.topic, tp.partition}] = tp.offset;
    }
    const auto committed_on_source = [&](const std::string& topic, int32_t partition) {
        const auto it = flow_position.find({topic, partition});
        return it != flow_position.end() ? it->second : int64_t{0};
    };
    RPL_TRY(target, kafka::Client::create(kafka::client_kind::producer, target_ep,
                                          {{"log_level", "3"}}, log));
    kafka::admin tadm(target, 15s);
    std::vector<std::string> names = groups;
    if (names.empty()) {
        RPL_TRY(listed, tadm.list_groups());
        for (const auto& g : listed)
            if (g.group_id.rfind("replicatord", 0) != 0) names.push_back(g.group_id);
        std::sort(names.begin(), names.end());
    }
    const conf::topic_policy policy(flow);
    std::vector<group_plan> plans;
    for (const auto& g : names) {
        RPL_TRY(committed, tadm.list_group_offsets(g));
        group_plan p;
        p.group = g;
        p.cluster = flow.source;
        for (const auto& tp : committed) {
            const std::string source = policy.source_topic_of(tp.topic);
            if (source.empty()) continue;
            auto back = runs->reverse_translate(flow.name, source, tp.partition, tp.offset);
            if (!back) {
                log.warn("group " + g + " " + tp.topic + "/" + std::to_string(tp.partition) + ": " +
                         back.error().message + "; left out");
                continue;
            }
            int64_t next = back.value();
            if (identity) {
                // The same rule as the checkpointer's, mirrored: the first
                // target-origin record the group has not consumed reached the
                // source through the reverse flow (its runs, forward); and past
                // this flow's runs, what it did not copy it skipped as the
                // target's own, so its committed position bounds the rest.
                auto ends = runs->end_offsets(flow.name, source, tp.partition);
                if (ends && tp.offset >= ends.value().dst_end)
                    next = std::max(next, committed_on_source(source, tp.partition));
                auto own = runs->translate(flow.reverse_flow, source, tp.partition, tp.offset);
                if (own && own.value().kind != offsetsync::match_kind::past_end)
                    next = std::min(next, own.value().target_offset);
            }
            p.rows.push_back({source, tp.partition, -1, next});
        }
        if (!p.rows.empty() || !groups.empty()) plans.push_back(std::move(p));
    }
    RPL_TRY(source,
            kafka::Client::create(kafka::client_kind::producer, endpoint_of(cfg, flow.source),
                                  {{"log_level", "3"}}, log));
    RPL_TRY(rd, kafka::reader::create(endpoint_of(cfg, flow.source), {{"log_level", "3"}}, log));
    for (auto& p : plans) {
        if (p.rows.empty()) {
            p.refused = "group " + p.group + " has no committed offsets on " + flow.target +
                        " for the flow's topics";
            continue;
        }
        RPL_TRY(check_log_range(rd, p, 15s, log));
        RPL_TRY(plan_or_apply(source, p, apply));
    }
    return plans;
}

}  // namespace rpl::checkpoint
