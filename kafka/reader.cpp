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

}  // namespace rpl::kafka
