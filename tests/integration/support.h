// Shared pieces of the integration tests: the test bed's addresses, an
// independent reader (kcat), a plain librdkafka producer for test data, and
// replicatord run as a real child process.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rpl::test {

using namespace std::chrono_literals;

// Addresses from .testbed/env (exported by scripts/test or sourced by hand).
struct bed {
    std::string primary;      // PRIMARY_BOOTSTRAP
    std::string dr;           // DR_BOOTSTRAP
    std::string s3_endpoint;  // S3_ENDPOINT
    std::string s3_bucket;    // S3_BUCKET
    std::string s3_access_key;
    std::string s3_secret_key;
};
// Throws with a clear message if the test bed's variables are not set.
const bed& testbed();

// A topic (or group) name no earlier run used: prefix + pid + counter.
std::string unique(const std::string& prefix);

struct command_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};
// Runs argv with a deadline; the child is killed if it overruns.
command_result run(const std::vector<std::string>& argv,
                   std::chrono::milliseconds deadline = std::chrono::seconds(60));
// A command's exit code, stdout and stderr, for failure messages.
std::string show(const command_result& r);
// The replicatorctl built next to REPLICATORD_BIN.
const std::string& ctl_bin();

struct record {
    int32_t partition = -1;
    int64_t offset = -1;
    int64_t timestamp = -1;
    std::optional<std::string> key;                            // nullopt = null key
    std::optional<std::string> value;                          // nullopt = tombstone
    std::vector<std::pair<std::string, std::string>> headers;  // in order
    bool operator==(const record& o) const {
        return key == o.key && value == o.value && headers == o.headers && timestamp == o.timestamp;
    }
};

// Every record of a topic (or one partition) read with kcat, the
// independent client. Keys, values and headers must not contain the
// separators '\x1f', '\x1e' or newlines.
std::vector<record> kcat_read(const std::string& bootstrap, const std::string& topic,
                              int32_t partition = -1);
// Partitions of a topic as kcat sees them (0 if the topic does not exist).
int kcat_partitions(const std::string& bootstrap, const std::string& topic);
// True when the cluster answers a metadata request (kcat -L) with a broker.
bool broker_answers(const std::string& bootstrap);
// All topic names kcat lists.
std::vector<std::string> kcat_topics(const std::string& bootstrap);

// Sum over partitions of the high watermark (records + markers written).
int64_t end_offsets(const std::string& bootstrap, const std::string& topic);

// Admin helpers on a plain librdkafka handle.
void create_topic(const std::string& bootstrap, const std::string& topic, int partitions,
                  const std::map<std::string, std::string>& configs = {});
void add_partitions(const std::string& bootstrap, const std::string& topic, int total);
void delete_topic(const std::string& bootstrap, const std::string& topic);
// Replaces the topic's dynamic configs with `configs` (AlterConfigs).
void set_topic_configs(const std::string& bootstrap, const std::string& topic,
                       const std::map<std::string, std::string>& configs);
std::map<std::string, std::string> dynamic_topic_configs(const std::string& bootstrap,
                                                         const std::string& topic);

// A synchronous producer for test data: produce() queues, flush() waits for
// every delivery and throws on any failure.
class producer {
public:
    explicit producer(const std::string& bootstrap,
                      const std::map<std::string, std::string>& props = {});
    ~producer();
    producer(const producer&) = delete;
    producer& operator=(const producer&) = delete;
    void produce(const std::string& topic, const record& r);
    void flush();
    rd_kafka_t* handle() const { return rk_; }

private:
    std::unique_ptr<struct delivery_failures> failures_;  // written by delivery reports
    rd_kafka_t* rk_ = nullptr;
};

// Records k<i>/v<i> for i in [from, from + count) to one partition of a
// primary topic, flushed: data whose offsets a test can predict.
void produce_numbered(const std::string& topic, int32_t partition, int from, int count);

// Commits `offset` for `group` on topic/partition without joining the group,
// as an operator's reset (kafka-consumer-groups --reset-offsets) does on an
// idle group. Throws naming the error when the commit is refused.
void commit_group_offset(const std::string& bootstrap, const std::string& group,
                         const std::string& topic, int32_t partition, int64_t offset);

// replicatord as a child process, stderr to a log file.
class daemon_process {
public:
    daemon_process(const std::string& config_path, const std::string& log_path);
    ~daemon_process();
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;
    int pid() const { return pid_; }
    void signal(int sig);
    // Exit code, or -signal if killed; nullopt if still running at the deadline.
    std::optional<int> wait(std::chrono::milliseconds deadline);
    bool running();
    std::string log() const;
    // The admin endpoint's port, from the daemon's start-up line (0 if not yet).
    int admin_port() const;

private:
    int pid_ = -1;
    std::string log_path_;
    std::optional<int> status_;
};

// A daemon_process::wait result in words: "exit 1", "killed by signal 11",
// "still running".
std::string describe(const std::optional<int>& status);

// scripts/testbed of this checkout.
std::string testbed_script();

// A produce quota on dr for one client.id, removed on scope exit: a DR link
// slower than the load, so that records really wait.
class slow_link {
public:
    slow_link(std::string client_id, int64_t bytes_per_second);
    ~slow_link();
    slow_link(const slow_link&) = delete;
    slow_link& operator=(const slow_link&) = delete;

private:
    std::string client_id_;
};

// Stops a test-bed broker (primary or dr) and starts it again on scope exit,
// whatever happens in between: other tests share the bed.
class broker_outage {
public:
    explicit broker_outage(std::string alias);
    ~broker_outage();
    broker_outage(const broker_outage&) = delete;
    broker_outage& operator=(const broker_outage&) = delete;
    void restart();

private:
    std::string alias_;
    bool restarted_ = false;
};

std::string write_file(const std::string& name, const std::string& text);  // in a temp dir
std::string temp_dir();

// GET http://127.0.0.1:port/path with curl; the body ("" on failure).
std::string http_get(int port, const std::string& path);

// Polls pred until it holds or the deadline passes; returns whether it held.
bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& pred,
                std::chrono::milliseconds every = 200ms);

}  // namespace rpl::test

// REQUIRE_EVENTUALLY(deadline, predicate): no sleeps in tests.
#define REQUIRE_EVENTUALLY(deadline, ...) \
    REQUIRE(::rpl::test::eventually(deadline, [&] { return (__VA_ARGS__); }))
