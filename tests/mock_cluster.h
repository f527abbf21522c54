// librdkafka's in-process mock cluster for fault-injection tests: a cluster
// lives inside a librdkafka handle of its own and is destroyed with it.
#pragma once

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "conf/config.h"

#include <string>

namespace rpl::test {

class mock_cluster {
public:
    explicit mock_cluster(int brokers = 1) {
        char err[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        REQUIRE(host_ != nullptr);
        mc_ = rd_kafka_mock_cluster_new(host_, brokers);
        REQUIRE(mc_ != nullptr);
    }
    ~mock_cluster() {
        rd_kafka_mock_cluster_destroy(mc_);
        rd_kafka_destroy(host_);
    }
    mock_cluster(const mock_cluster&) = delete;
    mock_cluster& operator=(const mock_cluster&) = delete;
    [[nodiscard]] rd_kafka_mock_cluster_t* get() const { return mc_; }
    [[nodiscard]] std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
    // The mock has no controller for CreateTopics: topics are made here.
    void create_topic(const std::string& name, int partitions) const {
        REQUIRE(rd_kafka_mock_topic_create(mc_, name.c_str(), partitions, 1) ==
                RD_KAFKA_RESP_ERR_NO_ERROR);
    }

private:
    rd_kafka_t* host_ = nullptr;
    rd_kafka_mock_cluster_t* mc_ = nullptr;
};

// `count` records round robin over `partitions`, keys "k<i>", values "v<i>".
inline void mock_produce(const std::string& bootstrap, const std::string& topic, int partitions,
                         int count) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    REQUIRE(p != nullptr);
    for (int i = 0; i < count; ++i) {
        const std::string key = "k" + std::to_string(i);
        const std::string value = "v" + std::to_string(i);
        REQUIRE(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()),
                                  RD_KAFKA_V_PARTITION(i % partitions),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key.data(), key.size()),
                                  RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                  RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    REQUIRE(rd_kafka_flush(p, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
}

// One flow "mock" from cluster src to dst over the topic "orders".
inline conf::Config mock_flow_config(const std::string& src, const std::string& dst) {
    const std::string text =
        "[daemon]\nadmin_listen = \"127.0.0.1:0\"\n[clusters.src]\nbootstrap = \"" + src +
        "\"\n[clusters.dst]\nbootstrap = \"" + dst +
        "\"\n[[flow]]\nname = \"mock\"\nsource = \"src\"\ntarget = \"dst\"\n"
        "topics = [\"orders\"]\nheartbeats = false\nrefresh_interval = \"1s\"\n";
    auto cfg = conf::parse(text, "mock.toml");
    REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
    return std::move(cfg).value();
}

}  // namespace rpl::test
