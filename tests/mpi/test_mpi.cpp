// test_mpi.cpp -- `mpirun -np 2 depass ...` against the same command as one process.
//
//  1. attribute on every fixture at token, head, neuron and subspace level, every MLP rule,
//     f32 and f64: the same tensors (components and logit attribution within split_rel, the
//     integer tensors and the target logits exactly), the same metadata but for the
//     completeness figure; the largest difference of each level / rule / dtype is printed.
//  2. The other outputs on 2 and 3 ranks: --format json / npy, --html, --all-layers, --qk,
//     --layer all; `mpirun -np 1` writes the one-process files byte for byte.
//  3. eval tokens on the hand-written prompts: the same CSV, JSON and SVG files (the JSON's
//     wall time aside); eval heads and neurons on a few prompts likewise.
//  4. Bad input: one error line (the one-process message), the one-process exit code on every
//     rank, no output file; also when only one rank fails (a file it cannot read, the memory
//     check) and for a command that does not split over ranks.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass_test;
namespace fs = std::filesystem;

namespace {

// mpirun with `ranks` ranks on any machine, as root too (CI).
std::string mpirun(int ranks) {
    std::string s = std::string(DEPASS_MPIEXEC) + " --oversubscribe";
    if (geteuid() == 0) s += " --allow-run-as-root";
    return s + " -np " + std::to_string(ranks) + " ";
}

std::string depass_cmd() { return shell_quoted(cli_path()); }

// The same arguments as one process and on `ranks` ranks: exit codes and outputs.
struct Pair {
    int rc_one = -1, rc_split = -1;
    std::string out_one, out_split;
};
Pair run_both(const std::string& args_one, const std::string& args_split, int ranks = 2) {
    Pair p;
    p.rc_one = run_command(depass_cmd() + " " + args_one, &p.out_one);
    p.rc_split = run_command(mpirun(ranks) + depass_cmd() + " " + args_split, &p.out_split);
    return p;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// Largest relative difference of every float tensor of two safetensors files (max |a - b| /
// max |b| per tensor); integer tensors and target_logits must be equal. Metadata equal but
// for completeness_max_rel. Failures are appended to *why.
double compare_safetensors(const std::string& split, const std::string& one, std::string* why) {
    const depass::SafeTensors a = depass::SafeTensors::open(split), b = depass::SafeTensors::open(one);
    if (a.names() != b.names()) *why += "tensor names differ; ";
    double worst = 0;
    for (const std::string& n : b.names()) {
        if (!a.has(n)) continue;
        const depass::TensorInfo& ib = b.info(n);
        if (a.info(n).shape != ib.shape || a.info(n).dtype != ib.dtype) {
            *why += n + ": shape or dtype differs; ";
            continue;
        }
        if (ib.dtype == depass::DType::I64 || ib.dtype == depass::DType::I32) {
            if (a.read<int64_t>(n).data != b.read<int64_t>(n).data) *why += n + " differs; ";
            continue;
        }
        const depass::Tensor<double> ta = a.read<double>(n), tb = b.read<double>(n);
        if (n == "target_logits") {
            if (ta.data != tb.data) *why += "target_logits differ; ";
            continue;
        }
        worst = std::max(worst, diff(ta.data.data(), tb.data.data(), tb.data.size()).rel());
    }
    // The figures of the checks are computed from the (rounding-different) results themselves.
    std::map<std::string, std::string> ma = a.metadata(), mb = b.metadata();
    for (const char* key : {"completeness_max_rel", "qk_logits_max_rel", "qk_probs_max_abs"}) {
        ma.erase(key);
        mb.erase(key);
    }
    if (ma != mb) *why += "metadata differs; ";
    return worst;
}

// The fixtures' projector (symmetric idempotent, [D, D]); every fixture has D = 64.
std::string projector() { return fixtures_dir() + "/llama-gqa-s1/depass_subspace_projector_L0.npy"; }

std::string ids_of(const std::string& fixture) {
    std::string s;
    for (int id : fixture_ids(fixtures_dir() + "/" + fixture))
        s += (s.empty() ? "" : ",") + std::to_string(id);
    return s;
}

bool need_data() {
    if (have_shared() && fs::exists(projector())) return true;
    note_skip("the fixtures (tests/data) are missing");
    return false;
}

}  // namespace

TEST_CASE(
    "mpirun -np 2 attribute equals one process: fixtures x token, head, neuron, subspace x every rule x f32, "
    "f64",
    "[mpi]") {
    if (!need_data()) return;
    const std::string dir = temp_path("attr");
    fs::create_directories(dir);
    struct Level {
        std::string name, args;
    };
    const std::vector<Level> levels{{"token", "--level token"},
                                    {"head", "--level head --layer 1"},
                                    {"neuron", "--level neuron --layer 0"},
                                    {"subspace", "--level subspace --basis " + shell_quoted(projector())}};
    const std::vector<std::string> rules{"softmax", "max", "relu", "linear", "taylor"};
    std::map<std::string, double> worst;  // "level rule dtype"
    std::map<std::string, std::string> worst_where;
    int runs = 0;
    for (const std::string fixture : {"llama-gqa-s1", "qwen2-s1", "llama3-rope-s2", "gpt2-s1"})
        for (const Level& lv : levels)
            for (const std::string& rule : rules)
                for (const std::string dtype : {"f32", "f64"}) {
                    const std::string tag = fixture + "-" + lv.name + "-" + rule + "-" + dtype;
                    const std::string common =
                        "attribute -q -m " + shell_quoted(fixtures_dir() + "/" + fixture) + " --ids " +
                        ids_of(fixture) + " " + lv.args + " --rule " + rule + " --dtype " + dtype;
                    const std::string one = dir + "/" + tag + "-1.safetensors",
                                      two = dir + "/" + tag + "-2.safetensors";
                    const Pair p = run_both(common + " --out " + one, common + " --out " + two);
                    INFO(tag << "\none process:\n" << p.out_one << "\n2 ranks:\n" << p.out_split);
                    REQUIRE(p.rc_one == 0);
                    REQUIRE(p.rc_split == 0);
                    // The same summary on stdout, from rank 0 only (the shares may differ in the last digit).
                    CHECK(count_of(p.out_split, "target at position") == 1);
                    std::string why;
                    const double e = compare_safetensors(two, one, &why);
                    CHECK(why.empty());
                    const double tol = dtype == "f64" ? depass::tolerance::split_rel<double>()
                                                      : depass::tolerance::split_rel<float>();
                    CHECK(e <= tol);
                    const std::string key = lv.name + " " + rule + " " + dtype;
                    if (e >= worst[key]) {
                        worst[key] = e;
                        worst_where[key] = fixture;
                    }
                    ++runs;
                    fs::remove(one);
                    fs::remove(two);
                }
    std::printf("  %d runs: mpirun -np 2 against one process, max relative difference of the float tensors\n",
                runs);
    std::printf("  %-10s %-8s %14s %14s\n", "level", "rule", "f32", "f64");
    for (const Level& lv : levels)
        for (const std::string& rule : rules)
            std::printf("  %-10s %-8s %14.3e %14.3e\n", lv.name.c_str(), rule.c_str(),
                        worst[lv.name + " " + rule + " f32"], worst[lv.name + " " + rule + " f64"]);
}

TEST_CASE("mpirun attribute: json, npy, html, --all-layers, --qk, --layer all, 3 ranks; -np 1 is one process",
          "[mpi]") {
    if (!need_data()) return;
    const std::string dir = temp_path("outputs");
    fs::create_directories(dir);
    const std::string fx = fixtures_dir() + "/llama-gqa-s1";
    const std::string common = "attribute -q -m " + shell_quoted(fx) + " --ids " + ids_of("llama-gqa-s1");
    const double tol = depass::tolerance::split_rel<float>();
    struct Run {
        std::string name, args;
        int ranks;
    };
    for (const Run& r :
         {Run{"all-layers", "--level token --all-layers", 2}, Run{"qk", "--level token --qk 1", 2},
          Run{"layer-all", "--level neuron --layer all --rule relu", 2},
          Run{"three", "--level neuron --layer 0 --dtype f64", 3},
          Run{"groups", "--level neuron --layer 1 --neuron-groups 7 --rule linear", 3}}) {
        INFO(r.name);
        const std::string one = dir + "/" + r.name + "-1.safetensors",
                          two = dir + "/" + r.name + "-2.safetensors";
        const Pair p = run_both(common + " " + r.args + " --out " + one,
                                common + " " + r.args + " --out " + two, r.ranks);
        INFO(p.out_split);
        REQUIRE(p.rc_one == 0);
        REQUIRE(p.rc_split == 0);
        std::string why;
        CHECK(compare_safetensors(two, one, &why) <= tol);
        CHECK(why.empty());
    }
    // JSON with the components, the npy directory and the HTML page, written once by rank 0.
    const Pair p = run_both(
        common + " --format json --json-components --out " + dir + "/1.json --html " + dir + "/1.html",
        common + " --format json --json-components --out " + dir + "/2.json --html " + dir + "/2.html");
    REQUIRE(p.rc_split == 0);
    const nlohmann::json j1 = nlohmann::json::parse(read_file(dir + "/1.json")),
                         j2 = nlohmann::json::parse(read_file(dir + "/2.json"));
    CHECK(j1.size() == j2.size());
    CHECK(j1.at("component_names") == j2.at("component_names"));
    // components [M][N][D], flattened.
    const auto flat = [](const nlohmann::json& j) {
        std::vector<double> v;
        for (const auto& m : j)
            for (const auto& n : m)
                for (const auto& x : n) v.push_back(x.get<double>());
        return v;
    };
    const std::vector<double> c1 = flat(j1.at("components")), c2 = flat(j2.at("components"));
    REQUIRE(c1.size() == c2.size());
    REQUIRE(!c1.empty());
    CHECK(diff(c2.data(), c1.data(), c1.size()).rel() <= tol);
    CHECK(j1.at("completeness").at("max_rel").get<double>() <= tol);
    CHECK(j2.at("completeness").at("max_rel").get<double>() <= tol);
    CHECK(fs::file_size(dir + "/2.html") > 0);
    const Pair q = run_both(common + " --format npy --out " + dir + "/npy1",
                            common + " --format npy --out " + dir + "/npy2");
    REQUIRE(q.rc_split == 0);
    CHECK(fs::exists(dir + "/npy2/components.npy"));
    CHECK(fs::exists(dir + "/npy2/meta.json"));
    // No temporary file is left behind by any rank.
    for (const auto& e : fs::directory_iterator(dir))
        CHECK(e.path().filename().string().find(".tmp") == std::string::npos);

    // One rank is one process: the same bytes.
    const int rc1 = run_command(depass_cmd() + " " + common + " --rule max --out " + dir + "/a.safetensors");
    const int rc2 =
        run_command(mpirun(1) + depass_cmd() + " " + common + " --rule max --out " + dir + "/b.safetensors");
    CHECK(rc1 == 0);
    CHECK(rc2 == 0);
    CHECK(read_file(dir + "/a.safetensors") == read_file(dir + "/b.safetensors"));
}

TEST_CASE("mpirun -np 2 eval tokens on the hand-written prompts: the same files as one process",
          "[mpi][eval]") {
    if (!need_data()) return;
    const std::string model = shell_quoted(weights_dir() + "/stories260K.bin");
    const std::string prompts = shell_quoted(source_dir() + "/data/prompts/handwritten.txt");
    struct Eval {
        std::string what, args;
    };
    for (const Eval& ev : {Eval{"tokens", "--ig-steps 20"}, Eval{"heads", "--limit 4"},
                           Eval{"neurons", "--limit 3 --rule max"}}) {
        INFO("eval " << ev.what);
        const std::string d1 = temp_path("eval1-" + ev.what), d2 = temp_path("eval2-" + ev.what);
        const std::string args =
            "eval " + ev.what + " -q -m " + model + " --prompts " + prompts + " " + ev.args;
        const Pair p = run_both(args + " --out " + d1, args + " --out " + d2);
        INFO(p.out_split);
        REQUIRE(p.rc_one == 0);
        REQUIRE(p.rc_split == 0);
        int files = 0;
        for (const auto& e : fs::directory_iterator(d1)) {
            const std::string name = e.path().filename().string();
            INFO(name);
            REQUIRE(fs::exists(d2 + "/" + name));
            std::string a = read_file(d1 + "/" + name), b = read_file(d2 + "/" + name);
            if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
                // The run's wall time is the one field that may differ.
                nlohmann::json ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
                ja.erase("seconds");
                jb.erase("seconds");
                CHECK(ja == jb);
                CHECK(ja.dump() == jb.dump());
            } else {
                CHECK(a == b);
            }
            ++files;
        }
        CHECK(files >= 3);
        size_t n2 = 0;
        for (const auto& e : fs::directory_iterator(d2)) n2 += e.is_regular_file();
        CHECK(n2 == size_t(files));
        // The printed table (stdout), once.
        CHECK(count_of(p.out_split, "method") == count_of(p.out_one, "method"));
    }
}

TEST_CASE("mpirun bad input: one error line, the one-process exit code on every rank, no output file",
          "[mpi][errors]") {
    if (!need_data()) return;
    const std::string dir = temp_path("bad");
    fs::create_directories(dir);
    const std::string fx = shell_quoted(fixtures_dir() + "/llama-gqa-s1");
    const std::string good = "attribute -m " + fx + " --ids " + ids_of("llama-gqa-s1");
    // Rank 0 runs `cmd0`, rank 1 `cmd1` (shell commands), each inside a shell that writes its exit
    // code to codes/<rank>; returns {rank 0's code, rank 1's, mpirun's}.
    auto run_ranks = [&](const std::string& name, const std::string& cmd0, const std::string& cmd1,
                         std::string* out) {
        const std::string codes = dir + "/codes-" + name;
        fs::create_directories(codes);
        // The rank's exit code is written to a file, then returned to mpirun as the rank's own.
        auto rank = [&](const std::string& cmd) {
            return "-np 1 sh -c " +
                   shell_quoted(cmd + "; c=$?; echo $c > " + shell_quoted(codes) +
                                "/$OMPI_COMM_WORLD_RANK; exit $c") +
                   " ";
        };
        const std::string launcher = std::string(DEPASS_MPIEXEC) + " --oversubscribe" +
                                     (geteuid() == 0 ? " --allow-run-as-root " : " ");
        const int rc = run_command(launcher + rank(cmd0) + ": " + rank(cmd1), out);
        std::vector<int> rcs;
        for (int r = 0; r < 2; ++r) {
            std::ifstream f(codes + "/" + std::to_string(r));
            int v = -1;
            f >> v;
            rcs.push_back(v);
        }
        rcs.push_back(rc);
        return rcs;
    };
    struct Bad {
        std::string name, args0, args1;  // rank 0's and rank 1's command lines (the output option appended)
        int code;                        // every rank's exit code
        std::string message;             // in the one error line
        std::string rank_note;           // "" = every rank fails alike; else the note naming the failed rank
        std::string out_flag = "--out";  // how the command names its output file
    };
    const std::string neuron = "attribute -m " + fx + " --ids " + ids_of("llama-gqa-s1") + " --level neuron";
    const std::vector<Bad> bad{
        {"token id", good + " --targets 99999", good + " --targets 99999", 1, "outside the vocabulary", ""},
        {"flags", good + " --neurons 1,2", good + " --neurons 1,2", 2,
         "--neurons applies to --level neuron only", ""},
        {"missing model", good, "attribute -m " + shell_quoted(dir + "/no-such-model") + " --ids 1,2,3", 1,
         "no-such-model", "(on rank 1 of 2)"},
        // Rank 1 sees almost no free memory (an overfull machine): its memory check refuses the run.
        {"memory", neuron, "DEPASS_FREE_MEMORY=1000 " + neuron, 1, "not enough memory", "(on rank 1 of 2)"},
        {"unsplit command", "forward -m " + fx + " --ids 1,2,3", "forward -m " + fx + " --ids 1,2,3", 2,
         "depass forward runs as one process", "", "--dump"},
    };
    auto with_depass = [&](const std::string& args) {
        const size_t env = args.rfind("DEPASS_FREE_MEMORY=", 0) == 0 ? args.find(' ') + 1 : 0;
        return args.substr(0, env) + depass_cmd() + " " + args.substr(env);
    };
    for (const Bad& b : bad) {
        INFO(b.name);
        const std::string out = dir + "/" + b.name + ".safetensors";
        std::string text;
        const std::vector<int> rcs =
            run_ranks(b.name, with_depass(b.args0) + " " + b.out_flag + " " + shell_quoted(out),
                      with_depass(b.args1) + " " + b.out_flag + " " + shell_quoted(out), &text);
        INFO(text);
        CHECK(rcs[0] == b.code);  // every rank exits with the code
        CHECK(rcs[1] == b.code);
        CHECK(rcs[2] != 0);                      // and so does mpirun
        CHECK(count_of(text, "depass: ") == 1);  // one error line
        CHECK(text.find(b.message) != std::string::npos);
        if (!b.rank_note.empty()) CHECK(text.find(b.rank_note) != std::string::npos);
        CHECK(!fs::exists(out));
        for (const auto& e : fs::directory_iterator(dir))
            CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
        // Every rank failing alike prints the line one process prints.
        if (b.rank_note.empty()) {
            std::string one;
            // (The unsplit command runs as one process, so compare with the refusal's own line.)
            if (b.name == "unsplit command") continue;
            CHECK(run_command(depass_cmd() + " " + b.args0 + " " + b.out_flag + " " + shell_quoted(out),
                              &one) == b.code);
            const size_t at = one.find("depass: ");
            REQUIRE(at != std::string::npos);
            CHECK(text.find(one.substr(at, one.find('\n', at) - at)) != std::string::npos);
        }
    }

    // Rank 0 cannot create the output file (its directory does not exist; this fails as root too):
    // every rank exits with the one-process code, one error line, no directory made.
    {
        const std::string missing = dir + "/no-such-dir/x.safetensors";
        std::string text;
        const int rc = run_command(mpirun(2) + depass_cmd() + " " + good + " --out " + shell_quoted(missing), &text);
        INFO(text);
        CHECK(rc == 1);
        CHECK(count_of(text, "depass: ") == 1);
        CHECK(text.find("cannot create temporary file") != std::string::npos);
        CHECK(!fs::exists(dir + "/no-such-dir"));
    }

    // Rank 0 cannot write the output: the run fails on every rank, nothing is left behind.
    const std::string ro = dir + "/read-only";
    fs::create_directories(ro);
    chmod(ro.c_str(), 0555);
    std::string text;
    const int rc =
        run_command(mpirun(2) + depass_cmd() + " " + good + " --out " + ro + "/x.safetensors", &text);
    chmod(ro.c_str(), 0755);
    INFO(text);
    if (geteuid() != 0) {  // root writes anywhere
        CHECK(rc != 0);
        CHECK(count_of(text, "depass: ") == 1);
        CHECK(fs::is_empty(ro));
    }
}
