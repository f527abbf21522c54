// backup/s3_store against the test bed's real S3 server (SeaweedFS, which
// checks SigV4 signatures). What each test guards against:
// - a round trip that corrupts or truncates an object (single PUT and
//   multipart; the multipart ETag "-<parts>" proves which path ran, and the
//   curl command line reads the object back independently);
// - keys whose encoding libcurl signs differently from the server (spaces,
//   '+', '=', unicode) failing with SignatureDoesNotMatch;
// - a listing that stops after the first 1,000-key page;
// - errors that do not say which bucket or key, or that carry the secret;
// - an unreachable store that hangs or retries forever.

#include "backup/s3_store.h"
#include "tests/integration/support.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace rpl::test;
using namespace std::string_literals;
using rpl::errc;
using namespace rpl::backup;

namespace {

constexpr std::uint64_t mib = 1ull << 20;

// s3://bucket/<unique prefix>?endpoint=..&path_style=true on the test bed.
std::string bed_url(const std::string& prefix, const std::string& bucket = "") {
    const auto& b = testbed();
    return "s3://" + (bucket.empty() ? b.s3_bucket : bucket) + "/" + prefix +
           "?region=us-east-1&endpoint=" + b.s3_endpoint + "&path_style=true";
}

store_options bed_options() {
    store_options o;
    o.access_key = testbed().s3_access_key;
    o.secret_key = testbed().s3_secret_key;
    o.max_attempts = 3;
    o.request_timeout = std::chrono::seconds(20);
    return o;
}

std::unique_ptr<object_store> open(const std::string& url, const store_options& o) {
    auto s = open_s3_store(url, o);
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    return std::move(s).value();
}

bool contains(const std::string& hay, std::string_view needle) {
    return hay.find(needle) != std::string::npos;
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; i += 8) {
        const auto v = rng();
        for (std::size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(v >> (8 * j));
    }
    return s;
}

// The curl command line, signing for itself: the independent reader.
command_result curl_cli(const std::vector<std::string>& extra, const std::string& full_key) {
    const auto& b = testbed();
    std::vector<std::string> argv{"curl",        "-sS",
                                  "--aws-sigv4", "aws:amz:us-east-1:s3",
                                  "--user",      b.s3_access_key + ":" + b.s3_secret_key,
                                  "-H",          "x-amz-content-sha256: UNSIGNED-PAYLOAD"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(b.s3_endpoint + "/" + b.s3_bucket + "/" + s3_uri_encode(full_key, true));
    return run(argv, std::chrono::seconds(30));
}

// Runs fn(i) for i in [0, n) on `threads` threads.
template <class F>
void parallel_for(int n, int threads, F fn) {
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int i = next++; i < n; i = next++) fn(i);
        });
    for (auto& t : ts) t.join();
}

void remove_all(object_store& s) {
    auto all = s.list("");
    REQUIRE(all.has_value());
    std::atomic<int> failures{0};
    const auto& objects = all.value();
    parallel_for(static_cast<int>(objects.size()), 4, [&](int i) {
        if (!s.remove(objects[static_cast<std::size_t>(i)].key)) ++failures;
    });
    CHECK(failures == 0);
}

// A scripted HTTP server on 127.0.0.1 for what the real server will not do
// on demand: answer 503 SlowDown, 500, or 200 with an <Error> body. One
// request per connection (Connection: close).
struct fake_request {
    std::string method, target, body;
    std::map<std::string, std::string> headers;  // names in lower case
};
struct fake_response {
    int status = 200;
    std::string body;
    std::vector<std::string> headers;
};

class fake_s3 {
public:
    explicit fake_s3(std::function<fake_response(const fake_request&)> handler)
        : handler_(std::move(handler)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~fake_s3() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    fake_s3(const fake_s3&) = delete;
    fake_s3& operator=(const fake_s3&) = delete;

    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<fake_request> requests() {
        std::lock_guard lock(mu_);
        return seen_;
    }

private:
    void serve() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) continue;
            handle(c);
            ::close(c);
        }
    }
    static bool read_more(int c, std::string& buf) {
        pollfd p{c, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) return false;
        char tmp[65536];
        const auto n = ::read(c, tmp, sizeof tmp);
        if (n <= 0) return false;
        buf.append(tmp, static_cast<std::size_t>(n));
        return true;
    }
    static void write_all(int c, const std::string& s) {
        for (std::size_t off = 0; off < s.size();) {
            const auto n = ::write(c, s.data() + off, s.size() - off);
            if (n <= 0) return;
            off += static_cast<std::size_t>(n);
        }
    }
    void handle(int c) {
        std::string buf;
        std::size_t head_end;
        while ((head_end = buf.find("\r\n\r\n")) == std::string::npos)
            if (!read_more(c, buf)) return;
        fake_request r;
        std::size_t line_end = buf.find("\r\n");
        const std::string first = buf.substr(0, line_end);
        const auto sp1 = first.find(' '), sp2 = first.rfind(' ');
        r.method = first.substr(0, sp1);
        r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
        for (std::size_t pos = line_end + 2; pos < head_end;) {
            const auto e = buf.find("\r\n", pos);
            const std::string line = buf.substr(pos, e - pos);
            pos = e + 2;
            const auto colon = line.find(':');
            std::string name = line.substr(0, colon);
            for (auto& ch : name)
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            auto value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            r.headers[name] = value;
        }
        const std::size_t length =
            r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
        if (r.headers.count("expect")) write_all(c, "HTTP/1.1 100 Continue\r\n\r\n");
        while (buf.size() < head_end + 4 + length)
            if (!read_more(c, buf)) return;
        r.body = buf.substr(head_end + 4, length);
        fake_response resp = handler_(r);
        {
            std::lock_guard lock(mu_);
            seen_.push_back(r);
        }
        std::string out = "HTTP/1.1 " + std::to_string(resp.status) +
                          " X\r\nContent-Length: " + std::to_string(resp.body.size()) +
                          "\r\nConnection: close\r\n";
        for (const auto& h : resp.headers) out += h + "\r\n";
        out += "\r\n" + resp.body;
        write_all(c, out);
    }

    std::function<fake_response(const fake_request&)> handler_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::vector<fake_request> seen_;
    std::thread thread_;
};

std::string error_xml(const std::string& code, const std::string& message) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" +
           message + "</Message></Error>";
}

store_options fake_options() {
    store_options o;
    o.access_key = "AKIDFAKE";
    o.secret_key = "fake-secret-9xQ";
    o.max_attempts = 3;
    o.request_timeout = std::chrono::seconds(5);
    return o;
}

}  // namespace

TEST_CASE("s3 store: empty, small and 40 MiB multipart objects round trip") {
    const auto prefix = unique("s3rt");
    auto o = bed_options();
    o.part_size = 5 * mib;
    o.multipart_threshold = 8 * mib;
    auto s = open(bed_url(prefix), o);
    REQUIRE(s->check().has_value());

    const std::string small = "hello, archive \x00\x01\xff"s;
    const std::string big = random_bytes(40 * mib, 7);
    REQUIRE(s->put("empty", "").has_value());
    REQUIRE(s->put("dir/small", small).has_value());
    const auto t0 = std::chrono::steady_clock::now();
    auto put_big = s->put("dir/big", big);
    const auto t1 = std::chrono::steady_clock::now();
    REQUIRE_MESSAGE(put_big.has_value(), (put_big ? "" : put_big.error().message));
    std::printf("s3 store: 40 MiB multipart put took %lld ms\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count()));

    CHECK(s->get("empty").value().empty());
    CHECK(s->get("dir/small").value() == small);
    auto got = s->get("dir/big");
    REQUIRE(got.has_value());
    CHECK(got.value().size() == big.size());
    CHECK(got.value() == big);

    const auto listed = s->list("").value();
    REQUIRE(listed.size() == 3);
    CHECK(listed[0].key == "dir/big");
    CHECK(listed[0].size == 40 * mib);
    CHECK(listed[1].key == "dir/small");
    CHECK(listed[1].size == small.size());
    CHECK(listed[2].key == "empty");
    CHECK(listed[2].size == 0);

    // independently: the curl CLI reads the small object, and the big one's
    // ETag has the "-8" suffix of an 8-part multipart upload
    const auto cli = curl_cli({}, prefix + "/dir/small");
    CHECK(cli.exit_code == 0);
    CHECK(cli.out == small);
    const auto head = curl_cli({"-I"}, prefix + "/dir/big");
    CHECK(head.exit_code == 0);
    CHECK_MESSAGE(contains(head.out, "-8\""), head.out);

    // overwrite
    REQUIRE(s->put("dir/small", "v2").has_value());
    CHECK(s->get("dir/small").value() == "v2");
    remove_all(*s);
}

TEST_CASE("s3 store: keys with spaces, '+', '=', '&', unicode round trip and list exactly") {
    const auto prefix = unique("s3keys") + "/with space+plus";
    auto s = open(bed_url(s3_uri_encode(prefix, true)), bed_options());
    const std::vector<std::string> keys = {
        "a b",       "a+b",         "a=b&c", "ünï/日本語", "semi;colon:@,$",
        "tilde~_-.", "quote'\"<x>", "pct%41"};
    for (const auto& k : keys) {
        auto r = s->put(k, "value of " + k);
        REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    }
    for (const auto& k : keys) CHECK(s->get(k).value() == "value of " + k);
    auto sorted = keys;
    std::sort(sorted.begin(), sorted.end());
    const auto listed = s->list("").value();
    std::vector<std::string> names;
    for (const auto& o : listed) names.push_back(o.key);
    CHECK(names == sorted);
    // list(prefix) is a plain string prefix
    const auto a = s->list("a").value();
    REQUIRE(a.size() == 3);
    CHECK(a[0].key == "a b");
    // the CLI finds the object under the full key
    CHECK(curl_cli({}, prefix + "/a+b").out == "value of a+b");
    remove_all(*s);
}

TEST_CASE("s3 store: a listing of 2,500 keys returns all of them, sorted, across pages") {
    const auto prefix = unique("s3list");
    auto s = open(bed_url(prefix), bed_options());
    constexpr int n = 2500;
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "seg/%05d", i);
        keys.emplace_back(buf);
    }
    auto order = keys;
    std::shuffle(order.begin(), order.end(), std::mt19937(42));
    std::atomic<int> failures{0};
    // several threads share the store: it must be safe to do so
    parallel_for(n, 4, [&](int i) {
        const auto& k = order[static_cast<std::size_t>(i)];
        if (!s->put(k, k.substr(4))) ++failures;
    });
    REQUIRE(failures == 0);
    REQUIRE(s->put("segment-sibling", "x").has_value());  // outside "seg/"

    const auto t0 = std::chrono::steady_clock::now();
    auto listed = s->list("seg/");
    const auto t1 = std::chrono::steady_clock::now();
    REQUIRE(listed.has_value());
    std::printf("s3 store: listing %d keys took %lld ms\n", n,
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count()));
    REQUIRE(listed.value().size() == keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        CHECK(listed.value()[i].key == keys[i]);
        CHECK(listed.value()[i].size == 5);
    }
    CHECK(s->list("").value().size() == n + 1);
    // the server pages at 1,000 keys: one request alone would not have seen them all
    const auto& b = testbed();
    const auto page = run(
        {"curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
         b.s3_access_key + ":" + b.s3_secret_key, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         b.s3_endpoint + "/" + b.s3_bucket + "?list-type=2&prefix=" + prefix + "%2Fseg%2F"});
    CHECK_MESSAGE(contains(page.out, "<IsTruncated>true</IsTruncated>"), page.out.substr(0, 300));
    remove_all(*s);
    CHECK(s->list("").value().empty());
}

TEST_CASE("s3 store: a missing key is not_found, naming the key and the store") {
    const auto prefix = unique("s3missing");
    auto s = open(bed_url(prefix), bed_options());
    auto r = s->get("no/such/key");
    REQUIRE(!r.has_value());
    CHECK(r.error().code == errc::not_found);
    CHECK(contains(r.error().message, "'no/such/key'"));
    CHECK(contains(r.error().message, s->describe()));
    CHECK(s->list("").value().empty());
}

TEST_CASE("s3 store: remove deletes; removing a missing key is not an error") {
    const auto prefix = unique("s3rm");
    auto s = open(bed_url(prefix), bed_options());
    REQUIRE(s->put("k", "v").has_value());
    REQUIRE(s->put("k2", "v").has_value());
    REQUIRE(s->remove("k").has_value());
    CHECK(s->get("k").error().code == errc::not_found);
    CHECK(s->remove("k").has_value());
    const auto listed = s->list("").value();
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].key == "k2");
    CHECK(curl_cli({"-o", "/dev/null", "-w", "%{http_code}"}, prefix + "/k").out == "404");
    REQUIRE(s->remove("k2").has_value());
}

TEST_CASE("s3 store: a bucket that does not exist fails check() with not_found naming it") {
    const std::string bucket = "no-such-bucket-" + std::to_string(::getpid());
    auto s = open(bed_url("p", bucket), bed_options());
    auto r = s->check();
    REQUIRE(!r.has_value());
    CHECK(r.error().code == errc::not_found);
    CHECK(contains(r.error().message, "bucket '" + bucket + "'"));
    CHECK(contains(r.error().message, testbed().s3_endpoint));
    MESSAGE(r.error().message);
    CHECK(s->get("k").error().code == errc::not_found);
    CHECK(s->remove("k").error().code == errc::not_found);
}

TEST_CASE("s3 store: a wrong secret key is a clear auth error without the secret") {
    auto o = bed_options();
    o.secret_key = "wrong-secret-Zq81";
    auto s = open(bed_url(unique("s3auth")), o);
    for (auto r : {s->check(), s->put("k", "v")}) {
        REQUIRE(!r.has_value());
        CHECK(r.error().code == errc::io);
        CHECK(contains(r.error().message, "access denied"));
        CHECK(contains(r.error().message, "SignatureDoesNotMatch"));
        CHECK(contains(r.error().message, "'" + testbed().s3_access_key + "'"));
        CHECK_FALSE(contains(r.error().message, "wrong-secret-Zq81"));
        CHECK_FALSE(contains(r.error().message, testbed().s3_secret_key));
        MESSAGE(r.error().message);
    }
}

TEST_CASE("s3 store: an unreachable endpoint is errc::unreachable after bounded retries") {
    auto o = bed_options();
    o.max_attempts = 2;
    auto s = open("s3://replicatord-test/p?endpoint=http://127.0.0.1:1", o);
    auto r = s->check();
    REQUIRE(!r.has_value());
    CHECK(r.error().code == errc::unreachable);
    CHECK(contains(r.error().message, "127.0.0.1:1"));
    CHECK(contains(r.error().message, "2 attempt"));
    MESSAGE(r.error().message);
    CHECK(s->put("k", "v").error().code == errc::unreachable);
    CHECK(s->get("k").error().code == errc::unreachable);
}

TEST_CASE("s3 store: 503 SlowDown is retried with backoff until the PUT succeeds") {
    std::atomic<int> puts{0};
    fake_s3 server([&](const fake_request& r) {
        if (r.method == "PUT" && ++puts <= 2)
            return fake_response{503, error_xml("SlowDown", "Please reduce your request rate.")};
        return fake_response{200, "", {"ETag: \"x\""}};
    });
    auto s = open("s3://bkt/pre?endpoint=" + server.endpoint(), fake_options());
    auto r = s->put("a b+c", "payload");
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    const auto seen = server.requests();
    REQUIRE(seen.size() == 3);
    for (const auto& q : seen) {
        CHECK(q.method == "PUT");
        CHECK(q.target == "/bkt/pre/a%20b%2Bc");
        CHECK(q.body == "payload");
        CHECK(q.headers.at("x-amz-content-sha256") == "UNSIGNED-PAYLOAD");
        CHECK(contains(q.headers.at("authorization"), "AWS4-HMAC-SHA256 Credential=AKIDFAKE/"));
        CHECK(contains(q.headers.at("authorization"), "/us-east-1/s3/aws4_request"));
    }
}

TEST_CASE("s3 store: a persistent 500 fails after max_attempts; a 400 fails at once") {
    std::atomic<int> calls{0};
    fake_s3 server([&](const fake_request& r) {
        ++calls;
        if (r.method == "GET")
            return fake_response{500, error_xml("InternalError", "We encountered an error.")};
        return fake_response{400, error_xml("InvalidArgument", "Bad &lt;thing&gt;")};
    });
    auto o = fake_options();
    o.max_attempts = 2;
    auto s = open("s3://bkt/pre?endpoint=" + server.endpoint(), o);
    auto g = s->get("k");
    REQUIRE(!g.has_value());
    CHECK(g.error().code == errc::io);
    CHECK(contains(g.error().message, "failed after 2 attempt(s)"));
    CHECK(contains(g.error().message, "InternalError"));
    CHECK(contains(g.error().message, "'k'"));
    CHECK(calls == 2);
    calls = 0;
    auto p = s->put("k", "v");
    REQUIRE(!p.has_value());
    CHECK(calls == 1);
    CHECK(contains(p.error().message, "HTTP 400 InvalidArgument: Bad <thing>"));
    CHECK_FALSE(contains(p.error().message, "fake-secret-9xQ"));
}

TEST_CASE(
    "s3 store: CompleteMultipartUpload answering 200 with an <Error> fails the put and aborts") {
    fake_s3 server([&](const fake_request& r) {
        if (r.method == "POST" && contains(r.target, "?uploads="))
            return fake_response{200,
                                 "<InitiateMultipartUploadResult><UploadId>up+id/1=</UploadId>"
                                 "</InitiateMultipartUploadResult>"};
        if (r.method == "PUT")
            return fake_response{200, "", {"ETag: \"etag-" + r.body.substr(0, 1) + "\""}};
        if (r.method == "POST")
            return fake_response{200, error_xml("AccessDenied", "Complete denied")};
        return fake_response{204, ""};
    });
    auto o = fake_options();
    o.multipart_threshold = 4;
    o.part_size = 5 * mib;
    auto s = open("s3://bkt/pre?endpoint=" + server.endpoint(), o);
    const std::string data = "A" + std::string(5 * mib - 1, 'a') + "B" + std::string(99, 'b');
    auto r = s->put("obj", data);
    REQUIRE(!r.has_value());
    CHECK(r.error().code == errc::io);
    CHECK(contains(r.error().message, "AccessDenied"));
    CHECK(contains(r.error().message, "complete multipart upload"));
    const auto seen = server.requests();
    REQUIRE(seen.size() == 5);
    CHECK(seen[0].target == "/bkt/pre/obj?uploads=");
    CHECK(seen[1].target == "/bkt/pre/obj?partNumber=1&uploadId=up%2Bid%2F1%3D");
    CHECK(seen[1].body.size() == 5 * mib);
    CHECK(seen[2].target == "/bkt/pre/obj?partNumber=2&uploadId=up%2Bid%2F1%3D");
    CHECK(seen[2].body == "B" + std::string(99, 'b'));
    CHECK(seen[3].method == "POST");
    CHECK(seen[3].target == "/bkt/pre/obj?uploadId=up%2Bid%2F1%3D");
    CHECK(seen[3].body ==
          "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;etag-A&quot;"
          "</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;etag-B&quot;</ETag></Part>"
          "</CompleteMultipartUpload>");
    CHECK(seen[4].method == "DELETE");
    CHECK(seen[4].target == "/bkt/pre/obj?uploadId=up%2Bid%2F1%3D");
}

TEST_CASE("s3 store: list follows continuation tokens that need encoding") {
    fake_s3 server([&](const fake_request& r) {
        if (!contains(r.target, "continuation-token"))
            return fake_response{
                200,
                "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>pre/b</Key>"
                "<Size>2</Size></Contents><NextContinuationToken>t+/=&amp;</NextContinuationToken>"
                "</ListBucketResult>"};
        return fake_response{200,
                             "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>"
                             "pre/a</Key><Size>1</Size></Contents></ListBucketResult>"};
    });
    auto s = open("s3://bkt/pre?endpoint=" + server.endpoint(), fake_options());
    auto l = s->list("");
    REQUIRE_MESSAGE(l.has_value(), (l ? "" : l.error().message));
    REQUIRE(l.value().size() == 2);
    CHECK(l.value()[0].key == "a");
    CHECK(l.value()[1].key == "b");
    const auto seen = server.requests();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].target == "/bkt?list-type=2&prefix=pre%2F");
    CHECK(seen[1].target == "/bkt?continuation-token=t%2B%2F%3D%26&list-type=2&prefix=pre%2F");
}

TEST_CASE(
    "s3 store: credentials and session token come from the environment, never into messages") {
    fake_s3 server([&](const fake_request&) {
        return fake_response{403, error_xml("InvalidToken", "The provided token is malformed.")};
    });
    ::setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "env-secret-Pw3", 1);
    ::setenv("AWS_SESSION_TOKEN", "session-token-Tk7", 1);
    auto o = fake_options();
    o.access_key.clear();
    o.secret_key.clear();
    auto opened = open_s3_store("s3://bkt?endpoint=" + server.endpoint(), o);
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_SESSION_TOKEN");
    REQUIRE(opened.has_value());
    auto r = opened.value()->check();
    REQUIRE(!r.has_value());
    CHECK(contains(r.error().message, "InvalidToken"));
    CHECK_FALSE(contains(r.error().message, "env-secret-Pw3"));
    CHECK_FALSE(contains(r.error().message, "session-token-Tk7"));
    const auto seen = server.requests();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].headers.at("x-amz-security-token") == "session-token-Tk7");
    CHECK(contains(seen[0].headers.at("authorization"), "Credential=AKIDENV/"));
    CHECK(contains(seen[0].headers.at("authorization"), "x-amz-security-token"));  // signed
}

namespace {

// A server on 127.0.0.1 that accepts every connection and then either never
// answers, or trickles a valid-looking HTTP answer one byte a second (at
// most `max_bytes` per connection, so that a store without a deadline still
// returns in the end and the test fails instead of hanging).
class stalling_server {
public:
    enum class mode { silent, trickle };
    explicit stalling_server(mode m, int max_bytes = 40) : mode_(m), max_bytes_(max_bytes) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~stalling_server() {
        stop_ = true;
        thread_.join();
        for (const auto& c : conns_) ::close(c.fd);
        ::close(fd_);
    }
    stalling_server(const stalling_server&) = delete;
    stalling_server& operator=(const stalling_server&) = delete;
    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
    int accepted() const { return accepted_; }

private:
    struct conn {
        int fd;
        int sent = 0;
        std::chrono::steady_clock::time_point next;
    };
    void serve() {
        const std::string answer =
            "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'x');
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) {
                const int c = ::accept(fd_, nullptr, nullptr);
                if (c >= 0) {
                    conns_.push_back({c, 0, std::chrono::steady_clock::now()});
                    ++accepted_;
                }
            }
            if (mode_ != mode::trickle) continue;
            const auto now = std::chrono::steady_clock::now();
            for (auto& c : conns_) {
                if (c.sent < 0 || now < c.next) continue;
                if (c.sent >= max_bytes_) {
                    ::shutdown(c.fd, SHUT_RDWR);
                    c.sent = -1;
                    continue;
                }
                (void)::send(c.fd, answer.data() + c.sent, 1, MSG_NOSIGNAL);
                ++c.sent;
                c.next = now + std::chrono::seconds(1);
            }
        }
    }

    const mode mode_;
    const int max_bytes_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::vector<conn> conns_;  // the server thread's only
    std::thread thread_;
};

// Short limits, so that the deadline is what ends the call: without it a
// silent server costs 6 attempts x 2 s stall + 6.2 s of backoff, and a
// trickling one is never "stalled" at all.
store_options deadline_options() {
    auto o = fake_options();
    o.max_attempts = 6;
    o.request_timeout = std::chrono::seconds(2);
    o.operation_timeout = std::chrono::seconds(3);
    return o;
}

}  // namespace

// Guards against: a store call had a connect timeout and a stall limit but
// no overall deadline (186 s against a dead endpoint with the defaults), so
// a tap waiting on it stopped polling long enough to be evicted.
TEST_CASE("s3_store_call_against_a_server_that_never_answers_fails_at_its_deadline") {
    stalling_server server(stalling_server::mode::silent);
    auto s = open("s3://bkt/pre?endpoint=" + server.endpoint(), deadline_options());
    const auto t0 = std::chrono::steady_clock::now();
    auto r = s->get("segments/t/0/00000000000000000042.seg");
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(!r.has_value());
    MESSAGE(r.error().message);
    CHECK(r.error().code == errc::timeout);
    CHECK(contains(r.error().message, "deadline"));
    CHECK(contains(r.error().message, s->describe()));
    CHECK(contains(r.error().message, "get 'segments/t/0/00000000000000000042.seg'"));
    CHECK(server.accepted() >= 1);
    CHECK(took < std::chrono::seconds(30));  // returns at all; not a timing assertion
}

// Guards against: a server that sends a byte a second never trips the stall
// limit (1 byte/s over request_timeout), so without a deadline the call
// never returned.
TEST_CASE("s3_store_call_against_a_server_that_trickles_bytes_fails_at_its_deadline") {
    stalling_server server(stalling_server::mode::trickle);
    auto s = open("s3://bkt/pre?endpoint=" + server.endpoint(), deadline_options());
    const auto t0 = std::chrono::steady_clock::now();
    auto r = s->put("archive/obj", "payload");
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(!r.has_value());
    MESSAGE(r.error().message);
    CHECK(r.error().code == errc::timeout);
    CHECK(contains(r.error().message, "deadline"));
    CHECK(contains(r.error().message, s->describe()));
    CHECK(contains(r.error().message, "put 'archive/obj'"));
    CHECK(took < std::chrono::seconds(30));  // returns at all; not a timing assertion
}
