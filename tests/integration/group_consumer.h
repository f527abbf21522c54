// Group consumers for the tests that move groups between clusters: read a
// topic as an application in a consumer group would, commit exact
// positions, read committed offsets. Header-only.
#pragma once

#include "tests/integration/support.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace rpl::test {

using offsets = std::map<int32_t, int64_t>;  // partition -> offset
using by_partition = std::map<int32_t, std::vector<record>>;

// A group consumer; closed (leaving the group, committing nothing) on scope exit.
struct consumer {
    rd_kafka_t* rk = nullptr;
    consumer(const std::string& bootstrap, const std::string& group, const std::string& reset) {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        char err[512];
        const std::map<std::string, std::string> props{
            {"bootstrap.servers", bootstrap},      {"group.id", group},
            {"enable.auto.commit", "false"},       {"enable.auto.offset.store", "false"},
            {"auto.offset.reset", reset},          {"enable.partition.eof", "true"},
            {"isolation.level", "read_committed"}, {"session.timeout.ms", "10000"},
        };
        for (const auto& [k, v] : props) {
            if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) !=
                RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                throw std::runtime_error("consumer property " + k + ": " + err);
            }
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (rk == nullptr) throw std::runtime_error(std::string("consumer: ") + err);
        rd_kafka_poll_set_consumer(rk);
    }
    ~consumer() {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    consumer(const consumer&) = delete;
    consumer& operator=(const consumer&) = delete;
    void subscribe(const std::string& topic) {
        rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic.c_str(), RD_KAFKA_PARTITION_UA);
        const auto err = rd_kafka_subscribe(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err) throw std::runtime_error("subscribe to " + topic + ": " + rd_kafka_err2str(err));
    }
    void pause(const std::string& topic, int32_t p) {
        rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic.c_str(), p);
        rd_kafka_pause_partitions(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
};

inline record to_record(const rd_kafka_message_t* m) {
    record r;
    r.partition = m->partition;
    r.offset = m->offset;
    r.timestamp = rd_kafka_message_timestamp(m, nullptr);
    if (m->key != nullptr) r.key = std::string(static_cast<const char*>(m->key), m->key_len);
    if (m->payload != nullptr) r.value = std::string(static_cast<const char*>(m->payload), m->len);
    return r;
}

// The group's committed offsets (RD_KAFKA_OFFSET_INVALID where it has none),
// asked without joining the group.
inline offsets committed_offsets(const std::string& bootstrap, const std::string& group,
                                 const std::string& topic, int partitions) {
    consumer c(bootstrap, group, "error");
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(partitions);
    for (int32_t p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(l, topic.c_str(), p);
    const auto err = rd_kafka_committed(c.rk, l, 15000);
    offsets out;
    for (int i = 0; i < l->cnt; ++i) out[l->elems[i].partition] = l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        throw std::runtime_error("committed offsets of " + group + ": " + rd_kafka_err2str(err));
    return out;
}

// A consumer in `group` subscribed to `topic` reads each partition up to
// (not including) stops[p], then commits exactly stops[p] synchronously and
// leaves. `stops` may point at offsets that hold no record (compaction
// holes, transaction markers, aborted records): the committed position is
// then that offset, as a consumer that read the record before it would
// commit. Returns what it read.
inline by_partition consume_and_commit(const std::string& bootstrap, const std::string& topic,
                                       const std::string& group, const offsets& stops,
                                       const std::string& reset) {
    consumer c(bootstrap, group, reset);
    c.subscribe(topic);
    std::set<int32_t> done;
    by_partition got;
    std::string error;
    auto finish = [&](int32_t p) {
        if (done.insert(p).second) c.pause(topic, p);
    };
    const auto until = std::chrono::steady_clock::now() + 120s;
    while (done.size() < stops.size() && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 200);
        if (m == nullptr) continue;
        const int32_t p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (stops.count(p)) finish(p);
        } else if (m->err) {
            error = std::string(rd_kafka_err2str(m->err)) + " on partition " + std::to_string(p) +
                    ": " + rd_kafka_message_errstr(m);
        } else if (stops.count(p)) {
            if (m->offset < stops.at(p) && !done.count(p)) got[p].push_back(to_record(m));
            if (m->offset + 1 >= stops.at(p)) finish(p);
        }
        rd_kafka_message_destroy(m);
        if (!error.empty()) break;
    }
    REQUIRE_MESSAGE(error.empty(), ("consumer of " + topic + " in group " + group + ": " + error));
    REQUIRE_MESSAGE(done.size() == stops.size(), ("consumer of " + topic + " in group " + group +
                                                  " did not reach its stop points in 120 s"));
    rd_kafka_topic_partition_list_t* l =
        rd_kafka_topic_partition_list_new(static_cast<int>(stops.size()));
    for (const auto& [p, o] : stops)
        rd_kafka_topic_partition_list_add(l, topic.c_str(), p)->offset = o;
    const auto err = rd_kafka_commit(c.rk, l, 0);
    std::string perr;
    for (int i = 0; i < l->cnt; ++i)
        if (l->elems[i].err)
            perr += " " + std::to_string(l->elems[i].partition) + ":" +
                    rd_kafka_err2str(l->elems[i].err);
    rd_kafka_topic_partition_list_destroy(l);
    REQUIRE_MESSAGE(err == RD_KAFKA_RESP_ERR_NO_ERROR,
                    ("commit of group " + group + ": " + rd_kafka_err2str(err)));
    REQUIRE_MESSAGE(perr.empty(), ("commit of group " + group + ":" + perr));
    return got;
}

}  // namespace rpl::test
