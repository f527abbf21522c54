// A minimal JSON reader for the integration tests, enough for the --json
// output of replicatorctl and the daemon's /status: objects keep their key
// order, numbers keep their text.
#pragma once

#include <cctype>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rpl::test {

struct json {
    enum kind_t { null_v, bool_v, number_v, string_v, array_v, object_v } kind = null_v;
    bool b = false;
    std::string s;  // string value, or a number's text
    std::vector<json> a;
    std::vector<std::pair<std::string, json>> o;

    const json* get(const std::string& key) const {
        for (const auto& [k, v] : o)
            if (k == key) return &v;
        return nullptr;
    }
    int64_t i64(const std::string& key) const {
        const json* v = get(key);
        if (v == nullptr || v->kind != number_v)
            throw std::runtime_error("JSON: no number \"" + key + "\"");
        return std::stoll(v->s);
    }
    std::string str(const std::string& key) const {
        const json* v = get(key);
        if (v == nullptr || v->kind != string_v)
            throw std::runtime_error("JSON: no string \"" + key + "\"");
        return v->s;
    }
    const json& at(const std::string& key) const {
        const json* v = get(key);
        if (v == nullptr) throw std::runtime_error("JSON: no key \"" + key + "\"");
        return *v;
    }
    double num(const std::string& key) const {
        const json& v = at(key);
        if (v.kind != number_v) throw std::runtime_error("JSON: \"" + key + "\" is not a number");
        return std::stod(v.s);
    }
    bool flag(const std::string& key) const { return at(key).b; }
};

class json_reader {
public:
    explicit json_reader(const std::string& t) : t_(t) {}
    json parse() {
        json v = value();
        ws();
        if (i_ != t_.size()) fail("trailing text");
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw std::runtime_error("JSON: " + why + " at character " + std::to_string(i_));
    }
    void ws() {
        while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_]))) ++i_;
    }
    bool eat(char c) {
        ws();
        if (i_ < t_.size() && t_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) fail(std::string("expected '") + c + "'");
    }
    std::string string_body() {
        expect('"');
        std::string out;
        while (i_ < t_.size() && t_[i_] != '"') {
            char c = t_[i_++];
            if (c == '\\') {
                if (i_ >= t_.size()) fail("bad escape");
                c = t_[i_++];
                switch (c) {
                    case 'n': out += '\n'; break;
                    case 't': out += '\t'; break;
                    case 'r': out += '\r'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case 'u': {
                        if (i_ + 4 > t_.size()) fail("bad \\u escape");
                        const int cp = std::stoi(t_.substr(i_, 4), nullptr, 16);
                        i_ += 4;
                        out += cp < 0x80 ? static_cast<char>(cp) : '?';
                        break;
                    }
                    default: out += c;
                }
            } else {
                out += c;
            }
        }
        if (i_ >= t_.size()) fail("unterminated string");
        ++i_;
        return out;
    }
    json value() {
        ws();
        if (i_ >= t_.size()) fail("unexpected end");
        json v;
        const char c = t_[i_];
        if (c == '{') {
            ++i_;
            v.kind = json::object_v;
            if (eat('}')) return v;
            do {
                ws();
                std::string k = string_body();
                expect(':');
                v.o.emplace_back(std::move(k), value());
            } while (eat(','));
            expect('}');
        } else if (c == '[') {
            ++i_;
            v.kind = json::array_v;
            if (eat(']')) return v;
            do v.a.push_back(value());
            while (eat(','));
            expect(']');
        } else if (c == '"') {
            v.kind = json::string_v;
            v.s = string_body();
        } else if (t_.compare(i_, 4, "true") == 0) {
            v.kind = json::bool_v;
            v.b = true;
            i_ += 4;
        } else if (t_.compare(i_, 5, "false") == 0) {
            v.kind = json::bool_v;
            i_ += 5;
        } else if (t_.compare(i_, 4, "null") == 0) {
            i_ += 4;
        } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
            v.kind = json::number_v;
            const size_t start = i_++;
            while (i_ < t_.size() &&
                   (std::isdigit(static_cast<unsigned char>(t_[i_])) || t_[i_] == '.' ||
                    t_[i_] == 'e' || t_[i_] == 'E' || t_[i_] == '+' || t_[i_] == '-'))
                ++i_;
            v.s = t_.substr(start, i_ - start);
        } else {
            fail(std::string("unexpected '") + c + "'");
        }
        return v;
    }
    const std::string& t_;
    size_t i_ = 0;
};

}  // namespace rpl::test
