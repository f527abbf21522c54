#include "offsetsync/store.h"

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <system_error>
#include <utility>

namespace rpl::offsetsync {

namespace {
// A run key starts with its version, INT16 0: these bytes never do.
constexpr std::string_view meta_prefix = "\xff\xff";
}  // namespace

std::string store::describe(std::string_view flow, std::string_view topic, int32_t partition) {
    std::string s = "flow ";
    s += flow;
    s += ' ';
    s += topic;
    s += '/';
    s += std::to_string(partition);
    return s;
}

store::store(std::filesystem::path path, std::unique_ptr<rocksdb::DB> db, Logger log,
             int64_t max_holes, size_t memory_budget)
    : path_(std::move(path)),
      log_(std::move(log)),
      max_holes_(max_holes),
      memory_budget_(memory_budget),
      db_(std::move(db)) {}

store::~store() = default;

Result<std::unique_ptr<store>> store::open(const std::filesystem::path& dir, const Logger& log,
                                           int64_t max_holes, size_t memory_budget) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        return fail(errc::io,
                    "offset store " + dir.string() + ": cannot create directory: " + ec.message());
    rocksdb::Options opts;
    opts.create_if_missing = true;
    // A small index: keep RocksDB's footprint modest.
    opts.write_buffer_size = 8 << 20;
    opts.max_open_files = 256;
    opts.keep_log_file_num = 3;
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status st = rocksdb::DB::Open(opts, dir.string(), &raw);
    if (!st.ok()) {
        const errc code = st.IsCorruption() ? errc::corrupt : errc::io;
        return fail(code,
                    "offset store " + dir.string() + ": cannot open RocksDB: " + st.ToString());
    }
    std::unique_ptr<store> s(
        new store(dir, std::unique_ptr<rocksdb::DB>(raw), log, max_holes, memory_budget));
    RPL_TRY(s->load());
    return s;
}

Result<void> store::load() {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    size_t count = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
        const auto key = it->key();
        const auto value = it->value();
        // Catch-up positions, not runs (they sort last).
        if (key.starts_with(rocksdb::Slice(meta_prefix.data(), meta_prefix.size()))) continue;
        auto rec = decode_record(std::string_view(key.data(), key.size()),
                                 std::string_view(value.data(), value.size()));
        if (!rec)
            return fail(errc::corrupt,
                        "offset store " + path_.string() + ": " + rec.error().message +
                            " (delete the directory to rebuild it from the runs topic)");
        auto& r = rec.value();
        auto [pit, inserted] =
            parts_.try_emplace(partition_id{r.flow, r.source_topic, r.partition});
        if (inserted) {
            pit->second.target_topic = r.target_topic;
            pit->second.runs = partition_runs(max_holes_);
        }
        const std::string where = describe(r.flow, r.source_topic, r.partition);
        if (pit->second.target_topic != r.target_topic)
            return fail(errc::corrupt, "offset store " + path_.string() + ": " + where +
                                           ": runs point into both " + pit->second.target_topic +
                                           " and " + r.target_topic);
        if (pit->second.runs.merge(r.r) == merge_result::conflict)
            return fail(errc::corrupt, "offset store " + path_.string() + ": " + where +
                                           ": run at dst " + std::to_string(r.r.dst_start) +
                                           " overlaps another run");
        // Every run is checked, but only the budget's worth stays in memory:
        // partitions loaded earlier leave first (keys come partition by
        // partition, so a partition is complete when the next one starts).
        if (inserted) {
            trim(&pit->second);
            pit->second.last_used = ++use_counter_;
        }
        account(pit->second);
        ++count;
    }
    if (!it->status().ok())
        return fail(errc::io,
                    "offset store " + path_.string() + ": reading: " + it->status().ToString());
    trim();
    log_.info("offset store " + path_.string() + ": loaded " + std::to_string(count) +
              " run(s) of " + std::to_string(parts_.size()) + " partition(s), " +
              std::to_string(loaded_partitions_locked()) + " kept in memory (" +
              std::to_string(memory_ >> 10) + " KiB)");
    return ok();
}

Result<void> store::write(const std::vector<std::pair<std::string, std::string>>& puts,
                          const std::vector<std::string>& deletes, const std::string& what) {
    if (puts.empty() && deletes.empty()) return ok();
    rocksdb::WriteBatch batch;
    for (const auto& [k, v] : puts) batch.Put(k, v);
    for (const auto& k : deletes) batch.Delete(k);
    // Not synced: a machine crash may lose the last writes, which the runs
    // topic still has (RocksDB is an index, rebuilt by catch_up).
    const rocksdb::Status st = db_->Write(rocksdb::WriteOptions(), &batch);
    if (!st.ok())
        return fail(errc::io,
                    "offset store " + path_.string() + ": " + what + ": " + st.ToString());
    return ok();
}

Result<void> store::record(std::string_view flow, std::string_view source_topic, int32_t partition,
                           std::string_view target_topic, int64_t src, int64_t dst) {
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end()) {
        RPL_TRY(check_names(flow, source_topic, partition, target_topic));
        it = parts_
                 .try_emplace(partition_id{std::string(flow), std::string(source_topic), partition})
                 .first;
        it->second.target_topic = target_topic;
        it->second.runs = partition_runs(max_holes_);
        it->second.last_used = ++use_counter_;
    } else if (it->second.target_topic != target_topic) {
        return fail(errc::conflict, "offset store: " + describe(flow, source_topic, partition) +
                                        ": delivery into " + std::string(target_topic) +
                                        " but its runs point into " + it->second.target_topic +
                                        " (forget() the partition first)");
    }
    RPL_TRY(use(it));
    partition_state& st = it->second;
    const add_result r = st.runs.add(src, dst);
    if (r == add_result::rejected) {
        std::string msg = "offset store: " + describe(flow, source_topic, partition) +
                          ": delivery " + std::to_string(src) + " -> " + std::to_string(dst) +
                          " rejected: offsets must be >= 0 and target offsets must grow";
        if (!st.runs.empty())
            msg += " (last target offset " + std::to_string(st.runs.dst_end() - 1) +
                   "; target partition recreated?)";
        if (st.runs.empty()) parts_.erase(it);
        return fail(errc::conflict, std::move(msg));
    }
    account(st);
    st.recorded = true;
    if (!st.listed_dirty) {
        st.listed_dirty = true;
        dirty_.emplace_back(&it->first, &st);
    }
    return ok();
}

Result<std::vector<run_record>> store::flush(std::string_view flow) {
    std::lock_guard lock(mu_);
    std::vector<run_record> out;
    std::vector<std::pair<std::string, std::string>> puts;
    for (const auto& [id, st] : dirty_) {
        if (id->flow != flow) continue;
        for (const run& r : st->runs.dirty_runs()) {
            puts.emplace_back(encode_key(id->flow, id->topic, id->partition, r.dst_start),
                              encode_value(r, st->target_topic));
            out.push_back(run_record{id->flow, id->topic, id->partition, st->target_topic, r});
        }
    }
    RPL_TRY(
        write(puts, {},
              "writing " + std::to_string(puts.size()) + " run(s) of flow " + std::string(flow)));
    std::erase_if(dirty_, [flow](const auto& e) {
        if (e.first->flow != flow) return false;
        e.second->runs.mark_clean();
        e.second->listed_dirty = false;
        return true;
    });
    trim();
    return out;
}

Result<merge_result> store::apply(const run_record& r) {
    RPL_TRY(check_names(r.flow, r.source_topic, r.partition, r.target_topic));
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{r.flow, r.source_topic, r.partition});
    const std::string where = describe(r.flow, r.source_topic, r.partition);
    if (it != parts_.end() && it->second.target_topic != r.target_topic)
        return fail(errc::conflict, "offset store: " + where + ": run at dst " +
                                        std::to_string(r.r.dst_start) + " points into " +
                                        r.target_topic + " but the known runs point into " +
                                        it->second.target_topic);
    const bool created = it == parts_.end();
    if (created) {
        it = parts_.try_emplace(partition_id{r.flow, r.source_topic, r.partition}).first;
        it->second.target_topic = r.target_topic;
        it->second.runs = partition_runs(max_holes_);
        it->second.last_used = ++use_counter_;
    } else {
        RPL_TRY(use(it));
    }
    partition_runs& runs = it->second.runs;
    // Decide, write, then change memory: a failed write changes nothing, so
    // a retry applies the run again. A changed run is always r.r itself.
    const merge_result m = runs.classify(r.r);
    if (m == merge_result::conflict) {
        if (created) parts_.erase(it);
        return fail(errc::conflict,
                    "offset store: " + where + ": run " + std::to_string(r.r.src_start) + "->" +
                        std::to_string(r.r.dst_start) + " x" + std::to_string(r.r.length) +
                        " contradicts a known run (same target start with another "
                        "source start, or overlapping target offsets)");
    }
    if (m == merge_result::unchanged) return m;
    auto w = write({{encode_key(r.key()), encode_value(r.r, r.target_topic)}}, {},
                   "applying a run of " + where);
    if (!w) {
        if (created) parts_.erase(it);
        return w.error();
    }
    (void)runs.merge(r.r);
    // No trim here: the runs topic interleaves partitions, so evicting during
    // a catch-up would read a partition back for nearly every record.
    account(it->second);
    return m;
}

Result<bool> store::remove(const run_key& k) {
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{k.flow, k.source_topic, k.partition});
    if (it == parts_.end()) return false;
    RPL_TRY(use(it));
    const auto& rs = it->second.runs.runs();
    const bool known =
        std::any_of(rs.begin(), rs.end(), [&](const run& r) { return r.dst_start == k.dst_start; });
    if (!known) return false;
    RPL_TRY(write({}, {encode_key(k)},
                  "removing a run of " + describe(k.flow, k.source_topic, k.partition)));
    (void)it->second.runs.erase(k.dst_start);
    account(it->second);
    if (it->second.runs.empty()) {
        memory_ -= it->second.bytes;
        unlist(&it->second);
        parts_.erase(it);
    }
    return true;
}

Result<translation> store::translate(std::string_view flow, std::string_view source_topic,
                                     int32_t partition, int64_t o) const {
    if (o < 0)
        return fail(errc::internal, "offset store: " + describe(flow, source_topic, partition) +
                                        ": cannot translate negative offset " + std::to_string(o));
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end())
        return fail(errc::not_found, "offset store: no offset runs known for " +
                                         describe(flow, source_topic, partition));
    RPL_TRY(runs, use(it));
    return *runs->lookup(o);
}

Result<int64_t> store::reverse_translate(std::string_view flow, std::string_view source_topic,
                                         int32_t partition, int64_t d) const {
    if (d < 0)
        return fail(errc::internal, "offset store: " + describe(flow, source_topic, partition) +
                                        ": cannot translate negative offset " + std::to_string(d));
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end())
        return fail(errc::not_found, "offset store: no offset runs known for " +
                                         describe(flow, source_topic, partition));
    RPL_TRY(runs, use(it));
    return *runs->reverse_lookup(d);
}

Result<partition_ends> store::end_offsets(std::string_view flow, std::string_view source_topic,
                                          int32_t partition) const {
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end())
        return fail(errc::not_found, "offset store: no offset runs known for " +
                                         describe(flow, source_topic, partition));
    RPL_TRY(runs, use(it));
    return partition_ends{runs->src_end(), runs->dst_end()};
}

Result<std::vector<run_record>> store::prune(std::string_view flow, std::string_view source_topic,
                                             int32_t partition, int64_t log_start) {
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end()) return std::vector<run_record>{};
    RPL_TRY(use(it));
    partition_state& st = it->second;
    // Decide first, write, then change memory: a failed write changes nothing.
    std::vector<run_record> out;
    std::vector<std::string> deletes;
    const auto& rs = st.runs.runs();
    const std::vector<bool> drop = st.runs.prunable(log_start);
    for (size_t i = 0; i < rs.size(); ++i) {
        if (!drop[i]) continue;
        deletes.push_back(encode_key(flow, source_topic, partition, rs[i].dst_start));
        out.push_back(run_record{std::string(flow), std::string(source_topic), partition,
                                 st.target_topic, rs[i]});
    }
    if (out.empty()) return out;
    RPL_TRY(write({}, deletes, "pruning " + describe(flow, source_topic, partition)));
    const auto dropped = st.runs.prune(log_start);
    account(st);
    if (dropped.size() != out.size())
        return fail(errc::internal, "offset store: prune of " +
                                        describe(flow, source_topic, partition) + " dropped " +
                                        std::to_string(dropped.size()) + " run(s), expected " +
                                        std::to_string(out.size()));
    log_.debug("pruned " + std::to_string(out.size()) + " run(s) of " +
               describe(flow, source_topic, partition) + " below source offset " +
               std::to_string(log_start) + " or copied again later");
    return out;
}

Result<std::vector<run_record>> store::forget(std::string_view flow, std::string_view source_topic,
                                              int32_t partition) {
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end()) return std::vector<run_record>{};
    RPL_TRY(use(it));
    std::vector<run_record> out;
    std::vector<std::string> deletes;
    for (const run& r : it->second.runs.runs()) {
        deletes.push_back(encode_key(flow, source_topic, partition, r.dst_start));
        out.push_back(run_record{std::string(flow), std::string(source_topic), partition,
                                 it->second.target_topic, r});
    }
    RPL_TRY(write({}, deletes, "forgetting " + describe(flow, source_topic, partition)));
    memory_ -= it->second.bytes;
    unlist(&it->second);
    parts_.erase(it);
    return out;
}

std::string store::position_key(std::string_view source) {
    std::string k(meta_prefix);
    k += "catch-up ";
    k += source;
    return k;
}

Result<int64_t> store::catch_up_position(std::string_view source) const {
    std::string v;
    const rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), position_key(source), &v);
    if (st.IsNotFound()) return int64_t{0};
    if (!st.ok())
        return fail(errc::io, "offset store " + path_.string() +
                                  ": reading the catch-up position of " + std::string(source) +
                                  ": " + st.ToString());
    int64_t next = 0;
    if (v.size() != 8)
        return fail(errc::corrupt, "offset store " + path_.string() + ": catch-up position of " +
                                       std::string(source) + " is " + std::to_string(v.size()) +
                                       " bytes, not 8");
    for (const char c : v) next = (next << 8) | static_cast<unsigned char>(c);
    return next;
}

Result<void> store::save_catch_up_position(std::string_view source, int64_t next) {
    std::string v;
    for (int i = 7; i >= 0; --i)
        v.push_back(static_cast<char>((static_cast<uint64_t>(next) >> (8 * i)) & 0xff));
    return write({{position_key(source), v}}, {},
                 "saving the catch-up position of " + std::string(source));
}

void store::unlist(const partition_state* st) {
    std::erase_if(dirty_, [st](const auto& e) { return e.second == st; });
}

std::vector<partition_ref> store::partitions(std::string_view flow) const {
    std::lock_guard lock(mu_);
    std::vector<partition_ref> out;
    for (const auto& [id, st] : parts_)
        if (id.flow == flow) out.push_back({id.topic, id.partition, st.target_topic});
    return out;
}

std::vector<run> store::runs(std::string_view flow, std::string_view source_topic,
                             int32_t partition) const {
    std::lock_guard lock(mu_);
    auto it = parts_.find(id_view{flow, source_topic, partition});
    if (it == parts_.end()) return {};
    auto runs = use(it);
    if (!runs) {
        log_.error(runs.error().message);
        return {};
    }
    return runs.value()->runs();
}

void store::account(partition_state& st) const {
    memory_ -= st.bytes;
    st.bytes = st.runs.memory_bytes();
    memory_ += st.bytes;
}

Result<partition_runs*> store::use(partition_map::iterator it) const {
    partition_state& st = it->second;
    st.last_used = ++use_counter_;
    if (!st.loaded) {
        RPL_TRY(read_partition(it->first, st));
        st.loaded = true;
        account(st);
        trim(&st);
    }
    return &st.runs;
}

Result<void> store::read_partition(const partition_id& id, partition_state& st) const {
    // A partition's keys are its prefix (everything but dst_start) plus 8 bytes.
    std::string prefix = encode_key(id.flow, id.topic, id.partition, 0);
    prefix.resize(prefix.size() - 8);
    partition_runs runs(max_holes_);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const std::string where = describe(id.flow, id.topic, id.partition);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        const auto key = it->key();
        const auto value = it->value();
        auto rec = decode_record(std::string_view(key.data(), key.size()),
                                 std::string_view(value.data(), value.size()));
        if (!rec || rec.value().target_topic != st.target_topic ||
            runs.merge(rec.value().r) == merge_result::conflict)
            return fail(errc::corrupt, "offset store " + path_.string() + ": " + where +
                                           ": reading its runs back: " +
                                           (rec ? "a run changed on disk" : rec.error().message) +
                                           " (delete the directory to rebuild it from the runs "
                                           "topic)");
    }
    if (!it->status().ok())
        return fail(errc::io, "offset store " + path_.string() + ": reading " + where + ": " +
                                  it->status().ToString());
    st.runs = std::move(runs);
    return ok();
}

void store::trim(const partition_state* keep) const {
    // Partitions recorded into since the last call are spared this once.
    std::vector<partition_state*> candidates;
    const bool over = memory_ > memory_budget_;
    for (auto& [id, st] : parts_) {
        const bool recorded = std::exchange(st.recorded, false);
        if (over && st.loaded && !recorded && !st.listed_dirty && &st != keep && !st.runs.dirty())
            candidates.push_back(&st);
    }
    if (!over) return;
    std::sort(candidates.begin(), candidates.end(),
              [](const auto* a, const auto* b) { return a->last_used < b->last_used; });
    // Down to three quarters, so that the next few loads do not sort again.
    const size_t target = memory_budget_ / 4 * 3;
    for (partition_state* st : candidates) {
        if (memory_ <= target) break;
        memory_ -= st->bytes;
        st->bytes = 0;
        st->runs = partition_runs(max_holes_);
        st->loaded = false;
    }
}

size_t store::loaded_partitions_locked() const {
    return static_cast<size_t>(
        std::count_if(parts_.begin(), parts_.end(), [](const auto& p) { return p.second.loaded; }));
}

size_t store::memory_bytes() const {
    std::lock_guard lock(mu_);
    return memory_;
}

size_t store::loaded_partitions() const {
    std::lock_guard lock(mu_);
    return loaded_partitions_locked();
}

}  // namespace rpl::offsetsync
