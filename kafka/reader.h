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
#include <functional>
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

// Reads one partition of a state topic from `from` (the beginning by
// default) up to its end offset as of the call, handing every record to `on_record` (which may stop
// the read by failing). A missing topic is errc::not_found. Compaction holes
// are fine: partition EOF also ends the read. errc::timeout if the end was
// not reached within the deadline. Returns the end offset read up to.
[[nodiscard]] Result<int64_t> read_to_end(
    const endpoint& ep, const std::string& topic, int32_t partition, deadline_ms deadline,
    const Logger& log, const std::function<Result<void>(const message&)>& on_record,
    int64_t from = 0);

}  // namespace rpl::kafka
