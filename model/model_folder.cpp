// load_model_folder: config.json + safetensors + binding, with a prefetch progress bar.
#include "model/model_folder.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "model/gguf_model.h"
#include "model/gguf_weights.h"
#include "model/progress.h"

namespace qnext {
namespace {

uint64_t physical_memory_bytes() {
    long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

}  // namespace

bool is_model_path(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) return fs::exists(path / "config.json", ec);
    return fs::is_regular_file(path, ec) && looks_like_gguf(path);
}

namespace {

ModelFolder load_gguf(const std::filesystem::path& file, const LoadOptions& opts) {
    ModelFolder m;
    m.path = file;
    m.dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    auto f = GgufFile::open(file);
    m.config = gguf_config(*f);
    m.weights = bind_gguf_weights(m.config, *f);
    if (opts.prefetch && f->file_size() < physical_memory_bytes() / 10 * 8) {
        ProgressBar bar("loading " + file.filename().string(), f->file_size(), opts.progress);
        f->prefetch([&](uint64_t n) { bar.advance(n); });
        bar.finish();
    }
    m.gguf = std::move(f);
    return m;
}

}  // namespace

ModelFolder load_model_folder(const std::filesystem::path& dir, const LoadOptions& opts) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_regular_file(dir, ec) && looks_like_gguf(dir)) return load_gguf(dir, opts);
    if (!fs::is_directory(dir))
        throw std::runtime_error(dir.string() + ": model folder does not exist (give a folder with config.json or a .gguf file)");
    ModelFolder m;
    m.dir = dir;
    m.path = dir;
    m.config = load_config(dir / "config.json");
    m.store = TensorStore::open(dir);
    m.config.mtp_num_hidden_layers = std::max(m.config.mtp_num_hidden_layers, count_mtp_layers(m.store));
    m.weights = bind_weights(m.config, m.store);

    // Read the weights in now (with a progress bar) unless they would not fit in RAM, where paging on
    // demand is the better choice.
    uint64_t total = 0;
    for (const auto& f : m.store.files()) total += f->file_size();
    if (opts.prefetch && total < physical_memory_bytes() / 10 * 8) {
        ProgressBar bar("loading " + dir.filename().string(), total, opts.progress);
        for (const auto& f : m.store.files()) f->prefetch([&](uint64_t n) { bar.advance(n); });
        bar.finish();
    }
    return m;
}

}  // namespace qnext
