// An idempotent producer (acks=all) that can send a consumed record without
// copying its value: the record's buffers stay owned by the caller's opaque
// until the delivery report, which hands both back.
//
//   produce(topic, partition, message, opaque) ──> librdkafka ──> broker
//   produce_copy(topic, partition, key, value[, headers], ts, opaque) ─┘
//   poll() ──> on_delivery(opaque, target offset, err)   (on the caller's thread)
//
// Thread model: produce() and poll() from one thread; delivery reports run
// inside poll()/flush() on that thread.
#pragma once

#include "kafka/client.h"
#include "kafka/message.h"

#include <functional>
#include <span>
#include <string>
#include <unordered_map>

namespace rpl::kafka {

struct delivery {
    void* opaque = nullptr;
    int32_t partition = -1;
    int64_t offset = -1;  // offset assigned on the target
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t timestamp = -1;
};

class producer {
public:
    using delivery_fn = std::function<void(const delivery&)>;

    // enable.idempotence=true and acks=all are forced after user properties.
    [[nodiscard]] static Result<producer> create(const endpoint& ep, const properties& overrides,
                                                 const Logger& log, delivery_fn on_delivery);

    producer(producer&&) noexcept = default;
    producer& operator=(producer&&) noexcept = default;

    // Sends m's key, value, headers and timestamp to topic/partition. The
    // value is NOT copied: m must stay alive until on_delivery for `opaque`.
    // Headers are moved out of m; `extra`, if given, is appended to them
    // (copied). Returns the librdkafka error (QUEUE_FULL means: poll and try
    // again); on error m keeps its headers, `extra` included.
    [[nodiscard]] rd_kafka_resp_err_t produce(const std::string& topic, int32_t partition,
                                              message& m, void* opaque,
                                              const record_header* extra = nullptr);
    // A record built by the caller (heartbeats, checkpoints); bytes are copied.
    [[nodiscard]] rd_kafka_resp_err_t produce_copy(const std::string& topic, int32_t partition,
                                                   std::string_view key, const std::string* value,
                                                   int64_t timestamp, void* opaque);
    // A record with headers (a restored one, say); every byte is copied --
    // key, value, header names and values -- so nothing need outlive the
    // call. key or value nullptr: a null key or value; a header whose value
    // is nullptr has a null value. Returns the librdkafka error (QUEUE_FULL
    // means: poll and try again); nothing is kept on error.
    [[nodiscard]] rd_kafka_resp_err_t produce_copy(const std::string& topic, int32_t partition,
                                                   const void* key, size_t key_len,
                                                   const void* value, size_t value_len,
                                                   std::span<const record_header> headers,
                                                   int64_t timestamp, void* opaque);

    int poll(std::chrono::milliseconds timeout) {
        return rd_kafka_poll(client_.get(), static_cast<int>(timeout.count()));
    }
    [[nodiscard]] Result<void> flush(deadline_ms deadline);
    // Drops everything queued or in flight; their delivery reports arrive
    // with RD_KAFKA_RESP_ERR__PURGE_QUEUE / __PURGE_INFLIGHT on the next poll.
    void purge() noexcept;
    [[nodiscard]] int outstanding() const noexcept { return rd_kafka_outq_len(client_.get()); }
    // Non-empty when librdkafka declared the producer unusable.
    [[nodiscard]] std::string fatal_error() const;

    [[nodiscard]] Client& client() noexcept { return client_; }

private:
    struct state {
        delivery_fn fn;
    };
    producer(Client c, std::unique_ptr<state> s) : state_(std::move(s)), client_(std::move(c)) {}
    rd_kafka_topic_t* topic_handle(const std::string& name);

    std::unique_ptr<state> state_;  // outlives client_: delivery reports use it
    // Cached topic handles, released before client_ is destroyed.
    struct topic_deleter {
        void operator()(rd_kafka_topic_t* t) const noexcept { rd_kafka_topic_destroy(t); }
    };
    Client client_;
    std::unordered_map<std::string, std::unique_ptr<rd_kafka_topic_t, topic_deleter>> topics_;
};

}  // namespace rpl::kafka
