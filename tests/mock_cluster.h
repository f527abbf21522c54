// librdkafka's in-process mock cluster for fault-injection tests: a cluster
// lives inside a librdkafka handle of its own and is destroyed with it.
#pragma once

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

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

}  // namespace rpl::test
