// check.hpp -- shape checks used on entry of every op (internal header).
#pragma once

#include <sstream>
#include <string>

#include "depass/threading.hpp"
#include "depass/types.hpp"

namespace depass::detail {

inline void check_dim(const char* op, const char* what, long actual, long expected) {
    if (actual != expected) {
        std::ostringstream os;
        os << op << ": " << what << " is " << actual << ", expected " << expected;
        throw Error(os.str());
    }
}

template <class M>
void check_shape(const char* op, const char* name, const M& m, long rows, long cols) {
    if (m.rows() != rows || m.cols() != cols) {
        std::ostringstream os;
        os << op << ": " << name << " has shape [" << m.rows() << ", " << m.cols() << "], expected [" << rows
           << ", " << cols << "]";
        throw Error(os.str());
    }
}

}  // namespace depass::detail
