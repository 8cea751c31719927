// report_html.cpp -- an attribution report as one self-contained HTML page.
//
// Layout: a header (what was run, the completeness error), the prompt as tokens
// coloured by each source token's share in the chosen position's target logit
// (token level), the components ranked by |share| at that position, for head
// level a layer x head grid, and a position x component heatmap. Colours are a
// diverging scale: red pushes the target logit up, blue pushes it down, white is
// zero; each view is scaled to its largest |share| among the chosen components
// (the rest may saturate). Hovering any coloured cell shows its value.
//
// Written here: the header, the footer and the numbers, embedded as one JSON
// block. Everything else is drawn by the page's script (assets/report.js) from
// that block, once when the page opens and again when another position or target
// is chosen; the stylesheet is assets/report.css. Both are compiled in.
//
// With a QK split (AttributionReport::qk) the page also has a QK section: its numbers
// in a second JSON block (depass-qk), drawn by a second script (assets/report_qk.js,
// styled by assets/report_qk.css) below the rest. A page without a split carries
// neither, byte for byte the page it was before the section existed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "depass/report.hpp"
#include "depass/tolerance.hpp"
#include "report_assets.hpp"

namespace depass {

namespace {

constexpr int kMaxHeatColumns = 80;  // components shown as heatmap columns (report.js: heatColumns)
constexpr int kCellNumbersUpTo =
    12;  // heatmap cells carry their value when there are at most this many columns

// printf-style %.{sig}g, "nan" / "inf" spelled out.
std::string num(double v, int sig = 6) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", sig, v);
    return buf;
}

// Appends the code point starting at s[i] if it is valid UTF-8 (returns its length), else 0.
size_t utf8_length(const std::string& s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
        const unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d >> 6) != 2) return 0;
        cp = (cp << 6) | (d & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

// Text for HTML (content and quoted attributes): & < > " ' escaped, invalid UTF-8
// and control characters replaced by U+FFFD.
std::string esc(const std::string& s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (size_t i = 0; i < s.size();) {
        const size_t len = utf8_length(s, i);
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        const char c = s[i];
        if (len == 1) {
            switch (c) {
                case '&':
                    out += "&amp;";
                    break;
                case '<':
                    out += "&lt;";
                    break;
                case '>':
                    out += "&gt;";
                    break;
                case '"':
                    out += "&quot;";
                    break;
                case '\'':
                    out += "&#39;";
                    break;
                case '\n':
                    out += "&#10;";
                    break;
                case '\t':
                    out += ' ';
                    break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
                        out += "\xEF\xBF\xBD";
                    else
                        out += c;
            }
        } else {
            out.append(s, i, len);
        }
        i += len;
    }
    return out;
}

// A piece in quotes, as it reads in running text: ' upon'.
std::string quoted(const std::string& piece) { return "'" + piece + "'"; }

class Page {
public:
    explicit Page(const AttributionReport& r) : r_(r) {
        r_.check();
        token_level_ = r_.level == "token" && r_.M == r_.N + 1;
        position_ = r_.position < 0 ? r_.N - 1 : r_.position;
    }

    std::string render() {
        head();
        header();
        // The prompt, the ranking (and head grid) and the heatmap: drawn by the script.
        os_ << "<noscript><p class=\"card\">This page draws its prompt, rankings and heatmap with "
               "JavaScript, "
               "which is off: the numbers are in the page, in the JSON block with id "
               "depass-data.</p></noscript>\n"
            << "<div id=\"view\" data-position=\"" << position_ << "\" data-heads=\""
            << (r_.level == "head" && !r_.sites.empty() ? std::max(r_.heads_per_layer, 0) : 0)
            << "\"></div>\n";
        if (r_.qk.present()) os_ << "<div id=\"qk-view\"></div>\n";  // report_qk.js draws here
        footer();
        return os_.str();
    }

private:
    const AttributionReport& r_;
    bool token_level_ = false;
    int position_ = 0;
    std::ostringstream os_;

    double A(int m, int n, int k = 0) const { return r_.attribution(m, n, k); }
    int rest() const { return r_.M - 1; }

    // How component m reads in the page.
    std::string label(int m) const {
        if (token_level_ && m < r_.N) return "token " + std::to_string(m) + " " + quoted(r_.token_pieces[m]);
        return r_.component_names[m];
    }

    void head() {
        os_ << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            << "<title>DePass attribution: " << esc(r_.model) << " (" << esc(r_.level) << " level)</title>\n"
            << "<style>\n"
            << report_assets::css();
        if (r_.qk.present()) os_ << report_assets::qk_css();
        os_ << "</style>\n</head>\n<body>\n<main>\n";
    }

    void header() {
        const double tol =
            r_.dtype == "f64" ? tolerance::completeness_rel<double>() : tolerance::completeness_rel<float>();
        const bool ok = r_.completeness_max_rel <= tol;
        os_ << "<header class=\"card\">\n<h1>DePass attribution</h1>\n<div class=\"facts\">\n";
        auto fact = [&](const std::string& k, const std::string& v) {
            os_ << "<div>" << esc(k) << " <b>" << esc(v) << "</b></div>\n";
        };
        fact("model", r_.model);
        fact("level", r_.level);
        fact("cut", r_.cut);
        fact("rule", r_.rule);
        if (!r_.dtype.empty()) fact("dtype", r_.dtype);
        fact("positions", std::to_string(r_.N));
        fact("components", std::to_string(r_.M) + " (rest last)");
        fact("targets per position", std::to_string(r_.K));
        for (const auto& [k, v] : r_.metadata) fact(k, v);
        if (r_.qk.present())
            fact("QK split", "block " + std::to_string(r_.qk.layer) + ", " +
                                 std::to_string(r_.qk.heads.size()) +
                                 (r_.qk.heads.size() == 1 ? " head, " : " heads, ") +
                                 std::to_string(r_.qk.queries.size()) +
                                 (r_.qk.queries.size() == 1 ? " query position" : " query positions"));
        os_ << "</div>\n<p id=\"completeness\" class=\"completeness " << (ok ? "ok" : "bad")
            << "\">Completeness: "
            << "the components sum to the true hidden state within max abs error "
            << num(r_.completeness_max_abs, 3) << ", max relative error " << num(r_.completeness_max_rel, 3);
        if (!r_.completeness_worst_point.empty()) os_ << " (at " << esc(r_.completeness_worst_point) << ")";
        os_ << (ok ? ", inside" : ", OUTSIDE") << " the " << (r_.dtype == "f64" ? "float64" : "float32")
            << " tolerance " << num(tol, 3) << ".</p>\n</header>\n";
    }

    bool show_sites() const { return (r_.level == "head" || r_.level == "neuron") && !r_.sites.empty(); }
    // The component's name says no more than its (layer, head / neuron) columns.
    bool name_column() const {
        if (!show_sites()) return true;
        for (int m = 0; m < rest(); ++m)
            if (r_.sites[size_t(m)].index < 0) return true;
        return false;
    }

    void footer() {
        os_ << "<footer>Share = the component's term in the target logit: W_U[target] \xC2\xB7 "
               "NormF(component) "
               "with the final norm's factors frozen; the shares of all components sum to the logit. "
               "Open this page with #pos=N (and &amp;target=K) to start at position N.</footer>\n"
            << "</main>\n";
        script();
        os_ << "</body>\n</html>\n";
    }

    // Text for a JSON block inside <script>: no '<', '>', '&' (escaped as \u003c, ...).
    static std::string script_safe(const std::string& text) {
        std::string safe;
        for (char c : text) {
            if (c == '<')
                safe += "\\u003c";
            else if (c == '>')
                safe += "\\u003e";
            else if (c == '&')
                safe += "\\u0026";
            else
                safe += c;
        }
        return safe;
    }

    // `,"name":[v0,v1,...]` at six significant digits, null for NaN and infinities.
    static void append_numbers(std::string& text, const char* name, const std::vector<double>& v) {
        text += ",\"";
        text += name;
        text += "\":[";
        for (size_t i = 0; i < v.size(); ++i) {
            if (i) text += ',';
            text += std::isfinite(v[i]) ? num(v[i]) : "null";
        }
        text += ']';
    }

    // The numbers the page is drawn from, as JSON safe inside <script> (no '<', '>', '&').
    std::string data_json() const {
        nlohmann::ordered_json j;
        j["N"] = r_.N;
        j["M"] = r_.M;
        j["K"] = r_.K;
        j["tokenLevel"] = token_level_;
        j["level"] = r_.level;
        j["pieces"] = r_.token_pieces;
        j["ids"] = r_.input_ids;
        std::vector<std::string> labels;
        for (int m = 0; m < r_.M; ++m) labels.push_back(label(m));
        j["labels"] = labels;
        j["targetPieces"] = r_.target_pieces;
        j["targets"] = r_.targets;
        j["sites"] = nlohmann::ordered_json::array();
        for (const ComponentSite& s : r_.sites) j["sites"].push_back({s.layer, s.index});
        j["showSites"] = show_sites();
        j["nameColumn"] = name_column();
        j["cellNumbers"] = std::min(r_.M, kMaxHeatColumns) <= kCellNumbersUpTo;
        std::string text = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
        text.pop_back();  // the closing brace; the numbers follow, at six significant digits
        auto numbers = [&](const char* name, const std::vector<double>& v) { append_numbers(text, name, v); };
        numbers("logits", r_.target_logits);
        std::vector<double> sums(r_.target_logits.size(), 0.0);
        for (int n = 0; n < r_.N; ++n)
            for (int k = 0; k < r_.K; ++k)
                for (int m = 0; m < r_.M; ++m) sums[size_t(n) * r_.K + k] += A(m, n, k);
        numbers("sums", sums);
        numbers("A", r_.logit_attribution);
        text += '}';
        return script_safe(text);
    }

    // The QK section's numbers (QkReport): which block, heads and query positions were split,
    // the split's checks and their tolerance, then each key-side share, logit, probability and
    // top pair at six significant digits (the labels and pieces are depass-data's).
    std::string qk_json() const {
        const QkReport& q = r_.qk;
        nlohmann::ordered_json j;
        j["layer"] = q.layer;
        j["heads"] = q.heads;
        j["queries"] = q.queries;
        j["top"] = q.top;
        j["pairs"] = q.top_pairs;
        j["logitsMaxRel"] = q.logits_max_rel;
        j["probsMaxAbs"] = q.probs_max_abs;
        j["tolerance"] = r_.dtype == "f64" ? tolerance::qk_rel<double>() : tolerance::qk_rel<float>();
        std::string text = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
        text.pop_back();
        append_numbers(text, "keyShare", q.key_share);
        append_numbers(text, "logits", q.logits);
        append_numbers(text, "probs", q.probs);
        append_numbers(text, "pairValues", q.top_values);
        text += '}';
        return script_safe(text);
    }

    void script() {
        os_ << "<script type=\"application/json\" id=\"depass-data\">" << data_json() << "</script>\n";
        if (r_.qk.present())
            os_ << "<script type=\"application/json\" id=\"depass-qk\">" << qk_json() << "</script>\n";
        os_ << "<script>\n" << report_assets::js() << "</script>\n";
        if (r_.qk.present()) os_ << "<script>\n" << report_assets::qk_js() << "</script>\n";
    }
};

}  // namespace

std::string render_report_html(const AttributionReport& r) { return Page(r).render(); }

}  // namespace depass
