#include "kafka/message.h"

namespace rpl::kafka {

std::string message::error_string() const {
    const char* s = rd_kafka_message_errstr(m_.get());
    return s != nullptr ? s : rd_kafka_err2str(m_->err);
}

std::string_view message::topic() const noexcept {
    return m_->rkt != nullptr ? std::string_view(rd_kafka_topic_name(m_->rkt)) : std::string_view();
}

int64_t message::timestamp(rd_kafka_timestamp_type_t* type) const noexcept {
    rd_kafka_timestamp_type_t t = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    const int64_t ts = rd_kafka_message_timestamp(m_.get(), &t);
    if (type != nullptr) *type = t;
    return ts;
}

size_t message::wire_size() const noexcept {
    size_t n = m_->len + m_->key_len;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m_.get(), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i)
            n += size + std::char_traits<char>::length(name);
    }
    return n;
}

headers_ptr message::detach_headers() noexcept {
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_detach_headers(m_.get(), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    return headers_ptr(hdrs);
}

}  // namespace rpl::kafka
