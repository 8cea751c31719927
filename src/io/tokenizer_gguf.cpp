// tokenizer_gguf.cpp -- the vocabularies stored in GGUF metadata (tokenizer.ggml.*):
//
//   "llama"  SentencePiece-style BPE over Unicode code points with scores. The text
//            gets a dummy-prefix space (tokenizer.ggml.add_space_prefix, default on) and
//            every space becomes U+2581 "▁", as SentencePiece does. Each code point starts
//            as its own symbol; the adjacent pair whose concatenation is a normal or
//            user-defined piece with the highest score merges (leftmost on ties), until
//            no pair merges. A remaining symbol that is not a piece is emitted as its
//            bytes, each as the byte piece <0xXX> (byte fallback).
//   "gpt2"   byte-level BPE. The GPT-2 pre-tokenizer
//              's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//            (implemented by hand over code points) cuts the text into chunks; each chunk's
//            bytes map to the GPT-2 byte alphabet (printable Latin-1 bytes stand for
//            themselves, the other 68 bytes for U+0100..U+0143 in order), and adjacent
//            symbols merge by the rank of "left right" in tokenizer.ggml.merges (lowest
//            rank first, leftmost on ties).
//
// Token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control, 4 user
// defined, 5 unused, 6 byte.
#include <algorithm>
#include <climits>
#include <iterator>
#include <memory>
#include <queue>
#include <sstream>

#include "depass/gguf.hpp"
#include "pieces.hpp"

namespace depass {

using detail::raw_byte_piece;

namespace {

constexpr int kTypeNormal = 1, kTypeControl = 3, kTypeUserDefined = 4, kTypeByte = 6;
constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFFu;
const char* const kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// ---- Unicode classes --------------------------------------------------------------------

struct CodeRange {
    uint32_t lo, hi;
};

// General categories L* (letters) and N* (numbers) of Unicode 14 as sorted inclusive
// ranges; gaps made only of unassigned code points are bridged to keep the table short.
constexpr CodeRange kLetterRanges[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xAA, 0xAA},       {0xB5, 0xB5},       {0xBA, 0xBA},
    {0xC0, 0xD6},       {0xD8, 0xF6},       {0xF8, 0x2C1},      {0x2C6, 0x2D1},     {0x2E0, 0x2E4},
    {0x2EC, 0x2EC},     {0x2EE, 0x2EE},     {0x370, 0x374},     {0x376, 0x37D},     {0x37F, 0x37F},
    {0x386, 0x386},     {0x388, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x559},     {0x560, 0x588},
    {0x5D0, 0x5F2},     {0x620, 0x64A},     {0x66E, 0x66F},     {0x671, 0x6D3},     {0x6D5, 0x6D5},
    {0x6E5, 0x6E6},     {0x6EE, 0x6EF},     {0x6FA, 0x6FC},     {0x6FF, 0x6FF},     {0x710, 0x710},
    {0x712, 0x72F},     {0x74D, 0x7A5},     {0x7B1, 0x7B1},     {0x7CA, 0x7EA},     {0x7F4, 0x7F5},
    {0x7FA, 0x7FA},     {0x800, 0x815},     {0x81A, 0x81A},     {0x824, 0x824},     {0x828, 0x828},
    {0x840, 0x858},     {0x860, 0x887},     {0x889, 0x88E},     {0x8A0, 0x8C9},     {0x904, 0x939},
    {0x93D, 0x93D},     {0x950, 0x950},     {0x958, 0x961},     {0x971, 0x980},     {0x985, 0x9B9},
    {0x9BD, 0x9BD},     {0x9CE, 0x9CE},     {0x9DC, 0x9E1},     {0x9F0, 0x9F1},     {0x9FC, 0x9FC},
    {0xA05, 0xA39},     {0xA59, 0xA5E},     {0xA72, 0xA74},     {0xA85, 0xAB9},     {0xABD, 0xABD},
    {0xAD0, 0xAE1},     {0xAF9, 0xAF9},     {0xB05, 0xB39},     {0xB3D, 0xB3D},     {0xB5C, 0xB61},
    {0xB71, 0xB71},     {0xB83, 0xBB9},     {0xBD0, 0xBD0},     {0xC05, 0xC39},     {0xC3D, 0xC3D},
    {0xC58, 0xC61},     {0xC80, 0xC80},     {0xC85, 0xCB9},     {0xCBD, 0xCBD},     {0xCDD, 0xCE1},
    {0xCF1, 0xCF2},     {0xD04, 0xD3A},     {0xD3D, 0xD3D},     {0xD4E, 0xD4E},     {0xD54, 0xD56},
    {0xD5F, 0xD61},     {0xD7A, 0xD7F},     {0xD85, 0xDC6},     {0xE01, 0xE30},     {0xE32, 0xE33},
    {0xE40, 0xE46},     {0xE81, 0xEB0},     {0xEB2, 0xEB3},     {0xEBD, 0xEC6},     {0xEDC, 0xF00},
    {0xF40, 0xF6C},     {0xF88, 0xF8C},     {0x1000, 0x102A},   {0x103F, 0x103F},   {0x1050, 0x1055},
    {0x105A, 0x105D},   {0x1061, 0x1061},   {0x1065, 0x1066},   {0x106E, 0x1070},   {0x1075, 0x1081},
    {0x108E, 0x108E},   {0x10A0, 0x10FA},   {0x10FC, 0x135A},   {0x1380, 0x138F},   {0x13A0, 0x13FD},
    {0x1401, 0x166C},   {0x166F, 0x167F},   {0x1681, 0x169A},   {0x16A0, 0x16EA},   {0x16F1, 0x1711},
    {0x171F, 0x1731},   {0x1740, 0x1751},   {0x1760, 0x1770},   {0x1780, 0x17B3},   {0x17D7, 0x17D7},
    {0x17DC, 0x17DC},   {0x1820, 0x1884},   {0x1887, 0x18A8},   {0x18AA, 0x191E},   {0x1950, 0x19C9},
    {0x1A00, 0x1A16},   {0x1A20, 0x1A54},   {0x1AA7, 0x1AA7},   {0x1B05, 0x1B33},   {0x1B45, 0x1B4C},
    {0x1B83, 0x1BA0},   {0x1BAE, 0x1BAF},   {0x1BBA, 0x1BE5},   {0x1C00, 0x1C23},   {0x1C4D, 0x1C4F},
    {0x1C5A, 0x1C7D},   {0x1C80, 0x1CBF},   {0x1CE9, 0x1CEC},   {0x1CEE, 0x1CF3},   {0x1CF5, 0x1CF6},
    {0x1CFA, 0x1DBF},   {0x1E00, 0x1FBC},   {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FCC},   {0x1FD0, 0x1FDB},
    {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FFC},   {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},
    {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2139},
    {0x213C, 0x213F},   {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2CE4},
    {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0x2D00, 0x2D6F},   {0x2D80, 0x2DDE},   {0x2E2F, 0x2E2F},
    {0x3005, 0x3006},   {0x3031, 0x3035},   {0x303B, 0x303C},   {0x3041, 0x3096},   {0x309D, 0x309F},
    {0x30A1, 0x30FA},   {0x30FC, 0x318E},   {0x31A0, 0x31BF},   {0x31F0, 0x31FF},   {0x3400, 0x4DBF},
    {0x4E00, 0xA48C},   {0xA4D0, 0xA4FD},   {0xA500, 0xA60C},   {0xA610, 0xA61F},   {0xA62A, 0xA66E},
    {0xA67F, 0xA69D},   {0xA6A0, 0xA6E5},   {0xA717, 0xA71F},   {0xA722, 0xA788},   {0xA78B, 0xA801},
    {0xA803, 0xA805},   {0xA807, 0xA80A},   {0xA80C, 0xA822},   {0xA840, 0xA873},   {0xA882, 0xA8B3},
    {0xA8F2, 0xA8F7},   {0xA8FB, 0xA8FB},   {0xA8FD, 0xA8FE},   {0xA90A, 0xA925},   {0xA930, 0xA946},
    {0xA960, 0xA97C},   {0xA984, 0xA9B2},   {0xA9CF, 0xA9CF},   {0xA9E0, 0xA9E4},   {0xA9E6, 0xA9EF},
    {0xA9FA, 0xAA28},   {0xAA40, 0xAA42},   {0xAA44, 0xAA4B},   {0xAA60, 0xAA76},   {0xAA7A, 0xAA7A},
    {0xAA7E, 0xAAAF},   {0xAAB1, 0xAAB1},   {0xAAB5, 0xAAB6},   {0xAAB9, 0xAABD},   {0xAAC0, 0xAAC0},
    {0xAAC2, 0xAADD},   {0xAAE0, 0xAAEA},   {0xAAF2, 0xAAF4},   {0xAB01, 0xAB5A},   {0xAB5C, 0xAB69},
    {0xAB70, 0xABE2},   {0xAC00, 0xD7FB},   {0xF900, 0xFB1D},   {0xFB1F, 0xFB28},   {0xFB2A, 0xFBB1},
    {0xFBD3, 0xFD3D},   {0xFD50, 0xFDC7},   {0xFDF0, 0xFDFB},   {0xFE70, 0xFEFC},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0xFF66, 0xFFDC},   {0x10000, 0x100FA}, {0x10280, 0x102D0}, {0x10300, 0x1031F},
    {0x1032D, 0x10340}, {0x10342, 0x10349}, {0x10350, 0x10375}, {0x10380, 0x1039D}, {0x103A0, 0x103CF},
    {0x10400, 0x1049D}, {0x104B0, 0x10563}, {0x10570, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E},
    {0x108E0, 0x108F5}, {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10980, 0x109B7}, {0x109BE, 0x109BF},
    {0x10A00, 0x10A00}, {0x10A10, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7},
    {0x10AC9, 0x10AE4}, {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91},
    {0x10C00, 0x10CF2}, {0x10D00, 0x10D23}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10F1C}, {0x10F27, 0x10F45},
    {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11003, 0x11037}, {0x11071, 0x11072},
    {0x11075, 0x11075}, {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126}, {0x11144, 0x11144},
    {0x11147, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2}, {0x111C1, 0x111C4}, {0x111DA, 0x111DA},
    {0x111DC, 0x111DC}, {0x11200, 0x1122B}, {0x11280, 0x112A8}, {0x112B0, 0x112DE}, {0x11305, 0x11339},
    {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361}, {0x11400, 0x11434}, {0x11447, 0x1144A},
    {0x1145F, 0x114AF}, {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB},
    {0x11600, 0x1162F}, {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8}, {0x11700, 0x1171A},
    {0x11740, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x1192F}, {0x1193F, 0x1193F}, {0x11941, 0x11941},
    {0x119A0, 0x119D0}, {0x119E1, 0x119E1}, {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32},
    {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89}, {0x11A9D, 0x11A9D}, {0x11AB0, 0x11C2E},
    {0x11C40, 0x11C40}, {0x11C72, 0x11C8F}, {0x11D00, 0x11D30}, {0x11D46, 0x11D46}, {0x11D60, 0x11D89},
    {0x11D98, 0x11D98}, {0x11EE0, 0x11EF2}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399}, {0x12480, 0x12FF0},
    {0x13000, 0x1342E}, {0x14400, 0x16A5E}, {0x16A70, 0x16ABE}, {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F},
    {0x16B40, 0x16B43}, {0x16B63, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F50, 0x16F50}, {0x16F93, 0x16FE1},
    {0x16FE3, 0x16FE3}, {0x17000, 0x1BC99}, {0x1D400, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA},
    {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E}, {0x1D770, 0x1D788},
    {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E}, {0x1E100, 0x1E12C},
    {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB}, {0x1E7E0, 0x1E8C4},
    {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EEBB}, {0x20000, 0x3134A},
};
constexpr CodeRange kNumberRanges[] = {
    {0x30, 0x39},       {0xB2, 0xB3},       {0xB9, 0xB9},       {0xBC, 0xBE},       {0x660, 0x669},
    {0x6F0, 0x6F9},     {0x7C0, 0x7C9},     {0x966, 0x96F},     {0x9E6, 0x9EF},     {0x9F4, 0x9F9},
    {0xA66, 0xA6F},     {0xAE6, 0xAEF},     {0xB66, 0xB6F},     {0xB72, 0xB77},     {0xBE6, 0xBF2},
    {0xC66, 0xC6F},     {0xC78, 0xC7E},     {0xCE6, 0xCEF},     {0xD58, 0xD5E},     {0xD66, 0xD78},
    {0xDE6, 0xDEF},     {0xE50, 0xE59},     {0xED0, 0xED9},     {0xF20, 0xF33},     {0x1040, 0x1049},
    {0x1090, 0x1099},   {0x1369, 0x137C},   {0x16EE, 0x16F0},   {0x17E0, 0x17F9},   {0x1810, 0x1819},
    {0x1946, 0x194F},   {0x19D0, 0x19DA},   {0x1A80, 0x1A99},   {0x1B50, 0x1B59},   {0x1BB0, 0x1BB9},
    {0x1C40, 0x1C49},   {0x1C50, 0x1C59},   {0x2070, 0x2070},   {0x2074, 0x2079},   {0x2080, 0x2089},
    {0x2150, 0x2182},   {0x2185, 0x2189},   {0x2460, 0x249B},   {0x24EA, 0x24FF},   {0x2776, 0x2793},
    {0x2CFD, 0x2CFD},   {0x3007, 0x3007},   {0x3021, 0x3029},   {0x3038, 0x303A},   {0x3192, 0x3195},
    {0x3220, 0x3229},   {0x3248, 0x324F},   {0x3251, 0x325F},   {0x3280, 0x3289},   {0x32B1, 0x32BF},
    {0xA620, 0xA629},   {0xA6E6, 0xA6EF},   {0xA830, 0xA835},   {0xA8D0, 0xA8D9},   {0xA900, 0xA909},
    {0xA9D0, 0xA9D9},   {0xA9F0, 0xA9F9},   {0xAA50, 0xAA59},   {0xABF0, 0xABF9},   {0xFF10, 0xFF19},
    {0x10107, 0x10133}, {0x10140, 0x10178}, {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323},
    {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x103D1, 0x103D5}, {0x104A0, 0x104A9}, {0x10858, 0x1085F},
    {0x10879, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF}, {0x10916, 0x1091B}, {0x109BC, 0x109BD},
    {0x109C0, 0x109FF}, {0x10A40, 0x10A48}, {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF},
    {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F}, {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10E7E},
    {0x10F1D, 0x10F26}, {0x10F51, 0x10F54}, {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9},
    {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x11730, 0x1173B}, {0x118E0, 0x118F2},
    {0x11950, 0x11959}, {0x11C50, 0x11C6C}, {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11FC0, 0x11FD4},
    {0x12400, 0x1246E}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B61}, {0x16E80, 0x16E96},
    {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9},
    {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB}, {0x1ECAD, 0x1ECAF}, {0x1ECB1, 0x1ED2D},
    {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};

bool in_ranges(const CodeRange* begin, const CodeRange* end, uint32_t cp) {
    const CodeRange* it =
        std::upper_bound(begin, end, cp, [](uint32_t c, const CodeRange& r) { return c < r.lo; });
    return it != begin && cp <= (it - 1)->hi;
}

// Unicode White_Space (what \s matches).
bool is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

enum class Cat { Letter, Number, Space, Other };

Cat category(uint32_t cp) {
    if (cp == kInvalidCodePoint) return Cat::Other;
    if (is_space(cp)) return Cat::Space;
    if (cp < 0x80) {
        if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z')) return Cat::Letter;
        if (cp >= '0' && cp <= '9') return Cat::Number;
        return Cat::Other;
    }
    if (in_ranges(std::begin(kLetterRanges), std::end(kLetterRanges), cp)) return Cat::Letter;
    if (in_ranges(std::begin(kNumberRanges), std::end(kNumberRanges), cp)) return Cat::Number;
    return Cat::Other;
}

// ---- UTF-8 ----------------------------------------------------------------------------

// Decodes the code point starting at s[i]; returns its byte length. A malformed
// sequence yields kInvalidCodePoint with length 1 (that byte alone).
size_t next_code_point(const std::string& s, size_t i, uint32_t* cp) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
    } else {
        *cp = kInvalidCodePoint;
        return 1;
    }
    if (i + len > s.size()) {
        *cp = kInvalidCodePoint;
        return 1;
    }
    for (size_t k = 1; k < len; ++k) {
        const unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) {
            *cp = kInvalidCodePoint;
            return 1;
        }
        v = (v << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and values beyond U+10FFFF.
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = kInvalidCodePoint;
        return 1;
    }
    *cp = v;
    return len;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// ---- GPT-2 byte alphabet ----------------------------------------------------------------

// Byte b stands for code point byte_to_cp(b): the printable bytes '!'..'~', 0xA1..0xAC and
// 0xAE..0xFF for themselves, the remaining 68 bytes for 0x100, 0x101, ... in byte order.
struct ByteAlphabet {
    uint32_t cp[256];
    int byte_of[0x100 + 68];  // inverse, -1 where no byte maps
    ByteAlphabet() {
        std::fill(std::begin(byte_of), std::end(byte_of), -1);
        uint32_t next = 0x100;
        for (int b = 0; b < 256; ++b) {
            const bool printable =
                (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            cp[b] = printable ? uint32_t(b) : next++;
            byte_of[cp[b]] = b;
        }
    }
};
const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet a;
    return a;
}

// ---- GPT-2 pre-tokenizer ------------------------------------------------------------------

// Splits `text` into the chunks the GPT-2 regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matches, trying the alternatives in order at each position. Returns byte spans of
// `text` (so malformed UTF-8 passes through unchanged, as "other" characters).
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(const std::string& text) {
    std::vector<uint32_t> cps;
    std::vector<size_t> off;  // byte offset of each code point; off[n] = text.size()
    for (size_t i = 0; i < text.size();) {
        uint32_t cp;
        const size_t len = next_code_point(text, i, &cp);
        cps.push_back(cp);
        off.push_back(i);
        i += len;
    }
    const size_t n = cps.size();
    off.push_back(text.size());
    std::vector<Cat> cat(n);
    for (size_t k = 0; k < n; ++k) cat[k] = category(cps[k]);

    std::vector<std::pair<size_t, size_t>> out;
    auto emit = [&](size_t a, size_t b) { out.emplace_back(off[a], off[b] - off[a]); };
    size_t i = 0;
    while (i < n) {
        // Contractions (case-sensitive, ASCII apostrophe).
        if (cps[i] == '\'' && i + 1 < n) {
            const uint32_t c1 = cps[i + 1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                emit(i, i + 2);
                i += 2;
                continue;
            }
            if (i + 2 < n) {
                const uint32_t c2 = cps[i + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    emit(i, i + 3);
                    i += 3;
                    continue;
                }
            }
        }
        // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional single space, then a run.
        const size_t j = (cps[i] == ' ' && i + 1 < n && cat[i + 1] != Cat::Space) ? i + 1 : i;
        if (cat[j] != Cat::Space) {
            const Cat run = cat[j];
            size_t e = j + 1;
            while (e < n && cat[e] == run) ++e;
            emit(i, e);
            i = e;
            continue;
        }
        // "\s+(?!\S)": a whitespace run, minus its last character when a non-space follows
        // (that character then joins the next chunk); "\s+" when that leaves nothing.
        size_t e = i + 1;
        while (e < n && cat[e] == Cat::Space) ++e;
        if (e < n && e - i > 1) --e;
        emit(i, e);
        i = e;
    }
    return out;
}

// ---- pair merging ----------------------------------------------------------------------------

// Symbols are adjacent byte spans of one string. `rate(start, len_left, len_right, &prio)`
// says whether the two neighbours may merge and with which priority; the best pair
// (highest priority, leftmost on ties) merges first, repeatedly. Returns the final spans.
//
// Each candidate pair is cached in a heap; a merge changes only the pairs on either side,
// and stale entries are recognised by per-symbol version counters.
template <class Rate>
std::vector<std::pair<size_t, size_t>> merge_pairs(std::vector<std::pair<size_t, size_t>> spans,
                                                   const Rate& rate) {
    struct Sym {
        size_t start, len;
        int prev, next;
        unsigned version;
        bool alive;
    };
    struct Cand {
        double prio;
        int left, right;
        unsigned vleft, vright;
    };
    struct Worse {
        bool operator()(const Cand& a, const Cand& b) const {
            if (a.prio != b.prio) return a.prio < b.prio;
            return a.left > b.left;
        }
    };
    const int n = static_cast<int>(spans.size());
    std::vector<Sym> sym(spans.size());
    for (int k = 0; k < n; ++k)
        sym[size_t(k)] = {
            spans[size_t(k)].first, spans[size_t(k)].second, k - 1, k + 1 < n ? k + 1 : -1, 0u, true};
    std::priority_queue<Cand, std::vector<Cand>, Worse> heap;
    auto consider = [&](int l) {
        if (l < 0) return;
        const Sym& a = sym[size_t(l)];
        if (a.next < 0) return;
        const Sym& b = sym[size_t(a.next)];
        double prio;
        if (rate(a.start, a.len, b.len, &prio)) heap.push({prio, l, a.next, a.version, b.version});
    };
    for (int k = 0; k + 1 < n; ++k) consider(k);
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Sym& a = sym[size_t(c.left)];
        Sym& b = sym[size_t(c.right)];
        if (!a.alive || !b.alive || a.next != c.right || a.version != c.vleft || b.version != c.vright)
            continue;
        a.len += b.len;
        ++a.version;
        b.alive = false;
        a.next = b.next;
        if (b.next >= 0) sym[size_t(b.next)].prev = c.left;
        consider(a.prev);
        consider(c.left);
    }
    std::vector<std::pair<size_t, size_t>> out;
    for (int k = n > 0 ? 0 : -1; k >= 0; k = sym[size_t(k)].next)
        out.emplace_back(sym[size_t(k)].start, sym[size_t(k)].len);
    return out;
}



}  // namespace

// ---- loading ---------------------------------------------------------------------------------

GgufTokenizer GgufTokenizer::load(const std::string& path) { return from_file(GgufFile::open(path)); }

GgufTokenizer GgufTokenizer::from_file(const GgufFile& g) {
    const std::string& path = g.path();
    GgufTokenizer t;
    t.path_ = path;
    const std::string model = g.get_string("tokenizer.ggml.model");
    if (model == "llama") {
        t.kind_ = Kind::Spm;
    } else if (model == "gpt2") {
        t.kind_ = Kind::Bpe;
    } else {
        throw Error(path + ": metadata key 'tokenizer.ggml.model' = '" + model +
                    "' is not supported (only 'llama' and 'gpt2' vocabularies)");
    }
    t.tokens_ = g.get_string_array("tokenizer.ggml.tokens");
    const size_t n = t.tokens_.size();
    if (n == 0) throw Error(path + ": metadata key 'tokenizer.ggml.tokens' is an empty array");
    if (n > size_t(INT_MAX))
        throw Error(path + ": tokenizer.ggml.tokens has too many entries (" + std::to_string(n) + ")");
    auto check_len = [&](const std::string& key, size_t len) {
        if (len != n) {
            throw Error(path + ": metadata key '" + key + "' has " + std::to_string(len) +
                        " elements, expected " + std::to_string(n) +
                        " (one per token of tokenizer.ggml.tokens)");
        }
    };
    if (g.has("tokenizer.ggml.scores")) {
        const std::vector<double> s = g.get_float_array("tokenizer.ggml.scores");
        check_len("tokenizer.ggml.scores", s.size());
        t.scores_.assign(s.begin(), s.end());
    } else {
        t.scores_.assign(n, 0.0f);
    }
    if (g.has("tokenizer.ggml.token_type")) {
        const std::vector<int64_t> ty = g.get_int_array("tokenizer.ggml.token_type");
        check_len("tokenizer.ggml.token_type", ty.size());
        t.types_.resize(n);
        for (size_t k = 0; k < n; ++k) {
            if (ty[k] < 0 || ty[k] > 6) {
                throw Error(path + ": metadata key 'tokenizer.ggml.token_type' element " + std::to_string(k) +
                            " = " + std::to_string(ty[k]) + " is not a token type (0..6)");
            }
            t.types_[k] = static_cast<int>(ty[k]);
        }
    } else {
        // Without types: byte pieces of an SPM vocabulary are recognised by their spelling.
        t.types_.assign(n, kTypeNormal);
        if (t.kind_ == Kind::Spm)
            for (size_t k = 0; k < n; ++k)
                if (raw_byte_piece(t.tokens_[k]) >= 0) t.types_[k] = kTypeByte;
    }
    t.index_.reserve(n * 2);
    for (size_t k = 0; k < n; ++k) t.index_.emplace(t.tokens_[k], static_cast<int>(k));

    auto special = [&](const std::string& key) {
        if (!g.has(key)) return -1;
        const int64_t id = g.get_int(key);
        if (id < 0) return -1;  // "none"
        if (id >= static_cast<int64_t>(n)) {
            throw Error(path + ": metadata key '" + key + "' = " + std::to_string(id) +
                        " is outside the vocabulary of " + std::to_string(n) + " tokens");
        }
        return static_cast<int>(id);
    };
    t.bos_id_ = special("tokenizer.ggml.bos_token_id");
    t.eos_id_ = special("tokenizer.ggml.eos_token_id");
    t.unk_id_ = special("tokenizer.ggml.unknown_token_id");
    t.add_bos_ = g.get_bool("tokenizer.ggml.add_bos_token", t.kind_ == Kind::Spm);
    t.add_space_prefix_ = g.get_bool("tokenizer.ggml.add_space_prefix", t.kind_ == Kind::Spm);

    std::fill(std::begin(t.byte_ids_), std::end(t.byte_ids_), -1);
    if (t.kind_ == Kind::Spm) {
        if (t.unk_id_ < 0) t.unk_id_ = t.lookup("<unk>");
        for (size_t k = 0; k < n; ++k) {
            const int b = raw_byte_piece(t.tokens_[k]);
            if (b >= 0 && t.types_[k] == kTypeByte && t.byte_ids_[b] < 0)
                t.byte_ids_[b] = static_cast<int>(k);
        }
    } else {
        const std::vector<std::string>& merges = g.get_string_array("tokenizer.ggml.merges");
        t.merge_rank_.reserve(merges.size() * 2);
        for (size_t r = 0; r < merges.size(); ++r) {
            const std::string& m = merges[r];
            const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
            if (sp == std::string::npos || sp + 1 >= m.size()) {
                throw Error(path + ": metadata key 'tokenizer.ggml.merges' element " + std::to_string(r) +
                            " = '" + m + "' is not two pieces separated by a space");
            }
            if (r > size_t(INT_MAX)) throw Error(path + ": tokenizer.ggml.merges has too many entries");
            t.merge_rank_.emplace(m, static_cast<int>(r));
        }
        const ByteAlphabet& ab = byte_alphabet();
        for (int b = 0; b < 256; ++b) {
            std::string s;
            append_utf8(s, ab.cp[b]);
            t.byte_ids_[b] = t.lookup(s);
        }
    }
    return t;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
    return std::make_unique<GgufTokenizer>(GgufTokenizer::load(path));
}

// ---- lookups -------------------------------------------------------------------------------

void GgufTokenizer::check_id(int id) const { detail::check_token_id(id, vocab_size(), path_); }

const std::string& GgufTokenizer::piece(int id) const {
    check_id(id);
    return tokens_[size_t(id)];
}

int GgufTokenizer::token_type(int id) const {
    check_id(id);
    return types_[size_t(id)];
}

int GgufTokenizer::lookup(const std::string& s) const {
    auto it = index_.find(s);
    return it == index_.end() ? -1 : it->second;
}

// ---- encoding ------------------------------------------------------------------------------

std::vector<int> GgufTokenizer::encode(const std::string& text, bool bos, bool eos) const {
    std::vector<int> ids = kind_ == Kind::Spm ? encode_spm(text) : encode_bpe(text);
    if (bos && bos_id_ >= 0) ids.insert(ids.begin(), bos_id_);
    if (eos && eos_id_ >= 0) ids.push_back(eos_id_);
    return ids;
}

std::vector<int> GgufTokenizer::encode_spm(const std::string& text) const {
    if (text.empty()) return {};
    // Dummy prefix, then every space becomes U+2581.
    std::string s;
    s.reserve(text.size() * 3 + 3);
    for (char c : (add_space_prefix_ ? " " + text : text)) {
        if (c == ' ')
            s += kSpmSpace;
        else
            s += c;
    }
    // One symbol per code point (a malformed byte is a symbol of its own).
    std::vector<std::pair<size_t, size_t>> spans;
    for (size_t i = 0; i < s.size();) {
        uint32_t cp;
        const size_t len = next_code_point(s, i, &cp);
        spans.emplace_back(i, len);
        i += len;
    }
    // A merge must produce a normal or user-defined piece; its score is the priority.
    auto mergeable = [&](int id) {
        return id >= 0 && (types_[size_t(id)] == kTypeNormal || types_[size_t(id)] == kTypeUserDefined);
    };
    std::string buf;
    auto rate = [&](size_t start, size_t len_l, size_t len_r, double* prio) {
        buf.assign(s, start, len_l + len_r);
        const int id = lookup(buf);
        if (!mergeable(id)) return false;
        *prio = scores_[size_t(id)];
        return true;
    };
    std::vector<int> out;
    for (const auto& sp : merge_pairs(std::move(spans), rate)) {
        buf.assign(s, sp.first, sp.second);
        const int id = lookup(buf);
        if (mergeable(id)) {
            out.push_back(id);
            continue;
        }
        for (size_t k = 0; k < sp.second; ++k) {  // byte fallback
            const unsigned char b = static_cast<unsigned char>(s[sp.first + k]);
            int bid = byte_ids_[b];
            if (bid < 0) bid = unk_id_;
            if (bid < 0) {
                std::ostringstream os;
                os << "tokenizer '" << path_ << "': byte 0x" << std::hex << int(b)
                   << " has no byte piece and the vocabulary has no unknown token";
                throw Error(os.str());
            }
            out.push_back(bid);
        }
    }
    return out;
}

std::vector<int> GgufTokenizer::encode_bpe(const std::string& text) const {
    const ByteAlphabet& ab = byte_alphabet();
    std::vector<int> out;
    std::string word, key, buf;
    for (const auto& chunk : gpt2_pretokenize(text)) {
        // The chunk's bytes in the byte alphabet; one symbol per byte.
        word.clear();
        std::vector<std::pair<size_t, size_t>> spans;
        for (size_t k = 0; k < chunk.second; ++k) {
            const size_t start = word.size();
            append_utf8(word, ab.cp[static_cast<unsigned char>(text[chunk.first + k])]);
            spans.emplace_back(start, word.size() - start);
        }
        auto rate = [&](size_t start, size_t len_l, size_t len_r, double* prio) {
            key.assign(word, start, len_l);
            key += ' ';
            key.append(word, start + len_l, len_r);
            auto it = merge_rank_.find(key);
            if (it == merge_rank_.end()) return false;
            *prio = -static_cast<double>(it->second);  // lower rank first
            return true;
        };
        for (const auto& sp : merge_pairs(std::move(spans), rate)) {
            buf.assign(word, sp.first, sp.second);
            const int id = lookup(buf);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            // Not a token: its bytes one by one (each byte's character is a token in any
            // complete byte-level vocabulary).
            for (size_t p = sp.first; p < sp.first + sp.second;) {
                uint32_t cp;
                const size_t len = next_code_point(word, p, &cp);
                const int b = cp < 0x100 + 68 ? ab.byte_of[cp] : -1;
                const int bid = b >= 0 ? byte_ids_[b] : -1;
                if (bid < 0) {
                    throw Error("tokenizer '" + path_ +
                                "': the vocabulary has no token for byte-alphabet piece '" +
                                word.substr(p, len) + "'");
                }
                out.push_back(bid);
                p += len;
            }
        }
    }
    return out;
}

// ---- decoding --------------------------------------------------------------------------------

std::string GgufTokenizer::decode_piece(int prev_id, int id) const {
    check_id(id);
    const std::string& p = tokens_[size_t(id)];
    const int type = types_[size_t(id)];
    if (type == kTypeControl) return "";
    if (kind_ == Kind::Spm) {
        if (type == kTypeByte) {
            const int b = raw_byte_piece(p);
            if (b >= 0) return std::string(1, static_cast<char>(b));
        }
        std::string out;
        for (size_t i = 0; i < p.size();) {
            if (p.compare(i, 3, kSpmSpace) == 0) {
                out += ' ';
                i += 3;
            } else {
                out += p[i++];
            }
        }
        // The dummy prefix of the first piece (at the start or after BOS) is not text.
        if (add_space_prefix_ && (prev_id < 0 || prev_id == bos_id_) && !out.empty() && out[0] == ' ')
            out.erase(0, 1);
        return out;
    }
    // Byte-level: each character of the byte alphabet is one byte; other characters
    // (user-defined pieces spelled in plain text) pass through.
    const ByteAlphabet& ab = byte_alphabet();
    std::string out;
    for (size_t i = 0; i < p.size();) {
        uint32_t cp;
        const size_t len = next_code_point(p, i, &cp);
        const int b = cp < 0x100 + 68 ? ab.byte_of[cp] : -1;
        if (b >= 0 && type != kTypeUserDefined)
            out += static_cast<char>(b);
        else
            out.append(p, i, len);
        i += len;
    }
    return out;
}

std::string GgufTokenizer::decode(const std::vector<int>& ids) const {
    std::string out;
    int prev = -1;
    for (int id : ids) {
        out += decode_piece(prev, id);
        prev = id;
    }
    return out;
}

}  // namespace depass
