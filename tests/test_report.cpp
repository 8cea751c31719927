// Attribution reports: the HTML page rendered from a real decomposition of the
// shipped model (self-contained, every piece escaped, the embedded numbers are the
// attribution's; what the page's script draws from them is checked in
// test_report_browser), the JSON document (shares sum to the target logits) and the
// .npy directory (identical to the safetensors output of the same run), the QK
// section's numbers (the output file's, in their own block; nothing of it in a page
// without a split), and all-or-nothing writing of several outputs.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "depass/attribute.hpp"
#include "depass/decompose.hpp"
#include "depass/io.hpp"
#include "depass/report.hpp"
#include "depass/tokenizer.hpp"
#include "depass/tolerance.hpp"
#include "report_runs.hpp"
#include "test_support.hpp"

using namespace depass;
using depass_test::real_run;
using depass_test::RealRun;
namespace fs = std::filesystem;

namespace {

std::string model_path() { return depass_test::report_model_path(); }
const auto tmp = depass_test::temp_path;
const auto q = depass_test::shell_quoted;
// One thread: outputs of two runs are compared bit for bit.
int run(const std::string& args, std::string* out = nullptr) {
    return depass_test::run_command("OMP_NUM_THREADS=1 " + q(depass_test::cli_path()) + " " + args, out);
}

// The test's own HTML escaping (the five characters that matter).
std::string html_escaped(const std::string& s) {
    std::string out;
    for (char c : s) {
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
            default:
                out += c;
        }
    }
    return out;
}

const auto count = depass_test::count_of;
using depass_test::between;

// The page as written: the header and the numbers; what the script draws from them
// (prompt, ranking, head grid, heatmap) is checked in test_report_browser.
template <class T>
void check_html_of_real_run(const RealRun<T>& r) {
    const AttributionReport& rep = r.rep;
    const std::string html = render_report_html(rep);
    INFO(rep.level << " level, " << rep.dtype);

    // Self-contained: nothing fetched from anywhere.
    for (const char* bad : {"http://", "https://", "<script src", "<link", "@import", "url("}) {
        INFO(bad);
        CHECK(html.find(bad) == std::string::npos);
    }
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(html.find("</html>") != std::string::npos);

    // Deterministic.
    CHECK(render_report_html(rep) == html);

    // The model name escaped.
    CHECK(html.find(html_escaped(rep.model)) != std::string::npos);
    CHECK(html.find(rep.model) == std::string::npos);

    // The completeness line, with the error it was given.
    const std::string line = between(html, "id=\"completeness\"", "</p>");
    REQUIRE(!line.empty());
    CHECK(line.find("Completeness:") != std::string::npos);
    const double shown_abs = std::strtod(between(line, "max abs error ", ",").c_str(), nullptr);
    const double shown_rel = std::strtod(between(line, "max relative error ", " ").c_str(), nullptr);
    CHECK(std::abs(shown_abs - rep.completeness_max_abs) <= 5e-3 * rep.completeness_max_abs);
    CHECK(std::abs(shown_rel - rep.completeness_max_rel) <= 5e-3 * rep.completeness_max_rel);
    CHECK(line.find("inside") != std::string::npos);

    // Drawn once, by the script: no prompt, table or heatmap markup in the page as written,
    // only a line for a browser without JavaScript.
    CHECK(count(html, "<span class=\"tok") == 0);
    CHECK(count(html, "<td") == 0);
    CHECK(count(html, "<noscript>") == 1);

    // The numbers the page is drawn from: every share and target logit at six significant
    // digits, every token and target piece, the sums of the shares.
    const std::string data =
        between(html, "<script type=\"application/json\" id=\"depass-data\">", "</script>");
    REQUIRE(!data.empty());
    const auto j = nlohmann::json::parse(data);
    CHECK(j["N"] == rep.N);
    CHECK(j["M"] == rep.M);
    CHECK(j["K"] == rep.K);
    CHECK(j["pieces"].get<std::vector<std::string>>() == rep.token_pieces);
    CHECK(j["targetPieces"].get<std::vector<std::string>>() == rep.target_pieces);
    CHECK(j["targets"].get<std::vector<int>>() == rep.targets);
    REQUIRE(j["A"].size() == rep.logit_attribution.size());
    double worst = 0;
    for (size_t i = 0; i < rep.logit_attribution.size(); ++i) {
        const double want = rep.logit_attribution[i];
        worst = std::max(worst, std::abs(j["A"][i].get<double>() - want) / std::max(std::abs(want), 1e-300));
    }
    CHECK(worst <= 5.0000001e-6);
    REQUIRE(j["sums"].size() == size_t(rep.N) * rep.K);
    for (int n = 0; n < rep.N; ++n) {
        const int target = r.targets[size_t(n)][0];
        double mass = 0;
        for (int m = 0; m < rep.M; ++m) mass += std::abs(rep.attribution(m, n, 0));
        CHECK(std::abs(j["logits"][size_t(n) * rep.K].get<double>() - r.logits(n, target)) <=
              5e-6 * std::abs(r.logits(n, target)));
        CHECK(std::abs(j["sums"][size_t(n) * rep.K].get<double>() - r.logits(n, target)) <= 1e-5 * mass);
    }
}

}  // namespace

TEST_CASE("HTML report of a token-level decomposition of the shipped model", "[report]") {
    check_html_of_real_run(real_run<double>("token", 0, "Once upon a time, there was a little girl"));
    check_html_of_real_run(real_run<float>("token", 0, "Once upon a time, there was a little girl"));
}

TEST_CASE("HTML report: head and neuron levels", "[report]") {
    // The grid and the top-20 table are drawn by the script: see test_report_browser.
    RealRun<double> heads = real_run<double>("head", 2, "Once upon a time");
    check_html_of_real_run(heads);
    // The grid's width, for the script.
    CHECK(render_report_html(heads.rep).find("data-heads=\"" + std::to_string(heads.rep.heads_per_layer) +
                                             "\"") != std::string::npos);
    check_html_of_real_run(real_run<double>("neuron", 1, "Once upon a time"));
}

TEST_CASE("HTML report escapes every piece of text", "[report]") {
    // The text the script draws is checked in test_report_browser; here the page as written.
    AttributionReport r = depass_test::escaping_report();
    const std::string html = render_report_html(r);
    CHECK(count(html, "<script") == 2);  // the embedded numbers and the code that draws the page
    CHECK(count(html, "</script>") == 2);
    CHECK(html.find("alert(1)</script>") == std::string::npos);
    CHECK(html.find("m&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    // Inside the embedded JSON no '<' survives.
    const std::string data =
        between(html, "<script type=\"application/json\" id=\"depass-data\">", "</script>");
    REQUIRE(!data.empty());
    CHECK(data.find('<') == std::string::npos);
    auto j = nlohmann::json::parse(data);
    CHECK(j["pieces"][2].get<std::string>().rfind("</script>", 0) == 0);
    CHECK(j["pieces"][1].get<std::string>() == " a&b \"q\" 'x'");
    CHECK(j["targetPieces"][0].get<std::string>() == "<b>");
    CHECK(j["A"].size() == r.logit_attribution.size());
    CHECK(j["A"][2].get<double>() == 2.5);

    // Sizes that do not agree are refused, naming the field.
    r.target_pieces.pop_back();
    CHECK_THROWS_WITH(render_report_html(r), Catch::Contains("target_pieces"));
}

TEST_CASE("HTML report with a QK split: its numbers in their own block; a page without one has none of it",
          "[report][cli][qk]") {
    // What the script draws from the block is checked in test_report_browser.
    const std::string base =
        "attribute --quiet -m " + q(model_path()) + " --ids 1,403,407,261,378 --dtype f64";
    const std::string with = tmp("qk_page.html"), without = tmp("plain_page.html"),
                      st = tmp("qk_page.safetensors");
    std::string log;
    REQUIRE(run(base + " --qk 2 --qk-heads 3,0 --query-positions 4,2 --html " + q(with) + " --out " + q(st),
                &log) == 0);
    REQUIRE(run(base + " --html " + q(without), &log) == 0);
    const std::string page = read_text_file(with), plain = read_text_file(without);

    // The split adds to the page and changes nothing of it: the same report numbers, and none of
    // the section's markers, styles or script in a page without a split.
    const std::string data_tag = "<script type=\"application/json\" id=\"depass-data\">";
    CHECK(between(page, data_tag, "</script>") == between(plain, data_tag, "</script>"));
    for (const char* mark : {"depass-qk", "qk-view", "QK split", "qk-cols", "keyShare"}) {
        INFO(mark);
        CHECK(plain.find(mark) == std::string::npos);
        CHECK(page.find(mark) != std::string::npos);
    }
    CHECK(count(plain, "<script") == 2);
    CHECK(count(page, "<script") == 4);
    CHECK(count(page, "<td") == 0);  // drawn by the script
    for (const char* bad : {"http://", "https://", "<script src", "<link", "@import", "url("}) {
        INFO(bad);
        CHECK(page.find(bad) == std::string::npos);
    }
    CHECK(page.find("QK split <b>block 2, 2 heads, 2 query positions</b>") != std::string::npos);

    // The block's numbers: the output file's key-side shares and top pairs, each logit row the sum
    // of its pairs, and its softmax the model's own attention (recorded by a forward pass here).
    const std::string block =
        between(page, "<script type=\"application/json\" id=\"depass-qk\">", "</script>");
    REQUIRE(!block.empty());
    CHECK(block.find('<') == std::string::npos);
    const auto j = nlohmann::json::parse(block);
    CHECK(j["layer"] == 2);
    CHECK(j["heads"].get<std::vector<int>>() == std::vector<int>{3, 0});
    CHECK(j["queries"].get<std::vector<int>>() == std::vector<int>{4, 2});
    CHECK(j["top"] == 5);
    CHECK(j["tolerance"].get<double>() == tolerance::qk_rel<double>());
    const SafeTensors file = SafeTensors::open(st);
    const Tensor<double> share = file.read<double>("qk_key_share"), S = file.read<double>("qk_logits");
    const Tensor<double> top_values = file.read<double>("qk_top_values");
    const Tensor<int64_t> top_pairs = file.read<int64_t>("qk_top_pairs");
    auto close = [](double got, double want) {
        return std::abs(got - want) <= 5.0000001e-6 * std::abs(want);
    };
    REQUIRE(j["keyShare"].size() == share.data.size());
    for (size_t i = 0; i < share.data.size(); ++i)
        CHECK(close(j["keyShare"][i].get<double>(), share.data[i]));
    REQUIRE(j["pairValues"].size() == top_values.data.size());
    for (size_t i = 0; i < top_values.data.size(); ++i)
        CHECK(close(j["pairValues"][i].get<double>(), top_values.data[i]));
    CHECK(j["pairs"].get<std::vector<int64_t>>() == top_pairs.data);
    const Model<double> model = load_model<double>(model_path());
    const Trace<double> trace = forward(model, {1, 403, 407, 261, 378});
    const int M = 6, N = 5, Nq = 2;
    const std::vector<int> heads{3, 0}, queries{4, 2};
    for (int h = 0; h < 2; ++h)
        for (int i = 0; i < Nq; ++i)
            for (int k = 0; k < N; ++k) {
                INFO("head " << heads[size_t(h)] << " query " << queries[size_t(i)] << " key " << k);
                double sum = 0;
                for (int m = 0; m < M; ++m)
                    for (int m2 = 0; m2 < M; ++m2)
                        sum += S.data[(((size_t(h) * M + m) * M + m2) * Nq + i) * N + k];
                const size_t at = (size_t(h) * Nq + i) * N + size_t(k);
                CHECK(close(j["logits"][at].get<double>(), sum));
                const double p = k <= queries[size_t(i)]
                                     ? trace.layers[2].probs[size_t(heads[size_t(h)])](queries[size_t(i)], k)
                                     : 0.0;
                CHECK(std::abs(j["probs"][at].get<double>() - p) <=
                      5.0000001e-6 * p + tolerance::qk_rel<double>());
            }

    // Sizes that do not agree are refused, naming the field.
    AttributionReport r = depass_test::escaping_report();
    r.qk.layer = 0;
    r.qk.heads = {0};
    r.qk.queries = {2};
    r.qk.top = 1;
    r.qk.key_share.assign(size_t(r.M) * r.N, 0.0);
    r.qk.logits.assign(size_t(r.N), 0.0);
    r.qk.probs = r.qk.logits;
    r.qk.top_values.assign(size_t(r.N), 0.0);
    r.qk.top_pairs.assign(size_t(2 * r.N), 0);
    CHECK(count(render_report_html(r), "<script") == 4);
    r.qk.top_pairs[3] = r.M;
    CHECK_THROWS_WITH(render_report_html(r), Catch::Contains("qk.top_pairs names component 4"));
    r.qk.top_pairs[3] = 0;
    r.qk.key_share.pop_back();
    CHECK_THROWS_WITH(render_report_html(r), Catch::Contains("qk.key_share has 11 entries, expected 12"));
    r.qk.key_share.push_back(0);
    r.qk.queries = {3};
    CHECK_THROWS_WITH(render_report_html(r), Catch::Contains("qk query position 3 is outside [0, 3)"));
}

TEST_CASE("attribute --format json: shares sum to the target logits", "[report][cli]") {
    const std::string prompt = "Once upon a time there was";
    // The model's own logits, from the recorded pass.
    const std::string trace = tmp("json_trace.safetensors");
    REQUIRE(run("forward --quiet -m " + q(model_path()) + " --prompt " + q(prompt) + " --dtype f64 --dump " +
                q(trace)) == 0);
    const Tensor<double> logits = SafeTensors::open(trace).read<double>("logits");
    // Softmax (the default rule) and linear. Only the linear rule's float results are
    // compared bit for bit with a second run: the softmax rule's vectorised exp starts
    // at an alignment-dependent element, so its last bits can differ between processes.
    for (const char* rule : {"softmax", "linear"})
        for (const char* dtype : {"f64", "f32"}) {
            INFO(dtype << ", rule " << rule);
            const bool f64 = std::string(dtype) == "f64";
            const std::string js = tmp(std::string("attr_") + dtype + "_" + rule + ".json");
            const std::string st = tmp(std::string("attr_") + dtype + "_" + rule + ".safetensors");
            const std::string common = "attribute --quiet -m " + q(model_path()) + " --prompt " + q(prompt) +
                                       " --dtype " + dtype + " --rule " + rule +
                                       " --level head --layer 1 --targets 100,200,300";
            std::string log;
            REQUIRE(run(common + " --format json --json-components --out " + q(js), &log) == 0);
            auto j = nlohmann::json::parse(read_text_file(js));
            CHECK(j["format"] == "depass-attribution");
            CHECK(j["level"] == "head");
            CHECK(j["dtype"] == dtype);
            const int N = j["N"], M = j["M"], K = j["K"];
            CHECK(K == 3);
            CHECK(M == 8 + 1);
            REQUIRE(j["component_names"].size() == size_t(M));
            CHECK(j["component_names"][M - 1] == "rest");
            CHECK(j["component_sites"][3] == nlohmann::json::array({1, 3}));
            auto A = j["logit_attribution"];
            auto TL = j["target_logits"];
            REQUIRE(A.size() == size_t(M));
            double scale = 0, worst = 0;
            for (int n = 0; n < N; ++n)
                for (int k = 0; k < K; ++k) {
                    CHECK(j["targets"][n][k] == 100 * (k + 1));
                    double sum = 0;
                    for (int m = 0; m < M; ++m) sum += A[m][n][k].get<double>();
                    scale = std::max(scale, std::abs(TL[n][k].get<double>()));
                    worst = std::max(worst, std::abs(sum - TL[n][k].get<double>()));
                }
            CHECK(worst <= (f64 ? 1e-12 : 1e-5) * scale);
            // The target logits are the model's.
            const int64_t V = logits.shape[1];
            REQUIRE(logits.shape[0] == N);
            double tl = 0;
            for (int n = 0; n < N; ++n)
                for (int k = 0; k < K; ++k)
                    tl = std::max(
                        tl, std::abs(TL[n][k].get<double>() - logits.data[size_t(n) * V + 100 * (k + 1)]));
            CHECK(tl <= (f64 ? 0.0 : tolerance::golden_f32_rel * scale));
            if (std::string(rule) != "linear") continue;

            // The same numbers as the safetensors output of the same command.
            REQUIRE(run(common + " --out " + q(st), &log) == 0);
            SafeTensors s = SafeTensors::open(st);
            auto sa = s.read<double>("logit_attribution"), sc = s.read<double>("components");
            REQUIRE(sa.shape == std::vector<int64_t>{M, N, K});
            double d = 0;
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < N; ++n)
                    for (int k = 0; k < K; ++k)
                        d = std::max(
                            d, std::abs(A[m][n][k].get<double>() - sa.data[(size_t(m) * N + n) * K + k]));
            CHECK(d == 0);
            auto C = j["components"];
            const int64_t D = sc.shape[2];
            REQUIRE(C.size() == size_t(M));
            REQUIRE(C[0].size() == size_t(N));
            REQUIRE(C[0][0].size() == size_t(D));
            d = 0;
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < N; ++n)
                    for (int64_t e = 0; e < D; ++e)
                        d = std::max(
                            d, std::abs(C[m][n][e].get<double>() - sc.data[(size_t(m) * N + n) * D + e]));
            CHECK(d == 0);
        }
    // Without --json-components the big array is left out.
    const std::string small = tmp("small.json");
    REQUIRE(run("attribute --quiet -m " + q(model_path()) + " --prompt hi --format json --out " + q(small)) ==
            0);
    auto j = nlohmann::json::parse(read_text_file(small));
    CHECK(!j.contains("components"));
    CHECK(j.contains("logit_attribution"));
}

TEST_CASE("attribute --format npy: a directory equal to the safetensors output", "[report][cli]") {
    // The linear rule: two runs are compared bit for bit (see above).
    const std::string common =
        "attribute --quiet -m " + q(model_path()) +
        " --prompt 'Once upon a time there was' --level token --rule linear --all-layers";
    const std::string dir = tmp("npy_out"), st = tmp("npy_ref.safetensors");
    REQUIRE(run(common + " --format npy --out " + q(dir)) == 0);
    REQUIRE(run(common + " --out " + q(st)) == 0);
    SafeTensors s = SafeTensors::open(st);
    for (const std::string& name : s.names()) {
        INFO(name);
        const std::string f = dir + "/" + name + ".npy";
        REQUIRE(file_exists(f));
        if (s.info(name).dtype == DType::I64) {
            auto a = read_npy<int64_t>(f);
            auto b = s.read<int64_t>(name);
            CHECK(a.shape == b.shape);
            CHECK(a.data == b.data);
        } else {
            CHECK(s.info(name).dtype == DType::F32);
            auto a = read_npy<float>(f);
            auto b = s.read<float>(name);
            CHECK(a.shape == b.shape);
            CHECK(a.data == b.data);
        }
    }
    auto meta = nlohmann::json::parse(read_text_file(dir + "/meta.json"));
    CHECK(meta["format"] == "depass-attribution");
    CHECK(meta["component_names"].dump() == s.metadata().at("component_names"));
    CHECK(meta["metadata"]["points"].get<std::string>() == s.metadata().at("points"));
    size_t files = 0;
    for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
    CHECK(files == s.names().size() + 1);

    // A second run replaces the earlier output; a directory holding anything else is refused and left alone.
    REQUIRE(run(common + " --format npy --out " + q(dir)) == 0);
    const std::string other = tmp("npy_other");
    fs::create_directories(other);
    write_file_atomic(other + "/notes.txt", "mine");
    std::string log;
    CHECK(run(common + " --format npy --out " + q(other), &log) == 1);
    CHECK(log.find("notes.txt") != std::string::npos);
    CHECK(read_text_file(other + "/notes.txt") == "mine");
    CHECK(std::distance(fs::directory_iterator(other), fs::directory_iterator()) == 1);
}

TEST_CASE("attribute --html: optional --out, usage errors, and nothing partial on failure", "[report][cli]") {
    const std::string base = "attribute --quiet -m " + q(model_path()) + " --prompt 'Once upon a time'";
    const std::string html = tmp("only.html");
    std::string log;
    REQUIRE(run(base + " --html " + q(html), &log) == 0);
    const std::string page = read_text_file(html);
    CHECK(page.find("id=\"completeness\"") != std::string::npos);
    // The ' Once' token among the pieces the page draws.
    const auto data = nlohmann::json::parse(between(page, "id=\"depass-data\">", "</script>"));
    CHECK(data["pieces"][1].get<std::string>() == " Once");
    // Neither --out nor --html, --format without --out, --json-components without json: usage errors.
    CHECK(run(base, &log) == 2);
    CHECK(log.find("--out") != std::string::npos);
    CHECK(run(base + " --html " + q(html) + " --format json", &log) == 2);
    CHECK(run(base + " --out " + q(tmp("x.safetensors")) + " --json-components", &log) == 2);
    CHECK(run(base + " --out " + q(html) + " --html " + q(html), &log) == 2);
    // The HTML cannot be written: the --out file does not appear either, and no temporary is left.
    const std::string out = tmp("pair_out.json");
    CHECK(run(base + " --format json --out " + q(out) + " --html " + q(tmp("no/such/dir/r.html")), &log) ==
          1);
    CHECK(log.find("no/such/dir") != std::string::npos);
    for (auto& e : fs::directory_iterator(depass_test::temp_dir()))
        CHECK(e.path().filename().string().rfind("pair_out", 0) != 0);
    // And the npy directory does not appear when the HTML fails.
    CHECK(run(base + " --format npy --out " + q(tmp("pair_dir")) + " --html " + q(tmp("no/such/dir/r.html")),
              &log) == 1);
    for (auto& e : fs::directory_iterator(depass_test::temp_dir()))
        CHECK(e.path().filename().string().rfind("pair_dir", 0) != 0);
}

TEST_CASE("OutputBatch: all outputs or none", "[report]") {
    const std::string a = tmp("batch_a.txt"), d = tmp("batch_d");
    {
        OutputBatch b;
        write_file_atomic(b.stage_file(a), "A");
        write_npy_directory(b.stage_dir(d), {{"x", {2}, {1.0, 2.0}, false}}, DType::F64,
                            "{\"format\": \"depass-attribution\"}");
        CHECK(!file_exists(a));
        CHECK(!file_exists(d));
        // not committed: the temporaries go away
    }
    for (auto& e : fs::directory_iterator(depass_test::temp_dir()))
        CHECK(e.path().filename().string().rfind("batch_", 0) != 0);
    {
        OutputBatch b;
        write_file_atomic(b.stage_file(a), "A");
        write_npy_directory(b.stage_dir(d), {{"x", {2}, {1.0, 2.0}, false}}, DType::F64,
                            "{\"format\": \"depass-attribution\"}");
        CHECK_THROWS_WITH(b.stage_file(a), Catch::Contains("same path"));
        b.commit();
    }
    CHECK(read_text_file(a) == "A");
    CHECK(read_npy<double>(d + "/x.npy").data == std::vector<double>{1.0, 2.0});
    CHECK_THROWS_WITH(check_npy_directory_target(a), Catch::Contains("not a directory"));
}
