// enum_names.hpp -- one table of (value, name) pairs per enum, read both ways, so that an
// enum's parser, its printer and the list of its values cannot disagree.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "depass/types.hpp"  // depass::Error

namespace depass {

template <class E>
struct NamedValue {
    E value;
    const char* name;
};

// The name of v in the table ("?" when absent).
template <class E, size_t K>
const char* name_in(const NamedValue<E> (&table)[K], E v) {
    for (const NamedValue<E>& e : table)
        if (e.value == v) return e.name;
    return "?";
}

// The value named s; false when no entry has that name.
template <class E, size_t K>
bool value_in(const NamedValue<E> (&table)[K], const std::string& s, E* out) {
    for (const NamedValue<E>& e : table)
        if (s == e.name) {
            *out = e.value;
            return true;
        }
    return false;
}

// Every value, in table order.
template <class E, size_t K>
std::vector<E> values_in(const NamedValue<E> (&table)[K]) {
    std::vector<E> out;
    for (const NamedValue<E>& e : table) out.push_back(e.value);
    return out;
}

// The names for a message: "a, b, c" with `last` (", " or " or ") before the final one.
template <class E, size_t K>
std::string names_in(const NamedValue<E> (&table)[K], const char* last) {
    std::string s;
    for (size_t k = 0; k < K; ++k) s += (k == 0 ? "" : k + 1 == K ? last : ", ") + std::string(table[k].name);
    return s;
}

}  // namespace depass
