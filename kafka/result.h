// The one result type used at every module boundary.
//
// Result<T> is boost::outcome_v2::result<T, Error>. An Error carries a code
// (what kind of failure, so callers can branch) and a message that names the
// thing that failed: the file and line, the cluster and bootstrap, the topic
// and partition. Exceptions are for bugs and fatal start-up errors only.
#pragma once

#include <boost/outcome/result.hpp>
#include <boost/outcome/try.hpp>

#include <string>
#include <utility>

namespace rpl {

enum class errc {
    invalid_config,  // the config file is wrong; fix the file
    unreachable,     // a cluster or store did not answer within its deadline
    kafka,           // a librdkafka call failed (message has rd_kafka_err2str)
    not_found,       // a topic, group, object or key that should exist does not
    conflict,        // existing state disagrees (partition counts, formats)
    io,              // local disk or object store I/O
    corrupt,         // data failed a checksum or format check
    timeout,         // a deadline passed
    cancelled,       // shutdown in progress; not an error to report loudly
    internal,        // a bug
};

[[nodiscard]] const char* to_string(errc c) noexcept;

struct Error {
    errc code = errc::internal;
    std::string message;

    Error() = default;
    Error(errc c, std::string m) : code(c), message(std::move(m)) {}
};

template <class T>
using Result = boost::outcome_v2::result<T, Error, boost::outcome_v2::policy::terminate>;

// Shorthand for returning a failure: `return fail(errc::io, "...")`.
[[nodiscard]] inline auto fail(errc c, std::string message) {
    return boost::outcome_v2::failure(Error{c, std::move(message)});
}

inline Result<void> ok() { return boost::outcome_v2::success(); }

}  // namespace rpl

// RPL_TRY(var, expr): evaluate expr; on failure return its error from the
// enclosing function, else bind the value to a new `auto&& var` (Boost 1.74
// declares it: write RPL_TRY(x, f()), not RPL_TRY(auto x, f())). RPL_TRY(expr)
// alone checks a Result<void>. It expands to several statements: use braces.
#define RPL_TRY BOOST_OUTCOME_TRY
