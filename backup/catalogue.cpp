#include "backup/catalogue.h"

#include "kafka/wire.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

namespace rpl::backup {

namespace {

using namespace kafka::wire;

constexpr std::uint8_t meta_version = 1;
constexpr std::string_view segment_suffix = ".seg";
constexpr std::string_view topic_meta_suffix = ".meta";
constexpr std::string_view group_suffix = ".groups";
constexpr std::string_view loss_suffix = ".lost";
constexpr std::string_view epoch_suffix = ".epoch";

std::string padded(int64_t v, int width) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*lld", width, static_cast<long long>(v));
    return buf;
}

// A whole, plain decimal (an optional '-' then digits), nothing else.
bool parse_int(std::string_view s, int64_t& out) {
    if (s.empty()) return false;
    const auto* end = s.data() + s.size();
    const auto r = std::from_chars(s.data(), end, out);
    return r.ec == std::errc() && r.ptr == end;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == sep) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The leading version byte; the rest goes to a wire::reader.
Result<std::string_view> versioned(std::string_view bytes, std::string_view name,
                                   const char* what) {
    if (bytes.empty())
        return fail(errc::corrupt, std::string(what) + " " + std::string(name) + " is empty");
    const auto v = static_cast<std::uint8_t>(bytes[0]);
    if (v != meta_version)
        return fail(errc::corrupt, std::string(what) + " " + std::string(name) +
                                       ": unsupported format version " + std::to_string(v));
    return bytes.substr(1);
}

Error corrupt_in(std::string_view what, std::string_view name, const Error& e) {
    return Error{errc::corrupt, std::string(what) + " " + std::string(name) + ": " + e.message};
}

}  // namespace

std::string segment_key(const std::string& backup, const segment_entry& e) {
    return backup + "/segments/" + e.topic + "/" + padded(e.partition, 6) + "/" +
           padded(e.start_offset, 20) + "-" + padded(e.end_offset, 20) + "_" +
           std::to_string(e.min_timestamp) + "_" + std::to_string(e.max_timestamp) + "_" +
           std::to_string(e.records) + std::string(segment_suffix);
}

Result<segment_entry> parse_segment_key(std::string_view key, std::uint64_t size) {
    const auto bad = [&](const char* why) {
        return fail(errc::corrupt, "object " + std::string(key) + " is not a segment key: " + why);
    };
    const auto parts = split(key, '/');
    if (parts.size() != 5 || parts[1] != "segments" || parts[0].empty() || parts[2].empty())
        return bad("expected <backup>/segments/<topic>/<partition>/<file>.seg");
    std::string_view file = parts[4];
    if (!ends_with(file, segment_suffix)) return bad("no .seg suffix");
    file.remove_suffix(segment_suffix.size());
    const auto fields = split(file, '_');
    if (fields.size() != 4) return bad("expected <start>-<end>_<min_ts>_<max_ts>_<records>");
    const auto dash = fields[0].find('-');
    if (dash == std::string_view::npos) return bad("expected <start>-<end>");
    segment_entry e;
    e.key = std::string(key);
    e.topic = std::string(parts[2]);
    e.size = size;
    int64_t partition = 0, records = 0;
    if (!parse_int(parts[3], partition) || partition < 0 || partition > INT32_MAX)
        return bad("bad partition");
    if (!parse_int(fields[0].substr(0, dash), e.start_offset) ||
        !parse_int(fields[0].substr(dash + 1), e.end_offset) || e.start_offset < 0 ||
        e.end_offset < e.start_offset)
        return bad("bad offset range");
    if (!parse_int(fields[1], e.min_timestamp) || !parse_int(fields[2], e.max_timestamp))
        return bad("bad timestamps");
    if (!parse_int(fields[3], records) || records < 0) return bad("bad record count");
    e.partition = static_cast<int32_t>(partition);
    e.records = static_cast<std::uint64_t>(records);
    return e;
}

std::string loss_prefix(const std::string& backup, const std::string& topic, int32_t partition) {
    return backup + "/losses/" + topic + "/" + padded(partition, 6) + "/";
}

std::string epoch_prefix(const std::string& backup, const std::string& topic, int32_t partition) {
    return backup + "/epochs/" + topic + "/" + padded(partition, 6) + "/";
}

std::string loss_key(const std::string& backup, const loss_entry& l) {
    return loss_prefix(backup, l.topic, l.partition) + padded(l.from, 20) + "-" + padded(l.to, 20) +
           "_" + std::to_string(l.noticed_ms) + std::string(loss_suffix);
}

std::string epoch_key(const std::string& backup, const epoch_entry& e) {
    return epoch_prefix(backup, e.topic, e.partition) + padded(e.base, 20) + "_" +
           std::to_string(e.taken_ms) + std::string(epoch_suffix);
}

namespace {

// <backup>/<folder>/<topic>/<partition>/<file><suffix>, split.
struct partition_key {
    std::string topic;
    int32_t partition = 0;
    std::string_view file;  // without its suffix
};

Result<partition_key> split_partition_key(std::string_view key, std::string_view folder,
                                          std::string_view suffix) {
    const auto bad = [&](const std::string& why) {
        return fail(errc::corrupt, "object " + std::string(key) + " is not a " +
                                       std::string(folder) + " key: " + why);
    };
    const auto parts = split(key, '/');
    if (parts.size() != 5 || parts[1] != folder || parts[0].empty() || parts[2].empty())
        return bad("expected <backup>/" + std::string(folder) + "/<topic>/<partition>/<file>");
    std::string_view file = parts[4];
    if (!ends_with(file, suffix)) return bad("no " + std::string(suffix) + " suffix");
    file.remove_suffix(suffix.size());
    int64_t partition = 0;
    if (!parse_int(parts[3], partition) || partition < 0 || partition > INT32_MAX)
        return bad("bad partition");
    return partition_key{std::string(parts[2]), static_cast<int32_t>(partition), file};
}

}  // namespace

Result<loss_entry> parse_loss_key(std::string_view key) {
    RPL_TRY(pk, split_partition_key(key, "losses", loss_suffix));
    loss_entry l{std::string(key), pk.topic, pk.partition, 0, 0, 0};
    const auto fields = split(pk.file, '_');
    const auto dash = fields[0].find('-');
    if (fields.size() != 2 || dash == std::string_view::npos ||
        !parse_int(fields[0].substr(0, dash), l.from) ||
        !parse_int(fields[0].substr(dash + 1), l.to) || l.from < 0 || l.to <= l.from ||
        !parse_int(fields[1], l.noticed_ms))
        return fail(errc::corrupt, "object " + std::string(key) +
                                       " is not a losses key: expected <from>-<to>_<noticed_ms>");
    return l;
}

Result<epoch_entry> parse_epoch_key(std::string_view key) {
    RPL_TRY(pk, split_partition_key(key, "epochs", epoch_suffix));
    epoch_entry ep{std::string(key), pk.topic, pk.partition, 0, 0};
    const auto fields = split(pk.file, '_');
    if (fields.size() != 2 || !parse_int(fields[0], ep.base) || ep.base < 0 ||
        !parse_int(fields[1], ep.taken_ms))
        return fail(errc::corrupt, "object " + std::string(key) +
                                       " is not an epochs key: expected <base>_<taken_ms>");
    return ep;
}

std::string encode(const backup_meta& m) {
    std::string out(1, static_cast<char>(meta_version));
    put_string(out, m.id);
    put_string(out, m.source_cluster);
    put_string(out, m.source_bootstrap);
    put_i64(out, m.created_ms);
    put_i32(out, m.compression_level);
    return out;
}

std::string encode(const topic_meta& m) {
    std::string out(1, static_cast<char>(meta_version));
    put_string(out, m.topic);
    put_i32(out, m.partitions);
    put_i64(out, m.taken_ms);
    put_i32(out, static_cast<int32_t>(m.configs.size()));
    for (const auto& [k, v] : m.configs) {
        put_string(out, k);
        put_string(out, v);
    }
    return out;
}

std::string encode(const group_snapshot& s) {
    std::string out(1, static_cast<char>(meta_version));
    put_i64(out, s.taken_ms);
    put_i32(out, static_cast<int32_t>(s.groups.size()));
    for (const auto& [group, offsets] : s.groups) {
        put_string(out, group);
        put_i32(out, static_cast<int32_t>(offsets.size()));
        for (const auto& o : offsets) {
            put_string(out, o.topic);
            put_i32(out, o.partition);
            put_i64(out, o.offset);
        }
    }
    return out;
}

Result<backup_meta> decode_backup_meta(std::string_view bytes, std::string_view name) {
    RPL_TRY(body, versioned(bytes, name, "backup meta"));
    reader r(body);
    backup_meta m;
    auto run = [&]() -> Result<void> {
        RPL_TRY(id, r.string("id"));
        RPL_TRY(cluster, r.string("source_cluster"));
        RPL_TRY(bootstrap, r.string("source_bootstrap"));
        RPL_TRY(created, r.i64("created_ms"));
        RPL_TRY(level, r.i32("compression_level"));
        RPL_TRY(r.done());
        m.id = std::move(id);
        m.source_cluster = std::move(cluster);
        m.source_bootstrap = std::move(bootstrap);
        m.created_ms = created;
        m.compression_level = level;
        return ok();
    };
    if (auto res = run(); !res)
        return boost::outcome_v2::failure(corrupt_in("backup meta", name, res.error()));
    return m;
}

Result<topic_meta> decode_topic_meta(std::string_view bytes, std::string_view name) {
    RPL_TRY(body, versioned(bytes, name, "topic meta"));
    reader r(body);
    topic_meta m;
    auto run = [&]() -> Result<void> {
        RPL_TRY(topic, r.string("topic"));
        RPL_TRY(partitions, r.i32("partitions"));
        RPL_TRY(taken, r.i64("taken_ms"));
        RPL_TRY(n, r.i32("configs"));
        if (n < 0) return fail(errc::corrupt, "negative config count");
        for (int32_t i = 0; i < n; ++i) {
            RPL_TRY(k, r.string("config name"));
            RPL_TRY(v, r.string("config value"));
            m.configs[std::move(k)] = std::move(v);
        }
        RPL_TRY(r.done());
        m.topic = std::move(topic);
        m.partitions = partitions;
        m.taken_ms = taken;
        return ok();
    };
    if (auto res = run(); !res)
        return boost::outcome_v2::failure(corrupt_in("topic meta", name, res.error()));
    return m;
}

Result<group_snapshot> decode_group_snapshot(std::string_view bytes, std::string_view name) {
    RPL_TRY(body, versioned(bytes, name, "group snapshot"));
    reader r(body);
    group_snapshot s;
    auto run = [&]() -> Result<void> {
        RPL_TRY(taken, r.i64("taken_ms"));
        s.taken_ms = taken;
        RPL_TRY(ngroups, r.i32("groups"));
        if (ngroups < 0) return fail(errc::corrupt, "negative group count");
        for (int32_t g = 0; g < ngroups; ++g) {
            RPL_TRY(group, r.string("group"));
            RPL_TRY(n, r.i32("offsets"));
            if (n < 0) return fail(errc::corrupt, "negative offset count");
            auto& offsets = s.groups[group];
            for (int32_t i = 0; i < n; ++i) {
                RPL_TRY(topic, r.string("topic"));
                RPL_TRY(partition, r.i32("partition"));
                RPL_TRY(offset, r.i64("offset"));
                offsets.push_back({std::move(topic), partition, offset});
            }
        }
        return r.done();
    };
    if (auto res = run(); !res)
        return boost::outcome_v2::failure(corrupt_in("group snapshot", name, res.error()));
    return s;
}

std::string backup_meta_key(const std::string& backup) { return backup + "/backup.meta"; }

std::string topic_meta_key(const std::string& backup, const topic_meta& m) {
    return backup + "/topics/" + m.topic + "/" + padded(m.taken_ms, 20) +
           std::string(topic_meta_suffix);
}

std::string group_snapshot_key(const std::string& backup, int64_t taken_ms) {
    return backup + "/groups/" + padded(taken_ms, 20) + std::string(group_suffix);
}

Result<std::vector<std::string>> list_backups(object_store& store) {
    RPL_TRY(objects, store.list(""));
    std::vector<std::string> out;
    for (const auto& o : objects) {
        const auto slash = o.key.find('/');
        if (slash == std::string::npos || slash == 0) continue;
        if (std::string_view(o.key).substr(slash) == "/backup.meta")
            out.push_back(o.key.substr(0, slash));
    }
    return out;
}

Result<catalogue> catalogue::load(object_store& store, const std::string& backup) {
    catalogue c;
    {
        auto bytes = store.get(backup_meta_key(backup));
        if (!bytes) {
            if (bytes.error().code == errc::not_found)
                return fail(errc::not_found,
                            "backup " + backup + " not found in store " + store.describe());
            return bytes.error();
        }
        RPL_TRY(meta, decode_backup_meta(bytes.value(), backup_meta_key(backup)));
        c.meta_ = std::move(meta);
    }

    // Topic metadata: few objects (one per topic and partition change).
    RPL_TRY(topic_objects, store.list(backup + "/topics/"));
    for (const auto& o : topic_objects) {
        if (!ends_with(o.key, topic_meta_suffix)) continue;
        RPL_TRY(bytes, store.get(o.key));
        RPL_TRY(m, decode_topic_meta(bytes, o.key));
        c.topics_[m.topic].push_back(std::move(m));
    }
    for (auto& [name, metas] : c.topics_)
        std::stable_sort(metas.begin(), metas.end(),
                         [](const auto& a, const auto& b) { return a.taken_ms < b.taken_ms; });

    // Segments: the key says everything; no segment is read.
    RPL_TRY(segment_objects, store.list(backup + "/segments/"));
    for (const auto& o : segment_objects) {
        if (!ends_with(o.key, segment_suffix)) continue;
        RPL_TRY(e, parse_segment_key(o.key, o.size));
        auto& v = c.segments_[{e.topic, e.partition}];
        v.push_back(std::move(e));
    }
    for (auto& [tp, v] : c.segments_)
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
            return std::tie(a.start_offset, a.end_offset) < std::tie(b.start_offset, b.end_offset);
        });

    // Losses and epochs: rare, and the key says everything.
    RPL_TRY(loss_objects, store.list(backup + "/losses/"));
    for (const auto& o : loss_objects) {
        if (!ends_with(o.key, loss_suffix)) continue;
        RPL_TRY(l, parse_loss_key(o.key));
        c.losses_[{l.topic, l.partition}].push_back(std::move(l));
    }
    for (auto& [tp, v] : c.losses_)
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
            return std::tie(a.from, a.to) < std::tie(b.from, b.to);
        });
    RPL_TRY(epoch_objects, store.list(backup + "/epochs/"));
    for (const auto& o : epoch_objects) {
        if (!ends_with(o.key, epoch_suffix)) continue;
        RPL_TRY(e, parse_epoch_key(o.key));
        c.epochs_[{e.topic, e.partition}].push_back(std::move(e));
    }
    for (auto& [tp, v] : c.epochs_)
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.base < b.base; });

    RPL_TRY(group_objects, store.list(backup + "/groups/"));
    for (const auto& o : group_objects) {
        if (!ends_with(o.key, group_suffix)) continue;
        const auto slash = o.key.rfind('/');
        int64_t taken = 0;
        const std::string_view file = std::string_view(o.key).substr(slash + 1);
        if (!parse_int(file.substr(0, file.size() - group_suffix.size()), taken))
            return fail(errc::corrupt, "object " + o.key + " is not a group snapshot key");
        c.snapshots_.emplace_back(taken, o.key);
    }
    std::sort(c.snapshots_.begin(), c.snapshots_.end());
    return c;
}

std::vector<std::string> catalogue::topics() const {
    std::set<std::string> names;
    for (const auto& [name, metas] : topics_) names.insert(name);
    for (const auto& [tp, v] : segments_) names.insert(tp.first);
    return {names.begin(), names.end()};
}

const topic_meta* catalogue::topic(const std::string& topic, std::optional<int64_t> at_ms) const {
    const auto it = topics_.find(topic);
    if (it == topics_.end() || it->second.empty()) return nullptr;
    if (!at_ms) return &it->second.back();
    const topic_meta* best = nullptr;
    for (const auto& m : it->second)
        if (m.taken_ms <= *at_ms) best = &m;
    return best;
}

const std::vector<segment_entry>& catalogue::segments(const std::string& topic,
                                                      int32_t partition) const {
    static const std::vector<segment_entry> none;
    const auto it = segments_.find({topic, partition});
    return it == segments_.end() ? none : it->second;
}

const std::vector<loss_entry>& catalogue::losses(const std::string& topic,
                                                 int32_t partition) const {
    static const std::vector<loss_entry> none;
    const auto it = losses_.find({topic, partition});
    return it == losses_.end() ? none : it->second;
}

std::vector<loss_entry> catalogue::all_losses() const {
    std::vector<loss_entry> out;
    for (const auto& [tp, v] : losses_) out.insert(out.end(), v.begin(), v.end());
    return out;
}

const std::vector<epoch_entry>& catalogue::epochs(const std::string& topic,
                                                  int32_t partition) const {
    static const std::vector<epoch_entry> none;
    const auto it = epochs_.find({topic, partition});
    return it == epochs_.end() ? none : it->second;
}

int64_t catalogue::base_at(const std::string& topic, int32_t partition, int64_t taken_ms) const {
    int64_t base = 0;
    for (const auto& e : epochs(topic, partition))
        if (e.taken_ms <= taken_ms) base = e.base;
    return base;
}

std::vector<int32_t> catalogue::partitions(const std::string& topic) const {
    std::set<int32_t> out;
    if (const auto* m = this->topic(topic))
        for (int32_t p = 0; p < m->partitions; ++p) out.insert(p);
    for (auto it = segments_.lower_bound({topic, INT32_MIN});
         it != segments_.end() && it->first.first == topic; ++it)
        out.insert(it->first.second);
    return {out.begin(), out.end()};
}

Result<std::optional<group_snapshot>> catalogue::load_group_snapshot(
    object_store& store, std::optional<int64_t> at_ms) const {
    const std::pair<int64_t, std::string>* pick = nullptr;
    for (const auto& s : snapshots_)
        if (!at_ms || s.first <= *at_ms) pick = &s;
    if (pick == nullptr) return std::optional<group_snapshot>{};
    RPL_TRY(bytes, store.get(pick->second));
    RPL_TRY(snap, decode_group_snapshot(bytes, pick->second));
    return std::optional<group_snapshot>(std::move(snap));
}

}  // namespace rpl::backup
