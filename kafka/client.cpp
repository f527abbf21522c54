#include "kafka/client.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <thread>

namespace rpl::kafka {

Error kafka_error(rd_kafka_resp_err_t err, const std::string& what) {
    errc code = errc::kafka;
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
        code = errc::timeout;
    else if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        code = errc::unreachable;
    else if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
             err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
        code = errc::not_found;
    return Error{code, what + ": " + rd_kafka_err2str(err)};
}

bool is_retriable(rd_kafka_resp_err_t err) noexcept {
    switch (err) {
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
        case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
        case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS: return true;
        default: return false;
    }
}

namespace {

void log_cb(const rd_kafka_t* rk, int lvl, const char* fac, const char* buf) {
    auto* opaque = rd_kafka_opaque(rk);
    if (opaque == nullptr) return;
    const Logger& log = static_cast<const client_context*>(opaque)->log;
    // syslog levels: 0-3 error, 4 warning, 5-6 info/notice, 7 debug.
    level l = lvl <= 3   ? level::error
              : lvl == 4 ? level::warn
              : lvl <= 6 ? level::info
                         : level::debug;
    std::string line = "librdkafka ";
    line += fac;
    line += ": ";
    line += buf;
    log.log(l, line);
}

void error_cb(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
    if (opaque == nullptr) return;
    const Logger& log = static_cast<const client_context*>(opaque)->log;
    const auto code = static_cast<rd_kafka_resp_err_t>(err);
    // Shutdown-caused errors are not errors.
    if (code == RD_KAFKA_RESP_ERR__DESTROY) return;
    std::string line = "librdkafka error ";
    line += rd_kafka_err2name(code);
    line += ": ";
    line += reason;
    // A deleted topic is reported once by whoever owns the subscription;
    // librdkafka repeats it per partition and per fetch.
    const bool expected = code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                          code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                          code == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
    log.log(code == RD_KAFKA_RESP_ERR__FATAL ? level::error
            : expected                       ? level::debug
                                             : level::warn,
            line);
}

Result<void> set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                 const endpoint& ep) {
    char err[512] = {0};
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        return fail(errc::invalid_config,
                    "cluster " + ep.alias + ": property " + name + ": " + err);
    return ok();
}

}  // namespace

void* user_opaque(rd_kafka_t* rk) noexcept {
    auto* opaque = rd_kafka_opaque(rk);
    return opaque == nullptr ? nullptr : static_cast<client_context*>(opaque)->user;
}

void note_assigned(rd_kafka_t* rk) noexcept {
    if (auto* ctx = static_cast<client_context*>(rd_kafka_opaque(rk))) ctx->assigned = true;
}

void note_subscribed(rd_kafka_t* rk) noexcept {
    if (auto* ctx = static_cast<client_context*>(rd_kafka_opaque(rk))) ctx->subscribed = true;
}

Result<Client> Client::create(client_kind kind, const endpoint& ep, const properties& overrides,
                              const Logger& log, void (*setup)(rd_kafka_conf_t*, void*),
                              void* opaque) {
    conf_ptr conf(rd_kafka_conf_new());
    RPL_TRY(set(conf.get(), "bootstrap.servers", ep.bootstrap, ep));
    RPL_TRY(set(conf.get(), "client.id", "replicatord", ep));
    for (const auto& [k, v] : ep.client) {
        RPL_TRY(set(conf.get(), k, v, ep));
    }
    for (const auto& [k, v] : overrides) {
        RPL_TRY(set(conf.get(), k, v, ep));
    }

    Client c;
    c.kind_ = kind;
    c.ctx_ = std::make_unique<client_context>();
    c.ctx_->ep = ep;
    c.ctx_->log = log;
    c.ctx_->user = opaque;
    rd_kafka_conf_set_opaque(conf.get(), c.ctx_.get());
    rd_kafka_conf_set_log_cb(conf.get(), &log_cb);
    rd_kafka_conf_set_error_cb(conf.get(), &error_cb);
    if (setup != nullptr) setup(conf.get(), opaque);

    char err[512] = {0};
    const auto type = kind == client_kind::producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER;
    // rd_kafka_new takes ownership of conf only on success.
    rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
    if (rk == nullptr)
        return fail(errc::invalid_config,
                    "cluster " + ep.describe() + ": cannot create client: " + err);
    (void)conf.release();
    c.rk_ = rk;
    if (kind == client_kind::consumer) rd_kafka_poll_set_consumer(rk);
    return c;
}

Client::Client(Client&& o) noexcept
    : rk_(o.rk_),
      kind_(o.kind_),
      ctx_(std::move(o.ctx_)),
      closed_(o.closed_),
      joined_unassigned_(o.joined_unassigned_) {
    o.rk_ = nullptr;
}

Client& Client::operator=(Client&& o) noexcept {
    if (this != &o) {
        destroy();
        rk_ = o.rk_;
        kind_ = o.kind_;
        ctx_ = std::move(o.ctx_);
        closed_ = o.closed_;
        joined_unassigned_ = o.joined_unassigned_;
        o.rk_ = nullptr;
    }
    return *this;
}

Client::~Client() { destroy(); }

void Client::note_membership() noexcept {
    // librdkafka before 2.3.0 aborts the process when it destroys a
    // cooperative-sticky consumer that has joined its group (it has a member
    // id) but was never handed an assignment: the assignor's state is still
    // null and its destructor asserts (librdkafka #4312, fixed by #4381).
    // Leaving the group clears the member id, so this is looked at before
    // the close, not at the destroy. Not during it: rd_kafka_memberid waits
    // for the group's own thread without a deadline, and that thread stops
    // serving questions as the close ends. Nor for a handle that never
    // subscribed (a reader assigns by hand and never joins): its close and
    // destroy then never wait on the group's thread at all.
    if (joined_unassigned_ || rd_kafka_version() >= 0x020300ff || !ctx_->subscribed.load() ||
        ctx_->assigned.load())
        return;
    if (char* id = rd_kafka_memberid(rk_)) {
        joined_unassigned_ = id[0] != '\0';
        rd_kafka_mem_free(rk_, id);
    }
}

void Client::close(deadline_ms deadline, rebalance_event_fn on_rebalance) noexcept {
    if (rk_ == nullptr || closed_) return;
    closed_ = true;
    if (kind_ == client_kind::consumer) {
        note_membership();
        // rd_kafka_consumer_close has no timeout of its own; the queue-based
        // close lets us bound it. Rebalance callbacks are not called on this
        // path: the revocation arrives as an event that must be answered
        // with an unassign, or the close never completes.
        queue_ptr q(rd_kafka_queue_new(rk_));
        if (rd_kafka_error_t* e = rd_kafka_consumer_close_queue(rk_, q.get())) {
            rd_kafka_error_destroy(e);
            return;
        }
        const auto until = std::chrono::steady_clock::now() + deadline;
        while (!rd_kafka_consumer_closed(rk_) && std::chrono::steady_clock::now() < until) {
            event_ptr ev(rd_kafka_queue_poll(q.get(), 100));
            if (!ev || rd_kafka_event_type(ev.get()) != RD_KAFKA_EVENT_REBALANCE) continue;
            auto* parts = rd_kafka_event_topic_partition_list(ev.get());
            if (on_rebalance) {
                on_rebalance(rk_, rd_kafka_event_error(ev.get()), parts);
            } else if (std::strcmp(rd_kafka_rebalance_protocol(rk_), "COOPERATIVE") == 0) {
                if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk_, parts))
                    rd_kafka_error_destroy(e);
            } else {
                rd_kafka_assign(rk_, nullptr);
            }
        }
    } else {
        rd_kafka_flush(rk_, static_cast<int>(deadline.count()));
    }
}

void Client::destroy() noexcept {
    if (rk_ == nullptr) return;
    if (kind_ != client_kind::consumer) {
        // Producers are flushed or purged by their owner, who knows how long
        // it may wait.
        rd_kafka_destroy(rk_);
        rk_ = nullptr;
        ctx_.reset();
        return;
    }
    // Stopping or reloading a flow during its first rebalance would end the
    // daemon (see note_membership). Such a handle is closed (the group is
    // left) and then left behind: a small, counted leak instead of the whole
    // process.
    close(std::chrono::seconds(10));
    if (joined_unassigned_ && !ctx_->assigned.load()) {
        ctx_->log.warn(
            "leaving a closed consumer handle behind: it joined its group but was never "
            "assigned, and librdkafka " +
            std::string(rd_kafka_version_str()) +
            " aborts when destroying such a handle (fixed in 2.3.0)");
        static_cast<void>(ctx_.release());  // its callbacks may still run
        rk_ = nullptr;
        return;
    }
    // librdkafka 2.0.2 can leak a broker reference when a subscribed topic is
    // deleted, and rd_kafka_destroy then waits forever for that broker
    // thread. Destroy on a helper thread and stop waiting after a deadline:
    // the group was left and progress committed before this point, so only
    // the handle's memory is lost, and the daemon can still exit on time.
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    rd_kafka_t* rk = rk_;
    const Logger log = ctx_->log;
    client_context* ctx = ctx_.release();  // must outlive rk's callbacks
    std::thread([rk, ctx, done] {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        delete ctx;
        done->set_value();
    }).detach();
    if (finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
        log.warn(
            "librdkafka did not finish destroying the consumer within 5 s (a known hang of "
            "librdkafka 2.0.2 after a topic deletion); leaving it behind");
    }
    rk_ = nullptr;
}

const topic_info* cluster_metadata::topic(const std::string& name) const {
    auto it =
        std::lower_bound(topics.begin(), topics.end(), name,
                         [](const topic_info& t, const std::string& n) { return t.name < n; });
    return it != topics.end() && it->name == name ? &*it : nullptr;
}

Result<cluster_metadata> fetch_metadata(const Client& c, deadline_ms deadline) {
    const rd_kafka_metadata_t* md = nullptr;
    const auto err =
        rd_kafka_metadata(c.get(), 1, nullptr, &md, static_cast<int>(deadline.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Error e = kafka_error(err, "cluster " + c.where().describe() + ": metadata request");
        if (e.code == errc::timeout || e.code == errc::unreachable) {
            e.code = errc::unreachable;
            e.message = "cluster " + c.where().describe() + " unreachable: no metadata within " +
                        std::to_string(deadline.count()) + " ms (" + rd_kafka_err2str(err) + ")";
        }
        return boost::outcome_v2::failure(std::move(e));
    }
    std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> owned(
        md, &rd_kafka_metadata_destroy);
    cluster_metadata out;
    for (int i = 0; i < md->broker_cnt; ++i) out.brokers.push_back(md->brokers[i].id);
    out.topics.reserve(static_cast<size_t>(md->topic_cnt));
    for (int i = 0; i < md->topic_cnt; ++i) {
        const auto& t = md->topics[i];
        topic_info ti;
        ti.name = t.topic;
        ti.err = t.err;
        for (int p = 0; p < t.partition_cnt; ++p)
            ti.partitions.push_back({t.partitions[p].id, t.partitions[p].leader});
        std::sort(ti.partitions.begin(), ti.partitions.end(),
                  [](const partition_info& a, const partition_info& b) { return a.id < b.id; });
        out.topics.push_back(std::move(ti));
    }
    std::sort(out.topics.begin(), out.topics.end(),
              [](const topic_info& a, const topic_info& b) { return a.name < b.name; });
    return out;
}

Result<cluster_metadata> probe(const endpoint& ep, deadline_ms deadline, const Logger& log) {
    // Connection failures during a probe are the expected answer, reported
    // once by the caller; librdkafka's own retries would only repeat it.
    properties quiet{{"log_level", "0"}};
    RPL_TRY(c, Client::create(client_kind::producer, ep, quiet, log));
    return fetch_metadata(c, deadline);
}

}  // namespace rpl::kafka
