// svg.cpp -- minimal SVG charts written by hand: line charts (faithfulness curves),
// grouped bars (speed, head/neuron ablations) and a scatter plot (scores vs effects).
// Plain SVG 1.1, no scripts, no external fonts; every chart is one self-contained string.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "depass/eval.hpp"

namespace depass::eval {

namespace {

const char* kPalette[] = {"#d62728", "#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd",
                          "#ff7f0e", "#8c564b", "#17becf", "#e377c2", "#bcbd22"};
constexpr int kPaletteSize = 10;

std::string esc(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '&')
            o += "&amp;";
        else if (c == '<')
            o += "&lt;";
        else if (c == '>')
            o += "&gt;";
        else if (c == '"')
            o += "&quot;";
        else
            o += c;
    }
    return o;
}

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", v);
    return b;
}

std::string label(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", std::abs(v) < 1e-12 ? 0.0 : v);
    return b;
}

// Ticks at multiples of 1, 2 or 5 x 10^k covering [lo, hi] with about `n` steps.
std::vector<double> nice_ticks(double lo, double hi, int n = 5) {
    if (!(hi > lo)) return {lo};
    const double raw = (hi - lo) / n, mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * mag >= raw) {
            step = m * mag;
            break;
        }
    std::vector<double> t;
    for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
    return t;
}

struct Frame {
    double W = 800, H = 440, left = 70, right = 230, top = 44, bottom = 62;
    double pw() const { return W - left - right; }
    double ph() const { return H - top - bottom; }
};

void open_svg(std::ostringstream& os, const Frame& f, const std::string& title) {
    os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << f.W << "\" height=\"" << f.H
       << "\" viewBox=\"0 0 " << f.W << " " << f.H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
       << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
       << "<text x=\"" << num(f.W / 2) << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << esc(title)
       << "</text>\n";
}

void axis_labels(std::ostringstream& os, const Frame& f, const std::string& x_label,
                 const std::string& y_label) {
    os << "<text x=\"" << num(f.left + f.pw() / 2) << "\" y=\"" << num(f.H - 16)
       << "\" text-anchor=\"middle\">" << esc(x_label) << "</text>\n"
       << "<text transform=\"translate(18," << num(f.top + f.ph() / 2)
       << ") rotate(-90)\" text-anchor=\"middle\">" << esc(y_label) << "</text>\n"
       << "<rect x=\"" << num(f.left) << "\" y=\"" << num(f.top) << "\" width=\"" << num(f.pw())
       << "\" height=\"" << num(f.ph()) << "\" fill=\"none\" stroke=\"black\"/>\n";
}

void legend(std::ostringstream& os, const Frame& f, const std::vector<std::string>& names) {
    for (size_t i = 0; i < names.size(); ++i) {
        const double y = f.top + 10 + 20 * double(i);
        os << "<rect x=\"" << num(f.W - f.right + 14) << "\" y=\"" << num(y)
           << "\" width=\"14\" height=\"10\" fill=\"" << kPalette[i % kPaletteSize] << "\"/>\n"
           << "<text x=\"" << num(f.W - f.right + 34) << "\" y=\"" << num(y + 9) << "\">" << esc(names[i])
           << "</text>\n";
    }
}

}  // namespace

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series, double x_min, double x_max, double y_min,
                           double y_max) {
    if (!(x_max > x_min) || !(y_max > y_min)) throw Error("svg_line_chart: empty axis range");
    Frame f;
    auto px = [&](double x) { return f.left + (x - x_min) / (x_max - x_min) * f.pw(); };
    auto py = [&](double y) {
        return f.top + (1 - (std::clamp(y, y_min, y_max) - y_min) / (y_max - y_min)) * f.ph();
    };
    std::ostringstream os;
    open_svg(os, f, title);
    for (double t : nice_ticks(y_min, y_max))
        os << "<line x1=\"" << num(f.left) << "\" x2=\"" << num(f.left + f.pw()) << "\" y1=\"" << num(py(t))
           << "\" y2=\"" << num(py(t)) << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << num(f.left - 6)
           << "\" y=\"" << num(py(t) + 4) << "\" text-anchor=\"end\">" << label(t) << "</text>\n";
    for (double t : nice_ticks(x_min, x_max, 9))
        os << "<line x1=\"" << num(px(t)) << "\" x2=\"" << num(px(t)) << "\" y1=\"" << num(f.top + f.ph())
           << "\" y2=\"" << num(f.top + f.ph() + 5) << "\" stroke=\"black\"/>\n<text x=\"" << num(px(t))
           << "\" y=\"" << num(f.top + f.ph() + 18) << "\" text-anchor=\"middle\">" << label(t)
           << "</text>\n";
    axis_labels(os, f, x_label, y_label);
    std::vector<std::string> names;
    for (size_t s = 0; s < series.size(); ++s) {
        const Series& ser = series[s];
        if (ser.x.size() != ser.y.size())
            throw Error("svg_line_chart: series '" + ser.name + "' has unequal x and y");
        const char* col = kPalette[s % kPaletteSize];
        os << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"" << (s == 0 ? 2.5 : 1.5)
           << "\" points=\"";
        for (size_t i = 0; i < ser.x.size(); ++i)
            os << (i ? " " : "") << num(px(ser.x[i])) << "," << num(py(ser.y[i]));
        os << "\"/>\n";
        for (size_t i = 0; i < ser.x.size(); ++i)
            os << "<circle cx=\"" << num(px(ser.x[i])) << "\" cy=\"" << num(py(ser.y[i]))
               << "\" r=\"2.5\" fill=\"" << col << "\"/>\n";
        names.push_back(ser.name);
    }
    legend(os, f, names);
    os << "</svg>\n";
    return os.str();
}

std::string svg_bar_chart(const std::string& title, const std::string& y_label,
                          const std::vector<std::string>& bar_names, const std::vector<BarGroup>& groups,
                          bool log_scale, const std::string& value_format) {
    if (groups.empty() || bar_names.empty()) throw Error("svg_bar_chart: nothing to draw");
    double lo = log_scale ? 1e300 : 0.0, hi = log_scale ? 0.0 : -1e300;
    for (const BarGroup& g : groups) {
        if (g.values.size() != bar_names.size())
            throw Error("svg_bar_chart: group '" + g.label + "' has " + std::to_string(g.values.size()) +
                        " values for " + std::to_string(bar_names.size()) + " bar series");
        for (double v : g.values) {
            if (log_scale && !(v > 0))
                throw Error("svg_bar_chart: log scale needs values > 0 (group '" + g.label + "')");
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    }
    std::vector<double> ticks;
    if (log_scale) {
        lo = std::pow(10.0, std::floor(std::log10(lo)));
        hi = std::pow(10.0, std::ceil(std::log10(hi) + 1e-9));
        for (double t = lo; t <= hi * 1.0001; t *= 10) ticks.push_back(t);
    } else {
        if (hi <= lo) hi = lo + 1;
        ticks = nice_ticks(lo, hi);
        lo = std::min(lo, ticks.front());
        hi = std::max(hi, ticks.back());
        if (ticks.back() < hi) ticks.push_back(ticks.back() + (ticks.size() > 1 ? ticks[1] - ticks[0] : 1));
        hi = ticks.back();
    }
    Frame f;
    f.bottom = 78;
    auto ty = [&](double v) { return log_scale ? std::log10(v) : v; };
    auto py = [&](double v) { return f.top + (1 - (ty(v) - ty(lo)) / (ty(hi) - ty(lo))) * f.ph(); };
    std::ostringstream os;
    open_svg(os, f, title);
    for (double t : ticks)
        os << "<line x1=\"" << num(f.left) << "\" x2=\"" << num(f.left + f.pw()) << "\" y1=\"" << num(py(t))
           << "\" y2=\"" << num(py(t)) << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << num(f.left - 6)
           << "\" y=\"" << num(py(t) + 4) << "\" text-anchor=\"end\">" << label(t) << "</text>\n";
    const double gw = f.pw() / double(groups.size());
    const double bw = gw * 0.8 / double(bar_names.size());
    const double base = log_scale ? py(lo) : py(std::max(lo, 0.0));
    for (size_t g = 0; g < groups.size(); ++g) {
        const double x0 = f.left + gw * double(g) + gw * 0.1;
        for (size_t b = 0; b < bar_names.size(); ++b) {
            const double v = groups[g].values[b], y = py(v);
            const double top = std::min(y, base), h = std::abs(base - y);
            os << "<rect x=\"" << num(x0 + bw * double(b)) << "\" y=\"" << num(top) << "\" width=\""
               << num(bw * 0.92) << "\" height=\"" << num(std::max(h, 0.5)) << "\" fill=\""
               << kPalette[b % kPaletteSize] << "\"/>\n";
            char buf[64];
            std::snprintf(buf, sizeof buf, value_format.c_str(), v);
            if (std::string(buf).find_first_not_of("-0.") == std::string::npos && buf[0] == '-')
                buf[0] = ' ';  // no "-0"
            os << "<text x=\"" << num(x0 + bw * (double(b) + 0.46)) << "\" y=\"" << num(top - 3)
               << "\" text-anchor=\"middle\" font-size=\"9\">" << esc(buf) << "</text>\n";
        }
        // the group label, one line per '\n'
        std::istringstream lines(groups[g].label);
        std::string line;
        for (int k = 0; std::getline(lines, line); ++k)
            os << "<text x=\"" << num(f.left + gw * (double(g) + 0.5)) << "\" y=\""
               << num(f.top + f.ph() + 16 + 14 * k) << "\" text-anchor=\"middle\" font-size=\"11\">"
               << esc(line) << "</text>\n";
    }
    axis_labels(os, f, "", y_label);
    legend(os, f, bar_names);
    os << "</svg>\n";
    return os.str();
}

std::string svg_scatter(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<double>& x, const std::vector<double>& y) {
    if (x.size() != y.size() || x.empty())
        throw Error("svg_scatter: x and y must be non-empty and of equal length");
    double x0 = *std::min_element(x.begin(), x.end()), x1 = *std::max_element(x.begin(), x.end());
    double y0 = *std::min_element(y.begin(), y.end()), y1 = *std::max_element(y.begin(), y.end());
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    const std::vector<double> xt = nice_ticks(x0, x1, 8), yt = nice_ticks(y0, y1, 8);
    x0 = std::min(x0, xt.front());
    x1 = std::max(x1, xt.back());
    y0 = std::min(y0, yt.front());
    y1 = std::max(y1, yt.back());
    Frame f;
    f.right = 30;
    auto px = [&](double v) { return f.left + (v - x0) / (x1 - x0) * f.pw(); };
    auto py = [&](double v) { return f.top + (1 - (v - y0) / (y1 - y0)) * f.ph(); };
    std::ostringstream os;
    open_svg(os, f, title);
    for (double t : yt)
        os << "<line x1=\"" << num(f.left) << "\" x2=\"" << num(f.left + f.pw()) << "\" y1=\"" << num(py(t))
           << "\" y2=\"" << num(py(t)) << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << num(f.left - 6)
           << "\" y=\"" << num(py(t) + 4) << "\" text-anchor=\"end\">" << label(t) << "</text>\n";
    for (double t : xt)
        os << "<line x1=\"" << num(px(t)) << "\" x2=\"" << num(px(t)) << "\" y1=\"" << num(f.top)
           << "\" y2=\"" << num(f.top + f.ph()) << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << num(px(t))
           << "\" y=\"" << num(f.top + f.ph() + 18) << "\" text-anchor=\"middle\">" << label(t)
           << "</text>\n";
    axis_labels(os, f, x_label, y_label);
    for (size_t i = 0; i < x.size(); ++i)
        os << "<circle cx=\"" << num(px(x[i])) << "\" cy=\"" << num(py(y[i])) << "\" r=\"1.8\" fill=\""
           << kPalette[2] << "\" fill-opacity=\"0.6\"/>\n";
    // least-squares line y = a + b x
    double mx = 0, my = 0;
    for (size_t i = 0; i < x.size(); ++i) mx += x[i] / double(x.size()), my += y[i] / double(y.size());
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
    if (sxx > 0) {  // drawn across the whole x range, clipped to the plot area
        const double b = sxy / sxx, a = my - b * mx;
        os << "<clipPath id=\"plot\"><rect x=\"" << num(f.left) << "\" y=\"" << num(f.top) << "\" width=\""
           << num(f.pw()) << "\" height=\"" << num(f.ph()) << "\"/></clipPath>\n"
           << "<line clip-path=\"url(#plot)\" x1=\"" << num(px(x0)) << "\" y1=\"" << num(py(a + b * x0))
           << "\" x2=\"" << num(px(x1)) << "\" y2=\"" << num(py(a + b * x1)) << "\" stroke=\"" << kPalette[0]
           << "\" stroke-width=\"1.5\"/>\n";
    }
    os << "</svg>\n";
    return os.str();
}

}  // namespace depass::eval
