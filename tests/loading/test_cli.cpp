// The `qnext info` / `qnext make-checkpoint` commands, run as a user would.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <array>
#include <cstdio>

#include "tests/loading/util.h"

namespace qnext {
namespace {

struct Result {
    int code = -1;
    std::string out;   // stdout + stderr
};

Result run(const std::string& args) {
    std::string cmd = std::string(QNEXT_BIN) + " " + args + " 2>&1";
    Result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

TEST(Cli, InfoOnTheReal80BConfig) {
    Result r = run("info --config " + (test::data_dir() / "qwen3-next-80b-a3b-instruct.config.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("79,674,391,296"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("12 x (3 x linear_attention, 1 x full_attention)"), std::string::npos) << r.out;
    Result j = run("info --json --mtp 1 --config " + (test::data_dir() / "qwen3-next-80b-a3b-instruct.config.json").string());
    ASSERT_EQ(j.code, 0) << j.out;
    nlohmann::json info = nlohmann::json::parse(j.out);
    EXPECT_EQ(info["total_params"].get<int64_t>(), 79'674'391'296);
    EXPECT_EQ(info["total_params_with_mtp"].get<int64_t>(), 81'324'862'720);
    EXPECT_EQ(info["kv_bytes_per_token"].get<int64_t>(), 24'576);
}

TEST(Cli, MakeCheckpointThenInfoModel) {
    test::ScratchDir d("cli");
    Result w = run("make-checkpoint --config " + test::tiny_config_path().string() + " --seed 3 --dtype f32 --shards 2 --mtp 1 --out " +
                   (d / "m").string());
    ASSERT_EQ(w.code, 0) << w.out;
    EXPECT_EQ(w.out.find('\r'), std::string::npos) << "progress bar drawn on a non-TTY";
    EXPECT_TRUE(std::filesystem::exists(d / "m/model-00002-of-00002.safetensors"));
    Result i = run("info --json --model " + (d / "m").string());
    ASSERT_EQ(i.code, 0) << i.out;
    nlohmann::json info = nlohmann::json::parse(i.out);
    EXPECT_EQ(info["mtp_layers"].get<int64_t>(), 1);   // found from the mtp.* tensors
    EXPECT_GT(info["mtp_params"].get<int64_t>(), 0);
}

// Output hygiene: no backend notice on an ordinary command; --verbose asks for them.
TEST(Cli, NoBackendNoticeUnlessVerbose) {
    Result r = run("info --config " + test::tiny_config_path().string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find("notice"), std::string::npos) << r.out;
    Result v = run("--verbose info --config " + test::tiny_config_path().string());
    EXPECT_EQ(v.code, 0) << v.out;
}

// Absurd configs (issue: 1e6 layers / 1e7 experts / 2^40 MTP layers took a minute and 7.5 GB before bad_alloc)
// are refused at once, naming the field; floats for integer fields too. `info --model` reports the dtypes and
// bytes actually in the files.
TEST(Cli, AbsurdConfigsAreRefusedBeforeAnythingIsSized) {
    test::ScratchDir d("cli-absurd");
    const nlohmann::json base = test::read_json(test::tiny_config_path());
    struct Case {
        const char* field;
        nlohmann::json value;
        const char* says;
    };
    for (const Case& c : {Case{"num_hidden_layers", 1000000, "at most 4096"}, Case{"num_experts", 10000000, "at most 16384"},
                          Case{"num_nextn_predict_layers", int64_t(1) << 40, "at most 16"},
                          Case{"vocab_size", 350.0, "expected an integer"},
                          Case{"max_position_embeddings", 1e15, "expected an integer"},
                          Case{"hidden_size", int64_t(1) << 40, "at most"}}) {
        nlohmann::json j = base;
        j[c.field] = c.value;
        if (std::string(c.field) == "num_hidden_layers") j.erase("layer_types");
        const auto path = d / (std::string(c.field) + ".json");
        std::ofstream(path) << j.dump();
        const auto t0 = std::chrono::steady_clock::now();
        Result r = run("info --config " + path.string());
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_EQ(r.code, 1) << c.field << ": " << r.out;
        EXPECT_NE(r.out.find(c.says), std::string::npos) << c.field << ": " << r.out;
        EXPECT_LT(s, 2.0) << c.field;
    }
    Result f32 = run("info --model " + (std::filesystem::path(QNEXT_SOURCE_DIR) / "tests/data/model/tiny_a").string());
    EXPECT_NE(f32.out.find("weights in files      2074144 bytes (F32 2074144)"), std::string::npos) << f32.out;
    EXPECT_EQ(f32.out.find("weights (bf16)"), std::string::npos) << f32.out;
}

// `qnext info --model F.gguf` on the demo model as llama.cpp's converter writes it: the same layout and counts as
// the HF folder it came from, plus the file's tensor types and bytes.
TEST(Cli, InfoOnAGgufFile) {
    const std::string gguf = std::string(QNEXT_SOURCE_DIR) + "/tests/data/loading/gguf/demo-q8_0.gguf";
    Result g = run("info --json --model " + gguf);
    ASSERT_EQ(g.code, 0) << g.out;
    Result h = run("info --json --model " + std::string(QNEXT_SOURCE_DIR) + "/models/demo");
    ASSERT_EQ(h.code, 0) << h.out;
    nlohmann::json gj = nlohmann::json::parse(g.out), hj = nlohmann::json::parse(h.out);
    for (const char* k : {"layout", "total_params", "mtp_params", "active_params_per_token", "kv_bytes_per_token",
                          "recurrent_state_bytes"})
        EXPECT_EQ(gj[k], hj[k]) << k;
    EXPECT_EQ(gj["gguf"]["tensor_types"]["Q8_0"]["tensors"], 53);
    EXPECT_EQ(gj["gguf"]["tensor_types"]["F32"]["tensors"], 40);
    Result t = run("info --model " + gguf);
    EXPECT_NE(t.out.find("tensor types          F32 40 tensors"), std::string::npos) << t.out;
    EXPECT_EQ(t.out.find("weights (bf16)"), std::string::npos) << t.out;   // the file's own bytes instead
    Result bad = run("info --model " + std::string(QNEXT_SOURCE_DIR) + "/tests/data/loading/gguf/small.gguf");
    EXPECT_EQ(bad.code, 1);
    EXPECT_NE(bad.out.find("small.gguf: metadata 'qwen3next.embedding_length' is missing"), std::string::npos) << bad.out;
}

TEST(Cli, ErrorsAreOneLineWithExitCode1) {
    test::ScratchDir d("clierr");
    nlohmann::json j = test::read_json(test::tiny_config_path());
    j["num_key_value_heads"] = 3;
    test::write_json(d / "bad.json", j);
    Result r = run("info --config " + (d / "bad.json").string());
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.out.rfind("qnext: error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("num_attention_heads"), std::string::npos) << r.out;
    Result m = run("make-checkpoint --config " + test::tiny_config_path().string() + " --dtype f16 --out " +
                   (d / "x").string());
    EXPECT_NE(m.code, 0);
    Result none = run("info");
    EXPECT_NE(none.code, 0);
    Result missing = run("info --model " + d.path.string());
    EXPECT_EQ(missing.code, 1);
    EXPECT_NE(missing.out.find("config.json"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace qnext
