// Verification of a backup: listing-level continuity, per-object structure,
// and (deep) every frame and record. See verify.h.

#include "backup/verify.h"

#include "conf/config.h"

#include <algorithm>
#include <map>

namespace rpl::backup {

std::string damage::describe() const {
    std::string where = key.empty() ? "(missing object)" : key;
    return where + ": offsets [" + std::to_string(from) + ", " + std::to_string(to) + ") of " +
           topic + "/" + std::to_string(partition) + ": " + what;
}

std::uint64_t verify_report::lost_records() const noexcept {
    std::uint64_t total = 0;
    const loss_entry* prev = nullptr;
    int64_t covered_to = 0;
    for (const auto& l : losses) {
        if (prev == nullptr || prev->topic != l.topic || prev->partition != l.partition)
            covered_to = 0;
        const int64_t from = std::max(l.from, covered_to);
        if (l.to > from) total += static_cast<std::uint64_t>(l.to - from);
        covered_to = std::max(covered_to, l.to);
        prev = &l;
    }
    return total;
}

namespace {

damage segment_damage(const segment_entry& e, std::string what) {
    return damage{e.key, e.topic, e.partition, e.start_offset, e.end_offset, std::move(what)};
}

std::string num(int64_t v) { return std::to_string(v); }

}  // namespace

std::string check_frame(const segment_reader& seg, std::size_t i,
                        const std::vector<archived_record>& records) {
    const frame_index& f = seg.frames()[i];
    const segment_summary& s = seg.summary();
    if (records.size() != f.records)
        return "frame " + std::to_string(i) + " holds " + std::to_string(records.size()) +
               " records, its index says " + std::to_string(f.records);
    if (records.empty()) return {};
    int64_t prev = -1;
    int64_t min_ts = records.front().timestamp;
    int64_t max_ts = min_ts;
    for (const auto& r : records) {
        if (r.offset <= prev)
            return "frame " + std::to_string(i) + ": offset " + num(r.offset) + " after " +
                   num(prev) + " (offsets must increase)";
        if (r.offset < s.start_offset || r.offset >= s.end_offset)
            return "frame " + std::to_string(i) + ": offset " + num(r.offset) +
                   " outside the segment's range [" + num(s.start_offset) + ", " +
                   num(s.end_offset) + ")";
        prev = r.offset;
        min_ts = std::min(min_ts, r.timestamp);
        max_ts = std::max(max_ts, r.timestamp);
    }
    if (records.front().offset != f.first_offset || records.back().offset != f.last_offset)
        return "frame " + std::to_string(i) + " holds offsets " + num(records.front().offset) +
               ".." + num(records.back().offset) + ", its index says " + num(f.first_offset) +
               ".." + num(f.last_offset);
    if (min_ts != f.min_timestamp || max_ts != f.max_timestamp)
        return "frame " + std::to_string(i) + " has timestamps " + num(min_ts) + ".." +
               num(max_ts) + ", its index says " + num(f.min_timestamp) + ".." +
               num(f.max_timestamp);
    return {};
}

bool check_segment(const segment_reader& seg, const segment_entry& e, bool deep,
                   std::vector<damage>& out, std::uint64_t* frames_read) {
    const segment_summary& s = seg.summary();
    const std::size_t before = out.size();
    if (s.topic != e.topic || s.partition != e.partition || s.start_offset != e.start_offset ||
        s.end_offset != e.end_offset) {
        out.push_back(segment_damage(
            e, "the object holds " + s.topic + "/" + std::to_string(s.partition) + " [" +
                   num(s.start_offset) + ", " + num(s.end_offset) + "), its key says otherwise"));
        return false;
    }
    if (s.records != e.records || (s.records > 0 && (s.min_timestamp != e.min_timestamp ||
                                                     s.max_timestamp != e.max_timestamp))) {
        out.push_back(segment_damage(e, "the object holds " + std::to_string(s.records) +
                                            " records with timestamps " + num(s.min_timestamp) +
                                            ".." + num(s.max_timestamp) + ", its key says " +
                                            std::to_string(e.records) + " records, " +
                                            num(e.min_timestamp) + ".." + num(e.max_timestamp)));
    }

    // The index: frames in order, inside the range, counts and timestamps
    // adding up to the summary.
    std::uint64_t counted = 0;
    int64_t prev_last = s.start_offset - 1;
    int64_t min_ts = 0, max_ts = 0;
    for (std::size_t i = 0; i < seg.frames().size(); ++i) {
        const frame_index& f = seg.frames()[i];
        if (f.first_offset <= prev_last || f.last_offset < f.first_offset ||
            f.last_offset >= s.end_offset) {
            out.push_back(segment_damage(e, "index entry of frame " + std::to_string(i) +
                                                " covers offsets " + num(f.first_offset) + ".." +
                                                num(f.last_offset) + ", out of order or range"));
            return false;
        }
        prev_last = f.last_offset;
        if (i == 0 || f.min_timestamp < min_ts) min_ts = f.min_timestamp;
        if (i == 0 || f.max_timestamp > max_ts) max_ts = f.max_timestamp;
        counted += f.records;
    }
    if (counted != s.records) {
        out.push_back(segment_damage(e, "frames hold " + std::to_string(counted) +
                                            " records, the summary says " +
                                            std::to_string(s.records)));
    } else if (s.records > 0 && (min_ts != s.min_timestamp || max_ts != s.max_timestamp)) {
        out.push_back(segment_damage(e, "frames' timestamps span " + num(min_ts) + ".." +
                                            num(max_ts) + ", the summary says " +
                                            num(s.min_timestamp) + ".." + num(s.max_timestamp)));
    }
    int64_t gap_prev = s.start_offset;
    for (const auto& g : seg.gaps()) {
        if (g.from < gap_prev || g.to <= g.from || g.to > s.end_offset) {
            out.push_back(segment_damage(e, "recorded gap [" + num(g.from) + ", " + num(g.to) +
                                                ") is out of order or outside the segment"));
            return false;
        }
        gap_prev = g.to;
    }
    if (!deep) return out.size() == before;

    // Every frame: CRC and zstd (read_frame), then its records; and records
    // plus gaps must cover [start, end) exactly.
    std::vector<std::pair<int64_t, int64_t>> covered;  // [from, to) runs of records and gaps
    for (const auto& g : seg.gaps()) covered.emplace_back(g.from, g.to);
    for (std::size_t i = 0; i < seg.frames().size(); ++i) {
        const frame_index& f = seg.frames()[i];
        auto recs = seg.read_frame(i);
        if (frames_read) ++*frames_read;
        if (!recs) {
            out.push_back(damage{e.key, e.topic, e.partition, f.first_offset, f.last_offset + 1,
                                 recs.error().message});
            continue;
        }
        if (auto what = check_frame(seg, i, recs.value()); !what.empty()) {
            out.push_back(
                damage{e.key, e.topic, e.partition, f.first_offset, f.last_offset + 1, what});
            continue;
        }
        for (const auto& r : recs.value()) {
            if (!covered.empty() && covered.back().second == r.offset)
                ++covered.back().second;
            else
                covered.emplace_back(r.offset, r.offset + 1);
        }
    }
    if (out.size() != before) return false;
    std::sort(covered.begin(), covered.end());
    int64_t at = s.start_offset;
    for (const auto& [from, to] : covered) {
        if (from > at) {
            out.push_back(damage{e.key, e.topic, e.partition, at, from,
                                 "offsets neither archived nor recorded as a gap"});
        } else if (from < at) {
            out.push_back(damage{e.key, e.topic, e.partition, from, std::min(at, to),
                                 "offsets both archived and recorded as a gap, or twice"});
        }
        at = std::max(at, to);
    }
    if (at < s.end_offset)
        out.push_back(damage{e.key, e.topic, e.partition, at, s.end_offset,
                             "offsets neither archived nor recorded as a gap"});
    return out.size() == before;
}

Result<void> check_backup_id(std::string_view id) {
    if (conf::is_backup_id(id)) return ok();
    std::string shown;
    for (const char c : id.substr(0, 64))
        shown += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    return fail(errc::invalid_config,
                "backup id '" + shown +
                    "' is not one: a backup id is the tap's name (letters, digits, '.', '_' and "
                    "'-'; not '.' or '..'); `replicatorctl backup list --store URL` shows them");
}

Result<catalogue> load_catalogue(object_store& store, const std::string& backup) {
    RPL_TRY(check_backup_id(backup));
    auto cat = catalogue::load(store, backup);
    if (cat) return cat;
    if (cat.error().code != errc::not_found) return cat.error();
    auto ids = list_backups(store);
    std::string present;
    if (ids) {
        for (const auto& id : ids.value()) present += (present.empty() ? "" : ", ") + id;
    }
    return fail(errc::not_found, "no backup '" + backup + "' in " + store.describe() +
                                     (ids ? (present.empty() ? " (the store holds no backups)"
                                                             : " (backups there: " + present + ")")
                                          : ""));
}

Result<verify_report> verify_backup(object_store& store, const std::string& backup, bool deep,
                                    const std::function<void(const segment_entry&)>& on_segment) {
    verify_report rep;
    if (auto cat = load_catalogue(store, backup); !cat) {
        // A key the catalogue cannot parse is damage to report, not a reason
        // to stop: the listing below names it.
        if (cat.error().code != errc::corrupt) return cat.error();
    }

    // Our own listing, so that a key the catalogue cannot parse is reported
    // rather than silently left out.
    RPL_TRY(objects, store.list(backup + "/segments/"));
    std::map<std::pair<std::string, int32_t>, std::vector<segment_entry>> parts;
    for (const auto& o : objects) {
        if (!o.key.ends_with(".seg")) continue;  // not a segment (as the catalogue reads it)
        auto e = parse_segment_key(o.key, o.size);
        if (!e) {
            rep.problems.push_back(damage{o.key, "?", -1, 0, 0, e.error().message});
            continue;
        }
        parts[{e.value().topic, e.value().partition}].push_back(std::move(e.value()));
    }
    rep.partitions = parts.size();

    // Losses and epochs: the keys say everything (catalogue.h).
    RPL_TRY(loss_objects, store.list(backup + "/losses/"));
    for (const auto& o : loss_objects) {
        if (!o.key.ends_with(".lost")) continue;
        auto l = parse_loss_key(o.key);
        if (!l) {
            rep.problems.push_back(damage{o.key, "?", -1, 0, 0, l.error().message});
            continue;
        }
        rep.losses.push_back(std::move(l.value()));
    }
    std::sort(rep.losses.begin(), rep.losses.end(), [](const auto& a, const auto& b) {
        return std::tie(a.topic, a.partition, a.from, a.to) <
               std::tie(b.topic, b.partition, b.from, b.to);
    });
    RPL_TRY(epoch_objects, store.list(backup + "/epochs/"));
    for (const auto& o : epoch_objects) {
        if (!o.key.ends_with(".epoch")) continue;
        auto e = parse_epoch_key(o.key);
        if (!e) {
            rep.problems.push_back(damage{o.key, "?", -1, 0, 0, e.error().message});
            continue;
        }
        rep.epochs.push_back(std::move(e.value()));
    }
    for (auto& [tp, segs] : parts) {
        std::sort(segs.begin(), segs.end(), [](const segment_entry& a, const segment_entry& b) {
            return a.start_offset < b.start_offset;
        });
        for (std::size_t i = 0; i < segs.size(); ++i) {
            const segment_entry& e = segs[i];
            if (i > 0) {
                const segment_entry& p = segs[i - 1];
                if (e.start_offset > p.end_offset) {
                    rep.problems.push_back(damage{"", tp.first, tp.second, p.end_offset,
                                                  e.start_offset,
                                                  "no segment holds these offsets (hole between " +
                                                      p.key + " and " + e.key + ")"});
                } else if (e.start_offset < p.end_offset) {
                    rep.problems.push_back(damage{e.key, tp.first, tp.second, e.start_offset,
                                                  std::min(p.end_offset, e.end_offset),
                                                  "overlaps " + p.key});
                }
            }
            ++rep.segments;
            rep.stored_bytes += e.size;
            auto bytes = store.get(e.key);
            if (!bytes) {
                if (bytes.error().code != errc::not_found) return bytes.error();
                rep.problems.push_back(
                    segment_damage(e, "listed but cannot be read: " + bytes.error().message));
                continue;
            }
            auto seg = segment_reader::open(std::move(bytes.value()), e.key);
            if (!seg) {
                rep.problems.push_back(segment_damage(e, seg.error().message));
            } else {
                rep.records += seg.value().summary().records;
                check_segment(seg.value(), e, deep, rep.problems, &rep.frames);
            }
            if (on_segment) on_segment(e);
        }
    }
    return rep;
}

}  // namespace rpl::backup
