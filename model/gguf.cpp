// GGUF parsing and the mmap'd file (see gguf.h).
#include "model/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

namespace qnext {
namespace {

constexpr std::array<GgmlTypeInfo, 34> kGgmlTypes = {{
    {0, "F32", 1, 4},          {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},     {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},     {41, "Q1_0", 128, 18},
}};

std::string human_bytes(uint64_t n) { return std::to_string(n) + " bytes"; }

// A bounds-checked little-endian reader over the file image. Every read names what it reads, so that a
// truncated file says where it ends.
class Cursor {
public:
    Cursor(std::span<const std::byte> b, const std::string& file) : b_(b), file_(file) {}

    [[noreturn]] void fail(const std::string& what) const { throw GgufError(file_ + ": " + what); }

    uint64_t pos() const { return pos_; }
    uint64_t left() const { return b_.size() - pos_; }

    void need(uint64_t n, const std::string& what) const {
        if (n > left())
            fail("truncated: " + what + " needs " + human_bytes(n) + " at offset " + std::to_string(pos_) +
                 ", but the file has " + human_bytes(b_.size()));
    }
    template <class T>
    T get(const std::string& what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, b_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string str(const std::string& what, uint64_t max_bytes) {
        const uint64_t n = get<uint64_t>(what + " (length)");
        if (n > max_bytes)
            fail(what + ": string of " + human_bytes(n) + " is longer than the limit of " + human_bytes(max_bytes));
        need(n, what);
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), size_t(n));
        pos_ += n;
        return s;
    }

private:
    std::span<const std::byte> b_;
    const std::string& file_;
    uint64_t pos_ = 0;
};

uint64_t scalar_size(GgufType t) {
    switch (t) {
        case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
        case GgufType::U16: case GgufType::I16: return 2;
        case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
        case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
        case GgufType::String: return 8;   // at least its length field
        case GgufType::Array: return 12;   // at least its element type and count
    }
    return 0;
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

GgufValue read_value(Cursor& c, GgufType type, const std::string& what, const GgufLimits& lim, int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
        case GgufType::U8: v.v = uint64_t(c.get<uint8_t>(what)); break;
        case GgufType::I8: v.v = int64_t(c.get<int8_t>(what)); break;
        case GgufType::U16: v.v = uint64_t(c.get<uint16_t>(what)); break;
        case GgufType::I16: v.v = int64_t(c.get<int16_t>(what)); break;
        case GgufType::U32: v.v = uint64_t(c.get<uint32_t>(what)); break;
        case GgufType::I32: v.v = int64_t(c.get<int32_t>(what)); break;
        case GgufType::U64: v.v = c.get<uint64_t>(what); break;
        case GgufType::I64: v.v = c.get<int64_t>(what); break;
        case GgufType::F32: v.v = double(c.get<float>(what)); break;
        case GgufType::F64: v.v = c.get<double>(what); break;
        case GgufType::Bool: {
            const uint8_t b = c.get<uint8_t>(what);
            if (b > 1) c.fail(what + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
            v.v = b == 1;
            break;
        }
        case GgufType::String: v.v = c.str(what, lim.max_string_bytes); break;
        case GgufType::Array: {
            if (depth >= lim.max_array_depth)
                c.fail(what + ": arrays nest deeper than " + std::to_string(lim.max_array_depth) + " levels");
            const uint32_t et = c.get<uint32_t>(what + " (array element type)");
            if (!valid_type(et)) c.fail(what + ": unknown array element type " + std::to_string(et));
            v.elem_type = GgufType(et);
            const uint64_t n = c.get<uint64_t>(what + " (array length)");
            if (n > lim.max_array_elems)
                c.fail(what + ": array of " + std::to_string(n) + " elements is longer than the limit of " +
                       std::to_string(lim.max_array_elems));
            // Each element takes at least scalar_size bytes: refuse counts the file cannot hold before
            // reserving memory for them.
            if (n > c.left() / scalar_size(v.elem_type))
                c.fail("truncated: " + what + " declares " + std::to_string(n) + " elements of type " +
                       gguf_type_name(v.elem_type) + " but only " + human_bytes(c.left()) + " follow");
            std::vector<GgufValue> items;
            items.reserve(size_t(n));
            for (uint64_t i = 0; i < n; ++i)
                items.push_back(read_value(c, v.elem_type, what + "[" + std::to_string(i) + "]", lim, depth + 1));
            v.v = std::move(items);
            break;
        }
    }
    return v;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

const char* gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::U8: return "UINT8";
        case GgufType::I8: return "INT8";
        case GgufType::U16: return "UINT16";
        case GgufType::I16: return "INT16";
        case GgufType::U32: return "UINT32";
        case GgufType::I32: return "INT32";
        case GgufType::F32: return "FLOAT32";
        case GgufType::Bool: return "BOOL";
        case GgufType::String: return "STRING";
        case GgufType::Array: return "ARRAY";
        case GgufType::U64: return "UINT64";
        case GgufType::I64: return "INT64";
        case GgufType::F64: return "FLOAT64";
    }
    return "?";
}

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
    for (const auto& t : kGgmlTypes)
        if (t.id == id) return &t;
    return nullptr;
}

// ---- GgufValue ------------------------------------------------------------------------------------------

bool GgufValue::is_integer() const {
    return std::holds_alternative<uint64_t>(v) || std::holds_alternative<int64_t>(v);
}

namespace {
[[noreturn]] void wrong(std::string_view key, const GgufValue& v, const char* want) {
    throw GgufError("metadata '" + std::string(key) + "' is " +
                    (v.type == GgufType::Array ? std::string("an ARRAY of ") + gguf_type_name(v.elem_type)
                                               : std::string(gguf_type_name(v.type))) +
                    ", expected " + want);
}
}  // namespace

uint64_t GgufValue::as_u64(std::string_view key) const {
    if (const auto* u = std::get_if<uint64_t>(&v)) return *u;
    if (const auto* i = std::get_if<int64_t>(&v)) {
        if (*i < 0) throw GgufError("metadata '" + std::string(key) + "' is " + std::to_string(*i) + ", expected >= 0");
        return uint64_t(*i);
    }
    wrong(key, *this, "an unsigned integer");
}

int64_t GgufValue::as_i64(std::string_view key) const {
    if (const auto* i = std::get_if<int64_t>(&v)) return *i;
    if (const auto* u = std::get_if<uint64_t>(&v)) {
        if (*u > uint64_t(std::numeric_limits<int64_t>::max()))
            throw GgufError("metadata '" + std::string(key) + "' is " + std::to_string(*u) + ", too large");
        return int64_t(*u);
    }
    wrong(key, *this, "an integer");
}

double GgufValue::as_f64(std::string_view key) const {
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
    if (const auto* u = std::get_if<uint64_t>(&v)) return double(*u);
    wrong(key, *this, "a number");
}

bool GgufValue::as_bool(std::string_view key) const {
    if (const auto* b = std::get_if<bool>(&v)) return *b;
    wrong(key, *this, "a BOOL");
}

const std::string& GgufValue::as_string(std::string_view key) const {
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    wrong(key, *this, "a STRING");
}

const std::vector<GgufValue>& GgufValue::as_array(std::string_view key) const {
    if (const auto* a = std::get_if<std::vector<GgufValue>>(&v)) return *a;
    wrong(key, *this, "an ARRAY");
}

// ---- GgufTensor -----------------------------------------------------------------------------------------

int64_t GgufTensor::numel() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;   // bounded when parsed
    return n;
}

std::string GgufTensor::shape_str() const {
    std::string s = "[";
    const auto sh = shape();
    for (size_t i = 0; i < sh.size(); ++i) s += (i ? ", " : "") + std::to_string(sh[i]);
    return s + "]";
}

const char* GgufTensor::type_name() const {
    const GgmlTypeInfo* t = ggml_type_info(type);
    return t ? t->name : "unknown";
}

// ---- parse ----------------------------------------------------------------------------------------------

GgufContents parse_gguf(std::span<const std::byte> bytes, const std::string& file, const GgufLimits& lim) {
    Cursor c(bytes, file);
    GgufContents out;
    const uint32_t magic = c.get<uint32_t>("the magic");
    if (magic != 0x46554747u) c.fail("not a GGUF file (the first 4 bytes are not \"GGUF\")");
    out.version = c.get<uint32_t>("the version");
    if (out.version == 0x03000000u || out.version == 0x02000000u)
        c.fail("big-endian GGUF files are not supported (convert it on a little-endian machine)");
    if (out.version != 2 && out.version != 3)
        c.fail("GGUF version " + std::to_string(out.version) + " is not supported (qnext reads versions 2 and 3)");
    const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
    const uint64_t n_kv = c.get<uint64_t>("the metadata count");
    if (n_kv > lim.max_kv)
        c.fail("the header declares " + std::to_string(n_kv) + " metadata entries, more than the limit of " +
               std::to_string(lim.max_kv));
    if (n_tensors > lim.max_tensors)
        c.fail("the header declares " + std::to_string(n_tensors) + " tensors, more than the limit of " +
               std::to_string(lim.max_tensors));

    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string idx = "metadata entry #" + std::to_string(i);
        std::string key = c.str(idx + " key", lim.max_string_bytes);
        const std::string what = "metadata '" + key + "'";
        const uint32_t t = c.get<uint32_t>(what + " (type)");
        if (!valid_type(t)) c.fail(what + ": unknown value type " + std::to_string(t));
        GgufValue v = read_value(c, GgufType(t), what, lim, 0);
        if (!out.metadata.emplace(key, std::move(v)).second) c.fail(what + " appears twice");
    }
    if (auto it = out.metadata.find("general.alignment"); it != out.metadata.end()) {
        if (it->second.type != GgufType::U32)
            c.fail(std::string("metadata 'general.alignment' must be a UINT32, not ") + gguf_type_name(it->second.type));
        out.alignment = it->second.as_u64("general.alignment");
        if (out.alignment == 0 || (out.alignment & (out.alignment - 1)))
            c.fail("metadata 'general.alignment' = " + std::to_string(out.alignment) + " is not a power of two");
    }

    std::map<std::string, size_t, std::less<>> seen;
    out.tensors.reserve(size_t(std::min<uint64_t>(n_tensors, c.left() / 24)));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensor t;
        t.name = c.str("tensor info #" + std::to_string(i) + " name", lim.max_string_bytes);
        const std::string what = "tensor '" + t.name + "'";
        const uint32_t n_dims = c.get<uint32_t>(what + " (dimension count)");
        if (n_dims == 0 || n_dims > 4)
            c.fail(what + ": " + std::to_string(n_dims) + " dimensions (GGML tensors have 1 to 4)");
        uint64_t numel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t ne = c.get<uint64_t>(what + " (dimension " + std::to_string(d) + ")");
            if (ne > uint64_t(std::numeric_limits<int64_t>::max()) || mul_overflows(numel, ne, &numel) ||
                numel > uint64_t(std::numeric_limits<int64_t>::max()))
                c.fail(what + ": the element count overflows");
            t.ne.push_back(int64_t(ne));
        }
        t.type = c.get<uint32_t>(what + " (type)");
        const GgmlTypeInfo* info = ggml_type_info(t.type);
        if (!info) c.fail(what + ": unknown GGML type id " + std::to_string(t.type));
        if (uint64_t(t.ne[0]) % info->block_elems)
            c.fail(what + ": the row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + info->name +
                   " block size " + std::to_string(info->block_elems));
        if (mul_overflows(numel / info->block_elems, info->block_bytes, &t.nbytes))
            c.fail(what + ": the byte size overflows");
        t.offset = c.get<uint64_t>(what + " (data offset)");
        if (t.offset % out.alignment)
            c.fail(what + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                   std::to_string(out.alignment));
        if (!seen.emplace(t.name, out.tensors.size()).second) c.fail(what + " appears twice");
        out.tensors.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment after the tensor infos.
    const uint64_t end_of_infos = c.pos();
    out.data_offset = (end_of_infos + out.alignment - 1) / out.alignment * out.alignment;
    if (out.data_offset < end_of_infos) c.fail("the data section offset overflows");
    const uint64_t size = bytes.size();
    const uint64_t data_size = out.data_offset <= size ? size - out.data_offset : 0;
    if (!out.tensors.empty() && out.data_offset > size)
        c.fail("truncated: the data section would start at offset " + std::to_string(out.data_offset) +
               ", past the end of the file (" + human_bytes(size) + ")");
    std::vector<const GgufTensor*> by_offset;
    for (GgufTensor& t : out.tensors) {
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            c.fail("tensor '" + t.name + "': " + human_bytes(t.nbytes) + " of data at offset " +
                   std::to_string(t.offset) + " end past the end of the file (the data section has " +
                   human_bytes(data_size) + ")");
        t.data = bytes.data() + out.data_offset + t.offset;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const GgufTensor& a = *by_offset[i - 1];
        const GgufTensor& b = *by_offset[i];
        if (a.nbytes && b.nbytes && b.offset < a.offset + a.nbytes)
            c.fail("tensors '" + a.name + "' and '" + b.name + "' overlap in the data section");
    }
    return out;
}

// ---- GgufFile -------------------------------------------------------------------------------------------

std::shared_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path, const GgufLimits& limits) {
    const std::string name = path.string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw GgufError(name + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw GgufError(name + ": not a regular file");
    }
    std::shared_ptr<GgufFile> f(new GgufFile());
    f->path_ = path;
    f->size_ = uint64_t(st.st_size);
    if (f->size_ > 0) {
        void* m = mmap(nullptr, size_t(f->size_), PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            ::close(fd);
            throw GgufError(name + ": cannot map " + std::to_string(f->size_) + " bytes: " + std::strerror(e));
        }
        f->map_ = m;
    }
    ::close(fd);
    f->contents_ = parse_gguf(std::span<const std::byte>(static_cast<const std::byte*>(f->map_), size_t(f->size_)),
                              name, limits);
    for (size_t i = 0; i < f->contents_.tensors.size(); ++i) f->by_name_.emplace(f->contents_.tensors[i].name, i);
    return f;
}

GgufFile::~GgufFile() {
    if (map_) munmap(map_, size_t(size_));
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = contents_.metadata.find(std::string(key));
    return it == contents_.metadata.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::at(std::string_view key) const {
    if (const GgufValue* v = find(key)) return *v;
    throw GgufError(path_.string() + ": metadata '" + std::string(key) + "' is missing");
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &contents_.tensors[it->second];
}

void GgufFile::prefetch(const std::function<void(uint64_t)>& on_bytes) const {
    constexpr uint64_t kChunk = 64ull << 20;
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const auto* p = static_cast<const volatile unsigned char*>(map_);
    if (!p) return;
    ::madvise(map_, size_t(size_), MADV_WILLNEED);
    for (uint64_t off = 0; off < size_; off += kChunk) {
        const uint64_t end = std::min(size_, off + kChunk);
        unsigned sum = 0;
        for (uint64_t b = off; b < end; b += page) sum += p[b];   // fault the page in
        (void)sum;
        if (on_bytes) on_bytes(end - off);
    }
}

bool looks_like_gguf(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char m[4] = {};
    const bool ok = ::read(fd, m, 4) == 4 && std::memcmp(m, "GGUF", 4) == 0;
    ::close(fd);
    return ok;
}

}  // namespace qnext
