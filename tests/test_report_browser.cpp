// The HTML report in a real browser: headless Chromium renders the page written
// by `depass attribute --html`, takes a screenshot and dumps the DOM after the
// page's script ran. The screenshot is decoded here (a small PNG reader) and
// must show the diverging colours (red and blue shares) that a blank or unstyled
// page cannot; a screenshot of an empty page, taken the same way, decodes to one
// colour. The DOM of the page opened at #pos=2 must hold every token piece and the
// completeness line, and show position 2 (the script ran).
//
// The page's script draws the prompt, the ranking, the head grid and the heatmap
// from the numbers embedded in the page; the DOM it leaves is read back here for
// reports of real decompositions of the shipped model (every heatmap cell's
// tooltip holds its attribution, the ranking is the order sorted here, ...) and
// for a report whose every piece of text needs escaping. The QK section of a `--qk` report is
// read back against the npy files of the same run (every heatmap cell's tooltip holds the
// written qk_key_share, each row sums to the block's logit recomputed from q and k, the pairs
// listed are qk_top_pairs / qk_top_values), opened plainly and at another head, query and key.
//
// Chromium comes from the Debian package `chromium` (or $DEPASS_CHROMIUM). When it
// is missing the test is skipped loudly (exit 77); with DEPASS_REQUIRE_FIXTURES=1
// (as CI sets, CI installs it) a missing browser is a failure.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include "depass/io.hpp"
#include "depass/report.hpp"
#include "depass/tokenizer.hpp"
#include "depass/tolerance.hpp"
#include "report_runs.hpp"
#include "test_support.hpp"

using namespace depass;
namespace fs = std::filesystem;

namespace {

const auto q = depass_test::shell_quoted;

// The browser to drive: $DEPASS_CHROMIUM, else chromium / chromium-browser on PATH ("" = none).
std::string find_chromium() {
    if (const char* env = std::getenv("DEPASS_CHROMIUM"); env && *env) return file_exists(env) ? env : "";
    for (const char* name : {"chromium", "chromium-browser"}) {
        std::string out;
        if (depass_test::run_command(std::string("command -v ") + name, &out) == 0) {
            while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
            if (!out.empty()) return out;
        }
    }
    return "";
}

#define SKIP_WITHOUT_CHROMIUM(path)                                                                        \
    do {                                                                                                   \
        if ((path).empty()) {                                                                              \
            if (depass_test::require_fixtures())                                                           \
                FAIL("chromium is not installed (Debian package chromium) and DEPASS_REQUIRE_FIXTURES=1"); \
            depass_test::note_skip(Catch::getResultCapture().getCurrentTestName());                        \
            WARN("SKIPPED: chromium not found (install the Debian package chromium, or set "               \
                 "DEPASS_CHROMIUM)");                                                                      \
            std::fprintf(stderr, "\n*** SKIPPED: no chromium to render the HTML report in ***\n");         \
            return;                                                                                        \
        }                                                                                                  \
    } while (0)

// Runs headless Chromium on URL with a fresh profile; `what` is "--screenshot=PNG" or
// "--dump-dom" (stdout to `dom_file`). Returns the exit status; its log in *log.
// Headless Chromium now and then hangs before it renders anything on a loaded machine (seen
// once in the sanitized suite: the timeout's status 124 on a blank page that renders in a
// second when run alone): a run that timed out is tried once more with a fresh profile. What
// it renders is checked the same either way.
int chromium(const std::string& exe, const std::string& what, const std::string& url,
             const std::string& dom_file, std::string* log) {
    static int profiles = 0;
    int status = 0;
    std::string all;
    for (int attempt = 0; attempt < 2; ++attempt) {
        const std::string profile = depass_test::temp_dir() + "/chromium-profile-" + std::to_string(profiles++);
        fs::create_directories(profile);
        std::string cmd = "timeout 180 " + q(exe) +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                          " --disable-background-networking --disable-component-update --disable-sync"
                          " --run-all-compositor-stages-before-draw"
                          " --user-data-dir=" +
                          q(profile) + " --window-size=1200,900 " + what + " " + q(url);
        if (!dom_file.empty()) cmd = "{ " + cmd + " > " + q(dom_file) + "; }";
        std::string one;
        status = depass_test::run_command(cmd, &one);
        all += one;
        if (status != 124) break;
        all += "\n(chromium timed out after 180 s; trying once more)\n";
    }
    if (log) *log = all;
    return status;
}

// ---- a small PNG reader: zlib inflate (RFC 1950/1951) and the PNG filters -------------------

class Inflater {
public:
    Inflater(const uint8_t* p, size_t n) : p_(p), n_(n) {}

    std::vector<uint8_t> run() {
        if (n_ < 2 || (p_[0] & 0x0F) != 8 || ((p_[0] << 8) | p_[1]) % 31 != 0)
            throw Error("PNG: bad zlib header");
        pos_ = 2;
        for (bool last = false; !last;) {
            last = bits(1);
            const int type = int(bits(2));
            if (type == 0)
                stored();
            else if (type == 1)
                fixed();
            else if (type == 2)
                dynamic();
            else
                throw Error("PNG: bad deflate block type");
        }
        return out_;
    }

private:
    struct Huffman {
        std::array<int, 16> count{};
        std::vector<int> symbol;
    };

    const uint8_t* p_;
    size_t n_, pos_ = 0;
    uint32_t buf_ = 0;
    int have_ = 0;
    std::vector<uint8_t> out_;

    int bit() {
        if (have_ == 0) {
            if (pos_ >= n_) throw Error("PNG: compressed data ends early");
            buf_ = p_[pos_++];
            have_ = 8;
        }
        const int b = int(buf_ & 1);
        buf_ >>= 1;
        --have_;
        return b;
    }
    uint32_t bits(int k) {
        uint32_t v = 0;
        for (int i = 0; i < k; ++i) v |= uint32_t(bit()) << i;
        return v;
    }

    static Huffman build(const int* lengths, int n) {
        Huffman h;
        for (int i = 0; i < n; ++i) ++h.count[size_t(lengths[i])];
        h.count[0] = 0;
        std::array<int, 16> offset{};
        for (int len = 1; len < 16; ++len)
            offset[size_t(len)] = offset[size_t(len - 1)] + h.count[size_t(len - 1)];
        h.symbol.assign(size_t(n), 0);
        for (int i = 0; i < n; ++i)
            if (lengths[i]) h.symbol[size_t(offset[size_t(lengths[i])]++)] = i;
        return h;
    }

    // Canonical codes: codes of one length are consecutive, read most significant bit first.
    int decode(const Huffman& h) {
        int code = 0, first = 0, index = 0;
        for (int len = 1; len < 16; ++len) {
            code |= bit();
            const int c = h.count[size_t(len)];
            if (code - first < c) return h.symbol[size_t(index + code - first)];
            index += c;
            first = (first + c) << 1;
            code <<= 1;
        }
        throw Error("PNG: bad Huffman code");
    }

    void stored() {
        have_ = 0;  // to the byte boundary
        if (pos_ + 4 > n_) throw Error("PNG: stored block header cut");
        const unsigned len = p_[pos_] | (p_[pos_ + 1] << 8), nlen = p_[pos_ + 2] | (p_[pos_ + 3] << 8);
        pos_ += 4;
        if ((len ^ 0xFFFFu) != nlen || pos_ + len > n_) throw Error("PNG: bad stored block");
        out_.insert(out_.end(), p_ + pos_, p_ + pos_ + len);
        pos_ += len;
    }

    void codes(const Huffman& lit, const Huffman& dist) {
        static const int lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
        static const int lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                     2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
        static const int dbase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                      33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                      1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
        static const int dext[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                     6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
        for (;;) {
            const int sym = decode(lit);
            if (sym < 256) {
                out_.push_back(uint8_t(sym));
            } else if (sym == 256) {
                return;
            } else {
                const int l = sym - 257;
                if (l >= 29) throw Error("PNG: bad length code");
                const size_t len = size_t(lbase[l]) + bits(lext[l]);
                const int d = decode(dist);
                if (d >= 30) throw Error("PNG: bad distance code");
                const size_t back = size_t(dbase[d]) + bits(dext[d]);
                if (back > out_.size()) throw Error("PNG: distance beyond the output");
                for (size_t i = 0; i < len; ++i) out_.push_back(out_[out_.size() - back]);
            }
        }
    }

    void fixed() {
        int lengths[288 + 30];
        for (int i = 0; i < 288; ++i) lengths[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
        for (int i = 0; i < 30; ++i) lengths[288 + i] = 5;
        codes(build(lengths, 288), build(lengths + 288, 30));
    }

    void dynamic() {
        const int nlit = int(bits(5)) + 257, ndist = int(bits(5)) + 1, ncode = int(bits(4)) + 4;
        static const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
        int cl[19] = {0};
        for (int i = 0; i < ncode; ++i) cl[order[i]] = int(bits(3));
        const Huffman clh = build(cl, 19);
        std::vector<int> lengths;
        while (int(lengths.size()) < nlit + ndist) {
            const int sym = decode(clh);
            if (sym < 16) {
                lengths.push_back(sym);
                continue;
            }
            int repeat = 0, value = 0;
            if (sym == 16) {
                if (lengths.empty()) throw Error("PNG: repeat with no previous length");
                value = lengths.back();
                repeat = 3 + int(bits(2));
            } else if (sym == 17) {
                repeat = 3 + int(bits(3));
            } else {
                repeat = 11 + int(bits(7));
            }
            lengths.insert(lengths.end(), size_t(repeat), value);
        }
        if (int(lengths.size()) != nlit + ndist) throw Error("PNG: code lengths overrun");
        codes(build(lengths.data(), nlit), build(lengths.data() + nlit, ndist));
    }
};

struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  // [height, width, 3]
};

uint32_t be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// 8-bit RGB / RGBA, non-interlaced (what Chromium writes); anything else is an error.
Image read_png(const std::string& path) {
    const std::string bytes = read_text_file(path);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (bytes.size() < 8 || std::memcmp(p, sig, 8) != 0) throw Error(path + ": not a PNG file");
    Image img;
    int channels = 0;
    std::vector<uint8_t> idat;
    for (size_t at = 8; at + 12 <= bytes.size();) {
        const uint32_t len = be32(p + at);
        const std::string type(bytes, at + 4, 4);
        if (at + 12 + len > bytes.size()) throw Error(path + ": chunk " + type + " is cut");
        const uint8_t* d = p + at + 8;
        if (type == "IHDR") {
            img.width = int(be32(d));
            img.height = int(be32(d + 4));
            if (d[8] != 8 || (d[9] != 2 && d[9] != 6) || d[12] != 0)
                throw Error(path + ": PNG is not 8-bit RGB/RGBA non-interlaced");
            channels = d[9] == 2 ? 3 : 4;
        } else if (type == "IDAT") {
            idat.insert(idat.end(), d, d + len);
        } else if (type == "IEND") {
            break;
        }
        at += 12 + len;
    }
    if (channels == 0) throw Error(path + ": no IHDR chunk");
    const std::vector<uint8_t> raw = Inflater(idat.data(), idat.size()).run();
    const size_t stride = size_t(img.width) * channels;
    if (raw.size() < (stride + 1) * img.height) throw Error(path + ": image data too short");
    std::vector<uint8_t> cur(stride), prev(stride, 0);
    img.rgb.reserve(size_t(img.width) * img.height * 3);
    for (int y = 0; y < img.height; ++y) {
        const uint8_t* row = raw.data() + y * (stride + 1);
        const int filter = row[0];
        for (size_t i = 0; i < stride; ++i) {
            const int a = i >= size_t(channels) ? cur[i - channels] : 0, b = prev[i],
                      c = i >= size_t(channels) ? prev[i - channels] : 0;
            int pred = 0;
            switch (filter) {
                case 0:
                    pred = 0;
                    break;
                case 1:
                    pred = a;
                    break;
                case 2:
                    pred = b;
                    break;
                case 3:
                    pred = (a + b) / 2;
                    break;
                case 4: {
                    const int pp = a + b - c, pa = std::abs(pp - a), pb = std::abs(pp - b),
                              pc = std::abs(pp - c);
                    pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                    break;
                }
                default:
                    throw Error(path + ": bad PNG filter " + std::to_string(filter));
            }
            cur[i] = uint8_t(row[1 + i] + pred);
        }
        for (int x = 0; x < img.width; ++x)
            for (int c = 0; c < 3; ++c) img.rgb.push_back(cur[size_t(x) * channels + c]);
        std::swap(cur, prev);
    }
    return img;
}

struct Colours {
    size_t distinct = 0, red = 0, blue = 0;
};

// Distinct colours, and pixels of the report's red (+) and blue (-) shades.
Colours count_colours(const Image& img) {
    std::set<uint32_t> seen;
    Colours c;
    for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) {
        const int r = img.rgb[i], g = img.rgb[i + 1], b = img.rgb[i + 2];
        seen.insert(uint32_t(r) << 16 | uint32_t(g) << 8 | uint32_t(b));
        if (r >= 150 && r - g >= 60 && r - b >= 60) ++c.red;
        if (b >= 120 && b - r >= 60 && b - g >= 20) ++c.blue;
    }
    c.distinct = seen.size();
    return c;
}

std::string text_escaped(const std::string& s) {  // as a serialised DOM writes text
    std::string out;
    for (char ch : s) {
        if (ch == '&')
            out += "&amp;";
        else if (ch == '<')
            out += "&lt;";
        else if (ch == '>')
            out += "&gt;";
        else
            out += ch;
    }
    return out;
}

const auto count = depass_test::count_of;
using depass_test::between;

// The DOM of render_report_html(rep) after the page's script ran in Chromium.
std::string dom_of(const std::string& exe, const AttributionReport& rep, const std::string& name) {
    const std::string dir = depass_test::temp_dir() + "/report_dom";
    fs::create_directories(dir);
    const std::string html = dir + "/" + name + ".html", dom_file = dir + "/" + name + ".dom.html";
    write_file_atomic(html, render_report_html(rep));
    std::string log;
    const int rc = chromium(exe, "--dump-dom", "file://" + html, dom_file, &log);
    INFO(log);
    REQUIRE(rc == 0);
    const std::string dom = read_text_file(dom_file);
    // The script ran to its end: the rows of the ranking are there.
    REQUIRE(dom.find("<tbody id=\"rank-body\"><tr data-m=\"") != std::string::npos);
    return dom;
}

// Heatmap cells of one row of the DOM: component -> value read back from the tooltip ("share X").
std::map<int, double> heat_row(const std::string& dom, int n) {
    std::map<int, double> cells;
    const std::string row_start = "<tr data-pos=\"" + std::to_string(n) + "\"";
    size_t at = dom.find(row_start);
    REQUIRE(at != std::string::npos);
    const size_t end = dom.find("</tr>", at);
    for (at = dom.find("<td class=\"c\" data-m=\"", at); at < end;
         at = dom.find("<td class=\"c\" data-m=\"", at + 1)) {
        const int m = std::atoi(dom.c_str() + at + 22);
        const std::string title = between(dom, "title=\"", "\"", at);
        const size_t s = title.find("share ");
        REQUIRE(s != std::string::npos);
        cells[m] = std::strtod(title.c_str() + s + 6, nullptr);
    }
    return cells;
}

// What the script drew for a real decomposition, against the report's own numbers.
template <class T>
std::string check_dom_of_real_run(const std::string& exe, const depass_test::RealRun<T>& r) {
    const AttributionReport& rep = r.rep;
    INFO(rep.level << " level, " << rep.dtype);
    const std::string dom = dom_of(exe, rep, rep.level + "_" + rep.dtype);

    // Every token piece in the prompt strip, escaped.
    for (int j = 0; j < rep.N; ++j) {
        INFO("token " << j << " " << rep.token_pieces[j]);
        CHECK(dom.find(">" + text_escaped(rep.token_pieces[j]) + "</span>") != std::string::npos);
    }
    CHECK(dom.find("&lt;s&gt;") != std::string::npos);  // the BOS piece
    CHECK(count(dom, "<span class=\"tok") == size_t(rep.N));

    // The heatmap: one row per position; every cell's tooltip holds that attribution
    // (six significant digits), and each row's cells sum to the model's own logit.
    CHECK(count(dom, "<tr data-pos=\"") == size_t(rep.N));
    const bool token_level = rep.level == "token";
    for (int n = 0; n < rep.N; ++n) {
        INFO("row " << n);
        std::map<int, double> cells = heat_row(dom, n);
        // Token level: tokens 0..n and the rest (a later token has no share, by causality);
        // other levels: every component, at most 80.
        const size_t columns = size_t(token_level ? n + 2 : std::min(rep.M, 80));
        CHECK(cells.size() == columns);
        double sum = 0, mass = 0, worst = 0;
        for (auto [m, v] : cells) {
            const double want = rep.attribution(m, n, 0);
            worst = std::max(worst, std::abs(v - want) / std::max(std::abs(want), 1e-300));
            sum += v;
            mass += std::abs(v);
        }
        CHECK(worst <= 5.0000001e-6);
        const int target = r.targets[size_t(n)][0];
        if (token_level || rep.M <= 80) CHECK(std::abs(sum - r.logits(n, target)) <= 1e-5 * mass);
    }

    // The ranking at the default (last) position: the components with the largest
    // |share|, in order, as sorted here.
    const int n = rep.N - 1;
    std::vector<int> order(size_t(rep.M - 1));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return std::abs(rep.attribution(a, n, 0)) > std::abs(rep.attribution(b, n, 0));
    });
    const std::string body = between(dom, "<tbody id=\"rank-body\">", "</tbody>");
    const size_t rows = count(body, "<tr data-m=\"");
    CHECK(rows == size_t(std::min(20, rep.M - 1)));
    size_t at = 0;
    for (size_t i = 0; i < rows; ++i) {
        at = body.find("<tr data-m=\"", at) + 12;
        CHECK(std::atoi(body.c_str() + at) == order[i]);
    }

    // The position selector covers every position; the last is chosen.
    CHECK(count(between(dom, "<select id=\"pos\">", "</select>"), "<option ") == size_t(rep.N));
    CHECK(dom.find("<option value=\"" + std::to_string(n) + "\" selected=\"\">") != std::string::npos);
    return dom;
}

}  // namespace

TEST_CASE("the script draws a token-level report of the shipped model", "[report][browser]") {
    const std::string exe = find_chromium();
    SKIP_WITHOUT_CHROMIUM(exe);
    using depass_test::real_run;
    check_dom_of_real_run(exe, real_run<double>("token", 0, "Once upon a time, there was a little girl"));
    check_dom_of_real_run(exe, real_run<float>("token", 0, "Once upon a time, there was a little girl"));
}

TEST_CASE("the script draws a 1 x H grid at head level, a top-20 table at neuron level",
          "[report][browser]") {
    const std::string exe = find_chromium();
    SKIP_WITHOUT_CHROMIUM(exe);
    using depass_test::real_run;
    depass_test::RealRun<double> heads = real_run<double>("head", 2, "Once upon a time");
    const std::string dom = check_dom_of_real_run(exe, heads);
    const std::string grid = between(dom, "<section class=\"card\" id=\"heads\">", "</section>");
    REQUIRE(!grid.empty());
    CHECK(count(between(grid, "<tbody>", "</tbody>"), "<tr>") == 1);  // one layer
    CHECK(count(grid, "<td data-m=\"") == size_t(heads.rep.heads_per_layer));
    // Each head's cell at the last position shows its share (two digits) and holds it in the tooltip.
    const int n = heads.rep.N - 1;
    for (int h = 0; h < heads.rep.heads_per_layer; ++h) {
        const std::string title = between(grid, "<td data-m=\"" + std::to_string(h) + "\"", "\">");
        REQUIRE(title.find("share ") != std::string::npos);
        const double v = std::strtod(title.c_str() + title.find("share ") + 6, nullptr);
        CHECK(std::abs(v - heads.rep.attribution(h, n, 0)) <=
              5e-6 * std::abs(heads.rep.attribution(h, n, 0)));
    }

    depass_test::RealRun<double> neurons = real_run<double>("neuron", 1, "Once upon a time");
    const std::string nh =
        check_dom_of_real_run(exe, neurons);  // checks the 20 ranked rows against the sort done here
    CHECK(nh.find("Top 20 neurons by |share|") != std::string::npos);
    CHECK(nh.find("<th class=\"num\">neuron</th>") != std::string::npos);
    // Wide levels show at most 80 heatmap columns: the largest components and the rest.
    CHECK(count(between(nh, "<table class=\"heat\"", "</thead>"), "<th class=\"col\"") == 80);
}

TEST_CASE("the script draws every piece of text escaped", "[report][browser]") {
    const std::string exe = find_chromium();
    SKIP_WITHOUT_CHROMIUM(exe);
    const AttributionReport r = depass_test::escaping_report();
    const std::string dom = dom_of(exe, r, "escaping");
    // No element came out of a piece: the two scripts of the page, no other.
    CHECK(count(dom, "<script") == 2);
    CHECK(dom.find("'<b>'") == std::string::npos);  // the target piece '<b>' is text, not an element
    CHECK(dom.find("0: '&lt;s&gt;' \xE2\x86\x92 '&lt;b&gt;'</option>") !=
          std::string::npos);  // the first target piece, quoted
    CHECK(dom.find(">&lt;s&gt;</span>") != std::string::npos);
    CHECK(dom.find("> a&amp;b \"q\" 'x'</span>") != std::string::npos);
    // Invalid UTF-8 becomes U+FFFD.
    CHECK(dom.find("&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;\xEF\xBF\xBD</span>") !=
          std::string::npos);
    CHECK(dom.find("&amp;amp;") != std::string::npos);
    CHECK(dom.find("m&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
}

TEST_CASE("the HTML report renders in headless Chromium", "[report][browser]") {
    const std::string exe = find_chromium();
    SKIP_WITHOUT_CHROMIUM(exe);
    const std::string dir = depass_test::temp_dir() + "/report_browser";
    fs::create_directories(dir);
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    const std::string prompt = "Once upon a time, there was a little girl named Lily";
    const std::string html = dir + "/report.html", png = dir + "/report.png", blank_png = dir + "/blank.png";
    std::string log;
    REQUIRE(depass_test::run_command(q(depass_test::cli_path()) + " attribute --quiet -m " + q(model) +
                                         " --prompt " + q(prompt) + " --html " + q(html),
                                     &log) == 0);

    // The screenshot, and one of an empty page as the control.
    const std::string blank_html = dir + "/blank.html";
    write_file_atomic(blank_html, "<!DOCTYPE html><html><body></body></html>\n");
    REQUIRE(chromium(exe, "--screenshot=" + q(png), "file://" + html, "", &log) == 0);
    INFO(log);
    REQUIRE(chromium(exe, "--screenshot=" + q(blank_png), "file://" + blank_html, "", &log) == 0);

    const Image shot = read_png(png), blank = read_png(blank_png);
    CHECK(shot.width == 1200);
    CHECK(shot.height == 900);
    const Colours empty = count_colours(blank), page = count_colours(shot);
    std::printf(
        "report screenshot: %s (%zu colours, %zu red and %zu blue pixels; empty page: %zu colour(s))\n",
        png.c_str(), page.distinct, page.red, page.blue, empty.distinct);
    INFO("screenshot " << png << ": " << page.distinct << " colours, " << page.red << " red and " << page.blue
                       << " blue pixels; empty page: " << empty.distinct << " colour(s)");
    CHECK(empty.distinct == 1);
    CHECK(empty.red + empty.blue == 0);
    CHECK(page.distinct >= 100);  // text, tables, a colour ramp
    CHECK(page.red >= 2000);      // tokens, bars and heatmap cells that raise the logit
    CHECK(page.blue >= 200);      // the blue end of the colour scale (and any share that lowers it)

    // The DOM after the script ran, opened at #pos=2: every token piece, the completeness
    // line, and the view moved to position 2 (framed; later tokens greyed).
    const std::string dom_file = dir + "/report.pos2.dom.html";
    REQUIRE(chromium(exe, "--dump-dom", "file://" + html + "#pos=2", dom_file, &log) == 0);
    const std::string dom = read_text_file(dom_file);
    auto tok = Llama2cTokenizer::load(depass_test::source_dir() + "/weights/tok512.bin", 512);
    std::vector<int> ids = tok.encode(prompt, true, false);
    for (size_t j = 0; j < ids.size(); ++j) {
        std::string piece = tok.piece(ids[j]);
        if (piece.size() > 2 && piece.front() == '\n' && piece.back() == '\n')
            piece = piece.substr(1, piece.size() - 2);
        INFO("token " << j << " '" << piece << "'");
        CHECK(dom.find(">" + text_escaped(piece) + "</span>") != std::string::npos);
    }
    CHECK(dom.find("Completeness: the components sum to the true hidden state within max abs error") !=
          std::string::npos);
    CHECK(dom.find("Position <b>2</b>") != std::string::npos);
    CHECK(dom.find("class=\"tok at\" data-j=\"2\"") != std::string::npos);
    CHECK(dom.find("class=\"tok future\" data-j=\"3\"") != std::string::npos);
    CHECK(dom.find("class=\"tok future\" data-j=\"" + std::to_string(ids.size() - 1) + "\"") !=
          std::string::npos);
    // The ranking was rebuilt for position 2: tokens 0..2.
    const size_t body = dom.find("<tbody id=\"rank-body\">");
    REQUIRE(body != std::string::npos);
    const std::string rows = dom.substr(body, dom.find("</tbody>", body) - body);
    size_t ranked = 0;
    for (size_t at = rows.find("<tr data-m=\""); at != std::string::npos;
         at = rows.find("<tr data-m=\"", at + 1))
        ++ranked;
    CHECK(ranked == 3);
}

// ---- the QK section -----------------------------------------------------------------------------

namespace {

// One drawn (head, query) of the QK section against the npy files of the same run: the heatmap
// has a row per key up to the query and, at token level, a cell per token up to the key and one
// for the rest; every cell's tooltip holds the share written to qk_key_share; each row's cells sum
// to the block's logit recomputed from q and k (attention_logits); the selected row and the pairs
// listed are the key asked for (or the one attended most) and its qk_top_pairs / qk_top_values.
template <class T>
void check_qk_dom(const std::string& dom, const std::string& npy, const Model<T>& model,
                  const Trace<T>& trace, int hi, int qi, int key) {
    const Tensor<double> share = read_npy<double>(npy + "/qk_key_share.npy");
    const Tensor<double> top_values = read_npy<double>(npy + "/qk_top_values.npy");
    const Tensor<int64_t> top_pairs = read_npy<int64_t>(npy + "/qk_top_pairs.npy");
    const Tensor<int64_t> heads = read_npy<int64_t>(npy + "/qk_heads.npy");
    const Tensor<int64_t> queries = read_npy<int64_t>(npy + "/qk_queries.npy");
    const int Hs = int(share.shape[0]), M = int(share.shape[1]), Nq = int(share.shape[2]),
              N = int(share.shape[3]);
    const int head = int(heads.data[size_t(hi)]), qpos = int(queries.data[size_t(qi)]),
              top = int(top_values.shape[3]);
    INFO("head " << head << ", query " << qpos);
    REQUIRE(M == N + 1);  // token level: the tokens and the rest
    REQUIRE(Hs == int(heads.data.size()));
    auto S = [&](int m, int j) { return share.data[((size_t(hi) * M + m) * Nq + qi) * N + j]; };
    const Mat<T> logits = attention_logits(model, trace, 2, head);
    const double max_logit = double(logits.cwiseAbs().maxCoeff());

    // The controls show the chosen head and query.
    CHECK(count(between(dom, "<select id=\"qk-head\">", "</select>"), "<option ") == size_t(Hs));
    CHECK(count(between(dom, "<select id=\"qk-query\">", "</select>"), "<option ") == size_t(Nq));
    CHECK(count(between(dom, "<select id=\"qk-key\">", "</select>"), "<option ") == size_t(qpos + 1));
    CHECK(dom.find("<b>head " + std::to_string(head) + ", query " + std::to_string(qpos) + " ") !=
          std::string::npos);

    const std::string table = between(dom, "<table class=\"heat\" id=\"qk-heat\">", "</table>");
    REQUIRE(!table.empty());
    CHECK(count(table, "<tr data-key=\"") == size_t(qpos + 1));
    // Columns: tokens 0..qpos and the rest.
    CHECK(count(between(table, "<thead>", "</thead>"), "<th class=\"col\"") == size_t(qpos + 2));
    size_t cells = 0, none = 0;
    double worst = 0, worst_sum = 0;
    for (int j = 0; j <= qpos; ++j) {
        INFO("key " << j);
        const size_t at = table.find("<tr data-key=\"" + std::to_string(j) + "\"");
        REQUIRE(at != std::string::npos);
        const std::string row = table.substr(at, table.find("</tr>", at) - at);
        none += count(row, "<td class=\"c none\">");
        std::set<int> seen;
        double sum = 0, mass = 0;
        for (size_t c = row.find("<td class=\"c\" data-m=\""); c != std::string::npos;
             c = row.find("<td class=\"c\" data-m=\"", c + 1)) {
            const int m = std::atoi(row.c_str() + c + 22);
            const std::string title = between(row, "title=\"", "\"", c);
            const size_t s = title.find("\nshare ");
            REQUIRE(s != std::string::npos);
            const double v = std::strtod(title.c_str() + s + 7, nullptr), want = S(m, j);
            worst = std::max(worst, std::abs(v - want) / std::max(std::abs(want), 1e-300));
            sum += v;
            mass += std::abs(v);
            seen.insert(m);
            ++cells;
        }
        // Tokens 0..j and the rest: a later token has no share in key j (causality).
        std::set<int> want;
        for (int m = 0; m <= j; ++m) want.insert(m);
        want.insert(M - 1);
        CHECK(seen == want);
        // Each cell rounded to six digits (at most 5e-6 of the row's mass together), and the split's
        // own error against the recomputed logits (tolerance::qk_rel, of the head's largest |logit|).
        const double err = std::abs(sum - double(logits(qpos, j)));
        CHECK(err <= 5.0000001e-6 * mass + tolerance::qk_rel<T>() * max_logit);
        worst_sum = std::max(worst_sum, err / std::max(mass, 1e-30));
    }
    CHECK(cells == size_t((qpos + 1) * (qpos + 2) / 2 + qpos + 1));
    CHECK(none == size_t(qpos * (qpos + 1) / 2));
    CHECK(worst <= 5.0000001e-6);  // six significant digits
    std::printf(
        "qk section (%s), head %d query %d: %zu cells, worst tooltip vs qk_key_share %.2e (rel), "
        "rows vs recomputed logits %.2e (of the row's |cells|)\n",
        sizeof(T) == 8 ? "f64" : "f32", head, qpos, cells, worst, worst_sum);

    // The key: the one asked for, else the one attended most (the largest logit of the row).
    if (key < 0) {
        key = 0;
        for (int j = 1; j <= qpos; ++j)
            if (logits(qpos, j) > logits(qpos, key)) key = j;
    }
    CHECK(table.find("<tr data-key=\"" + std::to_string(key) + "\" class=\"sel\">") != std::string::npos);
    CHECK(count(table, "class=\"sel\"") == 1);
    const std::string pairs = between(dom, "<table class=\"rank\" id=\"qk-pairs\">", "</table>");
    REQUIRE(!pairs.empty());
    CHECK(count(pairs, "<tr data-pair=\"") == size_t(top));
    size_t at = 0;
    for (int t = 0; t < top; ++t) {
        const size_t b = ((size_t(hi) * Nq + qi) * N + key) * top + t;
        at = pairs.find("<tr data-pair=\"", at) + 15;
        CHECK(pairs.substr(at, pairs.find('"', at) - at) ==
              std::to_string(top_pairs.data[2 * b]) + "," + std::to_string(top_pairs.data[2 * b + 1]));
        // The value cell: the fourth of the row.
        size_t c = at;
        for (int k = 0; k < 4; ++k) c = pairs.find("<td", c + 1);
        const double v = std::strtod(pairs.c_str() + pairs.find('>', c) + 1, nullptr);
        CHECK(std::abs(v - top_values.data[b]) <= 5.0000001e-6 * std::abs(top_values.data[b]));
    }
}

template <class T>
void check_qk_report(const std::string& exe, const char* dtype) {
    const std::string dir = depass_test::temp_dir() + "/report_qk";
    fs::create_directories(dir);
    const std::string model_path = depass_test::source_dir() + "/weights/stories260K.bin";
    const std::string prompt = "Once upon a time, there was a little girl";
    const std::string html = dir + "/qk_" + dtype + ".html", npy = dir + "/qk_" + dtype;
    std::string log;
    REQUIRE(depass_test::run_command(q(depass_test::cli_path()) + " attribute --quiet -m " + q(model_path) +
                                         " --prompt " + q(prompt) + " --dtype " + dtype +
                                         " --qk 2 --qk-heads 3,0 --query-positions 12,6 --html " + q(html) +
                                         " --out " + q(npy) + " --format npy",
                                     &log) == 0);
    const Model<T> model = load_model<T>(model_path);
    auto tok = Llama2cTokenizer::load(depass_test::source_dir() + "/weights/tok512.bin", model.cfg.V);
    const Trace<T> trace = forward(model, tok.encode(prompt, true, false));

    // Opened plainly: the first head split (3) and the last query position split (6).
    const std::string dom_file = dir + "/qk_" + dtype + ".dom.html";
    REQUIRE(chromium(exe, "--dump-dom", "file://" + html, dom_file, &log) == 0);
    INFO(log);
    const std::string dom = read_text_file(dom_file);
    REQUIRE(dom.find("<section class=\"card\" id=\"qk\">") != std::string::npos);
    CHECK(count(dom, "<script") == 4);  // two JSON blocks, two scripts
    check_qk_dom(dom, npy, model, trace, 0, 1, -1);
    // Opened at another head, query and key (as numbered in the model).
    const std::string dom2_file = dir + "/qk_" + dtype + ".other.dom.html";
    REQUIRE(chromium(exe, "--dump-dom", "file://" + html + "#qkhead=0&qkquery=12&qkkey=5", dom2_file, &log) ==
            0);
    check_qk_dom(read_text_file(dom2_file), npy, model, trace, 1, 0, 5);
}

}  // namespace

TEST_CASE("the script draws the QK section of a --qk report, equal to its npy files",
          "[report][browser][qk]") {
    const std::string exe = find_chromium();
    SKIP_WITHOUT_CHROMIUM(exe);
    check_qk_report<double>(exe, "f64");
    check_qk_report<float>(exe, "f32");
}
