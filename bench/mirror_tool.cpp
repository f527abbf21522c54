// bench_mirror_tool: the Kafka side of bench/mirror, on plain librdkafka (it
// shares no code with replicatord, so it measures replicatord from outside).
//
//   bench/mirror (python) ──create/delete/list──> admin requests
//                         ──produce──> N deterministic records (bulk, or paced with
//                                      a send-time stamp for the latency phase)
//                         ──watch──> polls a target's end offsets until N records,
//                                    samples /proc CPU of the contender meanwhile,
//                                    then reads the first/last LogAppendTime
//                         ──scan──> reads a topic: count, digest, latency p50/p99
//
// Records. Record i goes to partition i % P, key = 8 hex digits of i, value =
// `size` bytes of printable filler that depends only on (seed, i), so a second
// `produce` with the same arguments writes the same bytes (the ceiling run).
// With --stamp the value starts with the send time in ms ("1764...|"), which
// `scan` subtracts from the target's LogAppendTime. Values never contain tab
// or newline, so `kcat -P -K '\t'` can carry them.
//
// Every subcommand prints one JSON object on stdout; errors go to stderr with
// exit code 1. Single-threaded; librdkafka's own threads do the I/O.
#include "bench/tool_common.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& what) { rpl::bench::die("bench_mirror_tool", what); }
using rpl::bench::now_ms;

// ------------------------------------------------------------------ options

struct args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> named;  // --name value
    std::vector<std::string> props;            // --prop k=v (repeatable)
    std::vector<int> pids;                     // --pid N (repeatable)
    bool stamp = false;

    [[nodiscard]] std::string get(const std::string& k, const std::string& def) const {
        auto it = named.find(k);
        return it == named.end() ? def : it->second;
    }
    [[nodiscard]] int64_t num(const std::string& k, int64_t def) const {
        auto it = named.find(k);
        if (it == named.end()) return def;
        char* end = nullptr;
        const long long v = std::strtoll(it->second.c_str(), &end, 10);
        if (end == it->second.c_str() || *end != '\0')
            die("--" + k + " wants an integer, got '" + it->second + "'");
        return v;
    }
    [[nodiscard]] double real(const std::string& k, double def) const {
        auto it = named.find(k);
        if (it == named.end()) return def;
        char* end = nullptr;
        const double v = std::strtod(it->second.c_str(), &end);
        if (end == it->second.c_str() || *end != '\0')
            die("--" + k + " wants a number, got '" + it->second + "'");
        return v;
    }
};

args parse(int argc, char** argv, int from) {
    args a;
    for (int i = from; i < argc; ++i) {
        std::string s = argv[i];
        if (s == "--stamp") {
            a.stamp = true;
        } else if (s.rfind("--", 0) == 0) {
            if (i + 1 >= argc) die(s + " needs a value");
            const std::string v = argv[++i];
            if (s == "--prop") {
                a.props.push_back(v);
            } else if (s == "--pid") {
                a.pids.push_back(std::atoi(v.c_str()));
            } else {
                a.named[s.substr(2)] = v;
            }
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

// ------------------------------------------------------------------ clients

void set(rd_kafka_conf_t* conf, const std::string& k, const std::string& v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        die("property " + k + "=" + v + ": " + err);
}

void apply_props(rd_kafka_conf_t* conf, const std::vector<std::string>& props) {
    for (const auto& p : props) {
        const auto eq = p.find('=');
        if (eq == std::string::npos) die("--prop wants KEY=VALUE, got '" + p + "'");
        set(conf, p.substr(0, eq), p.substr(eq + 1));
    }
}

struct handle {
    rd_kafka_t* rk = nullptr;
    handle() = default;
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle() {
        if (rk != nullptr) rd_kafka_destroy(rk);
    }
};

void make(handle& h, rd_kafka_type_t type, const std::string& bootstrap,
          const std::vector<std::string>& props,
          void (*dr)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr,
          void* opaque = nullptr) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "log_level", "3");
    if (type == RD_KAFKA_CONSUMER) {
        set(conf, "group.id", "bench-mirror-tool");  // never joined: assign() only
        set(conf, "enable.auto.commit", "false");
        set(conf, "enable.partition.eof", "true");
        set(conf, "fetch.message.max.bytes", "4194304");
    }
    apply_props(conf, props);
    if (dr != nullptr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
    if (opaque != nullptr) rd_kafka_conf_set_opaque(conf, opaque);
    char err[512];
    h.rk = rd_kafka_new(type, conf, err, sizeof err);
    if (h.rk == nullptr) die(std::string("rd_kafka_new: ") + err);
}

int partition_count(rd_kafka_t* rk, const std::string& topic) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err) die("metadata of " + topic + ": " + rd_kafka_err2str(err));
    int n = 0;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (n <= 0) die("topic " + topic + " does not exist");
    return n;
}

// ------------------------------------------------------------------ admin

rd_kafka_event_t* await(rd_kafka_queue_t* q, rd_kafka_event_type_t type) {
    for (int i = 0; i < 60; ++i) {
        rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 1000);
        if (ev == nullptr) continue;
        if (rd_kafka_event_type(ev) == type) return ev;
        rd_kafka_event_destroy(ev);
    }
    die("admin request timed out after 60 s");
}

int cmd_create(const args& a) {
    if (a.positional.size() < 3) die("usage: create BOOTSTRAP TOPIC PARTITIONS [--prop k=v]..");
    handle h;
    make(h, RD_KAFKA_PRODUCER, a.positional[0], {});
    char err[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(
        a.positional[1].c_str(), std::atoi(a.positional[2].c_str()), 1, err, sizeof err);
    if (nt == nullptr) die(std::string("NewTopic: ") + err);
    for (const auto& p : a.props) {
        const auto eq = p.find('=');
        if (eq == std::string::npos) die("--prop wants KEY=VALUE");
        rd_kafka_NewTopic_set_config(nt, p.substr(0, eq).c_str(), p.substr(eq + 1).c_str());
    }
    rd_kafka_queue_t* q = rd_kafka_queue_new(h.rk);
    rd_kafka_CreateTopics(h.rk, &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = await(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    std::string failure;
    if (rd_kafka_event_error(ev)) failure = rd_kafka_event_error_string(ev);
    for (size_t i = 0; i < n; ++i)
        if (rd_kafka_topic_result_error(res[i]))
            failure = rd_kafka_topic_result_error_string(res[i]);
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    if (!failure.empty()) die("create " + a.positional[1] + ": " + failure);
    // Wait until the metadata shows every partition with a leader.
    const int want = std::atoi(a.positional[2].c_str());
    for (int i = 0; i < 100; ++i) {
        rd_kafka_topic_t* rkt = rd_kafka_topic_new(h.rk, a.positional[1].c_str(), nullptr);
        const rd_kafka_metadata_t* md = nullptr;
        int ready = 0;
        if (rd_kafka_metadata(h.rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                for (int p = 0; p < md->topics[0].partition_cnt; ++p)
                    if (md->topics[0].partitions[p].leader >= 0) ++ready;
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
        if (ready == want) {
            std::printf("{\"created\":\"%s\"}\n", a.positional[1].c_str());
            return 0;
        }
        std::this_thread::sleep_for(100ms);
    }
    die("topic " + a.positional[1] + " created but its partitions have no leader after 10 s");
}

std::vector<std::string> topic_names(rd_kafka_t* rk) {
    const rd_kafka_metadata_t* md = nullptr;
    const auto err = rd_kafka_metadata(rk, 1, nullptr, &md, 10000);
    if (err) die(std::string("metadata: ") + rd_kafka_err2str(err));
    std::vector<std::string> out;
    for (int i = 0; i < md->topic_cnt; ++i) out.emplace_back(md->topics[i].topic);
    rd_kafka_metadata_destroy(md);
    return out;
}

// delete BOOTSTRAP REGEX: every topic whose whole name matches.
int cmd_delete(const args& a) {
    if (a.positional.size() < 2) die("usage: delete BOOTSTRAP REGEX");
    handle h;
    make(h, RD_KAFKA_PRODUCER, a.positional[0], {});
    const std::regex re(a.positional[1]);
    std::vector<rd_kafka_DeleteTopic_t*> del;
    std::string names;
    for (const auto& t : topic_names(h.rk)) {
        if (!std::regex_match(t, re)) continue;
        del.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
        names += (names.empty() ? "\"" : ",\"") + t + "\"";
    }
    if (!del.empty()) {
        rd_kafka_queue_t* q = rd_kafka_queue_new(h.rk);
        rd_kafka_DeleteTopics(h.rk, del.data(), del.size(), nullptr, q);
        rd_kafka_event_t* ev = await(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT);
        rd_kafka_event_destroy(ev);
        rd_kafka_DeleteTopic_destroy_array(del.data(), del.size());
        rd_kafka_queue_destroy(q);
    }
    std::printf("{\"deleted\":[%s]}\n", names.c_str());
    return 0;
}

// ------------------------------------------------------------------ produce

// Printable filler (no tab, newline or '|'), shared by every record.
std::string filler_pool(uint64_t seed) {
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+=.,:;!?";
    std::string pool(1 << 20, 'x');
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (auto& c : pool) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = alphabet[x % (sizeof alphabet - 1)];
    }
    return pool;
}

struct produce_state {
    int64_t acked = 0;
    int64_t failed = 0;
    int64_t last_ack_ms = 0;
    std::string first_error;
    std::vector<int64_t> acked_by_partition;  // so a short count on the target names its partition
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* st = static_cast<produce_state*>(opaque);
    if (m->err) {
        if (st->failed++ == 0) st->first_error = rd_kafka_err2str(m->err);
    } else {
        ++st->acked;
        const auto p = static_cast<size_t>(m->partition);
        if (p < st->acked_by_partition.size()) ++st->acked_by_partition[p];
    }
}

double cpu_seconds_self() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// produce BOOTSTRAP TOPIC --records N --size S [--seed X] [--rate R] [--stamp] [--prop k=v]..
int cmd_produce(const args& a) {
    if (a.positional.size() < 2) die("usage: produce BOOTSTRAP TOPIC --records N --size S ...");
    const int64_t records = a.num("records", 0);
    const int64_t size = a.num("size", 1024);
    const auto seed = static_cast<uint64_t>(a.num("seed", 1));
    const double rate = a.real("rate", 0);  // records/s, 0 = as fast as possible
    if (records <= 0 || size < 16 || size > 100000) die("--records > 0 and 16 <= --size <= 100000");
    produce_state st;
    handle h;
    std::vector<std::string> props = {"linger.ms=10",
                                      "batch.size=1048576",
                                      "batch.num.messages=100000",
                                      "enable.idempotence=true",
                                      "queue.buffering.max.kbytes=1048576",
                                      "queue.buffering.max.messages=2000000"};
    props.insert(props.end(), a.props.begin(), a.props.end());
    make(h, RD_KAFKA_PRODUCER, a.positional[0], props, &on_delivery, &st);
    const std::string& topic = a.positional[1];
    const int partitions = partition_count(h.rk, topic);
    st.acked_by_partition.assign(static_cast<size_t>(partitions), 0);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(h.rk, topic.c_str(), nullptr);
    const std::string pool = filler_pool(seed);
    std::string value(static_cast<size_t>(size), ' ');
    char key[24];
    const double cpu0 = cpu_seconds_self();
    const auto t0 = steady::now();
    const int64_t first_ms = now_ms();
    int64_t bytes = 0;
    for (int64_t i = 0; i < records; ++i) {
        if (rate > 0) {
            const auto due = t0 + std::chrono::duration_cast<steady::duration>(
                                      std::chrono::duration<double>(static_cast<double>(i) / rate));
            const auto now = steady::now();
            if (due > now + 1ms) {
                rd_kafka_poll(h.rk, 0);
                std::this_thread::sleep_until(due);
            }
        }
        std::snprintf(key, sizeof key, "%08" PRIx64, static_cast<uint64_t>(i));
        const size_t off = static_cast<size_t>((static_cast<uint64_t>(i) * 7919) %
                                               (pool.size() - static_cast<size_t>(size)));
        std::memcpy(value.data(), pool.data() + off, static_cast<size_t>(size));
        const int64_t ts = now_ms();
        if (a.stamp) {
            char stamp[32];
            const int n = std::snprintf(stamp, sizeof stamp, "%" PRId64 "|", ts);
            std::memcpy(value.data(), stamp, static_cast<size_t>(n));
        }
        for (;;) {
            const auto err =
                rd_kafka_producev(h.rk, RD_KAFKA_V_RKT(rkt),
                                  RD_KAFKA_V_PARTITION(static_cast<int32_t>(i % partitions)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, 8),
                                  RD_KAFKA_V_VALUE(value.data(), value.size()),
                                  RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die(std::string("produce: ") + rd_kafka_err2str(err));
            rd_kafka_poll(h.rk, 10);
        }
        bytes += 8 + size;
        if ((i & 1023) == 0) rd_kafka_poll(h.rk, 0);
    }
    while (rd_kafka_outq_len(h.rk) > 0) rd_kafka_poll(h.rk, 50);
    const int64_t last_ms = now_ms();
    const double seconds = std::chrono::duration<double>(steady::now() - t0).count();
    const double cpu = cpu_seconds_self() - cpu0;
    rd_kafka_topic_destroy(rkt);
    if (st.failed > 0)
        die(std::to_string(st.failed) + " record(s) not delivered to " + topic + ": " +
            st.first_error);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::string by_partition;
    for (const int64_t n : st.acked_by_partition)
        by_partition += (by_partition.empty() ? "" : ",") + std::to_string(n);
    std::printf("{\"records\":%" PRId64 ",\"bytes\":%" PRId64 ",\"first_ms\":%" PRId64
                ",\"last_ms\":%" PRId64
                ",\"seconds\":%.3f,\"cpu_seconds\":%.3f,\"max_rss_kib\":%ld"
                ",\"acked_by_partition\":[%s]}\n",
                st.acked, bytes, first_ms, last_ms, seconds, cpu, ru.ru_maxrss,
                by_partition.c_str());
    return 0;
}

// ------------------------------------------------------------------ /proc

// utime+stime in seconds of pid, or -1 if it has exited.
double proc_cpu(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto close = s.rfind(')');
    if (s.empty() || close == std::string::npos) return -1;
    std::istringstream in(s.substr(close + 2));
    std::vector<std::string> fields;
    std::string x;
    while (in >> x) fields.push_back(x);
    // after "pid (comm) ": state is field 3, utime 14, stime 15 (1-based)
    if (fields.size() < 13) return -1;
    if (fields[0] == "Z" || fields[0] == "X") return -1;  // exited, not yet reaped
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

// VmHWM in KiB, or 0.
long proc_hwm(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    return 0;
}

// ------------------------------------------------------------------ watch / scan

std::vector<std::pair<int64_t, int64_t>> watermarks(rd_kafka_t* rk, const std::string& topic,
                                                    int partitions) {
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int p = 0; p < partitions; ++p) {
        int64_t lo = 0, hi = 0;
        // Right after a topic is created, leadership may still be settling:
        // retry transient errors for up to 10 s.
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        for (int attempt = 0; attempt < 50; ++attempt) {
            err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 5000);
            if (err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
                err != RD_KAFKA_RESP_ERR__TRANSPORT && err != RD_KAFKA_RESP_ERR__TIMED_OUT)
                break;
            std::this_thread::sleep_for(200ms);
        }
        if (err)
            die("watermarks of " + topic + "/" + std::to_string(p) + ": " + rd_kafka_err2str(err));
        out.emplace_back(lo, hi);
    }
    return out;
}

struct first_last {
    int64_t first_ms = INT64_MAX;
    int64_t last_ms = 0;
    bool log_append_time = true;
};

// The broker timestamp of the record at `offset` in each partition.
void read_at(rd_kafka_t* rk, const std::string& topic, const std::vector<int64_t>& offsets,
             first_last& fl, bool first) {
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(6);
    int want = 0;
    for (size_t p = 0; p < offsets.size(); ++p) {
        if (offsets[p] < 0) continue;
        rd_kafka_topic_partition_list_add(tpl, topic.c_str(), static_cast<int32_t>(p))->offset =
            offsets[p];
        ++want;
    }
    rd_kafka_assign(rk, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    std::vector<bool> seen(offsets.size(), false);
    const auto deadline = steady::now() + 30s;
    while (want > 0 && steady::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 500);
        if (m == nullptr) continue;
        if (!m->err && !seen[static_cast<size_t>(m->partition)]) {
            seen[static_cast<size_t>(m->partition)] = true;
            --want;
            rd_kafka_timestamp_type_t tt;
            const int64_t ts = rd_kafka_message_timestamp(m, &tt);
            if (tt != RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME) fl.log_append_time = false;
            if (first)
                fl.first_ms = std::min(fl.first_ms, ts);
            else
                fl.last_ms = std::max(fl.last_ms, ts);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, nullptr);
    if (want > 0)
        die("could not read the " + std::string(first ? "first" : "last") + " records of " + topic);
}

// watch BOOTSTRAP TOPIC --expect N [--timeout S] [--pid P]..: waits for N records.
int cmd_watch(const args& a) {
    if (a.positional.size() < 2) die("usage: watch BOOTSTRAP TOPIC --expect N");
    const std::string& topic = a.positional[1];
    const int64_t expect = a.num("expect", 0);
    const auto timeout = std::chrono::seconds(a.num("timeout", 300));
    handle h;
    make(h, RD_KAFKA_CONSUMER, a.positional[0], {});
    const int partitions = partition_count(h.rk, topic);
    auto cpu_of = [&]() {
        double sum = 0;
        for (int pid : a.pids) {
            const double c = proc_cpu(pid);
            if (c < 0) return -1.0;
            sum += c;
        }
        return sum;
    };
    long hwm = 0;
    double cpu_start = cpu_of(), cpu_end = -1;
    int64_t total = 0;
    const auto t0 = steady::now();
    bool gone = false;
    for (;;) {
        // CPU before the offsets: a sample that sees 0 records was taken
        // before the first append.
        const double cpu = cpu_of();
        long h_now = 0;
        for (int pid : a.pids) h_now += proc_hwm(pid);
        hwm = std::max(hwm, h_now);
        total = 0;
        for (const auto& [lo, hi] : watermarks(h.rk, topic, partitions)) total += hi - lo;
        if (total == 0 && cpu >= 0) cpu_start = cpu;
        if (total >= expect) {
            cpu_end = cpu_of();
            break;
        }
        if (!a.pids.empty() && cpu < 0) {
            gone = true;
            break;
        }
        if (steady::now() - t0 > timeout) break;
        std::this_thread::sleep_for(100ms);
    }
    // Each partition's log start and end, to set beside the producer's
    // acknowledgements per partition when a count comes up short.
    std::string ranges;
    for (const auto& [lo, hi] : watermarks(h.rk, topic, partitions))
        ranges += (ranges.empty() ? "" : ",") + std::string("[") + std::to_string(lo) + "," +
                  std::to_string(hi) + "]";
    if (total < expect) {
        std::printf("{\"ok\":false,\"records\":%" PRId64 ",\"expect\":%" PRId64
                    ",\"reason\":\"%s\",\"partitions\":[%s]}\n",
                    total, expect, gone ? "contender exited" : "timeout", ranges.c_str());
        return 1;
    }
    first_last fl;
    std::vector<int64_t> firsts, lasts;
    for (const auto& [lo, hi] : watermarks(h.rk, topic, partitions)) {
        firsts.push_back(hi > lo ? lo : -1);
        lasts.push_back(hi > lo ? hi - 1 : -1);
    }
    read_at(h.rk, topic, firsts, fl, true);
    read_at(h.rk, topic, lasts, fl, false);
    std::printf(
        "{\"ok\":true,\"records\":%" PRId64 ",\"first_ms\":%" PRId64 ",\"last_ms\":%" PRId64
        ",\"log_append_time\":%s,\"cpu_seconds\":%.3f,\"hwm_kib\":%ld,\"partitions\":[%s]}\n",
        total, fl.first_ms, fl.last_ms, fl.log_append_time ? "true" : "false",
        cpu_end >= 0 && cpu_start >= 0 ? cpu_end - cpu_start : -1.0, hwm, ranges.c_str());
    return 0;
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

// scan BOOTSTRAP TOPIC: every record up to the current end offsets. Prints the
// count, an order-independent digest of (key, value) and, for stamped values,
// latency = record timestamp - stamp (p50, p99, max).
int cmd_scan(const args& a) {
    if (a.positional.size() < 2) die("usage: scan BOOTSTRAP TOPIC");
    const std::string& topic = a.positional[1];
    handle h;
    make(h, RD_KAFKA_CONSUMER, a.positional[0], {});
    const int partitions = partition_count(h.rk, topic);
    const auto wm = watermarks(h.rk, topic, partitions);
    rd_kafka_topic_partition_list_t* tpl = rd_kafka_topic_partition_list_new(partitions);
    int open = 0;
    for (int p = 0; p < partitions; ++p) {
        if (wm[static_cast<size_t>(p)].second <= wm[static_cast<size_t>(p)].first) continue;
        rd_kafka_topic_partition_list_add(tpl, topic.c_str(), p)->offset =
            wm[static_cast<size_t>(p)].first;
        ++open;
    }
    rd_kafka_assign(h.rk, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    int64_t count = 0, stamped = 0;
    uint64_t digest = 0;
    bool log_append = true;
    std::vector<int64_t> lat;
    const auto deadline = steady::now() + std::chrono::seconds(a.num("timeout", 300));
    while (open > 0) {
        if (steady::now() > deadline) die("scan of " + topic + " timed out");
        rd_kafka_message_t* m = rd_kafka_consumer_poll(h.rk, 500);
        if (m == nullptr) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            --open;
        } else if (m->err) {
            const std::string e = rd_kafka_message_errstr(m);
            rd_kafka_message_destroy(m);
            die("reading " + topic + ": " + e);
        } else if (m->offset < wm[static_cast<size_t>(m->partition)].second) {
            ++count;
            uint64_t hh = fnv1a(m->key, m->key_len, 0xcbf29ce484222325ULL);
            hh = fnv1a("\x1f", 1, hh);
            hh = fnv1a(m->payload, m->len, hh);
            digest += hh * 0x9E3779B97F4A7C15ULL | 1;
            rd_kafka_timestamp_type_t tt;
            const int64_t ts = rd_kafka_message_timestamp(m, &tt);
            if (tt != RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME) log_append = false;
            const char* v = static_cast<const char*>(m->payload);
            const auto* bar =
                v != nullptr
                    ? static_cast<const char*>(std::memchr(v, '|', std::min<size_t>(m->len, 20)))
                    : nullptr;
            if (bar != nullptr) {
                ++stamped;
                lat.push_back(ts - std::strtoll(std::string(v, bar).c_str(), nullptr, 10));
            }
        }
        rd_kafka_message_destroy(m);
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double q) -> int64_t {
        if (lat.empty()) return -1;
        return lat[std::min(lat.size() - 1,
                            static_cast<size_t>(q * static_cast<double>(lat.size())))];
    };
    std::printf("{\"records\":%" PRId64 ",\"digest\":\"%016" PRIx64
                "\",\"log_append_time\":%s,"
                "\"stamped\":%" PRId64 ",\"p50_ms\":%" PRId64 ",\"p99_ms\":%" PRId64
                ",\"max_ms\":%" PRId64 "}\n",
                count, digest, log_append ? "true" : "false", stamped, pct(0.50), pct(0.99),
                lat.empty() ? -1 : lat.back());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: bench_mirror_tool create|delete|produce|watch|scan ARGS (see the "
                     "comment at the top of bench/mirror_tool.cpp)\n");
        return 2;
    }
    const std::string cmd = argv[1];
    const args a = parse(argc, argv, 2);
    if (cmd == "create") return cmd_create(a);
    if (cmd == "delete") return cmd_delete(a);
    if (cmd == "produce") return cmd_produce(a);
    if (cmd == "watch") return cmd_watch(a);
    if (cmd == "scan") return cmd_scan(a);
    die("unknown subcommand '" + cmd + "'");
}
