// kafka/: the only place that calls rd_kafka_*.
//
//   conf props ──make_conf──> rd_kafka_conf_t ──Client::create──> rd_kafka_t
//                                   │ log_cb / error_cb ──> rpl::Logger
//                                   └ forced invariants applied last
//
// Owns: every librdkafka handle, each in a unique_ptr with its deleter;
// deadlines on every blocking call; routing of librdkafka's log and error
// callbacks into the project logger. Knows no product logic.
// Thread model: a Client may be used from several threads as librdkafka
// allows; callbacks run on librdkafka's threads or inside poll().
#pragma once

#include "kafka/log.h"
#include "kafka/result.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rpl::kafka {

using properties = std::map<std::string, std::string>;
using deadline_ms = std::chrono::milliseconds;

struct conf_deleter {
    void operator()(rd_kafka_conf_t* p) const noexcept { rd_kafka_conf_destroy(p); }
};
struct tpl_deleter {
    void operator()(rd_kafka_topic_partition_list_t* p) const noexcept {
        rd_kafka_topic_partition_list_destroy(p);
    }
};
struct message_deleter {
    void operator()(rd_kafka_message_t* p) const noexcept { rd_kafka_message_destroy(p); }
};
struct event_deleter {
    void operator()(rd_kafka_event_t* p) const noexcept { rd_kafka_event_destroy(p); }
};
struct queue_deleter {
    void operator()(rd_kafka_queue_t* p) const noexcept { rd_kafka_queue_destroy(p); }
};
struct headers_deleter {
    void operator()(rd_kafka_headers_t* p) const noexcept { rd_kafka_headers_destroy(p); }
};

using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;
using tpl_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, tpl_deleter>;
using message_ptr = std::unique_ptr<rd_kafka_message_t, message_deleter>;
using event_ptr = std::unique_ptr<rd_kafka_event_t, event_deleter>;
using queue_ptr = std::unique_ptr<rd_kafka_queue_t, queue_deleter>;
using headers_ptr = std::unique_ptr<rd_kafka_headers_t, headers_deleter>;

[[nodiscard]] inline tpl_ptr make_tpl(int size = 0) {
    return tpl_ptr(rd_kafka_topic_partition_list_new(size));
}

// An Error from a librdkafka error code, naming what was being done.
[[nodiscard]] Error kafka_error(rd_kafka_resp_err_t err, const std::string& what);
[[nodiscard]] bool is_retriable(rd_kafka_resp_err_t err) noexcept;

enum class client_kind { producer, consumer };

// Identifies a cluster in every message: "primary (127.0.0.1:19092)".
struct endpoint {
    std::string alias;
    std::string bootstrap;
    properties client;  // user's librdkafka properties
    [[nodiscard]] std::string describe() const { return alias + " (" + bootstrap + ")"; }
};

// What librdkafka's callbacks receive as the conf opaque.
struct client_context {
    endpoint ep;
    Logger log;
    void* user = nullptr;  // the caller's opaque, see user_opaque()
    // A group consumer has been handed an assignment (even an empty one)
    // at least once; see Client::destroy.
    std::atomic<bool> assigned{false};
    // It subscribed, so it may have joined its group; see Client::close.
    std::atomic<bool> subscribed{false};
};

// Marks a group consumer's handle as assigned (from its rebalance callback).
void note_assigned(rd_kafka_t* rk) noexcept;
// Marks a consumer's handle as subscribed (it may join its group).
void note_subscribed(rd_kafka_t* rk) noexcept;

// An owned rd_kafka_t with the project's logger wired in. Movable, not
// copyable. Destruction closes consumers (bounded by a deadline) before
// rd_kafka_destroy so the group leaves cleanly.
class Client {
public:
    // `overrides` are applied after the user's properties: they are the
    // invariants the caller relies on (acks=all, enable.auto.commit=false...).
    // `setup` may set callbacks (delivery reports, rebalance) on the conf
    // before the handle is created.
    [[nodiscard]] static Result<Client> create(client_kind kind, const endpoint& ep,
                                               const properties& overrides, const Logger& log,
                                               void (*setup)(rd_kafka_conf_t*, void*) = nullptr,
                                               void* opaque = nullptr);

    Client(Client&&) noexcept;
    Client& operator=(Client&&) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();

    [[nodiscard]] rd_kafka_t* get() const noexcept { return rk_; }
    [[nodiscard]] const endpoint& where() const noexcept { return ctx_->ep; }
    [[nodiscard]] const Logger& logger() const noexcept { return ctx_->log; }
    [[nodiscard]] client_kind kind() const noexcept { return kind_; }

    // Closes a consumer (leaves the group; final commits are the caller's,
    // before this). A revocation during the close goes to on_rebalance if
    // given, which must unassign; otherwise it is unassigned here.
    using rebalance_event_fn = void (*)(rd_kafka_t*, rd_kafka_resp_err_t,
                                        rd_kafka_topic_partition_list_t*);
    void close(deadline_ms deadline = std::chrono::seconds(10),
               rebalance_event_fn on_rebalance = nullptr) noexcept;

private:
    Client() = default;
    void destroy() noexcept;

    rd_kafka_t* rk_ = nullptr;
    client_kind kind_ = client_kind::producer;
    // Stable address handed to librdkafka as the conf opaque; it must outlive
    // rk_, so it is released only after rd_kafka_destroy in destroy().
    std::unique_ptr<client_context> ctx_;
    bool closed_ = false;
    // A consumer seen, just before its close, as a member of its group that
    // was never assigned (see destroy()).
    bool joined_unassigned_ = false;
    void note_membership() noexcept;
};

// The `opaque` given to Client::create, from inside a librdkafka callback.
[[nodiscard]] void* user_opaque(rd_kafka_t* rk) noexcept;

struct partition_info {
    int32_t id = 0;
    int32_t leader = -1;
};

struct topic_info {
    std::string name;
    std::vector<partition_info> partitions;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

struct cluster_metadata {
    std::vector<int32_t> brokers;
    std::vector<topic_info> topics;  // sorted by name
    [[nodiscard]] const topic_info* topic(const std::string& name) const;
};

// Metadata for all topics, within the deadline. A cluster that does not
// answer gives errc::unreachable naming the cluster and its bootstrap.
[[nodiscard]] Result<cluster_metadata> fetch_metadata(const Client& c, deadline_ms deadline);

// Connect to a cluster with a throwaway producer handle and fetch metadata.
[[nodiscard]] Result<cluster_metadata> probe(const endpoint& ep, deadline_ms deadline,
                                             const Logger& log);

}  // namespace rpl::kafka
