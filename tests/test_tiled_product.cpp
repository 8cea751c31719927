// The tiled branch of the linear product (src/ops/linear.cpp: products of at least
// kTiledProductWork multiply-adds are cut into fixed [64, 256] output tiles) against a naive
// triple loop, with 1 and 2 threads, on shapes that the tiles do not divide.
#include <random>

#include "depass/ops.hpp"
#include "depass/threading.hpp"
#include "test_support.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace depass;

namespace {

void set_threads(int k) {
#ifdef _OPENMP
    omp_set_num_threads(k);
#else
    (void)k;
#endif
}

template <class T>
Mat<T> random_mat(long rows, long cols, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    Mat<T> m(rows, cols);
    for (long i = 0; i < rows; ++i)
        for (long j = 0; j < cols; ++j) m(i, j) = T(u(rng));
    return m;
}

// y[n, o] = sum_k x[n, k] W[o, k] + b[o], accumulated in long double.
template <class T>
Mat<double> naive_linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b) {
    Mat<double> y(x.rows(), W.rows());
    for (long n = 0; n < x.rows(); ++n)
        for (long o = 0; o < W.rows(); ++o) {
            long double s = b.size() ? (long double)b[o] : 0.0L;
            for (long k = 0; k < x.cols(); ++k) s += (long double)x(n, k) * (long double)W(o, k);
            y(n, o) = double(s);
        }
    return y;
}

template <class T>
void check_tiled(double tol) {
    // 130 rows = 2 full row tiles + 2; 1000 outputs = 3 full column tiles + 232; depth 260.
    const long N = 130, O = 1000, K = 260;
    REQUIRE(double(N) * O * K >= kTiledProductWork);  // the tiled branch is taken
    const Mat<T> x = random_mat<T>(N, K, 1), W = random_mat<T>(O, K, 2);
    const Mat<T> bm = random_mat<T>(1, O, 3);
    const Vec<T> b = bm.row(0).transpose();
    const Mat<double> ref = naive_linear(x, W, b);
    set_threads(1);
    const Mat<T> one = linear(x, W, b);
    set_threads(2);
    const Mat<T> two = linear(x, W, b);
#ifdef _OPENMP
    set_threads(omp_get_num_procs());
#endif
    REQUIRE(one.rows() == N);
    REQUIRE(one.cols() == O);
    const double err = (one.template cast<double>() - ref).cwiseAbs().maxCoeff();
    INFO("max |tiled - naive| = " << err << ", max |naive| = " << ref.cwiseAbs().maxCoeff());
    CHECK(err <= tol);
    // The last tile of each row and column (rows 128-129, outputs 768-999) is the one an
    // off-by-one would lose: check its corner explicitly as well.
    CHECK(std::abs(double(one(N - 1, O - 1)) - ref(N - 1, O - 1)) <= tol);
    CHECK((one - two).cwiseAbs().maxCoeff() == T(0));  // bitwise, whatever the thread count

    // The decomposed twin goes through the same product: components of x summing to it.
    Components<T> c = Components<T>::zeros(int(N), int(K), {0, 0}, {"quarter", "rest"});
    c.X.topRows(N) = x * T(0.25);
    c.X.bottomRows(N) = x - c.X.topRows(N);
    REQUIRE(double(c.rows()) * O * K >= kTiledProductWork);
    set_threads(1);
    const Components<T> d1 = linear_decomposed(c, W, b);
    set_threads(2);
    const Components<T> d2 = linear_decomposed(c, W, b);
#ifdef _OPENMP
    set_threads(omp_get_num_procs());
#endif
    const Mat<double> d_ref0 = naive_linear(Mat<T>(c.X.topRows(N)), W, Vec<T>());
    CHECK((d1.X.topRows(N).template cast<double>() - d_ref0).cwiseAbs().maxCoeff() <= tol);
    CHECK((d1.X - d2.X).cwiseAbs().maxCoeff() == T(0));
}

}  // namespace

TEST_CASE("the tiled linear product matches a naive loop at 1 and 2 threads (float)", "[threads][linear]") {
    check_tiled<float>(2e-4);
}

TEST_CASE("the tiled linear product matches a naive loop at 1 and 2 threads (double)", "[threads][linear]") {
    check_tiled<double>(1e-11);
}

TEST_CASE("the threading policy is in place once the library is loaded", "[threads]") {
    CHECK(Eigen::nbThreads() == 1);
#ifdef _OPENMP
    CHECK(omp_get_max_active_levels() == 1);
    CHECK_FALSE(worth_threads(kParallelWork - 1));
    set_threads(2);
    CHECK(worth_threads(kParallelWork));
    bool inside = true;
#pragma omp parallel num_threads(2)
    {
        if (omp_get_thread_num() == 0) inside = worth_threads(1e12);
    }
    CHECK_FALSE(inside);  // never inside a parallel region
    set_threads(omp_get_num_procs());
#endif
}
