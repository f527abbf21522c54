// backup/s3_store: the pure parts of the S3 store, no network. The URL
// parser (a bad URL must fail at start-up, naming what is wrong, never with a
// secret in the message), the canonical encoding libcurl signs as given (a
// wrong byte there is a SignatureDoesNotMatch for some keys only), and the
// XML extractor (a missed page or a badly decoded key loses objects from a
// listing, and so segments from a restore).

#include "backup/s3_store.h"

#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <vector>

using rpl::errc;
using namespace rpl::backup;

namespace {

s3_location parse_ok(std::string_view url, std::string_view region = "us-east-1") {
    auto r = parse_s3_url(url, region);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    return r.value();
}

std::string parse_error(std::string_view url) {
    auto r = parse_s3_url(url, "us-east-1");
    REQUIRE_MESSAGE(!r.has_value(), url);
    CHECK(r.error().code == errc::invalid_config);
    return r.error().message;
}

bool contains(const std::string& hay, std::string_view needle) {
    return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("s3 url: the test bed's URL gives bucket, prefix, endpoint and path style") {
    const auto loc = parse_ok(
        "s3://replicatord-test/backups/prod?region=eu-west-1&endpoint=http://127.0.0.1:8333&"
        "path_style=true");
    CHECK(loc.bucket == "replicatord-test");
    CHECK(loc.prefix == "backups/prod/");
    CHECK(loc.region == "eu-west-1");
    CHECK(loc.endpoint == "http://127.0.0.1:8333");
    CHECK(loc.path_style);
    CHECK(s3_request_url(loc, "a b/c") == "http://127.0.0.1:8333/replicatord-test/a%20b/c");
    CHECK(s3_request_url(loc, "") == "http://127.0.0.1:8333/replicatord-test");
}

TEST_CASE("s3 url: without endpoint the store is AWS, virtual-hosted, in the default region") {
    const auto loc = parse_ok("s3://my-bucket", "ap-south-1");
    CHECK(loc.prefix.empty());
    CHECK(loc.region == "ap-south-1");
    CHECK(loc.endpoint == "https://s3.ap-south-1.amazonaws.com");
    CHECK_FALSE(loc.path_style);
    CHECK(s3_request_url(loc, "k") == "https://my-bucket.s3.ap-south-1.amazonaws.com/k");
    CHECK(s3_request_url(loc, "") == "https://my-bucket.s3.ap-south-1.amazonaws.com/");

    CHECK(parse_ok("s3://my-bucket/?path_style=true").path_style);
    CHECK(parse_ok("s3://my-bucket/p/").prefix == "p/");
    // a dotted bucket cannot use a virtual host under TLS
    CHECK(parse_ok("s3://my.bucket/x").path_style);
    // an explicit endpoint defaults to path style, path_style=false overrides it
    CHECK(parse_ok("s3://bkt?endpoint=https://s3.example.com:9000/").path_style);
    const auto vh = parse_ok("s3://bkt?endpoint=https://s3.example.com:9000&path_style=false");
    CHECK(s3_request_url(vh, "k") == "https://bkt.s3.example.com:9000/k");
    CHECK(parse_ok("s3://bkt?endpoint=http://[::1]:8333").endpoint == "http://[::1]:8333");
}

TEST_CASE("s3 url: a percent-encoded prefix is decoded") {
    CHECK(parse_ok("s3://bkt/a%20b/c%2Bd").prefix == "a b/c+d/");
}

TEST_CASE("s3 url: each bad URL names what is wrong") {
    CHECK(contains(parse_error("file:///tmp/x"), "starts with s3://"));
    CHECK(contains(parse_error("s3://"), "bucket name is missing"));
    CHECK(contains(parse_error("s3:///prefix"), "bucket name is missing"));
    CHECK(contains(parse_error("s3://ab"), "3 to 63"));
    CHECK(contains(parse_error("s3://My_Bucket/x"), "'My_Bucket'"));
    CHECK(contains(parse_error("s3://-bucket"), "begin and end"));
    CHECK(contains(parse_error("s3://a..b"), "'..'"));
    CHECK(contains(parse_error("s3://bkt?regoin=x"), "unknown parameter 'regoin'"));
    CHECK(contains(parse_error("s3://bkt?region="), "'region' has no value"));
    CHECK(contains(parse_error("s3://bkt?region=US_EAST"), "region 'US_EAST'"));
    CHECK(contains(parse_error("s3://bkt?region=a&region=b"), "given twice"));
    CHECK(contains(parse_error("s3://bkt?path_style=yes"), "path_style must be true or false"));
    CHECK(contains(parse_error("s3://bkt?endpoint=ftp://h"), "http:// or https://"));
    CHECK(contains(parse_error("s3://bkt?endpoint=http://h:0"), "invalid port '0'"));
    CHECK(contains(parse_error("s3://bkt?endpoint=http://h:99999"), "invalid port"));
    CHECK(contains(parse_error("s3://bkt?endpoint=http://h/path"), "without a path"));
    CHECK(contains(parse_error("s3://bkt/a%zz"), "bad percent-escape '%zz'"));
    CHECK(contains(parse_error("s3://bkt/a%2"), "truncated percent-escape"));
    CHECK(contains(parse_error("s3://bkt/p#frag"), "fragment"));
}

TEST_CASE("s3 url: credentials in the URL are refused and masked in the message") {
    const auto m1 = parse_error("s3://AKIA:topsecret@bkt/p");
    CHECK(contains(m1, "credentials do not belong in the URL"));
    CHECK_FALSE(contains(m1, "topsecret"));
    const auto m2 = parse_error("s3://bkt/p?endpoint=http://user:topsecret@127.0.0.1:8333");
    CHECK(contains(m2, "must not hold credentials"));
    CHECK_FALSE(contains(m2, "topsecret"));
    const auto m3 = parse_error("s3://bkt/p?endpoint=http%3A%2F%2Fuser%3Atopsecret%40h%3A1");
    CHECK_FALSE(contains(m3, "topsecret"));
}

TEST_CASE("mask_url replaces the userinfo, raw or percent-encoded, and nothing else") {
    CHECK(mask_url("s3://bkt/p?endpoint=http://127.0.0.1:8333") ==
          "s3://bkt/p?endpoint=http://127.0.0.1:8333");
    CHECK(mask_url("s3://k:s@bkt/p") == "s3://***@bkt/p");
    CHECK(mask_url("s3://bkt/p?endpoint=http://u:p@w@h:1&x=1") ==
          "s3://bkt/p?endpoint=http://***@h:1&x=1");
    CHECK(mask_url("s3://bkt?endpoint=http%3A%2F%2Fu%3Asecret%40h") ==
          "s3://bkt?endpoint=http%3A%2F%2F***%40h");
    CHECK(mask_url("s3://bkt/user@example.com") == "s3://bkt/user@example.com");
}

TEST_CASE("s3 keys: canonical percent-encoding round trips spaces, '+', '=', unicode") {
    const std::vector<std::string> keys = {
        "plain/key-1_2.3~", "with space",     "plus+sign",
        "a=b&c=d",          "ünïcödé/日本語", "%41",
        "semi;colon:at@",   "dots/../and/./", std::string("nul\0byte", 8),
        "\x7f\xff"};
    for (const auto& k : keys) {
        const auto path = s3_uri_encode(k, true);
        const auto query = s3_uri_encode(k, false);
        for (char c : path) {
            const bool safe = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                              c == '.' || c == '~' || c == '/' || c == '%';
            CHECK_MESSAGE(safe, k);
        }
        CHECK(query.find('/') == std::string::npos);
        auto back = s3_uri_decode(path);
        REQUIRE(back.has_value());
        CHECK(back.value() == k);
        CHECK(s3_uri_decode(query).value() == k);
    }
    CHECK(s3_uri_encode("a b+c=d/é", true) == "a%20b%2Bc%3Dd/%C3%A9");
    CHECK(s3_uri_encode("a b+c=d/é", false) == "a%20b%2Bc%3Dd%2F%C3%A9");
    CHECK(s3_uri_encode("AZaz09-_.~", false) == "AZaz09-_.~");
}

TEST_CASE("s3 query: sorted by name, encoded, a bare flag written name=") {
    CHECK(s3_query({{"uploads", ""}}) == "uploads=");
    CHECK(s3_query({{"uploadId", "a+b/c="}, {"partNumber", "12"}}) ==
          "partNumber=12&uploadId=a%2Bb%2Fc%3D");
    CHECK(s3_query({{"prefix", "x y/"}, {"list-type", "2"}, {"continuation-token", "t=="}}) ==
          "continuation-token=t%3D%3D&list-type=2&prefix=x%20y%2F");
}

TEST_CASE("xml: entities decode, unknown ones are an error") {
    CHECK(xml_decode("a&amp;b&lt;c&gt;d&quot;e&apos;f").value() == "a&b<c>d\"e'f");
    CHECK(xml_decode("&#65;&#x42;&#xe9;&#x65E5;&#x1F600;").value() ==
          "AB\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80");
    CHECK(xml_decode("&amp;amp;").value() == "&amp;");
    CHECK(xml_decode("&nbsp;").error().code == errc::corrupt);
    CHECK(xml_decode("a & b").error().code == errc::corrupt);
    CHECK(xml_decode("&#xD800;").error().code == errc::corrupt);
    CHECK(xml_decode("&#;").error().code == errc::corrupt);
    for (std::string s : {"a&b", "<x>", "q\"'", "&amp;"})
        CHECK(xml_decode(xml_escape(s)).value() == s);
}

TEST_CASE("xml: the first element is found by its exact name") {
    const std::string xml =
        "<R><KeyCount>2</KeyCount><Key attr=\"1\">k&amp;1</Key><Key>k2</Key><Empty/></R>";
    CHECK(xml_first(xml, "Key").value() == std::optional<std::string>("k&1"));
    CHECK(xml_first(xml, "KeyCount").value() == std::optional<std::string>("2"));
    CHECK(xml_first(xml, "Empty").value() == std::optional<std::string>(""));
    CHECK_FALSE(xml_first(xml, "Ke").value().has_value());
    CHECK(xml_first("<Key>unterminated", "Key").error().code == errc::corrupt);
}

TEST_CASE("ListObjectsV2: keys, sizes, entities and the continuation token of a truncated page") {
    const std::string page1 = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bkt</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a &amp; b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p/&lt;x&gt;+=&apos;&quot;</Key><Size>18446744073709551615</Size></Contents>
  <Contents><Key>p/日本</Key><Size>42</Size></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&amp;</NextContinuationToken>
</ListBucketResult>)";
    auto r = parse_list_objects_v2(page1);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    const auto& p = r.value();
    REQUIRE(p.objects.size() == 3);
    CHECK(p.objects[0].key == "p/a & b");
    CHECK(p.objects[0].size == 0);
    CHECK(p.objects[1].key == "p/<x>+='\"");
    CHECK(p.objects[1].size == 18446744073709551615ull);
    CHECK(p.objects[2].key == "p/日本");
    CHECK(p.objects[2].size == 42);
    CHECK(p.truncated);
    CHECK(p.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&");

    const auto last = parse_list_objects_v2(
        "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>z</Key><Size>1</Size>"
        "</Contents></ListBucketResult>");
    REQUIRE(last.has_value());
    CHECK_FALSE(last.value().truncated);
    CHECK(last.value().objects.size() == 1);

    const auto empty = parse_list_objects_v2(
        "<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
        "</ListBucketResult>");
    REQUIRE(empty.has_value());
    CHECK(empty.value().objects.empty());
}

TEST_CASE("ListObjectsV2: a damaged answer is an error, not a short listing") {
    auto err = [](const std::string& xml) {
        auto r = parse_list_objects_v2(xml);
        REQUIRE(!r.has_value());
        CHECK(r.error().code == errc::corrupt);
        return r.error().message;
    };
    CHECK(contains(err("<Error><Code>X</Code></Error>"), "not a ListBucketResult"));
    CHECK(contains(err("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
                   "NextContinuationToken"));
    CHECK(contains(err("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"),
                   "no <Key>"));
    CHECK(contains(err("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></"
                       "ListBucketResult>"),
                   "'-1' is not a number"));
    CHECK(contains(err("<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999</Size>"
                       "</Contents></ListBucketResult>"),
                   "overflows"));
    CHECK(contains(err("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>"),
                   "no <Size>"));
    CHECK(contains(err("<ListBucketResult><Contents><Key>k&bogus;</Key><Size>1</Size></Contents>"
                       "</ListBucketResult>"),
                   "&bogus;"));
    CHECK(contains(err("<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"), "</Contents>"));
}

TEST_CASE("error documents: Code and Message, decoded; other documents are not errors") {
    const auto e = parse_s3_error(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
        "<Message>The key &apos;a&amp;b&apos; does not exist</Message><Key>a&amp;b</Key>"
        "<RequestId>1</RequestId></Error>");
    REQUIRE(e.has_value());
    CHECK(e->code == "NoSuchKey");
    CHECK(e->message == "The key 'a&b' does not exist");
    // CompleteMultipartUpload may answer 200 with an <Error> body
    CHECK(parse_s3_error("<Error><Code>InternalError</Code></Error>")->code == "InternalError");
    CHECK_FALSE(parse_s3_error("<CompleteMultipartUploadResult><Error>no</Error>"
                               "</CompleteMultipartUploadResult>")
                    .has_value());
    CHECK_FALSE(parse_s3_error("").has_value());
    CHECK_FALSE(parse_s3_error("<html>Bad Gateway</html>").has_value());
}

TEST_CASE("multipart: the upload id is read; parts cover the object in order") {
    CHECK(parse_upload_id("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                          "<UploadId>VXBsb2FkIElE&amp;x</UploadId></InitiateMultipartUploadResult>")
              .value() == "VXBsb2FkIElE&x");
    CHECK(parse_upload_id("<InitiateMultipartUploadResult/>").error().code == errc::corrupt);

    constexpr std::uint64_t mib = 1 << 20;
    const auto parts = plan_parts(40 * mib + 3, 5 * mib);
    REQUIRE(parts.size() == 9);
    std::uint64_t next = 0;
    for (const auto& [off, len] : parts) {
        CHECK(off == next);
        next += len;
    }
    CHECK(next == 40 * mib + 3);
    CHECK(parts.back().second == 3);
    // more than 10,000 parts: the part size grows, in whole MiB
    const auto big = plan_parts(100000 * mib, 5 * mib);
    CHECK(big.size() <= 10000);
    CHECK(big.front().second % mib == 0);
}

TEST_CASE("open_s3_store: bad options are refused; describe() is the masked URL") {
    store_options o;
    o.access_key = "AKIA";
    o.secret_key = "very-secret";
    const std::string url = "s3://bkt/p?endpoint=http://127.0.0.1:8333";
    auto s = open_s3_store(url, o);
    REQUIRE(s.has_value());
    CHECK(s.value()->describe() == url);

    auto bad = o;
    bad.part_size = 1 << 20;
    auto r = open_s3_store(url, bad);
    REQUIRE(!r.has_value());
    CHECK(r.error().code == errc::invalid_config);
    CHECK(contains(r.error().message, "part_size 1048576"));

    bad = o;
    bad.secret_key.clear();
    r = open_s3_store(url, bad);
    REQUIRE(!r.has_value());
    CHECK(contains(r.error().message, "without a secret key"));

    bad = o;
    bad.access_key.clear();
    r = open_s3_store(url, bad);
    REQUIRE(!r.has_value());
    CHECK(contains(r.error().message, "without access key"));
    CHECK_FALSE(contains(r.error().message, "very-secret"));

    bad = o;
    bad.max_attempts = 0;
    r = open_s3_store(url, bad);
    REQUIRE(!r.has_value());
    CHECK(contains(r.error().message, "max_attempts"));

    // A call without a deadline is what the deadline exists to prevent.
    bad = o;
    bad.operation_timeout = std::chrono::milliseconds(0);
    r = open_s3_store(url, bad);
    REQUIRE(!r.has_value());
    CHECK(r.error().code == errc::invalid_config);
    CHECK(contains(r.error().message, "operation_timeout must be positive"));
}
