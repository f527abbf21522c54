#include "kafka/reader.h"

#include "kafka/consumer.h"

namespace rpl::kafka {

Result<reader> reader::create(const endpoint& ep, const properties& overrides, const Logger& log) {
    properties forced = overrides;
    if (!forced.contains("group.id")) forced["group.id"] = "replicatord-reader";
    forced["enable.auto.commit"] = "false";
    forced["enable.auto.offset.store"] = "false";
    forced["enable.partition.eof"] = "true";
    forced["allow.auto.create.topics"] = "false";
    if (!forced.contains("auto.offset.reset")) forced["auto.offset.reset"] = "earliest";
    RPL_TRY(c, Client::create(client_kind::consumer, ep, forced, log));
    return reader(std::move(c));
}

Result<void> reader::assign(const std::string& topic, int32_t partition, int64_t offset) {
    tpl_ptr tpl = to_tpl({topic_partition{topic, partition, offset}});
    const auto err = rd_kafka_assign(client_.get(), tpl.get());
    if (err)
        return kafka_error(err, "assign " + topic + "/" + std::to_string(partition) + " on " +
                                    client_.where().describe());
    return ok();
}

Result<watermarks> reader::query_watermarks(const std::string& topic, int32_t partition,
                                            deadline_ms deadline) {
    watermarks w;
    const auto err =
        rd_kafka_query_watermark_offsets(client_.get(), topic.c_str(), partition, &w.low, &w.high,
                                         static_cast<int>(deadline.count()));
    if (err) {
        Error e = kafka_error(err, "watermarks of " + topic + "/" + std::to_string(partition) +
                                       " on " + client_.where().describe());
        if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) e.code = errc::not_found;
        return boost::outcome_v2::failure(std::move(e));
    }
    return w;
}

message reader::poll(std::chrono::milliseconds timeout) {
    return message(rd_kafka_consumer_poll(client_.get(), static_cast<int>(timeout.count())));
}

Result<int64_t> read_to_end(const endpoint& ep, const std::string& topic, int32_t partition,
                            deadline_ms deadline, const Logger& log,
                            const std::function<Result<void>(const message&)>& on_record,
                            int64_t from) {
    using clock_type = std::chrono::steady_clock;
    const auto until = clock_type::now() + deadline;
    auto left = [&] { return std::chrono::duration_cast<deadline_ms>(until - clock_type::now()); };
    RPL_TRY(rd, reader::create(ep, {}, log));
    RPL_TRY(wm, rd.query_watermarks(topic, partition, std::max(left(), deadline_ms(1))));
    const int64_t high = wm.high;
    if (high <= std::max(wm.low, from)) return high;
    RPL_TRY(rd.assign(topic, partition, from > wm.low ? from : RD_KAFKA_OFFSET_BEGINNING));
    int64_t next = std::max<int64_t>(from, 0);
    while (next < high) {
        const auto remaining = left();
        if (remaining <= deadline_ms(0))
            return fail(errc::timeout, "reading " + topic + "/" + std::to_string(partition) +
                                           " on " + ep.describe() + ": reached offset " +
                                           std::to_string(next) + " of " + std::to_string(high) +
                                           " within " + std::to_string(deadline.count()) + " ms");
        message m = rd.poll(std::min<deadline_ms>(remaining, deadline_ms(500)));
        if (!m) continue;
        if (m.err() == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = std::max(next, m.offset());
            continue;
        }
        if (m.err() != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (is_retriable(m.err())) {
                log.debug("reading " + topic + ": " + m.error_string() + " (retrying)");
                continue;
            }
            return kafka_error(m.err(), "reading " + topic + " on " + ep.describe());
        }
        if (m.offset() < next) continue;
        next = m.offset() + 1;
        RPL_TRY(on_record(m));
    }
    return high;
}

}  // namespace rpl::kafka
