// The names of the enums the command line takes (levels, MLP rules, architectures, token and
// unit attribution methods): each name parses to its value and back, and an unknown name gives
// the message naming it and listing the accepted ones, as written out here by hand.
#include "depass/config.hpp"
#include "depass/eval.hpp"
#include "depass/initialisers.hpp"
#include "depass/ops.hpp"
#include "test_support.hpp"

using namespace depass;

TEST_CASE("enum names: every name parses to its value and prints back", "[enum]") {
    const std::vector<std::pair<Level, std::string>> levels = {
        {Level::Token, "token"},   {Level::Module, "module"},     {Level::Head, "head"},
        {Level::Neuron, "neuron"}, {Level::Subspace, "subspace"}, {Level::Custom, "custom"}};
    for (const auto& [v, n] : levels) {
        CHECK(parse_level(n) == v);
        CHECK(std::string(level_name(v)) == n);
    }
    const std::vector<std::pair<MlpRule, std::string>> rules = {{MlpRule::Softmax, "softmax"},
                                                                {MlpRule::Max, "max"},
                                                                {MlpRule::Relu, "relu"},
                                                                {MlpRule::Linear, "linear"},
                                                                {MlpRule::Taylor, "taylor"}};
    for (const auto& [v, n] : rules) {
        CHECK(parse_mlp_rule(n) == v);
        CHECK(std::string(rule_name(v)) == n);
    }
    CHECK(parse_arch("llama") == Arch::Llama);
    CHECK(parse_arch("mistral") == Arch::Mistral);
    CHECK(parse_arch("qwen2") == Arch::Qwen2);
    CHECK(parse_arch("gpt2") == Arch::Gpt2);
    CHECK(parse_arch("llama2c") == Arch::Llama2c);
    const std::vector<std::string> token_methods = {
        "depass",           "random",       "attn_last", "attn_mean",
        "rollout",          "embed_norm",   "occlusion", "integrated_gradients",
        "input_x_gradient", "gradient_norm"};
    const std::vector<eval::TokenMethod> all_t = eval::all_token_methods();
    REQUIRE(all_t.size() == token_methods.size());
    for (size_t k = 0; k < all_t.size(); ++k) {
        CHECK(std::string(eval::method_name(all_t[k])) == token_methods[k]);
        CHECK(eval::parse_token_method(token_methods[k]) == all_t[k]);
    }
    const std::vector<std::string> unit_methods = {"depass_signed", "depass_abs", "random", "magnitude",
                                                   "atp"};
    const std::vector<eval::UnitMethod> all_u = eval::all_unit_methods();
    REQUIRE(all_u.size() == unit_methods.size());
    for (size_t k = 0; k < all_u.size(); ++k)
        CHECK(std::string(eval::method_name(all_u[k])) == unit_methods[k]);
    CHECK(all_u.front() == eval::UnitMethod::DePassSigned);
    CHECK(all_u.back() == eval::UnitMethod::Atp);
}

TEST_CASE("enum names: an unknown name is refused with the accepted ones", "[enum]") {
    using depass_test::error_of;
    CHECK(error_of([] { parse_level("tokens"); }) ==
          "unknown level 'tokens' (expected token, module, head, neuron, subspace or custom)");
    CHECK(error_of([] { parse_mlp_rule("gelu"); }) ==
          "unknown MLP rule 'gelu' (expected softmax, max, relu, linear or taylor)");
    CHECK(error_of([] { parse_arch("phi3"); }) ==
          "model_type 'phi3' is not supported (supported: llama, mistral, qwen2, gpt2, llama2c)");
    CHECK(error_of([] { eval::parse_token_method("lime"); }) ==
          "unknown token attribution method 'lime' (expected depass, random, attn_last, attn_mean, rollout, "
          "embed_norm, occlusion, integrated_gradients, input_x_gradient or gradient_norm)");
}
