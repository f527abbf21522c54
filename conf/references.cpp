// conf/ internal: ${env:NAME} and ${file:PATH} in string values; see
// conf/toml_reader.h.
//
// A secret then never has to sit in the TOML file itself: the file names
// where it lives. Resolution happens once, right after parsing and before
// any reader sees a value, so every string setting takes references alike.
// A resolved value is remembered with the text that named it, so that
// describe() can print the reference instead of what it resolved to.

#include "conf/toml_reader.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rpl::conf::detail {

namespace {

// A secret file is a few hundred bytes; a config that points at something
// large points at the wrong file.
constexpr std::uintmax_t max_file_bytes = 1 << 20;

bool valid_env_name(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    for (const char c : name) {
        const bool ok =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) return false;
    }
    return true;
}

class resolver {
public:
    resolver(diagnostics& diag, std::vector<reference>& out) : diag_(diag), out_(out) {}

    void walk(toml::node& n, const std::string& path) {
        if (auto* t = n.as_table()) {
            for (auto&& [k, v] : *t)
                walk(v, path.empty() ? std::string(k.str()) : path + "." + std::string(k.str()));
        } else if (auto* a = n.as_array()) {
            for (std::size_t i = 0; i < a->size(); ++i)
                walk(*a->get(i), path + "[" + std::to_string(i) + "]");
        } else if (auto* s = n.as_string()) {
            if (s->get().find('$') == std::string::npos) return;
            if (auto r = expand(s->get(), s->source().begin, path)) s->get() = std::move(*r);
        }
    }

private:
    // The value with every reference replaced, or nothing after an error.
    std::optional<std::string> expand(const std::string& text, pos_t pos, const std::string& path) {
        std::string out;
        bool referenced = false;
        std::size_t i = 0;
        while (i < text.size()) {
            if (text.compare(i, 3, "$${") == 0) {  // a literal "${"
                out += "${";
                i += 3;
                continue;
            }
            if (text.compare(i, 2, "${") != 0) {
                out += text[i++];
                continue;
            }
            const auto close = text.find('}', i + 2);
            if (close == std::string::npos) {
                diag_.error(pos, path,
                            "unterminated reference " + quote(text.substr(i, 40)) +
                                ": write ${env:NAME} or ${file:PATH}, or $${ for a literal ${");
                return std::nullopt;
            }
            const std::string_view ref(text.data() + i + 2, close - i - 2);
            auto value = resolve(ref, pos, path);
            if (!value) return std::nullopt;
            out += *value;
            referenced = true;
            i = close + 1;
        }
        if (referenced) out_.push_back({out, text});
        return out;
    }

    std::optional<std::string> resolve(std::string_view ref, pos_t pos, const std::string& path) {
        const std::string shown = "${" + one_line(ref) + "}";
        const auto colon = ref.find(':');
        const std::string_view kind = ref.substr(0, colon);
        const std::string_view arg =
            colon == std::string_view::npos ? std::string_view() : ref.substr(colon + 1);
        if (colon == std::string_view::npos || (kind != "env" && kind != "file")) {
            diag_.error(pos, path,
                        "unknown reference " + shown +
                            ": write ${env:NAME} or ${file:PATH}, or $${ for a literal ${");
            return std::nullopt;
        }
        if (kind == "env") {
            if (!valid_env_name(arg)) {
                diag_.error(pos, path,
                            shown + ": not an environment variable name (letters, digits and _)");
                return std::nullopt;
            }
            const char* v = std::getenv(std::string(arg).c_str());
            if (v == nullptr) {
                diag_.error(pos, path,
                            shown + ": environment variable " + std::string(arg) + " is not set");
                return std::nullopt;
            }
            return std::string(v);
        }
        if (arg.empty()) {
            diag_.error(pos, path, shown + ": no file named");
            return std::nullopt;
        }
        // Relative to the working directory, as every other path in the file.
        const std::filesystem::path file{std::string(arg)};
        std::error_code ec;
        const auto bytes = std::filesystem::file_size(file, ec);
        if (!ec && bytes > max_file_bytes) {
            diag_.error(pos, path,
                        shown + ": " + quote(file.string()) + " is " + std::to_string(bytes) +
                            " bytes; a referenced file holds one value (at most 1 MiB)");
            return std::nullopt;
        }
        std::ifstream in(file, std::ios::binary);
        std::ostringstream content;
        if (in) content << in.rdbuf();
        if (!in || in.bad() || ec) {
            const int err = ec ? ec.value() : errno;
            diag_.error(pos, path,
                        shown + ": cannot read " + quote(file.string()) + ": " +
                            (err != 0 ? std::strerror(err) : "unreadable"));
            return std::nullopt;
        }
        std::string v = content.str();
        // Files written by editors and `echo` end with a newline that is not
        // part of the secret.
        if (v.ends_with("\r\n")) {
            v.resize(v.size() - 2);
        } else if (v.ends_with('\n')) {
            v.pop_back();
        }
        return v;
    }

    diagnostics& diag_;
    std::vector<reference>& out_;
};

}  // namespace

void resolve_references(toml::table& root, diagnostics& diag, std::vector<reference>& out) {
    resolver r(diag, out);
    for (auto&& [k, v] : root) r.walk(v, std::string(k.str()));
}

}  // namespace rpl::conf::detail
