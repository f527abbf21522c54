// A directory of a test's own under the system's temp directory, removed with
// everything in it when the test ends (the integration support's temp_dir()
// is shared by the whole run).
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace rpl::test {

struct scratch_dir {
    std::filesystem::path path;
    explicit scratch_dir(const std::string& prefix = "rpl-test") {
        std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
};

}  // namespace rpl::test
