// Safetensors header parsing/validation, mmap'd files and the (optionally sharded) TensorStore.
#include "model/safetensors.h"
#include "common/json_limits.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace qnext {
namespace {

using json = nlohmann::json;

// Headers larger than this are rejected before reading (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void fail_tensor(const std::string& file, const std::string& tensor, const std::string& msg) {
    throw std::runtime_error(file + ": tensor '" + tensor + "': " + msg);
}
[[noreturn]] void fail_file(const std::string& file, const std::string& msg) {
    throw std::runtime_error(file + ": " + msg);
}

std::string errno_text() { return std::strerror(errno); }

// numel * element size with overflow checks; nullopt on overflow.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, size_t elem) {
    uint64_t n = elem;
    for (int64_t d : shape) {
        uint64_t ud = static_cast<uint64_t>(d);
        if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return std::nullopt;
        n *= ud;
    }
    return n;
}

}  // namespace

bool is_block_dtype(TensorDType t) {
    return !(t == TensorDType::F32 || t == TensorDType::F16 || t == TensorDType::BF16 || t == TensorDType::F8_E4M3);
}

size_t dtype_size(TensorDType t) {
    switch (t) {
        case TensorDType::F32: return 4;
        case TensorDType::F16: return 2;
        case TensorDType::BF16: return 2;
        case TensorDType::F8_E4M3: return 1;
        default: break;
    }
    throw std::logic_error(std::string("dtype_size: ") + dtype_name(t) + " is a block format, not element-sized");
}

const char* dtype_name(TensorDType t) {
    switch (t) {
        case TensorDType::F32: return "F32";
        case TensorDType::F16: return "F16";
        case TensorDType::BF16: return "BF16";
        case TensorDType::F8_E4M3: return "F8_E4M3";
        case TensorDType::Q4_0: return "Q4_0";
        case TensorDType::Q4_1: return "Q4_1";
        case TensorDType::Q5_0: return "Q5_0";
        case TensorDType::Q5_1: return "Q5_1";
        case TensorDType::Q8_0: return "Q8_0";
        case TensorDType::Q2_K: return "Q2_K";
        case TensorDType::Q3_K: return "Q3_K";
        case TensorDType::Q4_K: return "Q4_K";
        case TensorDType::Q5_K: return "Q5_K";
        case TensorDType::Q6_K: return "Q6_K";
    }
    return "?";
}

std::optional<TensorDType> parse_dtype(std::string_view name) {
    if (name == "F32") return TensorDType::F32;
    if (name == "F16") return TensorDType::F16;
    if (name == "BF16") return TensorDType::BF16;
    if (name == "F8_E4M3") return TensorDType::F8_E4M3;
    return std::nullopt;
}

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string TensorView::shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

void TensorView::check_element_size(size_t bytes) const {
    if (is_block_dtype(dtype) || bytes != dtype_size(dtype))
        throw std::runtime_error("tensor '" + name + "' has dtype " + dtype_name(dtype) +
                                 ", not readable as a " + std::to_string(bytes) + "-byte element");
}

SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& file) {
    json j;
    try {
        j = parse_json_limited(header_json);
    } catch (const std::exception& e) {
        fail_file(file, std::string("malformed safetensors header JSON: ") + e.what());
    }
    if (!j.is_object()) fail_file(file, "safetensors header is not a JSON object");

    SafetensorsHeader h;
    for (auto& [name, entry] : j.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail_file(file, "__metadata__ is not an object");
            for (auto& [k, v] : entry.items()) {
                if (!v.is_string()) fail_file(file, "__metadata__ value of '" + k + "' is not a string");
                h.metadata[k] = v.get<std::string>();
            }
            continue;
        }
        if (!entry.is_object()) fail_tensor(file, name, "header entry is not an object");
        HeaderEntry e;
        e.name = name;
        auto dt = entry.find("dtype");
        if (dt == entry.end() || !dt->is_string()) fail_tensor(file, name, "missing or non-string dtype");
        std::optional<TensorDType> t = parse_dtype(dt->get<std::string>());
        if (!t)
            fail_tensor(file, name, "unsupported dtype '" + dt->get<std::string>() +
                                        "' (supported: F32, F16, BF16, F8_E4M3)");
        e.dtype = *t;
        auto sh = entry.find("shape");
        if (sh == entry.end() || !sh->is_array()) fail_tensor(file, name, "missing or non-list shape");
        for (const json& d : *sh) {
            if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
                fail_tensor(file, name, "shape entry " + d.dump() + " is not a non-negative integer");
            if (d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                fail_tensor(file, name, "shape entry " + d.dump() + " too large");
            e.shape.push_back(d.get<int64_t>());
        }
        auto off = entry.find("data_offsets");
        if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
            !(*off)[1].is_number_unsigned())
            fail_tensor(file, name, "data_offsets must be two non-negative integers");
        e.begin = (*off)[0].get<uint64_t>();
        e.end = (*off)[1].get<uint64_t>();
        if (e.begin > e.end)
            fail_tensor(file, name, "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                        "] are reversed");
        if (e.end > data_size)
            fail_tensor(file, name, "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                        "] out of bounds: data buffer has " + std::to_string(data_size) +
                                        " bytes (file truncated?)");
        std::optional<uint64_t> want = byte_size(e.shape, dtype_size(e.dtype));
        if (!want) fail_tensor(file, name, "shape too large");
        if (*want != e.end - e.begin)
            fail_tensor(file, name, "size mismatch: shape " + sh->dump() + " x " + dtype_name(e.dtype) + " needs " +
                                        std::to_string(*want) + " bytes but data_offsets span " +
                                        std::to_string(e.end - e.begin));
        h.tensors.push_back(std::move(e));
    }
    std::sort(h.tensors.begin(), h.tensors.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    for (size_t i = 1; i < h.tensors.size(); ++i) {
        const HeaderEntry& a = h.tensors[i - 1];
        const HeaderEntry& b = h.tensors[i];
        if (b.begin < a.end)
            fail_tensor(file, b.name, "data overlaps tensor '" + a.name + "' (bytes [" + std::to_string(b.begin) +
                                          ", " + std::to_string(b.end) + ") vs [" + std::to_string(a.begin) +
                                          ", " + std::to_string(a.end) + "))");
    }
    return h;
}

// ---- SafetensorsFile ---------------------------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
    const std::string file = path.string();
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_file(file, "cannot open: " + errno_text());
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        std::string why = errno_text();
        ::close(fd);
        fail_file(file, "cannot stat: " + why);
    }
    std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
    f->path_ = path;
    f->size_ = static_cast<uint64_t>(st.st_size);
    if (f->size_ < 8) {
        ::close(fd);
        fail_file(file, "truncated: " + std::to_string(f->size_) + " bytes, less than the 8-byte header length");
    }
    void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    std::string why = m == MAP_FAILED ? errno_text() : "";
    ::close(fd);
    if (m == MAP_FAILED) fail_file(file, "mmap failed: " + why);
    f->map_ = m;
    const auto* bytes = static_cast<const unsigned char*>(m);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];   // little-endian u64
    if (n > kMaxHeaderBytes) fail_file(file, "header length " + std::to_string(n) + " exceeds 100 MiB");
    if (n > f->size_ - 8)
        fail_file(file, "truncated: header length " + std::to_string(n) + " but only " +
                            std::to_string(f->size_ - 8) + " bytes follow");
    std::string_view header(reinterpret_cast<const char*>(bytes + 8), n);
    f->data_ = reinterpret_cast<const std::byte*>(bytes + 8 + n);
    f->data_size_ = f->size_ - 8 - n;
    f->header_ = parse_safetensors_header(header, f->data_size_, file);
    return f;
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) ::munmap(map_, size_);
}

std::vector<TensorView> SafetensorsFile::views() const {
    std::vector<TensorView> out;
    out.reserve(header_.tensors.size());
    for (const HeaderEntry& e : header_.tensors) {
        TensorView v;
        v.name = e.name;
        v.dtype = e.dtype;
        v.shape = e.shape;
        v.data = data_ + e.begin;
        v.nbytes = e.end - e.begin;
        v.file = path_.string();
        out.push_back(std::move(v));
    }
    return out;
}

void SafetensorsFile::prefetch(const std::function<void(uint64_t)>& on_bytes) const {
    constexpr uint64_t kChunk = 64ull << 20;
    const long page = ::sysconf(_SC_PAGESIZE);
    const auto* p = static_cast<const volatile unsigned char*>(map_);
    ::madvise(map_, size_, MADV_WILLNEED);
    for (uint64_t off = 0; off < size_; off += kChunk) {
        uint64_t end = std::min(size_, off + kChunk);
        unsigned sum = 0;
        for (uint64_t b = off; b < end; b += static_cast<uint64_t>(page)) sum += p[b];   // fault the page in
        (void)sum;
        if (on_bytes) on_bytes(end - off);
    }
}

// ---- TensorStore -------------------------------------------------------------------------------

namespace {

json read_json_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_file(path.string(), "cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return parse_json_limited(ss.str());
    } catch (const std::exception& e) {
        fail_file(path.string(), std::string("invalid JSON: ") + e.what());
    }
}

}  // namespace

TensorStore TensorStore::open(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    TensorStore s;
    fs::path index;
    std::vector<fs::path> singles;
    if (fs::is_directory(path)) {
        if (fs::exists(path / "model.safetensors.index.json")) {
            index = path / "model.safetensors.index.json";
        } else if (fs::exists(path / "model.safetensors")) {
            singles.push_back(path / "model.safetensors");
        } else {
            for (const auto& e : fs::directory_iterator(path))
                if (e.path().extension() == ".safetensors") singles.push_back(e.path());
            if (singles.size() != 1)
                fail_file(path.string(), singles.empty()
                                             ? "no model.safetensors or model.safetensors.index.json found"
                                             : "several .safetensors files but no model.safetensors.index.json");
        }
    } else if (!fs::exists(path)) {
        fail_file(path.string(), "does not exist");
    } else if (path.extension() == ".json") {
        index = path;
    } else {
        singles.push_back(path);
    }

    std::map<std::string, std::string> weight_map;   // tensor -> shard file name (sharded only)
    if (!index.empty()) {
        s.sharded_ = true;
        json j = read_json_file(index);
        const std::string f = index.string();
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            fail_file(f, "missing \"weight_map\" object");
        std::set<std::string> shards;
        for (auto& [name, shard] : j["weight_map"].items()) {
            if (!shard.is_string()) fail_file(f, "weight_map entry '" + name + "' is not a string");
            std::string sh = shard.get<std::string>();
            if (sh.empty() || sh.find('/') != std::string::npos || sh == "." || sh == "..")
                fail_file(f, "weight_map entry '" + name + "' names an invalid shard '" + sh + "'");
            weight_map[name] = sh;
            shards.insert(sh);
        }
        for (const std::string& sh : shards) singles.push_back(index.parent_path() / sh);
    }

    std::map<std::string, size_t> by_name;
    for (const fs::path& p : singles) {
        auto file = SafetensorsFile::open(p);
        for (TensorView& v : file->views()) {
            if (s.sharded_) {
                auto it = weight_map.find(v.name);
                if (it == weight_map.end())
                    fail_tensor(p.string(), v.name, "present in the shard but not listed in " + index.string());
                if (it->second != p.filename().string())
                    fail_tensor(p.string(), v.name, "weight_map assigns it to '" + it->second + "'");
            }
            if (by_name.count(v.name))
                fail_tensor(p.string(), v.name, "duplicate: also in " + s.tensors_[by_name[v.name]].file);
            by_name[v.name] = s.tensors_.size();
            s.tensors_.push_back(std::move(v));
        }
        s.files_.push_back(std::move(file));
    }
    if (s.sharded_) {
        for (const auto& [name, shard] : weight_map)
            if (!by_name.count(name))
                fail_tensor((index.parent_path() / shard).string(), name,
                            "listed in the weight_map of " + index.string() + " but missing from the shard");
    }
    std::sort(s.tensors_.begin(), s.tensors_.end(),
              [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
    return s;
}

const TensorView* TensorStore::find(std::string_view name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const TensorView& v, std::string_view n) { return v.name < n; });
    return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorView& TensorStore::at(std::string_view name) const {
    if (const TensorView* v = find(name)) return *v;
    throw std::runtime_error("tensor '" + std::string(name) + "' not found in the checkpoint");
}

uint64_t TensorStore::total_bytes() const {
    uint64_t n = 0;
    for (const TensorView& v : tensors_) n += v.nbytes;
    return n;
}

const TensorView* TensorStore::scale_inv(const TensorView& fp8_weight) const {
    return find(fp8_weight.name + "_scale_inv");
}

}  // namespace qnext
