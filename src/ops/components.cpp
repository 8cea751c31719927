// components.cpp -- the decomposed state (components.hpp) and the MLP rule names.
#include "depass/components.hpp"

#include "check.hpp"
#include "depass/enum_names.hpp"
#include "depass/ops.hpp"

namespace depass {

template <class T>
Components<T> Components<T>::zeros(int N, int D, std::vector<int> first, std::vector<std::string> names) {
    if (first.empty()) throw Error("components: at least the rest component is needed");
    const int M = int(first.size());
    return slice_zeros(N, D, std::move(first), std::move(names), 0, M);
}

template <class T>
Components<T> Components<T>::slice_zeros(int N, int D, std::vector<int> first, std::vector<std::string> names,
                                         int m0, int total) {
    Components c;
    c.M = int(first.size());
    c.N = N;
    c.D = D;
    c.m0 = m0;
    c.total = total;
    if (m0 < 0 || m0 + c.M > total)
        throw Error("components: slice " + std::to_string(m0) + " .. " + std::to_string(m0 + c.M - 1) +
                    " of " + std::to_string(total) + " components");
    if (int(names.size()) != c.M)
        throw Error("components: " + std::to_string(names.size()) + " names for " + std::to_string(c.M) +
                    " components");
    if (c.has_rest() && first.back() != 0)
        throw Error("components: the rest (last component) must start at position 0");
    c.offset.resize(c.M + 1);
    c.offset[0] = 0;
    for (int m = 0; m < c.M; ++m) {
        if (first[m] < 0 || first[m] > N)
            throw Error("components: first position " + std::to_string(first[m]) + " of component " +
                        std::to_string(m) + " is outside [0, " + std::to_string(N) + "]");
        c.offset[m + 1] = c.offset[m] + (N - first[m]);
    }
    c.row_pos.resize(c.offset[c.M]);
    for (int m = 0; m < c.M; ++m)
        for (int n = first[m]; n < N; ++n) c.row_pos[c.offset[m] + (n - first[m])] = n;
    c.first = std::move(first);
    c.names = std::move(names);
    c.X = Mat<T>::Zero(c.offset[c.M], D);
    return c;
}

template <class T>
Mat<T> Components<T>::sum() const {
    Mat<T> s = Mat<T>::Zero(N, D);
    for (int m = 0; m < M; ++m) s.bottomRows(N - first[m]) += block(m);
    return s;
}

template <class T>
Mat<T> Components<T>::component(int m) const {
    Mat<T> x = Mat<T>::Zero(N, D);
    x.bottomRows(N - first[m]) = block(m);
    return x;
}

template <class T>
Components<T> Components<T>::like(Mat<T> newX) const {
    if (newX.rows() != rows()) throw Error("components: new rows do not match the layout");
    Components c;  // the layout of *this, the new rows
    c.M = M;
    c.N = N;
    c.D = int(newX.cols());
    c.first = first;
    c.offset = offset;
    c.row_pos = row_pos;
    c.X = std::move(newX);
    c.names = names;
    c.m0 = m0;
    c.total = total;
    return c;
}

template <class T>
void residual_add(Components<T>& x, const Components<T>& y) {
    detail::check_shape("residual_add", "added components", y.X, x.rows(), x.D);
    x.X += y.X;
}

namespace {
const NamedValue<MlpRule> kRules[] = {{MlpRule::Softmax, "softmax"},
                                      {MlpRule::Max, "max"},
                                      {MlpRule::Relu, "relu"},
                                      {MlpRule::Linear, "linear"},
                                      {MlpRule::Taylor, "taylor"}};
}  // namespace

MlpRule parse_mlp_rule(const std::string& s) {
    MlpRule r;
    if (value_in(kRules, s, &r)) return r;
    throw Error("unknown MLP rule '" + s + "' (expected " + names_in(kRules, " or ") + ")");
}

const char* rule_name(MlpRule r) { return name_in(kRules, r); }

template struct Components<float>;
template struct Components<double>;
template void residual_add(Components<float>&, const Components<float>&);
template void residual_add(Components<double>&, const Components<double>&);

}  // namespace depass
