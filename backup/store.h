// backup/: the object store the archival tap writes and restore reads.
//
//   tap / restore / replicatorctl ──put/get/list/remove──> object_store
//                                                   ├── file_store (file:///path, the default)
//                                                   └── s3_store   (s3://bucket/prefix?..., SigV4
//                                                   by libcurl)
//
// Keys are '/'-separated paths relative to the store's root (the URL's path
// or prefix); the store maps them to files or to S3 object keys.
// Invariants: put() returns only once the object is durable (file: written to
// a temporary name, fsync'ed, renamed, directory fsync'ed; S3: the PUT or the
// CompleteMultipartUpload answered 200). A reader never sees a half-written
// object. list() returns keys in byte order, complete (all pages).
// Errors: errc::not_found for a missing object or bucket, errc::unreachable
// when the server does not answer, errc::timeout when a call overran its
// deadline (store_options::operation_timeout), errc::io otherwise; every message names
// the store (masked URL) and the key. Secrets never appear in a message.
// Thread model: an object_store may be used from several threads at once.
#pragma once

#include "kafka/result.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rpl::backup {

struct object_info {
    std::string key;  // relative to the store root
    std::uint64_t size = 0;
};

// Credentials and tuning for opening a store. Empty keys fall back to the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_REGION / AWS_DEFAULT_REGION).
// How long one store call may take by default (see operation_timeout).
inline constexpr std::chrono::milliseconds default_operation_timeout{120000};

struct store_options {
    std::string access_key;
    std::string secret_key;                           // secret: never logged
    std::uint64_t multipart_threshold = 16ull << 20;  // objects above this use multipart upload
    std::uint64_t part_size = 8ull << 20;
    int max_attempts = 6;  // per request; backoff 200 ms doubling to 10 s
    // Per request: the connect timeout, and the stall limit (a request that
    // moves no byte for this long fails and may be retried).
    std::chrono::milliseconds request_timeout{30000};
    // The deadline of one call (put, get, remove, check; list per page):
    // every request, retry and backoff it makes, plus one second per MiB a
    // put uploads. A call still unanswered then fails with errc::timeout
    // naming the store, the operation and the key -- a dead endpoint or one
    // that trickles bytes never holds a caller longer.
    std::chrono::milliseconds operation_timeout = default_operation_timeout;
};

class object_store {
public:
    virtual ~object_store() = default;

    // Durable on return (see the invariants above). Overwrites.
    [[nodiscard]] virtual Result<void> put(std::string_view key, std::string_view data) = 0;
    [[nodiscard]] virtual Result<std::string> get(std::string_view key) = 0;
    // Keys under prefix (a plain string prefix, not a directory), sorted, all pages.
    [[nodiscard]] virtual Result<std::vector<object_info>> list(std::string_view prefix) = 0;
    // Removing a missing key is not an error.
    [[nodiscard]] virtual Result<void> remove(std::string_view key) = 0;
    // The store is reachable and its bucket/directory exists (nothing is created).
    [[nodiscard]] virtual Result<void> check() = 0;
    // The URL with credentials masked, for logs and messages.
    [[nodiscard]] virtual const std::string& describe() const noexcept = 0;
};

// file:///abs/path, file://rel/path, or s3://bucket/prefix?region=..&endpoint=..&path_style=true.
// errc::invalid_config names what is wrong with the URL. Opening does no I/O
// beyond what parsing needs; call check() to probe.
[[nodiscard]] Result<std::unique_ptr<object_store>> open_store(const std::string& url,
                                                               const store_options& options);

// For a file:// URL: creates its root directory (and parents) if missing, as
// the daemon does for state_dir; the embedded default needs no set-up. Does
// nothing for other schemes (a missing bucket stays an error of check()).
[[nodiscard]] Result<void> create_file_store_root(const std::string& url);

}  // namespace rpl::backup
