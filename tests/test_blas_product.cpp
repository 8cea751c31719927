// The BLAS backend of the large products (include/depass/blas.hpp, build option DEPASS_BLAS):
// whether it is in use, how it is threaded, and its tiled products against a naive loop with 1
// and 2 threads on shapes that neither backend's tiles divide. Without the backend the same
// checks run on Eigen's products.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "depass/blas.hpp"
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

template <class T>
void check_product(double tol) {
    // 600 rows = 2 tiles of 256 + 88 (or 9 of 64 + 24); 1100 outputs = 2 tiles of 512 + 76
    // (or 4 of 256 + 76); depth 100.
    const long N = 600, O = 1100, K = 100;
    REQUIRE(double(N) * O * K >= kTiledProductWork);
    const Mat<T> x = random_mat<T>(N, K, 11), W = random_mat<T>(O, K, 12);
    set_threads(1);
    const Mat<T> one = linear(x, W, Vec<T>());
    set_threads(2);
    const Mat<T> two = linear(x, W, Vec<T>());
    set_threads(1);
    double err = 0, scale = 0;
    for (long n = 0; n < N; ++n)
        for (long o = 0; o < O; ++o) {
            long double s = 0;
            for (long k = 0; k < K; ++k) s += (long double)x(n, k) * (long double)W(o, k);
            err = std::max(err, std::abs(double(one(n, o)) - double(s)));
            scale = std::max(scale, std::abs(double(s)));
        }
    INFO(blas_summary() << ": max |product - naive| = " << err << ", max |naive| = " << scale);
    CHECK(err <= tol);
    CHECK((one - two).cwiseAbs().maxCoeff() == T(0));  // bitwise, whatever the thread count

    // Switched off at run time: Eigen's products and tiles, as in a build without the backend.
    const bool was = blas_products();
    set_blas_products(false);
    CHECK_FALSE(blas_products());
    CHECK(blas_summary().find("Eigen") != std::string::npos);
    const Mat<T> eigen = linear(x, W, Vec<T>());
    set_blas_products(was);
    CHECK(blas_products() == was);
    const double diff = (eigen.template cast<double>() - one.template cast<double>()).cwiseAbs().maxCoeff();
    CHECK(diff <= 2 * tol);
}

}  // namespace

TEST_CASE("the product backend is the one the build chose, one thread per BLAS call", "[blas][threads]") {
    const std::string s = blas_summary();
    INFO(s);
    // blas_products() is blas_enabled() unless DEPASS_BLAS=off is set for the run.
    CHECK((blas_products() && !blas_enabled()) == false);
    CHECK((s.find("OpenBLAS") != std::string::npos) == blas_products());
    CHECK((s.find("Eigen") != std::string::npos) == !blas_products());
    if (blas_products()) {
        CHECK(s.find("(OpenMP build)") != std::string::npos);
        CHECK(s.find(", 1 thread per call") != std::string::npos);
    }
#ifdef _OPENMP
    // Setting OpenBLAS to one thread must leave OpenMP's thread count alone.
    set_threads(2);
    configure_blas_threads();
    CHECK(omp_get_max_threads() == 2);
    CHECK(blas_summary() == s);
    set_threads(1);
#endif
    // test_main started the test again with the kernels chosen: nothing left to choose.
    CHECK_FALSE(choose_blas_kernels());
}

TEST_CASE("the backend's tiled product matches a naive loop at 1 and 2 threads (float)", "[blas][linear]") {
    check_product<float>(1e-4);
}

TEST_CASE("the backend's tiled product matches a naive loop at 1 and 2 threads (double)", "[blas][linear]") {
    check_product<double>(1e-12);
}

TEST_CASE("the benchmarks' single product matches a naive loop, with the backend on and off", "[blas]") {
    // Shapes no tile or register block divides; the result is resized by the call.
    const long N = 67, O = 131, K = 45;
    const Mat<double> x = random_mat<double>(N, K, 21), W = random_mat<double>(O, K, 22);
    const bool was = blas_products();
    for (const bool on : {true, false}) {
        set_blas_products(on);
        Mat<double> y(1, 1);
        single_product_nt(x, W, y);
        REQUIRE(y.rows() == N);
        REQUIRE(y.cols() == O);
        double err = 0;
        for (long n = 0; n < N; ++n)
            for (long o = 0; o < O; ++o) {
                long double s = 0;
                for (long k = 0; k < K; ++k) s += (long double)x(n, k) * (long double)W(o, k);
                err = std::max(err, std::abs(y(n, o) - double(s)));
            }
        INFO(blas_summary());
        CHECK(err <= 1e-12);
    }
    set_blas_products(was);
    Mat<double> y;
    CHECK_THROWS_AS(single_product_nt(x, Mat<double>(3, K + 1), y), Error);
}
