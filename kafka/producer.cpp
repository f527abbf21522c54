#include "kafka/producer.h"

namespace rpl::kafka {

namespace {
void dr_msg_cb(rd_kafka_t* rk, const rd_kafka_message_t* m, void* /*opaque*/) {
    auto* fn = static_cast<producer::delivery_fn*>(user_opaque(rk));
    delivery d;
    d.opaque = m->_private;
    d.partition = m->partition;
    d.offset = m->offset;
    d.err = m->err;
    d.timestamp = rd_kafka_message_timestamp(m, nullptr);
    (*fn)(d);
}
}  // namespace

Result<producer> producer::create(const endpoint& ep, const properties& overrides,
                                  const Logger& log, delivery_fn on_delivery) {
    properties forced = overrides;
    forced["enable.idempotence"] = "true";
    forced["acks"] = "all";
    auto st = std::make_unique<state>(state{std::move(on_delivery)});
    auto setup =
        +[](rd_kafka_conf_t* conf, void*) { rd_kafka_conf_set_dr_msg_cb(conf, &dr_msg_cb); };
    RPL_TRY(c, Client::create(client_kind::producer, ep, forced, log, setup, &st->fn));
    return producer(std::move(c), std::move(st));
}

rd_kafka_topic_t* producer::topic_handle(const std::string& name) {
    auto it = topics_.find(name);
    if (it != topics_.end()) return it->second.get();
    rd_kafka_topic_t* t = rd_kafka_topic_new(client_.get(), name.c_str(), nullptr);
    topics_.emplace(name, std::unique_ptr<rd_kafka_topic_t, topic_deleter>(t));
    return t;
}

rd_kafka_resp_err_t producer::produce(const std::string& topic, int32_t partition, message& m,
                                      void* opaque, const record_header* extra) {
    rd_kafka_topic_t* rkt = topic_handle(topic);
    headers_ptr hdrs = m.detach_headers();
    if (extra != nullptr) {
        if (!hdrs) hdrs.reset(rd_kafka_headers_new(1));
        rd_kafka_header_add(hdrs.get(), extra->name.data(),
                            static_cast<ssize_t>(extra->name.size()), extra->value,
                            static_cast<ssize_t>(extra->size));
    }
    rd_kafka_resp_err_t err;
    if (hdrs) {
        // librdkafka owns the headers only if producev succeeds.
        err = rd_kafka_producev(client_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(m.key(), m.key_size()),
                                RD_KAFKA_V_VALUE(const_cast<void*>(m.value()), m.value_size()),
                                RD_KAFKA_V_HEADERS(hdrs.get()), RD_KAFKA_V_TIMESTAMP(m.timestamp()),
                                RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            (void)hdrs.release();
        } else {
            // Put them back so a retry sends the same record.
            rd_kafka_message_set_headers(m.get(), hdrs.release());
        }
    } else {
        err = rd_kafka_producev(client_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(m.key(), m.key_size()),
                                RD_KAFKA_V_VALUE(const_cast<void*>(m.value()), m.value_size()),
                                RD_KAFKA_V_TIMESTAMP(m.timestamp()), RD_KAFKA_V_OPAQUE(opaque),
                                RD_KAFKA_V_END);
    }
    return err;
}

rd_kafka_resp_err_t producer::produce_copy(const std::string& topic, int32_t partition,
                                           std::string_view key, const std::string* value,
                                           int64_t timestamp, void* opaque) {
    return produce_copy(topic, partition, key.data(), key.size(),
                        value != nullptr ? value->data() : nullptr,
                        value != nullptr ? value->size() : 0, {}, timestamp, opaque);
}

rd_kafka_resp_err_t producer::produce_copy(const std::string& topic, int32_t partition,
                                           const void* key, size_t key_len, const void* value,
                                           size_t value_len, std::span<const record_header> headers,
                                           int64_t timestamp, void* opaque) {
    rd_kafka_topic_t* rkt = topic_handle(topic);
    void* payload = const_cast<void*>(value);  // copied: RD_KAFKA_MSG_F_COPY
    if (headers.empty()) {
        return rd_kafka_producev(
            client_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE(payload, value_len), RD_KAFKA_V_TIMESTAMP(timestamp),
            RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    }
    // rd_kafka_header_add copies names and values.
    headers_ptr hdrs(rd_kafka_headers_new(headers.size()));
    for (const auto& h : headers) {
        rd_kafka_header_add(hdrs.get(), h.name.data(), static_cast<ssize_t>(h.name.size()), h.value,
                            h.value != nullptr ? static_cast<ssize_t>(h.size) : 0);
    }
    const auto err = rd_kafka_producev(
        client_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE(payload, value_len), RD_KAFKA_V_HEADERS(hdrs.get()),
        RD_KAFKA_V_TIMESTAMP(timestamp), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    // librdkafka owns the headers only if producev succeeds.
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) (void)hdrs.release();
    return err;
}

Result<void> producer::flush(deadline_ms deadline) {
    const auto err = rd_kafka_flush(client_.get(), static_cast<int>(deadline.count()));
    if (err) return kafka_error(err, "flush to " + client_.where().describe());
    return ok();
}

void producer::purge() noexcept {
    rd_kafka_purge(client_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

std::string producer::fatal_error() const {
    char buf[512] = {0};
    if (rd_kafka_fatal_error(client_.get(), buf, sizeof buf) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return {};
    return buf;
}

}  // namespace rpl::kafka
