// A group consumer for the data path, shared by the mirror and the archival
// tap: batch polling, cooperative rebalances, explicit commits, pause/resume
// and seek. Nothing here decides *when* to commit; the caller commits only
// what its sink has made durable.
//
//   subscribe(topics) ──poll(batch)──> caller ──commit(positions)──> group
//          ▲                 │ rebalance: on_assign / on_revoke (caller
//          └── refresh       │ drains and commits before giving partitions up)
//
// Thread model: one thread owns a consumer; callbacks run inside poll() on it.
#pragma once

#include "kafka/client.h"
#include "kafka/message.h"

#include <functional>
#include <string>
#include <vector>

namespace rpl::kafka {

struct topic_partition {
    std::string topic;
    int32_t partition = 0;
    int64_t offset = -1001;  // RD_KAFKA_OFFSET_INVALID unless set
    std::string metadata;    // committed with the offset, and read back by committed()
    // clang-tidy reads the synthesised `<=> 0` of a defaulted comparison as
    // a null pointer constant when a caller compares two of these.
    auto operator<=>(const topic_partition&) const = default;  // NOLINT(modernize-use-nullptr)
};
using partition_list = std::vector<topic_partition>;

[[nodiscard]] tpl_ptr to_tpl(const partition_list& parts);
[[nodiscard]] partition_list from_tpl(const rd_kafka_topic_partition_list_t* tpl);

struct rebalance_handler {
    // Before fetching starts. Where it sets an offset (>= 0, or a logical
    // one such as RD_KAFKA_OFFSET_BEGINNING) fetching starts there, without
    // librdkafka's own committed-offset query: in 2.0.2 a failed answer to
    // that query (NOT_COORDINATOR right after a coordinator moved) leaves
    // the partition assigned but never fetched (librdkafka issue 5586).
    std::function<void(partition_list&)> on_assign;
    std::function<void(const partition_list&)> on_revoke;  // before they are given up
    // The broker's answer to a commit: the offsets it took (per-partition
    // failures are left out).
    std::function<void(const partition_list&)> on_committed;
};

class consumer {
public:
    // group.id, isolation.level and the commit settings are forced here:
    // auto commit and auto offset store are off, read_committed is on,
    // the assignor is cooperative-sticky.
    [[nodiscard]] static Result<consumer> create(const endpoint& ep, const std::string& group_id,
                                                 const properties& overrides, const Logger& log);

    consumer(consumer&&) noexcept = default;
    consumer& operator=(consumer&&) noexcept = default;

    void set_rebalance_handler(rebalance_handler h) { handler_->h = std::move(h); }
    // Tests only (fault injection): after each message poll() takes, how
    // long to wait for the next one of the same batch, where it otherwise
    // takes only what is already queued. A rebalance callback that lands
    // between two messages of one batch then lands there every time.
    void set_poll_hook(std::function<std::chrono::milliseconds(const message&)> h) {
        poll_hook_ = std::move(h);
    }

    [[nodiscard]] Result<void> subscribe(const std::vector<std::string>& topics);
    // Up to max messages, waiting at most timeout for the first. Consumer
    // errors come back as messages with err() set.
    size_t poll(std::vector<message>& out, size_t max, std::chrono::milliseconds timeout);

    // Commits offsets (the next offset to read). async: result arrives via
    // the commit callback counted in last_commit_error().
    [[nodiscard]] Result<void> commit(const partition_list& positions, bool async);
    // Committed offsets of the group for these partitions (offset -1001 if none).
    [[nodiscard]] Result<partition_list> committed(const partition_list& parts,
                                                   deadline_ms deadline);
    [[nodiscard]] Result<void> seek(const partition_list& positions, deadline_ms deadline);
    [[nodiscard]] Result<void> pause(const partition_list& parts);
    [[nodiscard]] Result<void> resume(const partition_list& parts);
    [[nodiscard]] partition_list assignment() const;
    // The consumer's own positions (next offset it will hand out), which
    // move past transaction markers the application never sees.
    [[nodiscard]] partition_list positions(const partition_list& parts) const;

    // Low/high watermark as last seen in fetch responses (no request).
    [[nodiscard]] bool cached_watermarks(const std::string& topic, int32_t partition, int64_t& low,
                                         int64_t& high) const;

    // Gives up `parts` and takes them again at their offsets, outside a
    // rebalance (the group is not told): the one way out of the state
    // described at rebalance_handler::on_assign.
    [[nodiscard]] Result<void> reassign(const partition_list& parts);
    // Where to start a partition the group has no commit for, as
    // auto.offset.reset says (a logical offset).
    [[nodiscard]] int64_t start_without_commit() const noexcept { return handler_->reset; }

    // Inside on_revoke: whether the partitions were lost (the session timed
    // out, or the group moved on without us) rather than handed over.
    [[nodiscard]] bool assignment_lost() const noexcept {
        return rd_kafka_assignment_lost(client_.get()) != 0;
    }
    [[nodiscard]] rd_kafka_resp_err_t last_commit_error() const noexcept {
        return handler_->last_commit_err;
    }
    [[nodiscard]] Client& client() noexcept { return client_; }
    // Leaves the group; a revocation on the way out reaches on_revoke.
    void close(deadline_ms deadline = std::chrono::seconds(10)) noexcept {
        client_.close(deadline, [](rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* parts) {
            rebalance_cb(rk, err, parts, nullptr);
        });
    }

private:
    struct handler_state {
        rebalance_handler h;
        rd_kafka_resp_err_t last_commit_err = RD_KAFKA_RESP_ERR_NO_ERROR;
        Logger log;
        int64_t reset = RD_KAFKA_OFFSET_BEGINNING;  // see start_without_commit
    };
    consumer(Client c, std::unique_ptr<handler_state> h)
        : handler_(std::move(h)), client_(std::move(c)) {}
    static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* parts, void* opaque);
    static void commit_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* offsets, void* opaque);

    std::function<std::chrono::milliseconds(const message&)> poll_hook_;
    // Declared before client_ so it outlives the handle whose callbacks use it.
    std::unique_ptr<handler_state> handler_;
    Client client_;
};

}  // namespace rpl::kafka
