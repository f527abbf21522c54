// A plain partition reader: assign() one partition at an offset and poll it,
// with no consumer group membership and no commits. For state topics read
// from the beginning to a known end (offsetsync's runs topic, checkpoints).
//
//   query_watermarks(t, p) ──> [low, high)      (one request, with a deadline)
//   assign(t, p, offset) ──poll()──> message    (errors and EOF as messages)
//
// Thread model: one thread owns a reader.
#pragma once

#include "kafka/client.h"
#include "kafka/message.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace rpl::kafka {

struct watermarks {
    int64_t low = 0;   // log start offset
    int64_t high = 0;  // offset the next record will get
};

class reader {
public:
    // group.id is set (librdkafka wants one) but never joined: auto commit
    // and offset store are off, partition EOF is reported.
    [[nodiscard]] static Result<reader> create(const endpoint& ep, const properties& overrides,
                                               const Logger& log);

    reader(reader&&) noexcept = default;
    reader& operator=(reader&&) noexcept = default;

    // Replaces the assignment with this one partition, starting at offset
    // (RD_KAFKA_OFFSET_BEGINNING / _END or an absolute offset).
    [[nodiscard]] Result<void> assign(const std::string& topic, int32_t partition, int64_t offset);
    // Asks the partition leader; errc::not_found if the topic or partition
    // does not exist.
    [[nodiscard]] Result<watermarks> query_watermarks(const std::string& topic, int32_t partition,
                                                      deadline_ms deadline);
    // One message or event, waiting at most timeout; an empty message if
    // none. Errors (and RD_KAFKA_RESP_ERR__PARTITION_EOF) arrive with err() set.
    [[nodiscard]] message poll(std::chrono::milliseconds timeout);

    [[nodiscard]] Client& client() noexcept { return client_; }

private:
    explicit reader(Client c) : client_(std::move(c)) {}
    Client client_;
};

}  // namespace rpl::kafka
