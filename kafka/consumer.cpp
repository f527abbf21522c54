#include "kafka/consumer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace rpl::kafka {

tpl_ptr to_tpl(const partition_list& parts) {
    tpl_ptr tpl = make_tpl(static_cast<int>(parts.size()));
    for (const auto& p : parts) {
        auto* e = rd_kafka_topic_partition_list_add(tpl.get(), p.topic.c_str(), p.partition);
        e->offset = p.offset;
        if (!p.metadata.empty()) {
            // The list frees it with free(), librdkafka's allocator.
            e->metadata = std::malloc(p.metadata.size());
            if (e->metadata != nullptr) {
                std::memcpy(e->metadata, p.metadata.data(), p.metadata.size());
                e->metadata_size = p.metadata.size();
            }
        }
    }
    return tpl;
}

partition_list from_tpl(const rd_kafka_topic_partition_list_t* tpl) {
    partition_list out;
    if (tpl == nullptr) return out;
    out.reserve(static_cast<size_t>(tpl->cnt));
    for (int i = 0; i < tpl->cnt; ++i) {
        const auto& e = tpl->elems[i];
        out.push_back({e.topic, e.partition, e.offset,
                       e.metadata != nullptr && e.metadata_size > 0
                           ? std::string(static_cast<const char*>(e.metadata), e.metadata_size)
                           : std::string()});
    }
    return out;
}

void consumer::rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t* parts, void* /*opaque*/) {
    auto* st = static_cast<handler_state*>(user_opaque(rk));
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    partition_list list = from_tpl(parts);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        note_assigned(rk);
        if (st->h.on_assign) st->h.on_assign(list);
        // With the offsets the handler set, if any.
        const tpl_ptr chosen = to_tpl(list);
        if (cooperative) {
            if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, chosen.get())) {
                st->log.error(std::string("incremental assign failed: ") +
                              rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, chosen.get());
        }
        return;
    }
    // Revoked (or lost): the caller drains and commits first.
    if (st->h.on_revoke) st->h.on_revoke(list);
    if (cooperative) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) {
            st->log.error(std::string("incremental unassign failed: ") + rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, nullptr);
    }
}

void consumer::commit_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t* offsets, void* /*opaque*/) {
    auto* st = static_cast<handler_state*>(user_opaque(rk));
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    st->last_commit_err = err;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        st->log.warn(std::string("offset commit failed: ") + rd_kafka_err2str(err));
    if (!st->h.on_committed || offsets == nullptr) return;
    partition_list taken;
    for (int i = 0; i < offsets->cnt; ++i) {
        const auto& e = offsets->elems[i];
        if (e.err == RD_KAFKA_RESP_ERR_NO_ERROR && e.offset >= 0)
            taken.push_back({e.topic, e.partition, e.offset});
    }
    st->h.on_committed(taken);
}

Result<consumer> consumer::create(const endpoint& ep, const std::string& group_id,
                                  const properties& overrides, const Logger& log) {
    properties forced = overrides;
    forced["group.id"] = group_id;
    forced["enable.auto.commit"] = "false";
    forced["enable.auto.offset.store"] = "false";
    forced["isolation.level"] = "read_committed";
    forced["partition.assignment.strategy"] = "cooperative-sticky";
    forced["enable.partition.eof"] = "false";
    forced["allow.auto.create.topics"] = "false";
    if (!forced.contains("auto.offset.reset")) forced["auto.offset.reset"] = "earliest";

    auto state = std::make_unique<handler_state>();
    state->log = log;
    const std::string& reset = forced["auto.offset.reset"];
    if (reset == "latest" || reset == "largest" || reset == "end")
        state->reset = RD_KAFKA_OFFSET_END;
    else if (reset != "earliest" && reset != "smallest" && reset != "beginning")
        state->reset = RD_KAFKA_OFFSET_INVALID;  // "error": librdkafka decides
    auto setup = +[](rd_kafka_conf_t* conf, void*) {
        rd_kafka_conf_set_rebalance_cb(conf, &consumer::rebalance_cb);
        rd_kafka_conf_set_offset_commit_cb(conf, &consumer::commit_cb);
    };
    RPL_TRY(c, Client::create(client_kind::consumer, ep, forced, log, setup, state.get()));
    return consumer(std::move(c), std::move(state));
}

Result<void> consumer::subscribe(const std::vector<std::string>& topics) {
    if (topics.empty()) {
        const auto err = rd_kafka_unsubscribe(client_.get());
        if (err) return kafka_error(err, "unsubscribe from " + client_.where().describe());
        return ok();
    }
    tpl_ptr tpl = make_tpl(static_cast<int>(topics.size()));
    for (const auto& t : topics)
        rd_kafka_topic_partition_list_add(tpl.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    const auto err = rd_kafka_subscribe(client_.get(), tpl.get());
    if (err) return kafka_error(err, "subscribe on " + client_.where().describe());
    note_subscribed(client_.get());
    return ok();
}

size_t consumer::poll(std::vector<message>& out, size_t max, std::chrono::milliseconds timeout) {
    size_t n = 0;
    int wait = static_cast<int>(timeout.count());
    while (n < max) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(client_.get(), wait);
        if (m == nullptr) break;
        out.emplace_back(m);
        ++n;
        wait = 0;  // drain what is already queued, do not wait again
        if (poll_hook_) wait = static_cast<int>(poll_hook_(out.back()).count());
    }
    return n;
}

Result<void> consumer::commit(const partition_list& positions, bool async) {
    if (positions.empty()) return ok();
    tpl_ptr tpl = to_tpl(positions);
    const auto err = rd_kafka_commit(client_.get(), tpl.get(), async ? 1 : 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        return kafka_error(err, "commit to " + client_.where().describe());
    return ok();
}

Result<partition_list> consumer::committed(const partition_list& parts, deadline_ms deadline) {
    tpl_ptr tpl = to_tpl(parts);
    const auto err =
        rd_kafka_committed(client_.get(), tpl.get(), static_cast<int>(deadline.count()));
    if (err) return kafka_error(err, "committed offsets from " + client_.where().describe());
    return from_tpl(tpl.get());
}

namespace {
// What to pass to rd_kafka_seek_partitions for a wait of `deadline`.
// Before 2.1.0, librdkafka handed the remaining milliseconds to a queue pop
// that takes microseconds (fixed upstream in #4230), so a 10 s deadline
// waited 10 ms: under load the seek reported __TIMED_OUT and took effect
// later, and a flow that trusted the error held a partition that had moved.
// Scaled by 1000 the first wait is the deadline; each further partition's
// wait starts again from nearly the deadline, so n partitions wait at most
// n deadlines in all, and only when the seeks themselves are slow.
int seek_timeout_ms(deadline_ms deadline) {
    const int64_t ms = deadline.count();
    if (ms <= 0 || rd_kafka_version() >= 0x02010000) return static_cast<int>(ms);
    return static_cast<int>(std::min<int64_t>(ms * 1000, std::numeric_limits<int>::max()));
}
}  // namespace

Result<void> consumer::seek(const partition_list& positions, deadline_ms deadline) {
    if (positions.empty()) return ok();
    tpl_ptr tpl = to_tpl(positions);
    if (rd_kafka_error_t* e =
            rd_kafka_seek_partitions(client_.get(), tpl.get(), seek_timeout_ms(deadline))) {
        Error out{errc::kafka, std::string("seek on ") + client_.where().describe() + ": " +
                                   rd_kafka_error_string(e)};
        rd_kafka_error_destroy(e);
        return boost::outcome_v2::failure(std::move(out));
    }
    for (int i = 0; i < tpl->cnt; ++i) {
        if (tpl->elems[i].err)
            return kafka_error(tpl->elems[i].err, "seek " + std::string(tpl->elems[i].topic) + "/" +
                                                      std::to_string(tpl->elems[i].partition));
    }
    return ok();
}

Result<void> consumer::reassign(const partition_list& parts) {
    if (parts.empty()) return ok();
    partition_list bare = parts;
    for (auto& p : bare) p.offset = RD_KAFKA_OFFSET_INVALID;
    const tpl_ptr out = to_tpl(bare);
    const tpl_ptr in = to_tpl(parts);
    for (auto [call, list] : {std::pair{&rd_kafka_incremental_unassign, out.get()},
                              std::pair{&rd_kafka_incremental_assign, in.get()}}) {
        if (rd_kafka_error_t* e = call(client_.get(), list)) {
            const auto code = rd_kafka_error_code(e);
            const std::string what = rd_kafka_error_string(e);
            rd_kafka_error_destroy(e);
            return kafka_error(
                code, "re-assigning partitions on " + client_.where().describe() + ": " + what);
        }
    }
    return ok();
}

Result<void> consumer::pause(const partition_list& parts) {
    if (parts.empty()) return ok();
    tpl_ptr tpl = to_tpl(parts);
    const auto err = rd_kafka_pause_partitions(client_.get(), tpl.get());
    if (err) return kafka_error(err, "pause");
    return ok();
}

Result<void> consumer::resume(const partition_list& parts) {
    if (parts.empty()) return ok();
    tpl_ptr tpl = to_tpl(parts);
    const auto err = rd_kafka_resume_partitions(client_.get(), tpl.get());
    if (err) return kafka_error(err, "resume");
    return ok();
}

partition_list consumer::assignment() const {
    rd_kafka_topic_partition_list_t* raw = nullptr;
    if (rd_kafka_assignment(client_.get(), &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    tpl_ptr tpl(raw);
    return from_tpl(tpl.get());
}

partition_list consumer::positions(const partition_list& parts) const {
    tpl_ptr tpl = to_tpl(parts);
    if (rd_kafka_position(client_.get(), tpl.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    return from_tpl(tpl.get());
}

bool consumer::cached_watermarks(const std::string& topic, int32_t partition, int64_t& low,
                                 int64_t& high) const {
    return rd_kafka_get_watermark_offsets(client_.get(), topic.c_str(), partition, &low, &high) ==
               RD_KAFKA_RESP_ERR_NO_ERROR &&
           high >= 0;
}

}  // namespace rpl::kafka
