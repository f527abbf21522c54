// open_store() and the file:// store.
//
// file_store maps a key a/b/c to <root>/a/b/c. put() writes
// <dir>/.tmp-<name>-<pid>-<n>, fsyncs it, renames it over the final name and
// fsyncs the directory (and every directory it had to create, through their
// parents), so after a crash an object is either absent or whole. Temporary
// files are never listed. The store never creates its root directory: a
// missing root is like a missing bucket (errc::not_found from check(), put()
// and list()). create_file_store_root() is the explicit step that does (the
// daemon calls it before starting a tap).
#include "backup/store.h"

#include "backup/s3_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace rpl::backup {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view temp_prefix = ".tmp-";

std::string errno_text(int e) { return std::strerror(e); }

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_;
};

bool fsync_dir(const fs::path& dir) {
    fd_guard fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fd.get() >= 0 && ::fsync(fd.get()) == 0;
}

class file_store final : public object_store {
public:
    file_store(fs::path root, std::string url) : root_(std::move(root)), url_(std::move(url)) {}

    Result<void> put(std::string_view key, std::string_view data) override {
        RPL_TRY(path, resolve(key));
        RPL_TRY(check());
        const fs::path dir = path.parent_path();
        RPL_TRY(make_dirs(dir, key));
        const fs::path tmp =
            dir / (std::string(temp_prefix) + path.filename().string() + "-" +
                   std::to_string(::getpid()) + "-" + std::to_string(counter_.fetch_add(1)));
        const auto io_fail = [&](const std::string& what, int e) {
            ::unlink(tmp.c_str());
            return fail(errc::io, "store " + url_ + ": " + what + " for " + std::string(key) +
                                      " (" + tmp.string() + "): " + errno_text(e));
        };
        fd_guard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        if (fd.get() < 0) return io_fail("cannot create the temporary file", errno);
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                return io_fail("write failed", errno);
            }
            done += static_cast<std::size_t>(n);
        }
        if (::fsync(fd.get()) != 0) return io_fail("fsync failed", errno);
        if (::close(fd.release()) != 0) return io_fail("close failed", errno);
        if (::rename(tmp.c_str(), path.c_str()) != 0) return io_fail("rename failed", errno);
        if (!fsync_dir(dir))
            return fail(errc::io, "store " + url_ + ": fsync of directory " + dir.string() +
                                      " failed for " + std::string(key) + ": " + errno_text(errno));
        return ok();
    }

    Result<std::string> get(std::string_view key) override {
        RPL_TRY(path, resolve(key));
        // O_NONBLOCK: a FIFO (or device) at the key's path would otherwise
        // block the open for ever, waiting for a writer. Regular files
        // ignore the flag.
        fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
        if (fd.get() < 0) {
            const int e = errno;
            if (e == ENOENT || e == ENOTDIR)
                return fail(errc::not_found,
                            "object " + std::string(key) + " not found in store " + url_);
            return fail(errc::io, "store " + url_ + ": cannot open " + std::string(key) + ": " +
                                      errno_text(e));
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0)
            return fail(errc::io, "store " + url_ + ": cannot stat " + std::string(key) + ": " +
                                      errno_text(errno));
        if (!S_ISREG(st.st_mode))
            return fail(errc::io, "store " + url_ + ": get " + std::string(key) +
                                      ": not a regular file (" + path.string() + ")");
        std::string out(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail(errc::io, "store " + url_ + ": read of " + std::string(key) +
                                          " failed: " + errno_text(errno));
            }
            if (n == 0) break;
            done += static_cast<std::size_t>(n);
        }
        out.resize(done);
        return out;
    }

    Result<std::vector<object_info>> list(std::string_view prefix) override {
        RPL_TRY(check());
        // Walk only the deepest directory the prefix names.
        const auto slash = prefix.rfind('/');
        const std::string dir_part =
            slash == std::string_view::npos ? std::string() : std::string(prefix.substr(0, slash));
        if (!dir_part.empty()) {
            if (auto r = resolve(dir_part); !r) return std::vector<object_info>{};
        }
        const fs::path start = dir_part.empty() ? root_ : root_ / dir_part;
        std::vector<object_info> out;
        std::error_code ec;
        if (!fs::is_directory(start, ec)) return out;
        fs::recursive_directory_iterator it(start, ec), end;
        if (ec)
            return fail(errc::io,
                        "store " + url_ + ": cannot list " + start.string() + ": " + ec.message());
        for (; it != end; it.increment(ec)) {
            if (ec)
                return fail(errc::io, "store " + url_ + ": listing " + start.string() +
                                          " failed: " + ec.message());
            const auto name = it->path().filename().string();
            if (!it->is_regular_file(ec)) continue;
            if (name.starts_with(temp_prefix)) continue;
            std::string key = it->path().lexically_relative(root_).generic_string();
            if (!key.starts_with(prefix)) continue;
            out.push_back({std::move(key), static_cast<std::uint64_t>(it->file_size(ec))});
        }
        std::sort(out.begin(), out.end(),
                  [](const object_info& a, const object_info& b) { return a.key < b.key; });
        return out;
    }

    Result<void> remove(std::string_view key) override {
        RPL_TRY(path, resolve(key));
        if (::unlink(path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR)
            return fail(errc::io, "store " + url_ + ": cannot remove " + std::string(key) + ": " +
                                      errno_text(errno));
        return ok();
    }

    Result<void> check() override {
        std::error_code ec;
        const auto st = fs::status(root_, ec);
        if (st.type() == fs::file_type::not_found)
            return fail(errc::not_found, "store " + url_ + ": directory " + root_.string() +
                                             " does not exist (create it first)");
        if (ec)
            return fail(errc::io,
                        "store " + url_ + ": cannot stat " + root_.string() + ": " + ec.message());
        if (st.type() != fs::file_type::directory)
            return fail(errc::io, "store " + url_ + ": " + root_.string() + " is not a directory");
        return ok();
    }

    const std::string& describe() const noexcept override { return url_; }

private:
    // Keys are relative, '/'-separated, without empty, "." or ".." parts.
    Result<fs::path> resolve(std::string_view key) const {
        if (key.empty() || key.front() == '/' || key.back() == '/')
            return fail(errc::invalid_config,
                        "store " + url_ + ": invalid object key '" + std::string(key) + "'");
        std::size_t start = 0;
        while (start <= key.size()) {
            auto end = key.find('/', start);
            if (end == std::string_view::npos) end = key.size();
            const auto part = key.substr(start, end - start);
            if (part.empty() || part == "." || part == ".." || part.starts_with(temp_prefix))
                return fail(errc::invalid_config,
                            "store " + url_ + ": invalid object key '" + std::string(key) + "'");
            start = end + 1;
        }
        return root_ / std::string(key);
    }

    // Creates dir and its missing parents below the root, each made durable
    // by an fsync of its parent.
    Result<void> make_dirs(const fs::path& dir, std::string_view key) {
        std::error_code ec;
        if (fs::is_directory(dir, ec)) return ok();
        const fs::path rel = dir.lexically_relative(root_);
        fs::path cur = root_;
        for (const auto& part : rel) {
            const fs::path parent = cur;
            cur /= part;
            if (::mkdir(cur.c_str(), 0755) == 0) {
                if (!fsync_dir(parent))
                    return fail(errc::io, "store " + url_ + ": fsync of " + parent.string() +
                                              " failed for " + std::string(key));
            } else if (errno != EEXIST) {
                return fail(errc::io, "store " + url_ + ": cannot create directory " +
                                          cur.string() + " for " + std::string(key) + ": " +
                                          errno_text(errno));
            }
        }
        return ok();
    }

    fs::path root_;
    std::string url_;
    std::atomic<std::uint64_t> counter_{0};
};

}  // namespace

namespace {

Result<fs::path> file_root(const std::string& url) {
    constexpr std::string_view file_scheme = "file://";
    std::string path = url.substr(file_scheme.size());
    if (path.empty())
        return fail(errc::invalid_config, "storage URL " + url + ": no path after file://");
    if (path.find('?') != std::string::npos || path.find('#') != std::string::npos)
        return fail(errc::invalid_config,
                    "storage URL " + url + ": file:// URLs take no query or fragment");
    std::error_code ec;
    fs::path root = fs::path(path);
    if (root.is_relative()) root = fs::absolute(root, ec);
    if (ec)
        return fail(errc::invalid_config,
                    "storage URL " + url + ": cannot resolve the path: " + ec.message());
    root = root.lexically_normal();
    if (!root.has_filename() && root != root.root_path()) root = root.parent_path();
    return root;
}

}  // namespace

Result<void> create_file_store_root(const std::string& url) {
    if (!url.starts_with("file://")) return ok();
    RPL_TRY(root, file_root(url));
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec)
        return fail(errc::io, "storage URL " + url + ": cannot create directory " + root.string() +
                                  ": " + ec.message());
    return ok();
}

Result<std::unique_ptr<object_store>> open_store(const std::string& url,
                                                 const store_options& options) {
    constexpr std::string_view file_scheme = "file://";
    constexpr std::string_view s3_scheme = "s3://";
    if (url.starts_with(file_scheme)) {
        RPL_TRY(root, file_root(url));
        return std::unique_ptr<object_store>(std::make_unique<file_store>(std::move(root), url));
    }
    if (url.starts_with(s3_scheme)) {
        return open_s3_store(url, options);
    }
    (void)options;
    return fail(errc::invalid_config, "storage URL " + url.substr(0, url.find('?')) +
                                          ": unsupported scheme (use file:// or s3://)");
}

}  // namespace rpl::backup
