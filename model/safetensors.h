// Safetensors reading: a validated header parser, an mmap'd file, and a TensorStore over a single
// `model.safetensors` or a sharded set described by `model.safetensors.index.json`.
// Tensor data is never copied: TensorView::data points into the read-only mapping, which lives as long
// as the TensorStore (moving a TensorStore keeps every pointer valid).
//
// File format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, then
// N bytes of JSON {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {str: str}}, then the data buffer; offsets are relative to the buffer start.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qnext {

// Element types qnext reads. F8_E4M3 weights come with an F32 `<name>_scale_inv` block-scale tensor.
// Q*: GGML block formats, only in GGUF files (model/gguf_weights.h); rows are whole blocks.
enum class TensorDType : uint8_t {
    F32, F16, BF16, F8_E4M3,
    Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
};

bool is_block_dtype(TensorDType t);                                // a GGML block format
size_t dtype_size(TensorDType t);                                  // bytes per element; throws for block formats
const char* dtype_name(TensorDType t);                             // safetensors spelling: "BF16", ...; "Q4_K"
std::optional<TensorDType> parse_dtype(std::string_view name);     // nullopt for other dtypes

// A zero-copy view of one tensor (row-major, contiguous).
struct TensorView {
    std::string name;
    TensorDType dtype = TensorDType::F32;
    std::vector<int64_t> shape;
    const std::byte* data = nullptr;   // into the mmap (read-only)
    size_t nbytes = 0;                 // = numel() * dtype_size(dtype)
    std::string file;                  // the .safetensors file holding it
    // F8_E4M3 weights: their block scales (`<name>_scale_inv`, set by bind_weights) and block shape.
    const TensorView* scale_inv = nullptr;
    int64_t scale_block_rows = 0, scale_block_cols = 0;

    int64_t numel() const;
    int64_t rank() const { return static_cast<int64_t>(shape.size()); }
    int64_t dim(int64_t i) const { return shape.at(static_cast<size_t>(i)); }
    std::string shape_str() const;     // "[8192, 2048]"
    // Typed access; throws if the dtype does not match T's size class (float for F32,
    // uint16_t for F16/BF16 raw bits, uint8_t for F8_E4M3).
    template <class T> std::span<const T> as() const {
        check_element_size(sizeof(T));
        return {reinterpret_cast<const T*>(data), static_cast<size_t>(numel())};
    }

private:
    void check_element_size(size_t bytes) const;
};

// One entry of a parsed header (offsets relative to the data buffer).
struct HeaderEntry {
    std::string name;
    TensorDType dtype = TensorDType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
    std::vector<HeaderEntry> tensors;              // sorted by begin offset
    std::map<std::string, std::string> metadata;   // "__metadata__"
};

// Parses and validates header JSON against a data buffer of `data_size` bytes: well-formed JSON object,
// known dtype, non-negative integer shape, 2 ordered offsets in bounds, end-begin == numel*dtype size,
// no two tensors overlapping, __metadata__ string->string. `file` names the file in errors, which read
// "<file>: tensor '<name>': <problem>". (This is the libFuzzer entry point.)
SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& file);

// A read-only memory-mapped safetensors file.
class SafetensorsFile {
public:
    static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::filesystem::path& path() const { return path_; }
    const SafetensorsHeader& header() const { return header_; }
    const std::byte* data() const { return data_; }           // start of the data buffer
    uint64_t data_size() const { return data_size_; }
    uint64_t file_size() const { return size_; }
    std::vector<TensorView> views() const;                     // one per header entry
    // Reads every page (so the first forward pass does not stall on disk); `on_bytes` is called with
    // the bytes just touched (for progress bars).
    void prefetch(const std::function<void(uint64_t)>& on_bytes) const;

private:
    SafetensorsFile() = default;
    std::filesystem::path path_;
    void* map_ = nullptr;
    uint64_t size_ = 0;
    const std::byte* data_ = nullptr;
    uint64_t data_size_ = 0;
    SafetensorsHeader header_;
};

// All tensors of a model folder (or one .safetensors file), by name.
class TensorStore {
public:
    // `path`: a directory containing model.safetensors.index.json (sharded) or model.safetensors
    // (or exactly one *.safetensors file), or a .safetensors file, or an index .json file.
    // Sharded: every weight_map entry must exist in the named shard and every shard tensor must be
    // listed (metadata.total_size is informational and not checked: some published indexes disagree).
    static TensorStore open(const std::filesystem::path& path);

    TensorStore() = default;
    TensorStore(TensorStore&&) noexcept = default;
    TensorStore& operator=(TensorStore&&) noexcept = default;

    const TensorView* find(std::string_view name) const;       // nullptr when absent
    const TensorView& at(std::string_view name) const;         // throws naming the tensor
    bool contains(std::string_view name) const { return find(name) != nullptr; }
    const std::vector<TensorView>& tensors() const { return tensors_; }   // sorted by name
    size_t size() const { return tensors_.size(); }
    uint64_t total_bytes() const;
    const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
    bool sharded() const { return sharded_; }
    // The F32 block-scale tensor of an F8_E4M3 weight (`<name>_scale_inv`), or nullptr.
    const TensorView* scale_inv(const TensorView& fp8_weight) const;

private:
    std::vector<std::shared_ptr<SafetensorsFile>> files_;
    std::vector<TensorView> tensors_;
    bool sharded_ = false;
};

}  // namespace qnext
