// libFuzzer target: the safetensors header parser must either return a header that satisfies its
// invariants or throw std::runtime_error; never crash, hang or read out of bounds.
// Input layout: 8 bytes (little-endian) = the data-buffer size claimed, then the header JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 8) return 0;
    uint64_t data_size = 0;
    for (int i = 7; i >= 0; --i) data_size = (data_size << 8) | data[i];
    std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
    try {
        qnext::SafetensorsHeader h = qnext::parse_safetensors_header(header, data_size, "fuzz");
        uint64_t prev_end = 0;
        for (const auto& t : h.tensors) {   // sorted, in bounds, non-overlapping, sized by shape
            if (t.begin < prev_end || t.end > data_size || t.begin > t.end) std::abort();
            uint64_t n = qnext::dtype_size(t.dtype);
            for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
            if (n != t.end - t.begin) std::abort();
            prev_end = t.end;
        }
    } catch (const std::runtime_error&) {
    }
    return 0;
}
