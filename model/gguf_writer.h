// A GGUF v3 writer (the format model/gguf.h reads; layout as gguf-py's GGUFWriter writes it): metadata
// key/values, then tensor infos with offsets aligned to 32 bytes, then the tensor data, each tensor padded to
// the alignment. Tensors are declared first (name, row-major shape, GGML type) and their bytes produced one
// at a time while writing, so a model far larger than memory streams through. The file appears atomically
// (written as PATH.tmp, renamed at the end).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace qnext {

class GgufWriter {
public:
    void add_u32(const std::string& key, uint32_t v);
    void add_i32(const std::string& key, int32_t v);
    void add_f32(const std::string& key, float v);
    void add_bool(const std::string& key, bool v);
    void add_string(const std::string& key, const std::string& v);
    void add_strings(const std::string& key, const std::vector<std::string>& v);
    void add_i32s(const std::string& key, const std::vector<int32_t>& v);
    void add_bools(const std::string& key, const std::vector<bool>& v);

    // shape: row-major ([rows, cols], as qnext's views; GGUF stores it reversed). nbytes: the data size.
    void add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t ggml_type, size_t nbytes);
    size_t tensor_count() const { return tensors_.size(); }

    // Writes the file; produce(i, out) fills `out` with tensor i's bytes (exactly its declared nbytes).
    void write(const std::filesystem::path& path,
               const std::function<void(size_t, std::vector<uint8_t>&)>& produce) const;

private:
    struct Tensor {
        std::string name;
        std::vector<int64_t> shape;
        uint32_t type;
        size_t nbytes;
    };
    std::string kv_;   // serialized key/values
    uint64_t n_kv_ = 0;
    std::vector<Tensor> tensors_;
    void key(const std::string& k, uint32_t type);
};

}  // namespace qnext
