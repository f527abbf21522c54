// The file:// store: durable puts that never leave half-written objects
// visible, sorted complete listings, clear errors for missing things.
#include "backup/store.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace rpl;
using namespace rpl::backup;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
    const fs::path p =
        fs::temp_directory_path() / ("rpl-file-store-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

}  // namespace

TEST_CASE("file store put, get, list and remove") {
    const auto root = fresh_dir("basic");
    auto st = open_store("file://" + root.string(), {});
    REQUIRE_MESSAGE(st, st.error().message);
    auto& s = *st.value();
    REQUIRE(s.check());
    CHECK(s.describe() == "file://" + root.string());

    const std::string binary("\0\x01\xff\n", 4);
    REQUIRE(s.put("b/segments/t/000001/b.seg", binary));
    REQUIRE(s.put("b/segments/t/000000/a.seg", "aa"));
    REQUIRE(s.put("b/backup.meta", "m"));
    REQUIRE(s.put("c/backup.meta", "n"));
    REQUIRE(s.put("b/backup.meta", "m2"));  // overwrite

    auto g = s.get("b/segments/t/000001/b.seg");
    REQUIRE(g);
    CHECK(g.value() == binary);
    CHECK(s.get("b/backup.meta").value() == "m2");

    auto all = s.list("");
    REQUIRE(all);
    std::vector<std::string> keys;
    for (const auto& o : all.value()) keys.push_back(o.key);
    CHECK(keys == std::vector<std::string>{"b/backup.meta", "b/segments/t/000000/a.seg",
                                           "b/segments/t/000001/b.seg", "c/backup.meta"});
    CHECK(all.value()[2].size == 4);

    // A prefix is a string prefix, not a directory.
    auto some = s.list("b/segments/t/00000");
    REQUIRE(some);
    CHECK(some.value().size() == 2);
    CHECK(s.list("b/segments/t/000000/").value().size() == 1);
    CHECK(s.list("nothing/here/").value().empty());
    CHECK(s.list("b/back").value().size() == 1);

    // Temporary files of an interrupted put are never listed.
    std::ofstream(root / "b" / ".tmp-x.seg-1-1") << "half";
    CHECK(s.list("b/").value().size() == 3);

    REQUIRE(s.remove("c/backup.meta"));
    REQUIRE(s.remove("c/backup.meta"));  // missing: fine
    auto missing = s.get("c/backup.meta");
    REQUIRE(!missing);
    CHECK(missing.error().code == errc::not_found);
    CHECK(missing.error().message.find("c/backup.meta") != std::string::npos);
    fs::remove_all(root);
}

TEST_CASE("file store refuses keys that escape the root") {
    const auto root = fresh_dir("keys");
    auto s = open_store("file://" + root.string(), {}).value();
    for (const char* k : {"../x", "a/../../x", "/abs", "a//b", "a/", "", "a/./b"}) {
        CAPTURE(k);
        auto r = s->put(k, "x");
        REQUIRE(!r);
        CHECK(r.error().code == errc::invalid_config);
    }
    fs::remove_all(root);
}

TEST_CASE("file store with a missing root directory reports it and creates nothing") {
    const auto root = fresh_dir("missing") / "not-there";
    auto s = open_store("file://" + root.string(), {}).value();
    auto c = s->check();
    REQUIRE(!c);
    CHECK(c.error().code == errc::not_found);
    CHECK(c.error().message.find(root.string()) != std::string::npos);
    CHECK(!s->put("a/b", "x"));
    CHECK(!fs::exists(root));
    CHECK(!s->list(""));
    fs::remove_all(root.parent_path());
}

TEST_CASE("create_file_store_root makes the directory, ignores other schemes") {
    const auto root = fresh_dir("create") / "a" / "b";
    REQUIRE(create_file_store_root("file://" + root.string()));
    CHECK(fs::is_directory(root));
    REQUIRE(create_file_store_root("file://" + root.string()));  // again: fine
    CHECK(open_store("file://" + root.string(), {}).value()->check());
    CHECK(create_file_store_root("s3://bucket/prefix"));
    fs::remove_all(root.parent_path().parent_path());
}

TEST_CASE("file store URLs: relative to the working directory, bad schemes named") {
    const auto root = fresh_dir("rel");
    const auto cwd = fs::current_path();
    fs::current_path(root);
    fs::create_directories("archive");
    auto s = open_store("file://archive", {});
    fs::current_path(cwd);
    REQUIRE(s);
    REQUIRE(s.value()->put("x/backup.meta", "1"));
    CHECK(fs::exists(root / "archive" / "x" / "backup.meta"));

    auto bad = open_store("ftp://host/x", {});
    REQUIRE(!bad);
    CHECK(bad.error().code == errc::invalid_config);
    CHECK(bad.error().message.find("ftp://host/x") != std::string::npos);
    CHECK(!open_store("file://", {}));
    CHECK(!open_store("file:///x?y=1", {}));
    fs::remove_all(root);
}
