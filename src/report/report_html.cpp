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
// The page is rendered completely here, for the default position and the first
// target; a small inline script re-colours it when another position or target
// is chosen, from the numbers embedded as JSON in the page. The stylesheet and
// the script are assets/report.css and assets/report.js, compiled in.
#include "depass/report.hpp"
#include "depass/tolerance.hpp"
#include "report_assets.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

namespace depass {

namespace {

constexpr int kTopK = 20;             // rows of the ranking table
constexpr int kMaxHeatColumns = 80;   // components shown as heatmap columns
constexpr int kCellNumbersUpTo = 12;  // heatmap cells carry their value when there are at most this many columns
constexpr size_t kMaxEmbedded = 2000000;  // numbers embedded for the selector

// printf-style %.{sig}g, "nan" / "inf" spelled out.
std::string num(double v, int sig = 6) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", sig, v);
    return buf;
}

std::string percent(double v, double total) {
    if (!(std::abs(total) > 1e-12) || !std::isfinite(v / total)) return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * v / total);
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
                case '&': out += "&amp;"; break;
                case '<': out += "&lt;"; break;
                case '>': out += "&gt;"; break;
                case '"': out += "&quot;"; break;
                case '\'': out += "&#39;"; break;
                case '\n': out += "&#10;"; break;
                case '\t': out += ' '; break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) out += "\xEF\xBF\xBD";
                    else out += c;
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

// Diverging colour of t in [-1, 1]: white at 0, red (+) / blue (-) at the ends.
// The same formula is in the page's script (colour()).
struct Shade {
    std::string background;
    bool dark = false;  // white text reads better on it
};
Shade shade(double t) {
    if (!std::isfinite(t)) return {"#888888", true};
    const double a = std::pow(std::min(1.0, std::abs(t)), 0.65);
    const int end[2][3] = {{5, 113, 176}, {202, 0, 32}};  // blue, red
    const int* e = end[t > 0 ? 1 : 0];
    char buf[8];
    int rgb[3];
    for (int c = 0; c < 3; ++c) rgb[c] = int(std::lround(255.0 + (e[c] - 255.0) * a));
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
    return {buf, a > 0.55};
}

std::string style_for(double v, double scale) {
    const Shade s = shade(scale > 0 ? v / scale : 0.0);
    return "background:" + s.background + (s.dark ? ";color:#fff" : "");
}

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
        prompt_section();
        // The chosen position's ranking (and head grid) beside the heatmap of every position.
        os_ << "<div class=\"cols\">\n<div class=\"left\">\n";
        ranking_section();
        if (r_.level == "head") head_grid_section();
        os_ << "</div>\n<div class=\"right\">\n";
        heatmap_section();
        os_ << "</div>\n</div>\n";
        footer();
        return os_.str();
    }

private:
    const AttributionReport& r_;
    bool token_level_ = false;
    int position_ = 0;
    std::ostringstream os_;

    double A(int m, int n, int k = 0) const { return r_.attribution(m, n, k); }
    const std::string& target_piece(int n, int k = 0) const { return r_.target_pieces[size_t(n) * r_.K + k]; }
    int target_id(int n, int k = 0) const { return r_.targets[size_t(n) * r_.K + k]; }
    double logit(int n, int k = 0) const { return r_.target_logits[size_t(n) * r_.K + k]; }
    int rest() const { return r_.M - 1; }

    // Largest |share| at (n, k) among the chosen components; the rest only when there is nothing else.
    double scale_at(int n, int k = 0) const {
        double s = 0;
        for (int m = 0; m < rest(); ++m) s = std::max(s, std::abs(A(m, n, k)));
        if (!(s > 0)) s = std::abs(A(rest(), n, k));
        return s > 0 && std::isfinite(s) ? s : 1.0;
    }

    // How component m reads in the page.
    std::string label(int m) const {
        if (token_level_ && m < r_.N) return "token " + std::to_string(m) + " " + quoted(r_.token_pieces[m]);
        return r_.component_names[m];
    }

    std::string share_text(double v, int n, int k) const {
        std::string p = percent(v, logit(n, k));
        return "share " + num(v) + (p.empty() ? "" : " (" + p + " of logit " + num(logit(n, k), 4) + ")");
    }

    void head() {
        os_ << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            << "<title>DePass attribution: " << esc(r_.model) << " (" << esc(r_.level) << " level)</title>\n"
            << "<style>\n" << report_assets::css() << "</style>\n</head>\n<body>\n<main>\n";
    }

    void header() {
        const double tol = r_.dtype == "f64" ? tolerance::completeness_rel<double>()
                                             : tolerance::completeness_rel<float>();
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
        os_ << "</div>\n<p id=\"completeness\" class=\"completeness " << (ok ? "ok" : "bad") << "\">Completeness: "
            << "the components sum to the true hidden state within max abs error " << num(r_.completeness_max_abs, 3)
            << ", max relative error " << num(r_.completeness_max_rel, 3);
        if (!r_.completeness_worst_point.empty()) os_ << " (at " << esc(r_.completeness_worst_point) << ")";
        os_ << (ok ? ", inside" : ", OUTSIDE") << " the " << (r_.dtype == "f64" ? "float64" : "float32")
            << " tolerance " << num(tol, 3) << ".</p>\n</header>\n";
    }

    void prompt_section() {
        const int n = position_;
        os_ << "<section class=\"card\" id=\"prompt\">\n<h2>Prompt</h2>\n<div class=\"controls\">\n"
            << "<label>Position <select id=\"pos\">\n";
        for (int i = 0; i < r_.N; ++i)
            os_ << "<option value=\"" << i << "\"" << (i == n ? " selected" : "") << ">" << i << ": "
                << esc(quoted(r_.token_pieces[i])) << " \xE2\x86\x92 " << esc(quoted(target_piece(i))) << "</option>\n";
        os_ << "</select></label>\n";
        if (r_.K > 1) {
            os_ << "<label>Target <select id=\"tgt\">\n";
            for (int k = 0; k < r_.K; ++k)
                os_ << "<option value=\"" << k << "\"" << (k == 0 ? " selected" : "") << ">" << k << ": "
                    << esc(quoted(target_piece(n, k))) << "</option>\n";
            os_ << "</select></label>\n";
        }
        os_ << "</div>\n<p class=\"target-line\" id=\"target-line\">" << target_line(n, 0) << "</p>\n";
        os_ << "<div class=\"tokens\" id=\"tokens\">";
        const double scale = scale_at(n);
        for (int j = 0; j < r_.N; ++j) {
            const std::string who = "token " + std::to_string(j) + " " + quoted(r_.token_pieces[j]) + " (id " +
                                    std::to_string(r_.input_ids[j]) + ")";
            std::string cls = "tok", style, title = who;
            if (j == n) cls += " at";
            if (token_level_) {
                if (j > n) {
                    cls += " future";
                    title += "\nafter position " + std::to_string(n) + ": no share in its logit";
                } else {
                    style = style_for(A(j, n), scale);
                    title += "\n" + share_text(A(j, n), n, 0);
                }
            } else if (j > n) {
                cls += " future";
            }
            os_ << "<span class=\"" << cls << "\" data-j=\"" << j << "\"" << (style.empty() ? "" : " style=\"" + style + "\"")
                << " title=\"" << esc(title) << "\">" << esc(r_.token_pieces[j]) << "</span>";
        }
        os_ << "</div>\n";
        if (token_level_)
            os_ << "<div class=\"legend\"><span id=\"legend-lo\">" << num(-scale, 3)
                << "</span><span class=\"ramp\"></span><span id=\"legend-hi\">+" << num(scale, 3)
                << "</span><span>share of each source token in the target logit (red raises it, blue lowers it; "
                   "scaled to the largest |share| at this position)</span></div>\n";
        else
            os_ << "<p class=\"note\">The framed token is the chosen position; at the " << esc(r_.level)
                << " level the components are not tokens, see the ranking and the heatmap below.</p>\n";
        os_ << "</section>\n";
    }

    std::string target_line(int n, int k) const {
        double sum = 0;
        for (int m = 0; m < r_.M; ++m) sum += A(m, n, k);
        return "Position <b>" + std::to_string(n) + "</b> " + esc(quoted(r_.token_pieces[n])) + " \xE2\x86\x92 target <b>" +
               esc(quoted(target_piece(n, k))) + "</b> (id " + std::to_string(target_id(n, k)) + "), logit <b>" +
               num(logit(n, k)) + "</b>; the " + std::to_string(r_.M) + " shares sum to " + num(sum) + ".";
    }

    // Components other than the rest, by |share| at (n, k), largest first; ties by index.
    // Token level: the tokens up to n (a later token has no share, by causality).
    std::vector<int> ranked(int n, int k) const {
        std::vector<int> idx(static_cast<size_t>(token_level_ ? n + 1 : rest()));
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(),
                         [&](int a, int b) { return std::abs(A(a, n, k)) > std::abs(A(b, n, k)); });
        return idx;
    }

    bool show_sites() const {
        return (r_.level == "head" || r_.level == "neuron") && !r_.sites.empty();
    }
    // The component's name says no more than its (layer, head / neuron) columns.
    bool name_column() const {
        if (!show_sites()) return true;
        for (int m = 0; m < rest(); ++m)
            if (r_.sites[size_t(m)].index < 0) return true;
        return false;
    }

    void ranking_section() {
        const int n = position_;
        const bool neurons = r_.level == "neuron";
        std::vector<int> order = ranked(n, 0);
        const int shown = std::min(kTopK, int(order.size()));
        os_ << "<section class=\"card\" id=\"ranking\">\n<h2>";
        if (token_level_) os_ << "Source tokens";
        else os_ << "Top " << shown << " " << (neurons ? "neurons" : r_.level == "head" ? "heads" : "components");
        os_ << " by |share| at the chosen position</h2>\n<table class=\"rank\">\n<thead><tr><th class=\"num\">#</th>";
        if (show_sites())
            os_ << "<th class=\"num\">layer</th><th class=\"num\">" << (neurons ? "neuron" : "head") << "</th>";
        if (name_column()) os_ << "<th>component</th>";
        os_ << "<th class=\"num\">share</th><th class=\"num\">of logit</th><th></th></tr></thead>\n"
            << "<tbody id=\"rank-body\">\n";
        const double top = shown > 0 ? std::abs(A(order[0], n)) : 0;
        for (int i = 0; i < shown; ++i) {
            const int m = order[size_t(i)];
            const double v = A(m, n);
            const double w = top > 0 ? 100.0 * std::abs(v) / top : 0;
            char width[32];
            std::snprintf(width, sizeof width, "%.1f%%", w);
            os_ << "<tr data-m=\"" << m << "\"><td class=\"num\">" << i + 1 << "</td>";
            if (show_sites()) {
                const ComponentSite& s = r_.sites[size_t(m)];
                os_ << "<td class=\"num\">" << (s.layer >= 0 ? std::to_string(s.layer) : "") << "</td><td class=\"num\">"
                    << (s.index >= 0 ? std::to_string(s.index) : "") << "</td>";
            }
            if (name_column()) os_ << "<td class=\"mono\">" << esc(label(m)) << "</td>";
            os_ << "<td class=\"num\">" << num(v) << "</td><td class=\"num\">"
                << percent(v, logit(n)) << "</td><td class=\"bar\"><div style=\"width:" << width
                << ";background:" << shade(v > 0 ? 1.0 : -1.0).background << "\"></div></td></tr>\n";
        }
        os_ << "</tbody>\n</table>\n<p class=\"note\" id=\"rest-line\">" << rest_line(n, 0) << "</p>\n</section>\n";
    }

    std::string rest_line(int n, int k) const {
        const double v = A(rest(), n, k);
        const std::string p = percent(v, logit(n, k));
        return "rest (biases and everything the chosen components do not cover): " + num(v) +
               (p.empty() ? "" : " (" + p + " of the logit)") + ". Bars are scaled to the largest |share| listed.";
    }

    void head_grid_section() {
        if (r_.sites.empty() || r_.heads_per_layer <= 0) return;
        const int n = position_, H = r_.heads_per_layer;
        std::vector<int> layers;
        for (const ComponentSite& s : r_.sites)
            if (s.index >= 0 && std::find(layers.begin(), layers.end(), s.layer) == layers.end()) layers.push_back(s.layer);
        std::sort(layers.begin(), layers.end());
        double scale = 0;
        for (int m = 0; m < rest(); ++m)
            if (r_.sites[size_t(m)].index >= 0) scale = std::max(scale, std::abs(A(m, n)));
        if (!(scale > 0)) scale = 1;
        os_ << "<section class=\"card\" id=\"heads\">\n<h2>Heads at the chosen position (layer \xC3\x97 head)</h2>\n"
            << "<table class=\"grid\">\n<thead><tr><th>layer \\ head</th>";
        for (int h = 0; h < H; ++h) os_ << "<th>" << h << "</th>";
        os_ << "</tr></thead>\n<tbody>\n";
        for (int l : layers) {
            os_ << "<tr><th>" << l << "</th>";
            for (int h = 0; h < H; ++h) {
                int m = -1;
                for (int c = 0; c < rest(); ++c)
                    if (r_.sites[size_t(c)].layer == l && r_.sites[size_t(c)].index == h) m = c;
                if (m < 0) {
                    os_ << "<td class=\"na\" title=\"layer " << l << " head " << h << ": not decomposed\">\xE2\x80\x93</td>";
                    continue;
                }
                const double v = A(m, n);
                os_ << "<td data-m=\"" << m << "\" style=\"" << style_for(v, scale) << "\" title=\""
                    << esc("layer " + std::to_string(l) + " head " + std::to_string(h) + "\n" + share_text(v, n, 0))
                    << "\">" << num(v, 2) << "</td>";
            }
            os_ << "</tr>\n";
        }
        os_ << "</tbody>\n</table>\n<p class=\"note\">Colours scaled to the largest |share| among the heads.</p>\n</section>\n";
    }

    // Heatmap columns: every component when there are few; else the kMaxHeatColumns - 1
    // chosen components with the largest |share| at any position, in their order, and the rest.
    std::vector<int> heat_columns() const {
        std::vector<int> cols(size_t(r_.M));
        std::iota(cols.begin(), cols.end(), 0);
        if (r_.M <= kMaxHeatColumns) return cols;
        std::vector<double> peak(size_t(rest()), 0.0);
        for (int m = 0; m < rest(); ++m)
            for (int n = 0; n < r_.N; ++n)
                for (int k = 0; k < r_.K; ++k) peak[size_t(m)] = std::max(peak[size_t(m)], std::abs(A(m, n, k)));
        std::vector<int> idx(static_cast<size_t>(rest()));
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return peak[size_t(a)] > peak[size_t(b)]; });
        idx.resize(size_t(kMaxHeatColumns - 1));
        std::sort(idx.begin(), idx.end());
        idx.push_back(rest());
        return idx;
    }

    void heatmap_section() {
        const std::vector<int> cols = heat_columns();
        const bool numbers = int(cols.size()) <= kCellNumbersUpTo;
        os_ << "<section class=\"card\" id=\"heatmap\">\n<h2>Shares by position (" << esc(heat_title()) << ")</h2>\n";
        if (int(cols.size()) < r_.M)
            os_ << "<p class=\"note\">Showing " << cols.size() << " of " << r_.M
                << " components: those with the largest |share| at any position, and the rest.</p>\n";
        os_ << "<div class=\"scroll\">\n<table class=\"heat\" id=\"heat\">\n<thead><tr><th class=\"pos\">pos</th>"
            << "<th class=\"piece\">token</th><th class=\"piece\">\xE2\x86\x92 target</th>";
        for (int m : cols) os_ << "<th class=\"col\" title=\"" << esc(label(m)) << "\">" << esc(column_label(m)) << "</th>";
        os_ << "</tr></thead>\n<tbody>\n";
        for (int n = 0; n < r_.N; ++n) {
            const double scale = scale_at(n);
            os_ << "<tr data-pos=\"" << n << "\"" << (n == position_ ? " class=\"sel\"" : "") << "><th class=\"pos\">" << n
                << "</th><th class=\"piece\">" << esc(r_.token_pieces[n]) << "</th><th class=\"piece\" data-t=\"" << n
                << "\">" << esc(target_piece(n)) << "</th>";
            for (int m : cols) {
                if (token_level_ && m < r_.N && m > n) {
                    os_ << "<td class=\"c none\"></td>";  // a later token: no share, by causality
                    continue;
                }
                const double v = A(m, n);
                os_ << "<td class=\"c\" data-m=\"" << m << "\" style=\"" << style_for(v, scale) << "\" title=\""
                    << esc("position " + std::to_string(n) + " " + quoted(r_.token_pieces[n]) + " \xE2\x86\x92 " +
                           quoted(target_piece(n)) + "\n" + label(m) + "\n" + share_text(v, n, 0))
                    << "\">" << (numbers ? num(v, 2) : "") << "</td>";
            }
            os_ << "</tr>\n";
        }
        os_ << "</tbody>\n</table>\n</div>\n<p class=\"note\">Each row is scaled to its largest |share| among the "
               "chosen components (the rest column may saturate); hover a cell for its value.</p>\n</section>\n";
    }

    std::string heat_title() const {
        if (token_level_) return "query position \xC3\x97 source token";
        return "position \xC3\x97 component";
    }

    std::string column_label(int m) const {
        if (token_level_ && m < r_.N) return std::to_string(m) + " " + r_.token_pieces[m];
        return r_.component_names[m];
    }

    void footer() {
        os_ << "<footer>Share = the component's term in the target logit: W_U[target] \xC2\xB7 NormF(component) "
               "with the final norm's factors frozen; the shares of all components sum to the logit. "
               "Open this page with #pos=N (and &amp;target=K) to start at position N.</footer>\n"
            << "</main>\n";
        script();
        os_ << "</body>\n</html>\n";
    }

    // The numbers the selector needs, as JSON safe inside <script> (no '<', '>', '&').
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
        j["cellNumbers"] = int(heat_columns().size()) <= kCellNumbersUpTo;
        std::string text = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
        text.pop_back();  // the closing brace; the numbers follow, at six significant digits
        auto numbers = [&](const char* name, const std::vector<double>& v) {
            text += ",\"";
            text += name;
            text += "\":[";
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) text += ',';
                text += std::isfinite(v[i]) ? num(v[i]) : "null";
            }
            text += ']';
        };
        numbers("logits", r_.target_logits);
        std::vector<double> sums(r_.target_logits.size(), 0.0);
        for (int n = 0; n < r_.N; ++n)
            for (int k = 0; k < r_.K; ++k)
                for (int m = 0; m < r_.M; ++m) sums[size_t(n) * r_.K + k] += A(m, n, k);
        numbers("sums", sums);
        numbers("A", r_.logit_attribution);
        text += '}';
        std::string safe;
        for (char c : text) {
            if (c == '<') safe += "\\u003c";
            else if (c == '>') safe += "\\u003e";
            else if (c == '&') safe += "\\u0026";
            else safe += c;
        }
        return safe;
    }

    void script() {
        if (r_.logit_attribution.size() > kMaxEmbedded) {
            os_ << "<p class=\"note\">(" << r_.logit_attribution.size()
                << " shares are too many to embed: the selector is off and the page shows the default position.)</p>\n";
            return;
        }
        os_ << "<script type=\"application/json\" id=\"depass-data\">" << data_json() << "</script>\n<script>\n"
            << report_assets::js() << "</script>\n";
    }
};

}  // namespace

std::string render_report_html(const AttributionReport& r) { return Page(r).render(); }

}  // namespace depass
