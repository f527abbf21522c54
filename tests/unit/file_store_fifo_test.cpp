// The file:// store never blocks on what is not a file.
#include "backup/store.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

namespace fs = std::filesystem;

// Guards against: get() opened the key's path for reading with a blocking
// open(), so a FIFO there (left by a tool, or a path mistaken for the
// archive) held the caller until some writer appeared: a store call with no
// deadline at all.
TEST_CASE("file_store_get_of_a_fifo_fails_at_once_instead_of_waiting_for_a_writer") {
    const fs::path root =
        fs::temp_directory_path() / ("rpl-file-store-fifo-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "segments");
    const fs::path fifo = root / "segments" / "pipe.seg";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto st = rpl::backup::open_store("file://" + root.string(), {});
    REQUIRE_MESSAGE(st.has_value(), (st ? "" : st.error().message));

    auto got = std::async(std::launch::async, [&] { return st.value()->get("segments/pipe.seg"); });
    // Generous: "returns at all", not a timing assertion.
    const bool returned = got.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
    CHECK_MESSAGE(returned, "get() of a FIFO is still blocked after 20 s");
    if (!returned) {
        // Release the blocked open so that the test ends (and fails).
        const int w = ::open(fifo.c_str(), O_WRONLY);
        if (w >= 0) ::close(w);
    }
    auto r = got.get();
    REQUIRE_FALSE(r.has_value());
    MESSAGE(r.error().message);
    CHECK(r.error().code == rpl::errc::io);
    CHECK(r.error().message.find("segments/pipe.seg") != std::string::npos);
    CHECK(r.error().message.find("not a regular file") != std::string::npos);
    fs::remove_all(root);
}
