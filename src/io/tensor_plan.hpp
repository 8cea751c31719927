// tensor_plan.hpp -- the tensors a model loader expects, checked all together before
// any data is read. Shared by the safetensors (hf_model.cpp) and GGUF (gguf.cpp) loaders.
//
// A loader lists every tensor it expects: name, shape and where the widened values go
// (a matrix, a vector, or a function that splits or transposes them). check() then tests
// the whole list against the file -- presence, shape, dtype, and that the file holds no
// tensor nobody asked for -- and only load() reads data, one tensor at a time.
//
// Source is the file: it provides
//   void check_tensor(const std::string& name, const std::vector<int64_t>& shape) const;
//       throws depass::Error when the tensor is absent or has another shape or a dtype
//       that cannot be widened;
//   std::vector<std::string> tensor_names() const;
//   [[noreturn]] void unexpected_tensor(const std::string& name) const;  // throws
//   template <class T> Tensor<T> read(const std::string& name, const std::vector<int64_t>& shape) const;
// so the messages stay in the words of each format.
#pragma once

#include "depass/types.hpp"

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace depass::detail {

template <class T, class Source>
class TensorPlan {
public:
    using Sink = std::function<void(Tensor<T>&&)>;

    explicit TensorPlan(const Source& source) : source_(source) {}

    void add(const std::string& name, std::vector<int64_t> shape, Sink sink) {
        items_.push_back({name, std::move(shape), std::move(sink)});
        names_.insert(name);
    }
    // An (out, in) matrix stored as it is applied.
    void mat(const std::string& name, Mat<T>& dst, int rows, int cols) {
        add(name, {rows, cols}, [&dst, rows, cols](Tensor<T>&& t) { dst = ConstMatMap<T>(t.data.data(), rows, cols); });
    }
    // A matrix stored transposed, (in, out) = (cols, rows) (GPT-2's Conv1D); dst becomes (rows, cols).
    void mat_t(const std::string& name, Mat<T>& dst, int rows, int cols) {
        add(name, {cols, rows},
            [&dst, rows, cols](Tensor<T>&& t) { dst = ConstMatMap<T>(t.data.data(), cols, rows).transpose(); });
    }
    void vec(const std::string& name, Vec<T>& dst, int n) {
        add(name, {n}, [&dst, n](Tensor<T>&& t) { dst = Eigen::Map<const Vec<T>>(t.data.data(), n); });
    }

    // Every planned tensor is present with its shape and a float dtype, and every tensor of
    // the file is planned or `ignored`.
    void check(const std::function<bool(const std::string&)>& ignored) const {
        for (const Item& it : items_) source_.check_tensor(it.name, it.shape);
        for (const std::string& n : source_.tensor_names())
            if (!names_.count(n) && !ignored(n)) source_.unexpected_tensor(n);
    }

    // Reads and widens every planned tensor into its destination, in plan order.
    void load() {
        for (Item& it : items_) it.sink(source_.template read<T>(it.name, it.shape));
    }

private:
    struct Item {
        std::string name;
        std::vector<int64_t> shape;
        Sink sink;
    };
    const Source& source_;
    std::vector<Item> items_;
    std::set<std::string> names_;
};

}  // namespace depass::detail
