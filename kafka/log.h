// The one logger.
//
// Lines go to stderr as `2026-11-26T10:00:00.123Z LEVEL [prefix] message`,
// or with log_format = "json" as one object per line:
// `{"ts":"2026-11-26T10:00:00.123Z","level":"info","component":"prefix","msg":"..."}`.
// Each component builds a Logger with its own prefix, e.g.
// `[flow primary->dr orders/3]`; librdkafka's log and error callbacks are
// routed here by kafka/. Per-record events belong at trace.
//
// Thread model: log() may be called from any thread; a line is written with a
// single write(2) so lines from different threads never interleave.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

namespace rpl {

enum class level { trace = 0, debug, info, warn, error, off };

// Global threshold, set once from --log-level / RPL_LOG_LEVEL.
void set_log_level(level l) noexcept;
[[nodiscard]] level log_level() noexcept;
[[nodiscard]] bool parse_level(std::string_view s, level& out) noexcept;
// Text lines (the default) or JSON objects, one per line.
void set_log_json(bool json) noexcept;

// A process that dies of SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT first
// writes `FATAL <program>: <signal>` and a backtrace to stderr, so that a
// crash leaves its cause in the log instead of ending it mid-line; it then
// dies of the same signal (the exit status and core dump are unchanged).
// Call once, early in main.
void report_fatal_signals(const char* program) noexcept;

// s in double quotes with \" \\ \n \t \r and \u00XX escapes for other control
// characters: a JSON string and a TOML basic string alike.
[[nodiscard]] std::string quoted(std::string_view s);

class Logger {
public:
    explicit Logger(std::string prefix = {}) : prefix_(std::move(prefix)) {}

    [[nodiscard]] const std::string& prefix() const noexcept { return prefix_; }
    [[nodiscard]] Logger child(std::string_view more) const;

    [[nodiscard]] bool enabled(level l) const noexcept { return l >= log_level(); }
    void log(level l, std::string_view msg) const noexcept;

    void trace(std::string_view m) const noexcept { log(level::trace, m); }
    void debug(std::string_view m) const noexcept { log(level::debug, m); }
    void info(std::string_view m) const noexcept { log(level::info, m); }
    void warn(std::string_view m) const noexcept { log(level::warn, m); }
    void error(std::string_view m) const noexcept { log(level::error, m); }

private:
    std::string prefix_;
};

}  // namespace rpl
