#include "model/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace qnext {
namespace {

constexpr uint64_t kAlign = 32;
// GGUF value type ids (gguf-py GGUFValueType).
constexpr uint32_t kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9;

template <class T>
void put(std::string& s, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));   // little endian hosts only (x86-64, aarch64)
    s.append(b, sizeof(T));
}
void put_str(std::string& s, const std::string& v) {
    put<uint64_t>(s, v.size());
    s += v;
}
uint64_t align_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

void GgufWriter::key(const std::string& k, uint32_t type) {
    put_str(kv_, k);
    put<uint32_t>(kv_, type);
    ++n_kv_;
}
void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, kU32), put(kv_, v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { key(k, kI32), put(kv_, v); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, kF32), put(kv_, v); }
void GgufWriter::add_bool(const std::string& k, bool v) { key(k, kBool), put<uint8_t>(kv_, v ? 1 : 0); }
void GgufWriter::add_string(const std::string& k, const std::string& v) { key(k, kString), put_str(kv_, v); }
void GgufWriter::add_strings(const std::string& k, const std::vector<std::string>& v) {
    key(k, kArray);
    put<uint32_t>(kv_, kString);
    put<uint64_t>(kv_, v.size());
    for (const std::string& s : v) put_str(kv_, s);
}
void GgufWriter::add_i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, kArray);
    put<uint32_t>(kv_, kI32);
    put<uint64_t>(kv_, v.size());
    for (int32_t x : v) put(kv_, x);
}
void GgufWriter::add_bools(const std::string& k, const std::vector<bool>& v) {
    key(k, kArray);
    put<uint32_t>(kv_, kBool);
    put<uint64_t>(kv_, v.size());
    for (bool x : v) put<uint8_t>(kv_, x ? 1 : 0);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type, size_t nbytes) {
    for (const Tensor& t : tensors_)
        if (t.name == name) throw std::invalid_argument("GgufWriter: tensor '" + name + "' declared twice");
    tensors_.push_back({name, shape, type, nbytes});
}

void GgufWriter::write(const std::filesystem::path& path,
                       const std::function<void(size_t, std::vector<uint8_t>&)>& produce) const {
    std::string head = "GGUF";
    put<uint32_t>(head, 3);
    put<uint64_t>(head, tensors_.size());
    put<uint64_t>(head, n_kv_);
    head += kv_;
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
        put_str(head, t.name);
        put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
        for (size_t d = t.shape.size(); d-- > 0;) put<uint64_t>(head, static_cast<uint64_t>(t.shape[d]));   // ne: innermost first
        put<uint32_t>(head, t.type);
        put<uint64_t>(head, offset);
        offset = align_up(offset + t.nbytes);
    }
    head.resize(align_up(head.size()), '\0');

    const std::filesystem::path tmp = path.string() + ".tmp";
    struct RemoveOnError {   // a failed write leaves neither the file nor the temporary
        const std::filesystem::path& p;
        bool done = false;
        ~RemoveOnError() {
            std::error_code ec;
            if (!done) std::filesystem::remove(p, ec);
        }
    } guard{tmp};
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(path.string() + ": cannot create " + tmp.string());
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    std::vector<uint8_t> buf;
    for (size_t i = 0; i < tensors_.size(); ++i) {
        buf.clear();
        produce(i, buf);
        if (buf.size() != tensors_[i].nbytes)
            throw std::logic_error("GgufWriter: tensor '" + tensors_[i].name + "' produced " + std::to_string(buf.size()) +
                                   " bytes, declared " + std::to_string(tensors_[i].nbytes));
        out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
        const size_t pad = align_up(buf.size()) - buf.size();
        static const char zeros[kAlign] = {};
        out.write(zeros, static_cast<std::streamsize>(pad));
    }
    out.close();
    if (!out) throw std::runtime_error(path.string() + ": write failed (disk full?)");
    std::filesystem::rename(tmp, path);
    guard.done = true;
}

}  // namespace qnext
