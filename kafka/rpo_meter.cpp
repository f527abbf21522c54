#include "kafka/rpo_meter.h"

#include <algorithm>
#include <charconv>

namespace rpl::kafka {

namespace {

using namespace std::chrono_literals;

constexpr std::string_view metadata_prefix = "rpl.safe_ms=";
// Samples kept per partition while a backlog lasts. Thinning drops samples
// in the middle, which can only move an answer to an earlier sample: less
// precise, never below the truth.
constexpr size_t max_samples = 512;

// ListOffsets by "timestamp": -2 asks for the log start, -1 for the end.
Result<void> list_offsets(const Client& c, const partition_list& parts, int64_t which,
                          std::vector<int64_t>& out, deadline_ms deadline) {
    partition_list query = parts;
    for (auto& tp : query) tp.offset = which;
    tpl_ptr tpl = to_tpl(query);
    const auto err =
        rd_kafka_offsets_for_times(c.get(), tpl.get(), static_cast<int>(deadline.count()));
    if (err) return kafka_error(err, "list offsets on " + c.where().describe());
    out.assign(parts.size(), -1);
    for (int i = 0; i < tpl->cnt && static_cast<size_t>(i) < out.size(); ++i) {
        const auto& e = tpl->elems[i];
        if (e.err == RD_KAFKA_RESP_ERR_NO_ERROR && e.offset >= 0)
            out[static_cast<size_t>(i)] = e.offset;
    }
    return ok();
}

}  // namespace

Result<std::vector<offset_range>> list_offset_ranges(const Client& c, const partition_list& parts,
                                                     deadline_ms deadline) {
    std::vector<offset_range> out;
    if (parts.empty()) return out;
    // The end first: a record appended between the two requests then counts
    // as outstanding, never as already there.
    const auto started = std::chrono::steady_clock::now();
    std::vector<int64_t> ends;
    std::vector<int64_t> starts;
    RPL_TRY(list_offsets(c, parts, -1, ends, deadline));
    const auto left =
        std::max<deadline_ms>(100ms, deadline - std::chrono::duration_cast<deadline_ms>(
                                                    std::chrono::steady_clock::now() - started));
    RPL_TRY(list_offsets(c, parts, -2, starts, left));
    out.reserve(parts.size());
    for (size_t i = 0; i < parts.size(); ++i)
        out.push_back({parts[i].topic, parts[i].partition, starts[i], ends[i]});
    return out;
}

rpo_meter::rpo_meter(const Client& source, Logger log, std::chrono::milliseconds interval,
                     std::function<void(const figures&)> on_figures)
    : source_(source),
      log_(std::move(log)),
      interval_(interval),
      on_figures_(std::move(on_figures)) {}

rpo_meter::~rpo_meter() { stop(); }

void rpo_meter::start() {
    if (thread_.joinable() || sampler_.joinable()) return;
    {
        std::lock_guard lock(wake_mu_);
        stopping_ = false;
    }
    thread_ = std::thread([this] { run(); });
    sampler_ = std::thread([this] { sample_loop(); });
}

void rpo_meter::stop() noexcept {
    {
        std::lock_guard lock(wake_mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (sampler_.joinable()) sampler_.join();
    if (thread_.joinable()) thread_.join();
}

void rpo_meter::assign(const std::string& topic, int32_t partition, int64_t next,
                       std::optional<wall_clock::time_point> since) {
    {
        std::lock_guard lock(mu_);
        auto [it, fresh] = parts_.try_emplace({topic, partition});
        auto& p = it->second;
        if (fresh) {
            p.next = next;
            p.since = since;
        } else {
            // Followed already (primed from the group's commits, or lost and
            // still counted): the samples stay true of the source, and a
            // bound for the old position holds for any position at or after
            // it. An assignment that knows nothing new (no commit could be
            // read) must not forget what was known.
            const int64_t old_pos = p.next >= 0 ? p.next : std::max<int64_t>(p.start, 0);
            if (next < 0) {
                if (since && (!p.since || *since > *p.since)) {
                    p.since = since;
                    p.from_record = false;
                }
            } else if (next >= old_pos) {
                p.next = next;
                if (since && (!p.since || *since > *p.since)) {
                    p.since = since;
                    p.from_record = false;
                }
            } else {
                // Back to an earlier position: the old bound says nothing of
                // the records between.
                p.next = next;
                p.since = since;
                p.from_record = false;
            }
        }
    }
    {
        std::lock_guard lock(wake_mu_);
        sample_soon_ = true;
    }
    wake_.notify_all();  // a first sample soon, not an interval later
}

void rpo_meter::revoke(const std::string& topic, int32_t partition) {
    std::lock_guard lock(mu_);
    parts_.erase({topic, partition});
}

std::set<std::pair<std::string, int32_t>> rpo_meter::follow_commits(
    consumer& group, const std::vector<std::string>& topics) {
    std::set<std::pair<std::string, int32_t>> followed;
    auto md = fetch_metadata(source_, 10s);
    if (!md) return followed;
    partition_list all;
    for (const auto& name : topics)
        if (const auto* t = md.value().topic(name))
            for (const auto& p : t->partitions) all.push_back({name, p.id});
    auto committed = group.committed(all, 10s);
    if (!committed) return followed;
    for (const auto& tp : committed.value()) {
        followed.emplace(tp.topic, tp.partition);
        assign(tp.topic, tp.partition, tp.offset >= 0 ? tp.offset : -1, restore_since(tp.metadata));
    }
    return followed;
}

void rpo_meter::acknowledge(const std::string& topic, int32_t partition, int64_t next) {
    std::lock_guard lock(mu_);
    auto it = parts_.find({topic, partition});
    if (it != parts_.end() && next >= 0) it->second.next = next;
}

void rpo_meter::first_record(const std::string& topic, int32_t partition, int64_t /*offset*/,
                             int64_t timestamp_ms) {
    std::lock_guard lock(mu_);
    auto it = parts_.find({topic, partition});
    if (it == parts_.end() || it->second.since || timestamp_ms <= 0) return;
    it->second.since = wall_clock::time_point(std::chrono::milliseconds(timestamp_ms));
    it->second.from_record = true;
}

std::optional<rpo_meter::wall_clock::time_point> rpo_meter::safe_since(partition_state& p,
                                                                       int64_t next) const {
    std::optional<wall_clock::time_point> best;
    for (auto it = p.samples.rbegin(); it != p.samples.rend(); ++it) {
        if (it->end <= next) {
            best = it->sent;
            break;
        }
    }
    if (best) return best;
    // A backlog older than every sample, with no commit and no record read
    // yet to date it: unknown. The first sample's time would be a guess that
    // reads better than the truth (the backlog may be hours old).
    return p.since;
}

int64_t rpo_meter::log_start(const std::string& topic, int32_t partition) {
    std::lock_guard lock(mu_);
    auto it = parts_.find({topic, partition});
    return it == parts_.end() ? -1 : it->second.start;
}

std::string rpo_meter::commit_metadata(const std::string& topic, int32_t partition, int64_t next) {
    std::lock_guard lock(mu_);
    auto it = parts_.find({topic, partition});
    if (it == parts_.end()) return {};
    auto& p = it->second;
    // Only a bound that holds: a sample, or one a previous run committed.
    std::optional<wall_clock::time_point> since;
    for (auto s = p.samples.rbegin(); s != p.samples.rend(); ++s) {
        if (s->end <= next) {
            since = s->sent;
            break;
        }
    }
    if (!since && p.since && !p.from_record) since = p.since;
    if (!since) return {};
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(since->time_since_epoch()).count();
    return std::string(metadata_prefix) + std::to_string(ms);
}

std::optional<rpo_meter::wall_clock::time_point> rpo_meter::restore_since(
    const std::string& metadata) {
    if (metadata.rfind(metadata_prefix, 0) != 0) return std::nullopt;
    const char* first = metadata.data() + metadata_prefix.size();
    const char* last = metadata.data() + metadata.size();
    int64_t ms = 0;
    auto [end, ec] = std::from_chars(first, last, ms);
    if (ec != std::errc() || end != last || ms <= 0) return std::nullopt;
    return wall_clock::time_point(std::chrono::milliseconds(ms));
}

void rpo_meter::sample_once() {
    partition_list query;
    {
        std::lock_guard lock(mu_);
        for (const auto& [k, p] : parts_) query.push_back({k.first, k.second});
    }
    if (query.empty()) {
        std::lock_guard lock(mu_);
        last_sample_ = wall_clock::now();
        return;
    }
    const auto sent = wall_clock::now();
    const deadline_ms deadline = std::clamp<deadline_ms>(interval_ * 5, 1s, 10s);
    auto ranges = list_offset_ranges(source_, query, deadline);
    std::lock_guard lock(mu_);
    if (!ranges) {
        if (!warned_) log_.warn("cannot sample source offsets: " + ranges.error().message);
        warned_ = true;
        return;
    }
    warned_ = false;
    bool all = true;
    for (const auto& r : ranges.value()) {
        auto it = parts_.find({r.topic, r.partition});
        if (it == parts_.end()) continue;
        if (r.end < 0) {
            all = false;
            continue;
        }
        auto& p = it->second;
        p.start = r.start;
        auto& s = p.samples;
        if (!s.empty() && r.end < s.back().end) s.clear();  // truncated or recreated
        if (!s.empty() && s.back().end == r.end) {
            s.back().sent = sent;
        } else {
            s.push_back({sent, r.end});
        }
        if (s.size() > max_samples) {
            std::deque<sample> thinned;
            for (size_t i = 0; i < s.size(); ++i)
                if (i == 0 || i + 1 == s.size() || i % 2 == 1) thinned.push_back(s[i]);
            s.swap(thinned);
        }
    }
    if (all) last_sample_ = sent;
}

rpo_meter::figures rpo_meter::compute() {
    figures f;
    const auto now = wall_clock::now();
    std::lock_guard lock(mu_);
    f.last_sample = last_sample_;
    // Nothing followed yet: nothing is known, which is not the same as 0.
    if (parts_.empty()) f.complete = false;
    for (auto& [k, p] : parts_) {
        partition_figures pf{k.first, k.second};
        const int64_t pos = p.next >= 0 ? p.next : std::max<int64_t>(p.start, 0);
        if (!p.samples.empty()) {
            pf.sampled = true;
            pf.lag = std::max<int64_t>(0, p.samples.back().end - pos);
            // Only the latest sample at or below the position is ever needed.
            while (p.samples.size() >= 2 && p.samples[1].end <= pos) p.samples.pop_front();
        }
        if (auto since = safe_since(p, pos)) {
            pf.rpo_seconds = std::max(0.0, std::chrono::duration<double>(now - *since).count());
        } else {
            f.complete = false;
        }
        f.rpo_seconds = std::max(f.rpo_seconds, pf.rpo_seconds);
        f.lag += pf.lag;
        f.partitions.push_back(std::move(pf));
    }
    return f;
}

void rpo_meter::run() noexcept {
    // Publishes ten times a second: the figure moves with the clock, so a
    // scrape never reads it stale by more than that, even while a sample
    // waits on a source that does not answer (on the sampler thread).
    constexpr auto publish_every = 100ms;
    for (;;) {
        try {
            if (on_figures_) on_figures_(compute());
        } catch (const std::exception& e) {
            log_.error(std::string("rpo meter: ") + e.what());
        }
        std::unique_lock lock(wake_mu_);
        if (wake_.wait_for(lock, publish_every, [this] { return stopping_; })) return;
    }
}

void rpo_meter::sample_loop() noexcept {
    for (;;) {
        try {
            sample_once();
        } catch (const std::exception& e) {
            log_.error(std::string("rpo meter: ") + e.what());
        }
        std::unique_lock lock(wake_mu_);
        wake_.wait_for(lock, interval_, [this] { return stopping_ || sample_soon_; });
        if (stopping_) return;
        sample_soon_ = false;
    }
}

}  // namespace rpl::kafka
