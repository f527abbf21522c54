// bench_soak_tool: the Kafka side of bench/soak, on plain librdkafka. It
// shares no code with replicatord: what it checks is checked from outside.
//
//   create   topics with partitions and configs (admin API)
//   load     a continuous load until a stop file appears: keyed records on a
//            plain topic, a compacted topic (about 40% tombstones), a
//            transactional topic (about 10% of transactions aborted) and the
//            active-active topic on both clusters. Every record carries the
//            header soak.id = "<topic-tag>/<key>/<seq>", a per-key sequence.
//            Acknowledged and aborted ids are appended to files as
//            `<tag>\t<partition>\t<offset>\t<id>`.
//   sample   until a stop file appears, once a second: a target topic's end
//            offsets (taken first), then replicatord_rpo_seconds of a flow
//            from the admin endpoint: `<ms>\t<figure>\t<end0>,<end1>,...`
//   commit   commits offsets for a group without joining it (an operator's
//            reset), from `<partition>=<offset>` arguments
//   committed  prints a group's committed offsets: `<partition>\t<offset>`
//   check    compares kcat dumps of source and target (and restored
//            archives) with the acknowledged ids and the RPO samples; prints
//            one line per finding and a summary line for bench/soak
//
// kcat dumps are read in the format `-f '%p\t%o\t%T\t%S\t%h\n'` (partition,
// offset, timestamp, value size or -1 for null, headers as k=v,k=v).
#include "bench/tool_common.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& what) { rpl::bench::die("bench_soak_tool", what); }
using rpl::bench::now_ms;

// --name value options after the subcommand; repeated names accumulate.
struct args {
    std::map<std::string, std::vector<std::string>> named;
    std::vector<std::string> positional;
    std::string get(const std::string& n, const std::string& def = "") const {
        const auto it = named.find(n);
        if (it == named.end()) {
            if (def.empty()) die("--" + n + " is required");
            return def;
        }
        return it->second.back();
    }
    std::vector<std::string> all(const std::string& n) const {
        const auto it = named.find(n);
        return it == named.end() ? std::vector<std::string>{} : it->second;
    }
};

args parse(int argc, char** argv) {
    args a;
    for (int i = 2; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0 && i + 1 < argc) {
            a.named[s.substr(2)].push_back(argv[++i]);
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

rd_kafka_conf_t* base_conf(const std::string& bootstrap) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    auto set = [&](const char* k, const std::string& v) {
        if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            die(std::string(k) + ": " + err);
    };
    set("bootstrap.servers", bootstrap);
    set("client.id", "soak-tool");
    set("log_level", "3");
    return conf;
}

void conf_set(rd_kafka_conf_t* conf, const char* k, const std::string& v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        die(std::string(k) + ": " + err);
}

// ------------------------------------------------------------------ create

// create --bootstrap B --topic name:partitions[:k=v,k=v] ...
int cmd_create(const args& a) {
    rd_kafka_conf_t* conf = base_conf(a.get("bootstrap"));
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) die(err);
    std::vector<rd_kafka_NewTopic_t*> topics;
    for (const auto& spec : a.all("topic")) {
        std::stringstream ss(spec);
        std::string name, parts, configs;
        std::getline(ss, name, ':');
        std::getline(ss, parts, ':');
        std::getline(ss, configs);
        rd_kafka_NewTopic_t* t =
            rd_kafka_NewTopic_new(name.c_str(), std::stoi(parts), 1, err, sizeof err);
        if (t == nullptr) die(err);
        std::stringstream cs(configs);
        std::string kv;
        while (std::getline(cs, kv, ',')) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos) continue;
            rd_kafka_NewTopic_set_config(t, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str());
        }
        topics.push_back(t);
    }
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics.data(), topics.size(), nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 60000);
    if (ev == nullptr) die("create topics: no answer in 60 s");
    const auto* res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** rs = rd_kafka_CreateTopics_result_topics(res, &n);
    int rc = 0;
    for (size_t i = 0; i < n; ++i) {
        const auto e = rd_kafka_topic_result_error(rs[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            std::fprintf(stderr, "bench_soak_tool: create %s: %s\n",
                         rd_kafka_topic_result_name(rs[i]), rd_kafka_err2str(e));
            rc = 1;
        }
    }
    rd_kafka_event_destroy(ev);
    for (auto* t : topics) rd_kafka_NewTopic_destroy(t);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

// ------------------------------------------------------------------ load

// One appended line per delivery; flushed per line so that a crash of the
// tool loses at most what was being written.
class ledger {
public:
    explicit ledger(const std::string& path) : f_(std::fopen(path.c_str(), "a")) {
        if (f_ == nullptr) die("cannot open " + path);
    }
    ~ledger() { std::fclose(f_); }
    ledger(const ledger&) = delete;
    ledger& operator=(const ledger&) = delete;
    void add(const std::string& tag, int32_t p, int64_t o, const std::string& id) {
        std::fprintf(f_, "%s\t%d\t%lld\t%s\n", tag.c_str(), p, static_cast<long long>(o),
                     id.c_str());
        std::fflush(f_);
    }

private:
    std::FILE* f_;
};

struct load_state {
    ledger* acked = nullptr;
    ledger* failed = nullptr;
    std::atomic<int64_t> acked_n{0};
    std::atomic<int64_t> failed_n{0};
};

// The delivery report's opaque is a heap copy of the record's tag and id.
struct sent {
    std::string tag;
    std::string id;
    bool in_txn = false;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* st = static_cast<load_state*>(opaque);
    auto* s = static_cast<sent*>(m->_private);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        // Transactional records count once their transaction commits.
        if (!s->in_txn) {
            st->acked->add(s->tag, m->partition, m->offset, s->id);
            ++st->acked_n;
        }
    } else if (!(s->in_txn && m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE)) {
        // (An aborted transaction purges its records: not a failure.)
        st->failed->add(s->tag, m->partition, -1, s->id + "\t" + rd_kafka_err2str(m->err));
        ++st->failed_n;
    }
    if (s->in_txn) return;  // kept by the transaction until its outcome is known
    delete s;
}

rd_kafka_t* make_producer(const std::string& bootstrap, load_state* st,
                          const std::string& txn_id = "") {
    rd_kafka_conf_t* conf = base_conf(bootstrap);
    conf_set(conf, "enable.idempotence", "true");
    conf_set(conf, "acks", "all");
    // Outages last up to a minute: records wait instead of failing.
    conf_set(conf, "message.timeout.ms", "600000");
    conf_set(conf, "linger.ms", "5");
    if (!txn_id.empty()) {
        conf_set(conf, "transactional.id", txn_id);
        // librdkafka: message.timeout.ms <= transaction.timeout.ms (broker
        // maximum 15 min by default).
        conf_set(conf, "message.timeout.ms", "300000");
        conf_set(conf, "transaction.timeout.ms", "300000");
    }
    rd_kafka_conf_set_dr_msg_cb(conf, &on_delivery);
    rd_kafka_conf_set_opaque(conf, st);
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) die(err);
    return rk;
}

// Produces one record, waiting out a full queue.
void produce(rd_kafka_t* rk, const std::string& topic, int32_t partition, const std::string& key,
             const std::optional<std::string>& value, sent* s) {
    // A null value (a tombstone), not an empty one, when there is none.
    void* vdata = value ? const_cast<char*>(value->data()) : nullptr;
    const size_t vsize = value ? value->size() : 0;
    while (true) {
        rd_kafka_headers_t* h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "soak.id", -1, s->id.data(), static_cast<ssize_t>(s->id.size()));
        const auto err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(vdata, vsize),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(s),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
        rd_kafka_headers_destroy(h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("produce to " + topic + ": " + rd_kafka_err2str(err));
        rd_kafka_poll(rk, 100);
    }
}

// A keyed stream: key k gets seq 0, 1, 2, ... in its partition (key mod P).
struct stream {
    std::string tag;
    std::string topic;
    int partitions = 1;
    int keys = 1;
    std::vector<int64_t> next_seq;
    std::string next_id(int key) {
        return tag + "/" + std::to_string(key) + "/" + std::to_string(next_seq[key]++);
    }
};

std::string filler(std::mt19937_64& rng, size_t n) {
    std::string v(n, 'x');
    for (auto& c : v) c = static_cast<char>('a' + rng() % 26);
    return v;
}

bool txn_retry(rd_kafka_error_t* e, const char* what) {
    if (e == nullptr) return false;
    const bool retriable = rd_kafka_error_is_retriable(e);
    std::fprintf(stderr, "bench_soak_tool: %s: %s%s\n", what, rd_kafka_error_string(e),
                 retriable ? " (retrying)" : "");
    rd_kafka_error_destroy(e);
    if (!retriable) return false;
    std::this_thread::sleep_for(500ms);
    return true;
}

// load --primary B --dr B --prefix P --seed S --rate R --stop-file F --out DIR
int cmd_load(const args& a) {
    const std::string prefix = a.get("prefix"), out = a.get("out"), stop = a.get("stop-file");
    const int rate = std::stoi(a.get("rate", "400"));
    std::mt19937_64 rng(std::stoull(a.get("seed", "1")));
    ledger acked(out + "/acked.tsv"), failed(out + "/failed.tsv"), aborted(out + "/aborted.tsv");
    load_state st;
    st.acked = &acked;
    st.failed = &failed;

    rd_kafka_t* primary = make_producer(a.get("primary"), &st);
    rd_kafka_t* dr = make_producer(a.get("dr"), &st);
    const std::string txn_id = prefix + ".txn-producer";
    rd_kafka_t* txp = make_producer(a.get("primary"), &st, txn_id);
    while (txn_retry(rd_kafka_init_transactions(txp, 60000), "init transactions")) {
    }

    stream keyed{"keyed", prefix + ".keyed", 6, 60, {}};
    stream plain{"plain", prefix + ".plain", 3, 30, {}};
    stream compact{"compact", prefix + ".compact", 3, 50, {}};
    stream txn{"txn", prefix + ".txn", 3, 30, {}};
    stream aa_p{"aa-primary", prefix + ".aa", 3, 30, {}};
    stream aa_d{"aa-dr", prefix + ".aa", 3, 30, {}};
    for (auto* s : {&keyed, &plain, &compact, &txn, &aa_p, &aa_d})
        s->next_seq.assign(static_cast<size_t>(s->keys), 0);

    auto emit = [&](rd_kafka_t* rk, stream& s, bool tombstone, bool in_txn) -> sent* {
        const int key = static_cast<int>(rng() % static_cast<uint64_t>(s.keys));
        auto* rec = new sent{s.tag, s.next_id(key), in_txn};
        const std::string k = "k" + std::to_string(key);
        std::optional<std::string> v;
        if (!tombstone) v = filler(rng, 100);
        produce(rk, s.topic, key % s.partitions, k, v, rec);
        return rec;
    };

    int64_t txns = 0, aborted_txns = 0, ticks = 0;
    const auto period = 100ms;
    const int per_tick = std::max(1, rate / 10);
    auto next = std::chrono::steady_clock::now();
    while (!exists(stop)) {
        for (int i = 0; i < per_tick; ++i) {
            const auto pick = rng() % 10;
            if (pick < 4)
                emit(primary, keyed, false, false);
            else if (pick < 5)
                emit(primary, plain, false, false);
            else if (pick < 7)
                emit(primary, compact, rng() % 10 < 4, false);
            else if (pick < 8)
                emit(primary, aa_p, false, false);
            else
                emit(dr, aa_d, false, false);
        }
        // One transaction of 10 records every half second; one in ten aborted.
        if (++ticks % 5 == 0) {
            const bool abort_it = rng() % 10 == 0;
            std::vector<sent*> batch;
            bool begun = false;
            if (auto* e = rd_kafka_begin_transaction(txp)) {
                std::fprintf(stderr, "bench_soak_tool: begin transaction: %s\n",
                             rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            } else {
                begun = true;
                for (int i = 0; i < 10; ++i) batch.push_back(emit(txp, txn, false, true));
            }
            bool committed = false;
            if (begun && !abort_it) {
                rd_kafka_error_t* e = nullptr;
                while ((e = rd_kafka_commit_transaction(txp, 60000)) != nullptr) {
                    if (rd_kafka_error_txn_requires_abort(e) || !rd_kafka_error_is_retriable(e)) {
                        std::fprintf(stderr, "bench_soak_tool: commit: %s (aborting)\n",
                                     rd_kafka_error_string(e));
                        rd_kafka_error_destroy(e);
                        break;
                    }
                    rd_kafka_error_destroy(e);
                    std::this_thread::sleep_for(500ms);
                }
                committed = e == nullptr;
            }
            if (begun && !committed) {
                while (txn_retry(rd_kafka_abort_transaction(txp, 60000), "abort transaction")) {
                }
                ++aborted_txns;
            }
            if (begun) ++txns;
            // Serve the delivery reports of the transaction's records (an
            // abort purges them) before their records are freed; the ledger
            // keeps transactional records by id only.
            rd_kafka_flush(txp, 60000);
            for (auto* s : batch) {
                (committed ? acked : aborted).add(s->tag, -1, -1, s->id);
                if (committed) ++st.acked_n;
                delete s;
            }
        }
        rd_kafka_poll(primary, 0);
        rd_kafka_poll(dr, 0);
        rd_kafka_poll(txp, 0);
        next += period;
        std::this_thread::sleep_until(next);
        if (std::chrono::steady_clock::now() > next + 5s) next = std::chrono::steady_clock::now();
    }
    for (auto* rk : {primary, dr, txp}) {
        if (rd_kafka_flush(rk, 300000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            std::fprintf(stderr, "bench_soak_tool: flush: records still unacknowledged\n");
    }
    std::printf("{\"acked\":%lld,\"failed\":%lld,\"transactions\":%lld,\"aborted\":%lld}\n",
                static_cast<long long>(st.acked_n.load()),
                static_cast<long long>(st.failed_n.load()), static_cast<long long>(txns),
                static_cast<long long>(aborted_txns));
    for (auto* rk : {primary, dr, txp}) rd_kafka_destroy(rk);
    return 0;
}

// ------------------------------------------------------------------ sample

// GET http://127.0.0.1:port/path over a plain socket, 2 s deadline; "" on
// any failure.
std::string http_get(int port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string body;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const std::string req =
            "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
            char buf[65536];
            ssize_t n = 0;
            while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0)
                body.append(buf, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    const auto at = body.find("\r\n\r\n");
    if (body.rfind("HTTP/1.", 0) != 0 || body.find(" 200 ") > 12 || at == std::string::npos)
        return "";
    return body.substr(at + 4);
}

// sample --dr B --topic T --partitions N --port P --flow F --stop-file F --out FILE
int cmd_sample(const args& a) {
    rd_kafka_conf_t* conf = base_conf(a.get("dr"));
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) die(err);
    const std::string topic = a.get("topic"), stop = a.get("stop-file"), flow = a.get("flow");
    const int partitions = std::stoi(a.get("partitions"));
    const int port = std::stoi(a.get("port"));
    std::FILE* out = std::fopen(a.get("out").c_str(), "a");
    if (out == nullptr) die("cannot open " + a.get("out"));
    const std::string series = "replicatord_rpo_seconds{flow=\"" + flow + "\"} ";
    while (!exists(stop)) {
        const auto t0 = std::chrono::steady_clock::now();
        std::string ends;
        bool ok = true;
        for (int p = 0; p < partitions && ok; ++p) {
            int64_t lo = 0, hi = 0;
            ok = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 2000) ==
                 RD_KAFKA_RESP_ERR_NO_ERROR;
            ends += (p ? "," : "") + std::to_string(hi);
        }
        const int64_t at = now_ms();
        const std::string page = ok ? http_get(port, "/metrics") : "";
        const auto pos = page.find("\n" + series);
        if (ok && pos != std::string::npos) {
            const double figure = std::strtod(page.c_str() + pos + 1 + series.size(), nullptr);
            std::fprintf(out, "%lld\t%.3f\t%s\n", static_cast<long long>(at), figure, ends.c_str());
            std::fflush(out);
        }
        std::this_thread::sleep_until(t0 + 1s);
    }
    std::fclose(out);
    rd_kafka_destroy(rk);
    return 0;
}

// ------------------------------------------------------------------ commit

rd_kafka_t* group_consumer(const std::string& bootstrap, const std::string& group) {
    rd_kafka_conf_t* conf = base_conf(bootstrap);
    conf_set(conf, "group.id", group);
    conf_set(conf, "enable.auto.commit", "false");
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) die(err);
    return rk;
}

// commit --bootstrap B --group G --topic T p=o ...
int cmd_commit(const args& a) {
    rd_kafka_t* rk = group_consumer(a.get("bootstrap"), a.get("group"));
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(8);
    for (const auto& po : a.positional) {
        const auto eq = po.find('=');
        rd_kafka_topic_partition_list_add(l, a.get("topic").c_str(), std::stoi(po.substr(0, eq)))
            ->offset = std::stoll(po.substr(eq + 1));
    }
    const auto e = rd_kafka_commit(rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) die(std::string("commit: ") + rd_kafka_err2str(e));
    return 0;
}

// committed --bootstrap B --group G --topic T --partitions N
int cmd_committed(const args& a) {
    rd_kafka_t* rk = group_consumer(a.get("bootstrap"), a.get("group"));
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(8);
    const int n = std::stoi(a.get("partitions"));
    for (int p = 0; p < n; ++p) rd_kafka_topic_partition_list_add(l, a.get("topic").c_str(), p);
    const auto e = rd_kafka_committed(rk, l, 30000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) die(std::string("committed: ") + rd_kafka_err2str(e));
    for (int i = 0; i < l->cnt; ++i)
        std::printf("%d\t%lld\n", l->elems[i].partition,
                    static_cast<long long>(l->elems[i].offset));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return 0;
}

// ------------------------------------------------------------------ check

struct rec {
    int64_t offset = -1;
    int64_t ts = 0;
    bool tombstone = false;
    std::string id;              // soak.id
    int64_t source_offset = -1;  // replicatord.source.offset (restored archives)
};
using dump = std::map<int32_t, std::vector<rec>>;  // per partition, in offset order

std::string header_value(const std::string& headers, const std::string& name) {
    // kcat prints headers as name=value,name=value; our values hold no ','.
    std::stringstream ss(headers);
    std::string kv;
    while (std::getline(ss, kv, ','))
        if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
    return "";
}

dump read_dump(const std::string& path) {
    std::ifstream in(path);
    if (!in) die("cannot read " + path);
    dump d;
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream ss(line);
        std::string p, o, t, s, h;
        if (!std::getline(ss, p, '\t') || !std::getline(ss, o, '\t') ||
            !std::getline(ss, t, '\t') || !std::getline(ss, s, '\t'))
            continue;
        std::getline(ss, h);
        rec r;
        r.offset = std::stoll(o);
        r.ts = std::stoll(t);
        r.tombstone = s == "-1";
        r.id = header_value(h, "soak.id");
        const auto so = header_value(h, "replicatord.source.offset");
        if (!so.empty()) r.source_offset = std::stoll(so);
        d[std::stoi(p)].push_back(std::move(r));
    }
    return d;
}

struct tally {
    int64_t lost = 0, duplicates = 0, out_of_order = 0, aborted_seen = 0, tombstones_wrong = 0,
            unacked_missing_at_source = 0, checked = 0;
};

// Source → target of one mirrored topic: every source record is on the
// target, in source order per partition (first copies), tombstones stay
// tombstones; nothing else is there but duplicates of them.
void check_mirror(const std::string& name, const dump& source, const dump& target,
                  const std::set<std::string>& aborted, tally& t, int max_print) {
    int printed = 0;
    auto say = [&](const std::string& s) {
        if (printed++ < max_print) std::printf("  %s: %s\n", name.c_str(), s.c_str());
    };
    for (const auto& [p, srcs] : source) {
        const auto it = target.find(p);
        const std::vector<rec> empty;
        const auto& tgts = it == target.end() ? empty : it->second;
        std::map<std::string, size_t> first;  // id -> index in first-copy order
        std::vector<const rec*> firsts;
        for (const auto& r : tgts) {
            if (aborted.count(r.id)) {
                ++t.aborted_seen;
                say("partition " + std::to_string(p) + ": aborted record " + r.id +
                    " on the target at offset " + std::to_string(r.offset));
            }
            if (first.count(r.id)) {
                ++t.duplicates;
                continue;
            }
            first[r.id] = firsts.size();
            firsts.push_back(&r);
        }
        size_t expect = 0;
        for (const auto& s : srcs) {
            ++t.checked;
            const auto f = first.find(s.id);
            if (f == first.end()) {
                ++t.lost;
                say("partition " + std::to_string(p) + ": source offset " +
                    std::to_string(s.offset) + " (" + s.id + ") is not on the target");
                continue;
            }
            if (f->second != expect) {
                ++t.out_of_order;
                say("partition " + std::to_string(p) + ": " + s.id +
                    " is out of order on the target (offset " +
                    std::to_string(firsts[f->second]->offset) + ")");
            }
            expect = f->second + 1;
            if (firsts[f->second]->tombstone != s.tombstone) {
                ++t.tombstones_wrong;
                say("partition " + std::to_string(p) + ": " + s.id + " tombstone " +
                    (s.tombstone ? "lost" : "invented") + " on the target");
            }
        }
    }
}

std::set<std::string> read_ids(const std::string& path, const std::string& tag = "") {
    std::set<std::string> ids;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream ss(line);
        std::string tg, p, o, id;
        std::getline(ss, tg, '\t');
        std::getline(ss, p, '\t');
        std::getline(ss, o, '\t');
        std::getline(ss, id, '\t');
        if (tag.empty() || tg == tag) ids.insert(id);
    }
    return ids;
}

// `name:first.tsv:second.tsv` of --mirror and --archive.
std::tuple<std::string, std::string, std::string> split_spec(const std::string& spec) {
    std::stringstream ss(spec);
    std::string name, first, second;
    std::getline(ss, name, ':');
    std::getline(ss, first, ':');
    std::getline(ss, second);
    return {name, first, second};
}

// check --mirror name:source.tsv:target.tsv ... --archive name:source.tsv:restored.tsv ...
//       --acked F --aborted F --samples F --rpo-source source.tsv --rpo-target target.tsv
//       --allowance SECONDS
int cmd_check(const args& a) {
    const auto aborted = read_ids(a.get("aborted"));
    const auto acked = read_ids(a.get("acked"));
    tally t;
    std::set<std::string> on_source;
    const int max_print = 20;
    for (const auto& spec : a.all("mirror")) {
        const auto [name, s, g] = split_spec(spec);
        const dump source = read_dump(s), target = read_dump(g);
        for (const auto& [p, rs] : source)
            for (const auto& r : rs) on_source.insert(r.id);
        check_mirror(name, source, target, aborted, t, max_print);
    }
    // Acknowledged by the source but not there: the broker lost it (no
    // replicatord involved); reported, not counted as lost by the mirror.
    int64_t acked_checked = 0;
    for (const auto& id : acked) {
        const auto tag = id.substr(0, id.find('/'));
        bool mirrored_tag = false;
        for (const auto& spec : a.all("mirror"))
            if (spec.rfind(tag + ":", 0) == 0) mirrored_tag = true;
        if (!mirrored_tag) continue;
        ++acked_checked;
        if (!on_source.count(id)) ++t.unacked_missing_at_source;
    }

    // Archives: every source record at its own offset, equal id and tombstone.
    int64_t holes = 0, archive_checked = 0;
    for (const auto& spec : a.all("archive")) {
        const auto [name, s, g] = split_spec(spec);
        const dump source = read_dump(s), restored = read_dump(g);
        int printed = 0;
        for (const auto& [p, srcs] : source) {
            std::map<int64_t, const rec*> by_offset;
            if (restored.count(p))
                for (const auto& r : restored.at(p)) by_offset[r.source_offset] = &r;
            for (const auto& sr : srcs) {
                ++archive_checked;
                const auto it = by_offset.find(sr.offset);
                if (it == by_offset.end() || it->second->id != sr.id ||
                    it->second->tombstone != sr.tombstone) {
                    ++holes;
                    if (printed++ < max_print)
                        std::printf("  archive %s: partition %d offset %lld (%s) %s\n",
                                    name.c_str(), p, static_cast<long long>(sr.offset),
                                    sr.id.c_str(), it == by_offset.end() ? "missing" : "differs");
                }
            }
        }
    }

    // RPO: the figure against the truth at each sample.
    int64_t under = 0, samples = 0;
    double worst_short = -1e9, max_truth = 0;
    if (!a.all("samples").empty()) {
        const double allowance = std::stod(a.get("allowance", "1.0"));
        const dump source = read_dump(a.get("rpo-source"));
        const dump target = read_dump(a.get("rpo-target"));
        std::map<std::string, int64_t> src_offset;
        for (const auto& [p, rs] : source)
            for (const auto& r : rs) src_offset[r.id] = r.offset;
        std::ifstream in(a.get("samples"));
        std::string line;
        while (std::getline(in, line)) {
            std::stringstream ss(line);
            std::string at_s, fig_s, ends_s;
            std::getline(ss, at_s, '\t');
            std::getline(ss, fig_s, '\t');
            std::getline(ss, ends_s);
            const int64_t at = std::stoll(at_s);
            const double figure = std::stod(fig_s);
            std::vector<int64_t> ends;
            std::stringstream es(ends_s);
            std::string e;
            while (std::getline(es, e, ',')) ends.push_back(std::stoll(e));
            double truth = 0;
            for (const auto& [p, srcs] : source) {
                // Progress: the furthest source record among the target's
                // records below its end offset at the sample.
                int64_t next = 0;
                if (static_cast<size_t>(p) < ends.size() && target.count(p))
                    for (const auto& r : target.at(p)) {
                        if (r.offset >= ends[static_cast<size_t>(p)]) break;
                        const auto so = src_offset.find(r.id);
                        if (so != src_offset.end()) next = std::max(next, so->second + 1);
                    }
                for (const auto& sr : srcs) {
                    if (sr.offset < next) continue;
                    // The oldest record the source held then and dr lacked.
                    if (sr.ts <= at) truth = std::max(truth, static_cast<double>(at - sr.ts) / 1e3);
                    break;
                }
            }
            ++samples;
            max_truth = std::max(max_truth, truth);
            worst_short = std::max(worst_short, truth - figure);
            if (figure < truth - allowance) {
                ++under;
                if (under <= max_print)
                    std::printf("  rpo: at %lld the figure %.3f s is below the truth %.3f s\n",
                                static_cast<long long>(at), figure, truth);
            }
        }
    }

    std::printf(
        "check: %lld records checked, %lld acknowledged, lost %lld, duplicates %lld, out of "
        "order %lld, aborted on target %lld, tombstones wrong %lld, acknowledged but not on the "
        "source %lld; archive: %lld checked, holes %lld; rpo: %lld samples, largest true age "
        "%.1f s, figure at most %.3f s below it, under-reports %lld\n",
        static_cast<long long>(t.checked), static_cast<long long>(acked_checked),
        static_cast<long long>(t.lost), static_cast<long long>(t.duplicates),
        static_cast<long long>(t.out_of_order), static_cast<long long>(t.aborted_seen),
        static_cast<long long>(t.tombstones_wrong),
        static_cast<long long>(t.unacked_missing_at_source),
        static_cast<long long>(archive_checked), static_cast<long long>(holes),
        static_cast<long long>(samples), max_truth, worst_short, static_cast<long long>(under));
    // Machine-readable for bench/soak.
    std::printf("RESULT lost=%lld duplicates=%lld holes=%lld under=%lld bad=%lld samples=%lld\n",
                static_cast<long long>(t.lost), static_cast<long long>(t.duplicates),
                static_cast<long long>(holes), static_cast<long long>(under),
                static_cast<long long>(t.out_of_order + t.aborted_seen + t.tombstones_wrong),
                static_cast<long long>(samples));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) die("usage: bench_soak_tool create|load|sample|commit|committed|check ...");
    const std::string cmd = argv[1];
    const args a = parse(argc, argv);
    if (cmd == "create") return cmd_create(a);
    if (cmd == "load") return cmd_load(a);
    if (cmd == "sample") return cmd_sample(a);
    if (cmd == "commit") return cmd_commit(a);
    if (cmd == "committed") return cmd_committed(a);
    if (cmd == "check") return cmd_check(a);
    die("unknown subcommand " + cmd);
}
