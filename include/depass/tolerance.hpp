// tolerance.hpp -- the project's tolerance policy, stated once.
//
// A value a passes against a reference b when |a - b| <= atol + rtol * scale, where
// scale is the largest |b| of the tensor being compared (errors are measured
// relative to the tensor's magnitude, not element by element: elements near zero
// would otherwise demand impossible relative accuracy).
//
// Why these numbers:
//  * Completeness (sum of components == true state) is an algebraic identity of the
//    decomposed pass. In double it holds to rounding of a few hundred operations
//    (~1e-14 relative); 1e-12 leaves room for long sequences and deep models and
//    still catches any real leak (a lost bias is ~1e-2). In float the same
//    identity holds to ~1e-6 relative; 1e-5 is the float bound.
//  * Reference forward passes computed by another float32 program differ by the
//    float32 noise floor (~1e-6 relative per op, accumulated): 1e-4 of the tensor's
//    magnitude. The same for float64 Hugging Face goldens of RoPE models, whose RoPE
//    tables and RMSNorm internals are float32 there (~1e-6 differences).
//  * Exact float64 references (independent all-double implementation): 1e-10.
//  * The paper's Python DePass outputs: 1e-4 relative in double (their RoPE tables
//    are float32), 1e-3 in float.
//  * Gradients (backward.hpp) against finite differences, element by element (below).
#pragma once

namespace depass::tolerance {

// Completeness of the decomposed pass, relative to max |true state|.
template <class T>
constexpr double completeness_rel();
template <>
constexpr double completeness_rel<double>() {
    return 1e-12;
}
template <>
constexpr double completeness_rel<float>() {
    return 1e-5;
}

// The taylor rule's attribution by the reverse pass of the frozen network (adjoint.hpp)
// against the decomposed forward pass, relative to the attribution tensor's max magnitude.
// The two compute the same linear map in exact arithmetic, w . (J X) = (J^T w) . X; only
// the order of the sums differs (products transposed, components summed before or after
// the network), so they agree to the rounding of a few hundred operations per path:
// ~1e-15 relative in double, ~1e-7..1e-6 in float. 1e-12 / 1e-5 leave room for deep models
// and long sequences and still catch a lost term (a missing bias or norm factor, a head of
// the wrong KV group: 1e-3 and more).
template <class T>
constexpr double adjoint_rel();
template <>
constexpr double adjoint_rel<double>() {
    return 1e-12;
}
template <>
constexpr double adjoint_rel<float>() {
    return 1e-5;
}
// The adjoint path's completeness: the shares of a target (every component and the biases)
// sum to its logit from the recorded forward pass, relative to the larger of the largest
// share and the largest logit. The same identity as completeness_rel, measured at the logits.
template <class T>
constexpr double adjoint_sum_rel() {
    return completeness_rel<T>();
}

// The QK split (qk.hpp): the summed pair logits against the logits recomputed from q and k
// (relative to the head's largest |logit|), and the causal softmax of the summed pairs
// against the recorded probabilities (absolute: probabilities are at most 1). The pairs
// add up what the projections compute in one product, in another order: ~1e-15 in double,
// ~1e-7..1e-6 in float; a lost bias or norm factor, or a wrong RoPE position, is 1e-3 and more.
template <class T>
constexpr double qk_rel();
template <>
constexpr double qk_rel<double>() {
    return 1e-12;
}
template <>
constexpr double qk_rel<float>() {
    return 1e-5;
}

// A run split over ranks (distributed.hpp) against the same run in one process, for the
// components and the logit attribution, relative to the tensor's max magnitude. The ranks
// compute every product and every component's share as one process does; what differs is
// the order of the share rules' sums (softmax's sum of exponentials, the relu and linear
// normalisers), which add each rank's partial sum instead of one component after another:
// a few ulp per weight, carried through the later blocks (the max and taylor rules have no
// sum across components). The bound 1e-13 in double; in float the completeness bound
// 1e-5, as every float identity of the pass. A wrong reduction (a lost rank, a max for a sum,
// a bias added on every rank) moves the results by 1e-3 and more.
template <class T>
constexpr double split_rel();
template <>
constexpr double split_rel<double>() {
    return 1e-13;
}
template <>
constexpr double split_rel<float>() {
    return 1e-5;
}

// Forward pass against goldens, relative to the tensor's max magnitude.
constexpr double golden_f32_rel = 1e-4;         // float forward vs a float32 reference
constexpr double golden_f64_rope_rel = 1e-4;    // double vs HF float64 with float32 RoPE tables
constexpr double golden_f64_exact_rel = 1e-10;  // double vs an all-float64 reference
constexpr double llama2c_logits_abs = 1e-4;     // float vs the original llama2.c C forward

// The same float32 weights in two layouts (GGUF interleaved RoPE rows vs Hugging Face
// rotate-half rows), both run in float: only the summation order of q.k differs.
constexpr double same_weights_f32_rel = 1e-5;
// GGUF F16 / BF16 models vs the float32 goldens: each weight is rounded to 11 / 8
// significant bits (relative error up to 2^-11 = 4.9e-4 / 2^-8 = 3.9e-3); errors in the
// attention scores pass through the softmax, so the attention probabilities are the
// worst tensor. Measured on llama-gqa-s1: F16 9.5e-3 (attn_probs), 3.4e-3 (logits); BF16
// 4.9e-2 (attn_probs), 1.3e-2 (logits). Bounds: 2x the measured worst.
constexpr double gguf_f16_rel = 2e-2;
constexpr double gguf_bf16_rel = 1e-1;

// Decomposition against references, relative to the tensor's max magnitude.
constexpr double spec_f64_rel = 1e-10;     // double vs the exact float64 DePass references
constexpr double official_f64_rel = 1e-4;  // double vs the paper's code in float64
constexpr double official_f32_rel = 1e-3;  // float vs the paper's code in float32

// Gradients (backward.hpp, the `<op>_backward` functions) against finite differences, in
// double. The reference is the five-point central difference
//   fd = (8 (f(x + h) - f(x - h)) - (f(x + 2h) - f(x - 2h))) / (12 h),   h = gradient_fd_step,
// whose truncation error is h^4 f^(5)(x) / 30 (~1e-13 here) and rounding error about
// 1e-16 |f| / h (~1e-13 for the tiny random models of the tests). Every coordinate must pass
//   |g - fd| <= gradient_fd_rel * max(|fd|, gradient_fd_floor * max_coordinates |fd|):
// relative to the coordinate itself, except that coordinates smaller than 1e-3 of the
// tensor's largest are measured against that floor (their reference is only as good as its
// absolute accuracy, ~1e-13, and a relative error of a 1e-12 value means nothing). A wrong
// term in a backward op (a missing r^3, a lost KV group, a sign) gives errors of 1e-3 .. 1.
constexpr double gradient_fd_step = 1e-3;
constexpr double gradient_fd_rel = 1e-6;
constexpr double gradient_fd_floor = 1e-3;
// Identities of homogeneous functions (gradient . input = degree * f) and other exact
// algebraic checks of the gradients, in double, relative to the size of the terms summed:
// rounding of a few hundred operations only.
constexpr double gradient_identity_rel = 1e-12;
// A backward pass in float against the same pass in double, relative to the tensor's
// largest coordinate: float rounding (~1e-7 per op) amplified through a few layers.
constexpr double gradient_f32_rel = 1e-4;

}  // namespace depass::tolerance
