// The statistics and writers of `depass eval` (include/depass/eval_report.hpp) on small
// made-up samples whose results are worked out by hand in the comments.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "depass/eval.hpp"
#include "depass/eval_report.hpp"
#include "test_support.hpp"

using namespace depass;
namespace ev = depass::eval;

namespace {

// A token summary with two methods (random, depass), percents 10 and 100 and three prompts
// whose per-prompt areas are set by hand; nothing else is filled in beyond what the
// writers read.
ev::TokenEvalSummary made_up_token_summary() {
    ev::TokenEvalSummary s;
    s.options.methods = {ev::TokenMethod::Random, ev::TokenMethod::DePass};
    s.options.percents = {10, 100};
    s.prompts = 3;
    s.deletion = {{40, 50}, {55, 65}};
    s.keeping = {{30, 30}, {25, 15}};
    s.deletion_area = {45, 60};
    s.keeping_area = {30, 20};
    s.deletion_area_se = {1, 2};
    s.keeping_area_se = {3, 4};
    const double del_random[3] = {40, 40, 55}, del_depass[3] = {50, 60, 70};
    const double keep_random[3] = {30, 30, 30}, keep_depass[3] = {10, 20, 30};
    for (int i = 0; i < 3; ++i) {
        ev::PromptTokenResult r;
        r.N = 5 + i;
        r.target = 100 + i;
        r.p_clean = 0.5;
        r.deletion_area = {del_random[i], del_depass[i]};
        r.keeping_area = {keep_random[i], keep_depass[i]};
        s.per_prompt.push_back(r);
        s.prompt_index.push_back(i);
    }
    return s;
}

}  // namespace

TEST_CASE("paired_mean_se: mean and standard error of paired differences by hand", "[eval][stats]") {
    // d = a - b = {2, 3, 2, 5}: mean 12 / 4 = 3; deviations {-1, 0, -1, 2}, squares sum 6,
    // sample variance 6 / 3 = 2, standard error sqrt(2 / 4) = sqrt(0.5).
    const ev::MeanSe r = ev::paired_mean_se({3, 5, 4, 8}, {1, 2, 2, 3});
    CHECK(r.mean == Approx(3.0).epsilon(1e-15));
    CHECK(r.se == Approx(std::sqrt(0.5)).epsilon(1e-15));
    // Swapping the sides flips the mean, not the error.
    const ev::MeanSe s = ev::paired_mean_se({1, 2, 2, 3}, {3, 5, 4, 8});
    CHECK(s.mean == Approx(-3.0).epsilon(1e-15));
    CHECK(s.se == Approx(std::sqrt(0.5)).epsilon(1e-15));
    // Two pairs: d = {1, 4}, mean 2.5, deviations +-1.5, variance 4.5 / 1, se sqrt(4.5 / 2) = 1.5.
    CHECK(ev::paired_mean_se({1, 4}, {0, 0}).se == Approx(1.5).epsilon(1e-15));
    // Equal differences: no spread. 0.1 is not exact in binary, so sum d^2 - n mean^2 may come
    // out slightly negative; the error is clamped to exactly 0, never NaN.
    const ev::MeanSe z = ev::paired_mean_se({0.3, 0.7, 1.1}, {0.2, 0.6, 1.0});
    CHECK(z.mean == Approx(0.1).epsilon(1e-12));
    CHECK(z.se < 1e-8);
    CHECK_FALSE(std::isnan(z.se));
    CHECK_THROWS_AS(ev::paired_mean_se({1}, {2}), Error);
    CHECK_THROWS_AS(ev::paired_mean_se({1, 2, 3}, {1, 2}), Error);
}

TEST_CASE("paired_area_differences: every method against DePass over the prompts", "[eval][stats]") {
    const ev::TokenEvalSummary s = made_up_token_summary();
    const std::vector<ev::PairedAreaDifference> pd = ev::paired_area_differences(s, ev::TokenMethod::DePass);
    REQUIRE(pd.size() == 2);
    // random - depass, deletion: {-10, -20, -15}, mean -15, deviations {5, -5, 0}, squares 50,
    // variance 25, se sqrt(25 / 3).
    CHECK(pd[0].deletion.mean == Approx(-15.0).epsilon(1e-15));
    CHECK(pd[0].deletion.se == Approx(std::sqrt(25.0 / 3)).epsilon(1e-14));
    // keeping: {20, 10, 0}, mean 10, deviations {10, 0, -10}, squares 200, variance 100, se sqrt(100 / 3).
    CHECK(pd[0].keeping.mean == Approx(10.0).epsilon(1e-15));
    CHECK(pd[0].keeping.se == Approx(std::sqrt(100.0 / 3)).epsilon(1e-14));
    // DePass against itself: exactly zero.
    CHECK(pd[1].deletion.mean == 0);
    CHECK(pd[1].deletion.se == 0);
    CHECK(pd[1].keeping.mean == 0);
    CHECK(pd[1].keeping.se == 0);
    // Against random instead: the signs flip, the errors stay.
    const auto pr = ev::paired_area_differences(s, ev::TokenMethod::Random);
    REQUIRE(pr.size() == 2);
    CHECK(pr[1].deletion.mean == Approx(15.0).epsilon(1e-15));
    CHECK(pr[1].keeping.se == Approx(std::sqrt(100.0 / 3)).epsilon(1e-14));
    // Not computable: the reference was not run, or there is only one prompt.
    CHECK(ev::paired_area_differences(s, ev::TokenMethod::Occlusion).empty());
    ev::TokenEvalSummary one = s;
    one.per_prompt.resize(1);
    one.prompt_index.resize(1);
    one.prompts = 1;
    CHECK(ev::paired_area_differences(one, ev::TokenMethod::DePass).empty());
}

TEST_CASE("completeness_gap_stats: means and maxima of the integrated gradients gap by hand",
          "[eval][stats]") {
    // gap {0.2, -0.4}; f(x) - f(0) = {1 - (-1), -1 - (-0.5)} = {2, -0.5}; rel = {0.1, 0.8}.
    std::vector<ev::PromptTokenResult> per(2);
    per[0].ig_gap = 0.2, per[0].ig_f_x = 1, per[0].ig_f_0 = -1;
    per[1].ig_gap = -0.4, per[1].ig_f_x = -1, per[1].ig_f_0 = -0.5;
    const ev::CompletenessGapStats g = ev::completeness_gap_stats(per);
    CHECK(g.mean == Approx(-0.1).epsilon(1e-14));     // (0.2 - 0.4) / 2
    CHECK(g.mean_abs == Approx(0.3).epsilon(1e-14));  // (0.2 + 0.4) / 2
    CHECK(g.max_abs == Approx(0.4).epsilon(1e-15));
    CHECK(g.mean_abs_rel == Approx(0.45).epsilon(1e-14));  // (0.1 + 0.8) / 2
    CHECK(g.max_abs_rel == Approx(0.8).epsilon(1e-14));
    // f(x) = f(0): the relative gap divides by 1e-300 instead of 0 (finite, not NaN).
    per[0].ig_f_0 = per[0].ig_f_x;
    CHECK(ev::completeness_gap_stats(per).max_abs_rel == Approx(0.2 / 1e-300));
    // Integrated gradients not run (NaN gap), or no prompts.
    per[1].ig_gap = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(ev::completeness_gap_stats(per), Error);
    CHECK_THROWS_AS(ev::completeness_gap_stats({}), Error);
}

TEST_CASE("median, and the median of repeated neuron_speed runs", "[eval][stats]") {
    CHECK(ev::median({3, 1, 2}) == 2);
    CHECK(ev::median({4, 1, 3, 2}) == 2.5);  // (2 + 3) / 2
    CHECK(ev::median({7}) == 7);
    CHECK_THROWS_AS(ev::median({}), Error);

    auto run = [](double depass, double ablation_cpu, std::vector<double> layers, double spearman) {
        ev::NeuronSpeedResult r;
        r.L = 2;
        r.depass_seconds = depass;
        r.ablation_cpu = ablation_cpu;
        r.depass_layer_seconds = layers;
        r.ablation_layer_seconds = {layers[1], layers[0]};
        r.spearman = spearman;
        return r;
    };
    // Three runs: whole-run times and per-layer times are the middle value.
    const ev::NeuronSpeedResult m3 =
        ev::median_of_runs({run(3, 30, {0.3, 3}, 0.9), run(1, 20, {0.1, 1}, 0.8), run(2, 10, {0.2, 2}, 0.7)});
    CHECK(m3.depass_seconds == 2);
    CHECK(m3.ablation_cpu == 20);
    CHECK(m3.depass_layer_seconds == std::vector<double>{0.2, 2});
    CHECK(m3.ablation_layer_seconds == std::vector<double>{2, 0.2});
    CHECK(m3.spearman == 0.9);  // from the first run
    // Two runs: whole-run times are the mean of the two, per-layer times the larger one.
    const ev::NeuronSpeedResult m2 =
        ev::median_of_runs({run(1, 10, {0.1, 1}, 0.5), run(3, 20, {0.3, 3}, 0.6)});
    CHECK(m2.depass_seconds == 2);
    CHECK(m2.ablation_cpu == 15);
    CHECK(m2.depass_layer_seconds == std::vector<double>{0.3, 3});
    CHECK(m2.spearman == 0.5);
    CHECK_THROWS_AS(ev::median_of_runs({}), Error);
}

TEST_CASE("summarise_cost: means per prompt and the largest gap by hand", "[eval][stats]") {
    std::vector<ev::TokenCostResult> runs(3);
    const int N[3] = {4, 6, 11};
    const double dep[3] = {1, 2, 6}, ig[3] = {10, 20, 60}, ixg[3] = {0.5, 0.5, 2}, gap[3] = {0.1, -0.3, 0.2};
    for (int i = 0; i < 3; ++i) {
        runs[i].N = N[i];
        runs[i].depass_seconds = dep[i];
        runs[i].ig_seconds = ig[i];
        runs[i].ixg_seconds = ixg[i];
        runs[i].ig_gap = gap[i];
    }
    const ev::TokenCostSummary c = ev::summarise_cost(runs);
    CHECK(c.mean_N == Approx(7.0).epsilon(1e-15));          // 21 / 3
    CHECK(c.depass_seconds == Approx(3.0).epsilon(1e-15));  // 9 / 3
    CHECK(c.ig_seconds == Approx(30.0).epsilon(1e-15));     // 90 / 3
    CHECK(c.ixg_seconds == Approx(1.0).epsilon(1e-15));     // 3 / 3
    CHECK(c.ig_gap_max_abs == Approx(0.3).epsilon(1e-15));  // |-0.3|
    CHECK_THROWS_AS(ev::summarise_cost({}), Error);
}

TEST_CASE("curve_area on a made-up uneven curve by the trapezoid rule", "[eval][stats]") {
    // x {10, 20, 40, 100}, y {90, 70, 40, 10}: trapezoids 10 (90 + 70) / 2 = 800,
    // 20 (70 + 40) / 2 = 1100, 60 (40 + 10) / 2 = 1500; sum 3400 over the width 90.
    CHECK(ev::curve_area({10, 20, 40, 100}, {90, 70, 40, 10}) == Approx(3400.0 / 90).epsilon(1e-15));
}

TEST_CASE("token writers: exact CSV text, quoting, and the summary JSON", "[eval][stats]") {
    ev::TokenEvalSummary s = made_up_token_summary();
    CHECK(ev::tokens_curves_csv(s) ==
          "method,mode,percent,mean_score\n"
          "random,deletion,10,40\nrandom,deletion,100,50\nrandom,keeping,10,30\nrandom,keeping,100,30\n"
          "depass,deletion,10,55\ndepass,deletion,100,65\ndepass,keeping,10,25\ndepass,keeping,100,15\n");

    // A source with a comma and a piece with quotes are quoted; a missing IG result is an empty field.
    s.per_prompt.resize(1);
    s.prompt_index = {1};
    s.per_prompt[0].ig_f_x = 0.25, s.per_prompt[0].ig_f_0 = -0.5, s.per_prompt[0].ig_gap = 0.125;
    const std::string csv = ev::tokens_per_prompt_csv(s, {"x.txt", "a,b.txt"}, {"say \"hi\""});
    CHECK(csv.substr(csv.find('\n') + 1) ==
          "1,\"a,b.txt\",5,100,\"say \"\"hi\"\"\",0.5,random,40,30,0.25,-0.5,0.125\n"
          "1,\"a,b.txt\",5,100,\"say \"\"hi\"\"\",0.5,depass,50,10,0.25,-0.5,0.125\n");
    s.per_prompt[0].ig_gap = std::numeric_limits<double>::quiet_NaN();
    CHECK(ev::tokens_per_prompt_csv(s, {"x.txt", "y.txt"}, {"t"}).find(",0.25,-0.5,\n") != std::string::npos);
    CHECK_THROWS_AS(ev::tokens_per_prompt_csv(s, {"x.txt", "y.txt"}, {}), Error);

    // The JSON carries the paired differences worked out in the test above.
    const nlohmann::json j =
        nlohmann::json::parse(ev::tokens_summary_json(made_up_token_summary(), {"m.bin", "f64", {"p.txt"}}));
    CHECK(j.at("model") == "m.bin");
    CHECK(j.at("prompts") == 3);
    const auto& random = j.at("methods").at("random");
    CHECK(random.at("deletion_area") == 45.0);
    CHECK(random.at("deletion_area_minus_depass").get<double>() == Approx(-15.0).epsilon(1e-15));
    CHECK(random.at("keeping_area_minus_depass_se").get<double>() ==
          Approx(std::sqrt(100.0 / 3)).epsilon(1e-14));
    CHECK_FALSE(j.contains("integrated_gradients"));  // not among the methods
}

TEST_CASE("unit writers: exact CSV rows", "[eval][stats]") {
    ev::UnitEvalSummary s;
    s.kind = ev::UnitKind::Neuron;
    s.options.methods = {ev::UnitMethod::Atp};
    s.options.fractions = {0.05};
    s.total_units = 40;
    s.rows.push_back({ev::UnitMethod::Atp, true, 0.05, 2, 87.5, 12.34567, 33.33333});
    CHECK(ev::units_csv(s) ==
          "method,direction,percent,units_zeroed,survival_pct,mean_prob_drop_pts,mean_rel_drop_pct\n"
          "atp,top,5,2,87.5,12.35,33.33\n");
    const nlohmann::json j = nlohmann::json::parse(ev::units_json(s, {"m.bin", "f32", {}}));
    CHECK(j.at("unit") == "neuron");
    CHECK(j.at("rows").at(0).at("units_zeroed") == 2);
}

TEST_CASE("prompt_file: trimmed, comments and repeats dropped", "[eval][stats]") {
    // "  a b " -> "a b"; "   " -> empty, dropped; "#x" would read as a comment, dropped;
    // the second "a b" (after trimming) repeats the first, dropped.
    const ev::PromptFile f = ev::prompt_file("# head", {"  a b ", "   ", "#x", "a b", "c", " c d"});
    CHECK(
        f.text ==
        "# head\n# One prompt per line; lines starting with '#' are comments. Exact duplicates are dropped.\n"
        "a b\nc\nc d\n");
    CHECK(f.prompts == 3);
}
