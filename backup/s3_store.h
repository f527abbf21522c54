// backup/: the S3-compatible object store (AWS S3, SeaweedFS, MinIO, R2, ...).
//
//   put ──<= threshold──> PUT object ───────────────────────────────┐
//       └─> threshold───> CreateMultipartUpload, UploadPart × n,     ├─ 200 ─> durable
//                         CompleteMultipartUpload (Abort on failure) ┘
//   get ─> GET object (404 NoSuchKey -> not_found)
//   list ─> ListObjectsV2 pages (continuation-token) ─> sorted object_info
//   remove ─> DELETE object;  check ─> ListObjectsV2 max-keys=1
//
// Every request is signed by libcurl's own SigV4 (CURLOPT_AWS_SIGV4
// "aws:amz:<region>:s3"). libcurl 7.88 signs the path and query exactly as
// given, so this file builds them in canonical form itself: every byte but
// A-Z a-z 0-9 - _ . ~ percent-encoded (upper-case hex, '/' kept in paths),
// query parameters sorted, a parameter without value written "name=". It
// sends x-amz-content-sha256: UNSIGNED-PAYLOAD (libcurl would otherwise sign
// the hash of an empty body for a PUT), and the session token as
// x-amz-security-token.
// Retries: transport errors, 5xx, 429, SlowDown and RequestTimeout are retried
// with backoff (200 ms doubling to 10 s) up to options.max_attempts; other 4xx
// fail at once with the S3 error Code and Message.
// Deadlines: each request has request_timeout to connect and may not stall
// for longer; each call (put, get, remove, check; list per page) ends by
// options.operation_timeout (+1 s per MiB put), every attempt and backoff
// included, or fails with errc::timeout naming the store, operation and key.
// A failed multipart upload's abort gets its own short deadline.
// Secrets (secret key, session token, Authorization) never reach a message or
// a log line: messages carry the masked URL, the key and the S3 error text.
// Thread model: a store may be used from several threads at once; each request
// borrows a curl easy handle from a small pool.
#pragma once

#include "backup/store.h"
#include "kafka/result.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rpl::backup {

// Where an s3:// URL points, parsed.
//   s3://bucket[/prefix][?region=R&endpoint=http(s)://host[:port]&path_style=true|false]
// Without endpoint the store is AWS (https://s3.<region>.amazonaws.com) and
// virtual-hosted style (bucket.s3.<region>.amazonaws.com) is the default;
// with an endpoint, path style is the default (what S3-compatible servers
// expect). path_style= overrides either default. A bucket with a '.' always
// uses path style (its virtual host would not match a TLS wildcard).
struct s3_location {
    std::string bucket;
    std::string prefix;    // decoded; "" or ending in '/'; prepended to every key
    std::string region;    // from region=, else the default given to the parser
    std::string endpoint;  // scheme://host[:port] without the bucket, no trailing '/'
    bool path_style = false;
    std::string masked_url;  // the URL with any userinfo replaced by "***"
};

// default_region is used when the URL has no region= (open_s3_store passes
// AWS_REGION / AWS_DEFAULT_REGION / "us-east-1"). errc::invalid_config names
// what is wrong and the masked URL.
[[nodiscard]] Result<s3_location> parse_s3_url(std::string_view url,
                                               std::string_view default_region);

// The URL with the userinfo of every "scheme://user:pass@" replaced by "***".
[[nodiscard]] std::string mask_url(std::string_view url);

// SigV4 canonical URI-encoding: unreserved bytes kept, everything else %XX
// (upper case); '/' kept when keep_slash.
[[nodiscard]] std::string s3_uri_encode(std::string_view s, bool keep_slash);
// The inverse; errc::invalid_config on a malformed escape.
[[nodiscard]] Result<std::string> s3_uri_decode(std::string_view s);

// A canonical query string: parameters sorted by encoded name (then value),
// each "name=value" with both encoded, joined by '&'.
[[nodiscard]] std::string s3_query(std::vector<std::pair<std::string, std::string>> params);

// The request URL (without query) of an object key (full key, prefix
// included) or, with an empty key, of the bucket itself.
[[nodiscard]] std::string s3_request_url(const s3_location& loc, std::string_view full_key);

// --- the small XML extractor (S3 responses only: no DTD, no CDATA) ----------

// Decodes &amp; &lt; &gt; &quot; &apos; &#NN; &#xHH; (as UTF-8).
// errc::corrupt on an unknown or unterminated entity.
[[nodiscard]] Result<std::string> xml_decode(std::string_view text);
// Escapes & < > " ' for element text.
[[nodiscard]] std::string xml_escape(std::string_view text);
// The decoded text of the first <name>...</name> (or <name/>) in xml;
// nullopt when absent. errc::corrupt when unterminated or badly encoded.
[[nodiscard]] Result<std::optional<std::string>> xml_first(std::string_view xml,
                                                           std::string_view name);

struct s3_list_page {
    std::vector<object_info> objects;  // full keys (store prefix included), in page order
    bool truncated = false;
    std::string next_token;  // NextContinuationToken when truncated
};
// Parses a ListObjectsV2 result. errc::corrupt names what is wrong (a
// Contents without Key or with a bad Size, a truncated page without token).
[[nodiscard]] Result<s3_list_page> parse_list_objects_v2(std::string_view xml);

struct s3_error_body {
    std::string code;     // e.g. NoSuchKey, SignatureDoesNotMatch
    std::string message;  // the server's text
};
// The Code and Message of an <Error> document; nullopt when xml is not one.
[[nodiscard]] std::optional<s3_error_body> parse_s3_error(std::string_view xml);

// The UploadId of an InitiateMultipartUploadResult.
[[nodiscard]] Result<std::string> parse_upload_id(std::string_view xml);

// Parts of a multipart upload: (offset, length) each. part_size is raised
// (in whole MiB) when size would need more than S3's 10,000 parts.
[[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> plan_parts(
    std::uint64_t size, std::uint64_t part_size);

// Opens an s3:// store. Credentials: options.access_key / secret_key, else
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); none at all
// means unsigned (anonymous) requests. Does no I/O; call check() to probe.
[[nodiscard]] Result<std::unique_ptr<object_store>> open_s3_store(std::string_view url,
                                                                  const store_options& options);

}  // namespace rpl::backup
