#include "tests/integration/support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace rpl::test {

namespace {

std::string env_or_throw(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0')
        throw std::runtime_error(std::string("test bed variable ") + name +
                                 " is not set: run scripts/testbed up and source .testbed/env "
                                 "(scripts/test does both)");
    return v;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

constexpr char field_sep = '\x1f';
constexpr char record_sep = '\x1e';

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        const auto pos = s.find(sep, start);
        if (pos == std::string::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

rd_kafka_t* admin_handle(const std::string& bootstrap) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) throw std::runtime_error(std::string("admin handle: ") + err);
    return rk;
}

rd_kafka_event_t* wait_admin(rd_kafka_queue_t* q, const std::string& what) {
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 60000);
    if (ev == nullptr) throw std::runtime_error(what + ": no answer in 60 s");
    if (rd_kafka_event_error(ev)) {
        std::string msg = what + ": " + rd_kafka_event_error_string(ev);
        rd_kafka_event_destroy(ev);
        throw std::runtime_error(msg);
    }
    return ev;
}

void check_topic_results(const rd_kafka_topic_result_t* const* res, size_t n,
                         const std::string& what, bool allow_exists = false) {
    for (size_t i = 0; i < n; ++i) {
        const auto err = rd_kafka_topic_result_error(res[i]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        if (allow_exists && err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
        const char* s = rd_kafka_topic_result_error_string(res[i]);
        throw std::runtime_error(what + " " + rd_kafka_topic_result_name(res[i]) + ": " +
                                 (s != nullptr ? s : rd_kafka_err2str(err)));
    }
}

}  // namespace

const bed& testbed() {
    static const bed b{env_or_throw("PRIMARY_BOOTSTRAP"), env_or_throw("DR_BOOTSTRAP"),
                       env_or_throw("S3_ENDPOINT"),       env_or_throw("S3_BUCKET"),
                       env_or_throw("S3_ACCESS_KEY"),     env_or_throw("S3_SECRET_KEY")};
    return b;
}

std::string unique(const std::string& prefix) {
    static std::atomic<int> n{0};
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(now % 100000000) + "-" +
           std::to_string(n++);
}

std::string temp_dir() {
    static const std::string dir = [] {
        std::string tmpl = (std::filesystem::temp_directory_path() / "rpl-it-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }();
    return dir;
}

std::string write_file(const std::string& name, const std::string& text) {
    const std::string path = temp_dir() + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

command_result run(const std::vector<std::string>& argv, std::chrono::milliseconds deadline) {
    const std::string out_path = temp_dir() + "/cmd-" + std::to_string(::getpid()) + ".out";
    const std::string err_path = temp_dir() + "/cmd-" + std::to_string(::getpid()) + ".err";
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int in = ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::_Exit(127);
    }
    command_result r;
    const auto until = std::chrono::steady_clock::now() + deadline;
    int status = 0;
    while (true) {
        const pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (std::chrono::steady_clock::now() > until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            r.out = slurp(out_path);
            r.err = slurp(err_path) + "\n(killed: deadline passed)";
            r.exit_code = -SIGKILL;
            return r;
        }
        std::this_thread::sleep_for(20ms);
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

std::vector<record> kcat_read(const std::string& bootstrap, const std::string& topic,
                              int32_t partition) {
    std::string fmt = "%p";
    for (const char* f : {"%o", "%T", "%K", "%k", "%S", "%s", "%h"}) {
        fmt += field_sep;
        fmt += f;
    }
    fmt += record_sep;
    std::vector<std::string> argv{"kcat", "-C",        "-b", bootstrap, "-t", topic,
                                  "-o",   "beginning", "-e", "-q",      "-f", fmt};
    if (partition >= 0) {
        argv.push_back("-p");
        argv.push_back(std::to_string(partition));
    }
    const auto r = run(argv, 120s);
    if (r.exit_code != 0) throw std::runtime_error("kcat read of " + topic + " failed: " + r.err);
    std::vector<record> out;
    for (const auto& rec : split(r.out, record_sep)) {
        if (rec.empty()) continue;
        const auto f = split(rec, field_sep);
        if (f.size() != 8) throw std::runtime_error("kcat output not understood: " + rec);
        record x;
        x.partition = std::stoi(f[0]);
        x.offset = std::stoll(f[1]);
        x.timestamp = std::stoll(f[2]);
        if (f[3] != "-1") x.key = f[4];
        if (f[5] != "-1") x.value = f[6];
        if (!f[7].empty()) {
            for (const auto& h : split(f[7], ',')) {
                const auto eq = h.find('=');
                x.headers.emplace_back(h.substr(0, eq),
                                       eq == std::string::npos ? "" : h.substr(eq + 1));
            }
        }
        out.push_back(std::move(x));
    }
    return out;
}

int kcat_partitions(const std::string& bootstrap, const std::string& topic) {
    const auto r = run({"kcat", "-L", "-b", bootstrap, "-t", topic, "-m", "10"}, 30s);
    int n = 0;
    std::istringstream in(r.out);
    std::string line;
    bool exists = false;
    while (std::getline(in, line)) {
        if (line.find("topic \"" + topic + "\" with ") != std::string::npos &&
            line.find("Broker: Unknown topic") == std::string::npos)
            exists = true;
        if (exists && line.find("partition ") != std::string::npos &&
            line.find("leader") != std::string::npos)
            ++n;
    }
    return n;
}

bool broker_answers(const std::string& bootstrap) {
    const auto r = run({"kcat", "-L", "-b", bootstrap, "-m", "5"}, 15s);
    return r.exit_code == 0 && r.out.find(" brokers:") != std::string::npos;
}

std::vector<std::string> kcat_topics(const std::string& bootstrap) {
    const auto r = run({"kcat", "-L", "-b", bootstrap, "-m", "10"}, 30s);
    std::vector<std::string> out;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
        const auto p = line.find("topic \"");
        if (p == std::string::npos) continue;
        const auto start = p + 7;
        const auto end = line.find('"', start);
        out.push_back(line.substr(start, end - start));
    }
    return out;
}

int64_t end_offsets(const std::string& bootstrap, const std::string& topic) {
    rd_kafka_t* rk = admin_handle(bootstrap);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    int64_t total = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int t = 0; t < md->topic_cnt; ++t) {
            for (int p = 0; p < md->topics[t].partition_cnt; ++p) {
                int64_t lo = 0, hi = 0;
                if (rd_kafka_query_watermark_offsets(rk, topic.c_str(),
                                                     md->topics[t].partitions[p].id, &lo, &hi,
                                                     10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
                    total += hi;
            }
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return total;
}

void create_topic(const std::string& bootstrap, const std::string& topic, int partitions,
                  const std::map<std::string, std::string>& configs) {
    rd_kafka_t* rk = admin_handle(bootstrap);
    char err[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof err);
    for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = nullptr;
    try {
        ev = wait_admin(q, "create topic " + topic);
        size_t n = 0;
        const auto* res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        check_topic_results(res, n, "create topic");
    } catch (...) {
        if (ev) rd_kafka_event_destroy(ev);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        throw;
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

void add_partitions(const std::string& bootstrap, const std::string& topic, int total) {
    rd_kafka_t* rk = admin_handle(bootstrap);
    char err[512];
    rd_kafka_NewPartitions_t* np =
        rd_kafka_NewPartitions_new(topic.c_str(), static_cast<size_t>(total), err, sizeof err);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_CreatePartitions(rk, &np, 1, nullptr, q);
    rd_kafka_event_t* ev = wait_admin(q, "add partitions to " + topic);
    size_t n = 0;
    const auto* res =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
    std::string failure;
    try {
        check_topic_results(res, n, "add partitions to");
    } catch (const std::exception& e) {
        failure = e.what();
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_NewPartitions_destroy(np);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    if (!failure.empty()) throw std::runtime_error(failure);
}

void delete_topic(const std::string& bootstrap, const std::string& topic) {
    rd_kafka_t* rk = admin_handle(bootstrap);
    rd_kafka_DeleteTopic_t* dt = rd_kafka_DeleteTopic_new(topic.c_str());
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, nullptr, q);
    rd_kafka_event_t* ev = wait_admin(q, "delete topic " + topic);
    rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

void set_topic_configs(const std::string& bootstrap, const std::string& topic,
                       const std::map<std::string, std::string>& configs) {
    rd_kafka_t* rk = admin_handle(bootstrap);
    rd_kafka_ConfigResource_t* res =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
    for (const auto& [k, v] : configs)
        rd_kafka_ConfigResource_set_config(res, k.c_str(), v.c_str());
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_AlterConfigs(rk, &res, 1, nullptr, q);
    rd_kafka_event_t* ev = wait_admin(q, "alter configs of " + topic);
    size_t n = 0;
    const auto* rs =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
    std::string failure;
    for (size_t i = 0; i < n; ++i)
        if (rd_kafka_ConfigResource_error(rs[i]))
            failure = "alter configs of " + topic + ": " +
                      rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[i]));
    rd_kafka_event_destroy(ev);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    if (!failure.empty()) throw std::runtime_error(failure);
}

std::map<std::string, std::string> dynamic_topic_configs(const std::string& bootstrap,
                                                         const std::string& topic) {
    rd_kafka_t* rk = admin_handle(bootstrap);
    rd_kafka_ConfigResource_t* res =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeConfigs(rk, &res, 1, nullptr, q);
    rd_kafka_event_t* ev = wait_admin(q, "describe configs of " + topic);
    size_t n = 0;
    const auto* rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    std::map<std::string, std::string> out;
    for (size_t i = 0; i < n; ++i) {
        size_t cnt = 0;
        const auto* entries = rd_kafka_ConfigResource_configs(rs[i], &cnt);
        for (size_t j = 0; j < cnt; ++j) {
            if (rd_kafka_ConfigEntry_source(entries[j]) !=
                RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)
                continue;
            const char* v = rd_kafka_ConfigEntry_value(entries[j]);
            out[rd_kafka_ConfigEntry_name(entries[j])] = v != nullptr ? v : "";
        }
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return out;
}

struct delivery_failures {
    int count = 0;
    std::string last;
};

namespace {
void test_dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (m->err) {
        auto* f = static_cast<delivery_failures*>(opaque);
        ++f->count;
        f->last = rd_kafka_err2str(m->err);
    }
}
}  // namespace

producer::producer(const std::string& bootstrap, const std::map<std::string, std::string>& props) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            throw std::runtime_error("test producer property " + k + ": " + err);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, &test_dr_cb);
    failures_ = std::make_unique<delivery_failures>();
    rd_kafka_conf_set_opaque(conf, failures_.get());
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk_ == nullptr) throw std::runtime_error(std::string("test producer: ") + err);
}

producer::~producer() {
    if (rk_ != nullptr) {
        rd_kafka_flush(rk_, 10000);
        rd_kafka_destroy(rk_);
    }
}

void producer::produce(const std::string& topic, const record& r) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!r.headers.empty()) {
        hdrs = rd_kafka_headers_new(r.headers.size());
        for (const auto& [k, v] : r.headers)
            rd_kafka_header_add(hdrs, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                                static_cast<ssize_t>(v.size()));
    }
    void* key = r.key ? const_cast<char*>(r.key->data()) : nullptr;
    const size_t key_len = r.key ? r.key->size() : 0;
    void* val = r.value ? const_cast<char*>(r.value->data()) : nullptr;
    const size_t val_len = r.value ? r.value->size() : 0;
    const int32_t part = r.partition >= 0 ? r.partition : RD_KAFKA_PARTITION_UA;
    const int64_t ts = r.timestamp >= 0 ? r.timestamp : 0;
    while (true) {
        rd_kafka_resp_err_t err;
        if (hdrs != nullptr)
            err = rd_kafka_producev(
                rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(part),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE(val, val_len), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(hdrs),
                RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(
                rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(part),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE(val, val_len), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk_, 50);
            continue;
        }
        if (err) {
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            throw std::runtime_error("produce to " + topic + ": " + rd_kafka_err2str(err));
        }
        return;
    }
}

void producer::flush() {
    const auto err = rd_kafka_flush(rk_, 120000);
    if (err) throw std::runtime_error(std::string("test producer flush: ") + rd_kafka_err2str(err));
    if (failures_->count > 0)
        throw std::runtime_error("test producer: " + std::to_string(failures_->count) +
                                 " deliveries failed: " + failures_->last);
}

void produce_numbered(const std::string& topic, int32_t partition, int from, int count) {
    producer p(testbed().primary);
    for (int i = from; i < from + count; ++i) {
        record r;
        r.partition = partition;
        r.key = "k" + std::to_string(i);
        r.value = "v" + std::to_string(i);
        p.produce(topic, r);
    }
    p.flush();
}

void commit_group_offset(const std::string& bootstrap, const std::string& group,
                         const std::string& topic, int32_t partition, int64_t offset) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (c == nullptr) throw std::runtime_error(std::string("consumer for a commit: ") + err);
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic.c_str(), partition)->offset = offset;
    auto e = rd_kafka_commit(c, l, 0);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        throw std::runtime_error("commit of " + group + " on " + topic + "/" +
                                 std::to_string(partition) + ": " + rd_kafka_err2str(e));
}

daemon_process::daemon_process(const std::string& config_path, const std::string& log_path)
    : log_path_(log_path) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        const int in = ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::execl(REPLICATORD_BIN, REPLICATORD_BIN, "--config", config_path.c_str(), nullptr);
        std::_Exit(127);
    }
}

daemon_process::~daemon_process() {
    if (!status_) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
}

void daemon_process::signal(int sig) {
    if (!status_) ::kill(pid_, sig);
}

std::optional<int> daemon_process::wait(std::chrono::milliseconds deadline) {
    if (status_) return status_;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (true) {
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() > until) return std::nullopt;
        std::this_thread::sleep_for(20ms);
    }
}

std::string describe(const std::optional<int>& status) {
    if (!status) return "still running";
    if (*status < 0) return "killed by signal " + std::to_string(-*status);
    return "exit " + std::to_string(*status);
}

bool daemon_process::running() { return !wait(0ms).has_value(); }

std::string daemon_process::log() const { return slurp(log_path_); }

int daemon_process::admin_port() const {
    const std::string l = log();
    const std::string marker = "admin endpoint on http://";
    const auto p = l.find(marker);
    if (p == std::string::npos) return 0;
    const auto colon = l.find(':', p + marker.size());
    return colon == std::string::npos ? 0 : std::atoi(l.c_str() + colon + 1);
}

std::string http_get(int port, const std::string& path) {
    const auto r =
        run({"curl", "-s", "-m", "5", "http://127.0.0.1:" + std::to_string(port) + path}, 10s);
    return r.exit_code == 0 ? r.out : std::string();
}

bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& pred,
                std::chrono::milliseconds every) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (true) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(every);
    }
}

std::string show(const command_result& r) {
    return "exit " + std::to_string(r.exit_code) + "\n--- stdout:\n" + r.out + "\n--- stderr:\n" +
           r.err;
}

const std::string& ctl_bin() {
    static const std::string p =
        (std::filesystem::path(REPLICATORD_BIN).parent_path() / "replicatorctl").string();
    return p;
}

std::string testbed_script() { return std::string(RPL_SOURCE_DIR) + "/scripts/testbed"; }

slow_link::slow_link(std::string client_id, int64_t bytes_per_second)
    : client_id_(std::move(client_id)) {
    const auto r = run(
        {testbed_script(), "tool", "kafka.admin.ConfigCommand", "--bootstrap-server", testbed().dr,
         "--alter", "--add-config", "producer_byte_rate=" + std::to_string(bytes_per_second),
         "--entity-type", "clients", "--entity-name", client_id_},
        60s);
    if (r.exit_code != 0) throw std::runtime_error("quota on dr: " + show(r));
}

slow_link::~slow_link() {
    const auto r = run({testbed_script(), "tool", "kafka.admin.ConfigCommand", "--bootstrap-server",
                        testbed().dr, "--alter", "--delete-config", "producer_byte_rate",
                        "--entity-type", "clients", "--entity-name", client_id_},
                       60s);
    if (r.exit_code != 0) std::cerr << "WARNING: quota on dr not removed: " << show(r) << "\n";
}

broker_outage::broker_outage(std::string alias) : alias_(std::move(alias)) {
    const auto r = run({testbed_script(), "stop-broker", alias_}, 60s);
    if (r.exit_code != 0) {
        restart();
        throw std::runtime_error("stop-broker " + alias_ + " failed: " + show(r));
    }
}

broker_outage::~broker_outage() { restart(); }

void broker_outage::restart() {
    if (restarted_) return;
    restarted_ = true;
    const auto r = run({testbed_script(), "start-broker", alias_}, 180s);
    if (r.exit_code != 0)
        std::cerr << "WARNING: start-broker " << alias_
                  << " failed; the test bed needs `scripts/testbed up`:\n"
                  << show(r) << "\n";
}

}  // namespace rpl::test
