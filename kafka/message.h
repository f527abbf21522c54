// A consumed record, owned. Wraps rd_kafka_message_t so that the data path
// can hand its buffers to a producer without copying and release them when
// the target acknowledges (see producer::produce).
#pragma once

#include "kafka/client.h"

#include <cstdint>
#include <string_view>

namespace rpl::kafka {

struct record_header {
    std::string_view name;
    const void* value = nullptr;  // nullptr: a null header value
    size_t size = 0;
};

class message {
public:
    message() = default;
    explicit message(rd_kafka_message_t* m) noexcept : m_(m) {}

    [[nodiscard]] explicit operator bool() const noexcept { return m_ != nullptr; }
    [[nodiscard]] rd_kafka_message_t* get() const noexcept { return m_.get(); }
    [[nodiscard]] rd_kafka_message_t* release() noexcept { return m_.release(); }

    // Consumer errors arrive as messages with err set.
    [[nodiscard]] rd_kafka_resp_err_t err() const noexcept { return m_->err; }
    [[nodiscard]] std::string error_string() const;

    [[nodiscard]] std::string_view topic() const noexcept;
    [[nodiscard]] rd_kafka_topic_t* topic_handle() const noexcept { return m_->rkt; }
    [[nodiscard]] int32_t partition() const noexcept { return m_->partition; }
    [[nodiscard]] int64_t offset() const noexcept { return m_->offset; }
    // nullptr key or value means null (a tombstone for values).
    [[nodiscard]] const void* key() const noexcept { return m_->key; }
    [[nodiscard]] size_t key_size() const noexcept { return m_->key_len; }
    [[nodiscard]] const void* value() const noexcept { return m_->payload; }
    [[nodiscard]] size_t value_size() const noexcept { return m_->len; }
    // Milliseconds since the epoch, and whether it is CreateTime or LogAppendTime.
    [[nodiscard]] int64_t timestamp(rd_kafka_timestamp_type_t* type = nullptr) const noexcept;
    // Bytes this record accounts for in flight: key + value + headers.
    [[nodiscard]] size_t wire_size() const noexcept;

    // Headers in order; the callback sees each one.
    template <class F>
    void for_each_header(F&& f) const {
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m_.get(), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i)
            f(record_header{name, value, size});
    }

    // Takes the headers out of the message (for a producer to own).
    [[nodiscard]] headers_ptr detach_headers() noexcept;

private:
    message_ptr m_;
};

}  // namespace rpl::kafka
