// GGUF reading (llama.cpp's model format, versions 2 and 3): a validated parser over the file's bytes and a
// read-only memory-mapped file. Tensor data is never copied: GgufTensor::data points into the mapping, which
// lives as long as the GgufFile.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count metadata entries
// (string key, u32 value type, value); tensor_count tensor infos (string name, u32 n_dims, u64 ne[n_dims]
// innermost first, u32 ggml type, u64 offset relative to the data section); padding to general.alignment
// (default 32); the data section. Strings are u64 length + bytes (no NUL); arrays are u32 element type,
// u64 count, elements.
//
// Every length, count, offset and size is checked against the bytes that are really there before anything
// is allocated or read, so a truncated or lying file ends in one GgufError naming the file, the entry and
// the problem ("model.gguf: tensor 'blk.0.attn_q.weight': data [4096, 8192) ends past the file (6000 bytes)").
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace qnext {

class GgufError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class GgufType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10,
    I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Arrays keep their element type (an empty array still has one).
struct GgufValue {
    GgufType type = GgufType::U8;
    GgufType elem_type = GgufType::U8;   // arrays only
    std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> v;

    bool is_integer() const;
    bool is_array() const { return type == GgufType::Array; }
    // Checked conversions; `key` names the entry in the error.
    uint64_t as_u64(std::string_view key) const;   // any integer type holding a value >= 0
    int64_t as_i64(std::string_view key) const;    // any integer type within int64
    double as_f64(std::string_view key) const;     // F32/F64 or any integer type
    bool as_bool(std::string_view key) const;
    const std::string& as_string(std::string_view key) const;
    const std::vector<GgufValue>& as_array(std::string_view key) const;
};

// GGML tensor types by the ids GGUF stores (gguf-py's GGMLQuantizationType).
struct GgmlTypeInfo {
    uint32_t id;
    const char* name;
    uint32_t block_elems;   // elements per block
    uint32_t block_bytes;   // bytes per block
};
// nullptr for ids no GGUF writer uses.
const GgmlTypeInfo* ggml_type_info(uint32_t id);

struct GgufTensor {
    std::string name;
    std::vector<int64_t> ne;        // GGML order: ne[0] is the innermost (contiguous) dimension
    uint32_t type = 0;              // GGML type id (see ggml_type_info)
    uint64_t offset = 0;            // within the data section
    uint64_t nbytes = 0;
    const std::byte* data = nullptr;

    int64_t numel() const;
    // Row-major shape as safetensors/PyTorch write it: ne reversed ("[8192, 2048]" for ne = {2048, 8192}).
    std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
    std::string shape_str() const;
    const char* type_name() const;
};

struct GgufContents {
    uint32_t version = 0;
    uint64_t alignment = 32;
    uint64_t data_offset = 0;                      // file offset of the data section
    std::map<std::string, GgufValue> metadata;
    std::vector<GgufTensor> tensors;               // in file order of the infos
};

// Limits on what a header may declare (far above any real model: the 248k-token Qwen3.5 vocabulary, 2,000+
// tensors of the 80B model).
struct GgufLimits {
    uint64_t max_string_bytes = 64ull << 20;       // one string (a chat template, a token)
    uint64_t max_array_elems = 16ull << 20;        // one array (tokens, merges, scores)
    uint64_t max_tensors = 1u << 20;
    uint64_t max_kv = 1u << 16;
    int max_array_depth = 4;                       // arrays of arrays
};

// Parses and validates a whole GGUF image held in memory (`bytes` is the entire file): header, metadata,
// tensor infos (known type, ne[0] a multiple of the block size, sizes without overflow, offsets aligned, data
// in bounds, no two tensors overlapping, names unique). `file` names the file in errors. The tensors' data
// pointers point into `bytes`. (This is the fuzz entry point.)
GgufContents parse_gguf(std::span<const std::byte> bytes, const std::string& file, const GgufLimits& limits = {});

// A read-only memory-mapped GGUF file.
class GgufFile {
public:
    static std::shared_ptr<GgufFile> open(const std::filesystem::path& path, const GgufLimits& limits = {});
    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::filesystem::path& path() const { return path_; }
    uint64_t file_size() const { return size_; }
    const GgufContents& contents() const { return contents_; }
    const std::map<std::string, GgufValue>& metadata() const { return contents_.metadata; }
    const std::vector<GgufTensor>& tensors() const { return contents_.tensors; }

    const GgufValue* find(std::string_view key) const;
    const GgufValue& at(std::string_view key) const;   // throws GgufError naming the missing key
    const GgufTensor* find_tensor(std::string_view name) const;
    // Reads every page (so the first forward pass does not stall on disk); `on_bytes` gets the bytes touched.
    void prefetch(const std::function<void(uint64_t)>& on_bytes) const;

private:
    GgufFile() = default;
    std::filesystem::path path_;
    void* map_ = nullptr;
    uint64_t size_ = 0;
    GgufContents contents_;
    std::map<std::string, size_t, std::less<>> by_name_;
};

// True when the file starts with the GGUF magic (for --model FILE dispatch).
bool looks_like_gguf(const std::filesystem::path& path);

}  // namespace qnext
