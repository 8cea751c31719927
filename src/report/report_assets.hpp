// report_assets.hpp -- the HTML report's stylesheet and script. Their text is in
// src/report/assets/report.css and report.js (and report_qk.css, report_qk.js for the QK
// section); the build compiles it in (see cmake/embed_assets.cmake), so a page is written
// without reading any file.
#pragma once

#include <cstddef>
#include <string_view>

namespace depass::report_assets {

extern const char report_css[];  // bytes of report.css, then a NUL
extern const std::size_t report_css_size;
extern const char report_js[];  // bytes of report.js, then a NUL
extern const std::size_t report_js_size;

extern const char report_qk_css[];  // report_qk.css: the QK section (pages with a QK split only)
extern const std::size_t report_qk_css_size;
extern const char report_qk_js[];  // report_qk.js
extern const std::size_t report_qk_js_size;

inline std::string_view css() { return {report_css, report_css_size}; }
inline std::string_view js() { return {report_js, report_js_size}; }
inline std::string_view qk_css() { return {report_qk_css, report_qk_css_size}; }
inline std::string_view qk_js() { return {report_qk_js, report_qk_js_size}; }

}  // namespace depass::report_assets
