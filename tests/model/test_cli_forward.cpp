// `qnext logits` and `qnext generate` end to end on the tiny golden model (no tokenizer: --ids).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/model/golden.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;

struct CliResult {
    int exit_code = -1;
    std::string stdout_text;  // stdout only
    std::string out;          // stdout + stderr
};

CliResult run_cli(const std::string& args) {
    const fs::path err = fs::temp_directory_path() / ("qnext_cli_forward_stderr_" + std::to_string(getpid()));
    const std::string cmd = std::string(QNEXT_BIN) + " --quiet " + args + " 2>" + err.string();
    CliResult r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.stdout_text.append(buf.data(), n);
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream e(err);
    std::stringstream ss;
    ss << e.rdbuf();
    r.out = r.stdout_text + ss.str();
    fs::remove(err);
    return r;
}

fs::path write_ids(const std::string& name, const std::vector<int32_t>& ids) {
    const fs::path p = fs::temp_directory_path() / ("qnext_cli_forward_" + name + ".json");
    std::ofstream f(p);
    f << "[";
    for (size_t i = 0; i < ids.size(); ++i) f << (i ? "," : "") << ids[i];
    f << "]";
    return p;
}

TEST(CliForward, LogitsWritesHFMatchingFloat32Matrix) {
    test::Golden g("tiny_a");
    const auto ids = g.ids("prompt");
    const fs::path in = write_ids("logits", ids);
    const fs::path out = fs::temp_directory_path() / "qnext_cli_forward_logits.f32";
    const CliResult r = run_cli("logits --model " + test::model_data_dir("tiny_a").string() + " --ids " + in.string() +
                      " --out " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("logits [24 x 512]"), std::string::npos) << r.out;
    std::ifstream f(out, std::ios::binary);
    std::vector<float> got(ids.size() * 512);
    f.read(reinterpret_cast<char*>(got.data()), static_cast<std::streamsize>(got.size() * sizeof(float)));
    ASSERT_EQ(static_cast<size_t>(f.gcount()), got.size() * sizeof(float));
    EXPECT_EQ(f.peek(), EOF);
    EXPECT_LE(test::rel_l2(got, g.at("logits").data), 1e-4);
}

TEST(CliForward, TraceDirDumpsNamedIntermediates) {
    test::Golden g("tiny_a");
    const auto ids = g.ids("prompt");
    const fs::path in = write_ids("trace", ids);
    const fs::path dir = fs::temp_directory_path() / "qnext_cli_forward_trace";
    fs::remove_all(dir);
    const CliResult r = run_cli("logits --model " + test::model_data_dir("tiny_a").string() + " --ids " + in.string() +
                                " --out /dev/null --trace-dir " + dir.string());
    ASSERT_EQ(r.exit_code, 0) << r.out;
    std::ifstream idx(dir / "index.json");
    const auto index = nlohmann::json::parse(idx);
    EXPECT_EQ(index["3.hidden.f32"], nlohmann::json({24, 72}));
    EXPECT_TRUE(index.contains("0.gdn.core.f32"));
    EXPECT_TRUE(index.contains("3.attn.q.f32"));
    std::vector<float> hidden(24 * 72);
    std::ifstream f(dir / "3.hidden.f32", std::ios::binary);
    f.read(reinterpret_cast<char*>(hidden.data()), static_cast<std::streamsize>(hidden.size() * sizeof(float)));
    EXPECT_LE(test::rel_l2(hidden, g.at("hidden.3").data), 1e-4);
}

TEST(CliForward, GenerateGreedyPrintsHFContinuation) {
    test::Golden g("tiny_b");
    const fs::path in = write_ids("gen", g.ids("prompt"));
    const CliResult r = run_cli("generate --model " + test::model_data_dir("tiny_b").string() + " --ids " + in.string() +
                      " --max-tokens 16");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    std::istringstream s(r.stdout_text);  // stderr may carry notices (e.g. the CPU-backend notice)
    std::vector<int32_t> got;
    int32_t id;
    while (s >> id) got.push_back(id);
    const auto expected = g.ids("greedy");
    EXPECT_EQ(got, std::vector<int32_t>(expected.begin(), expected.begin() + 16)) << r.out;
}

// `generate --tools` takes an OpenAI tool list or qnext's user-tools file (its declarations), detected.
TEST(CliForward, GenerateToolsAcceptsBothFormats) {
    const std::string demo = std::string(QNEXT_SOURCE_DIR) + "/models/demo";
    const CliResult user = run_cli("generate --model " + demo + " --chat --prompt hi --tool-choice required --max-tokens 40 --tools " +
                                   std::string(QNEXT_SOURCE_DIR) + "/configs/tools/user-tools.example.json");
    EXPECT_EQ(user.exit_code, 0) << user.out;
    EXPECT_NE(user.stdout_text.find("<tool_call>"), std::string::npos) << user.out;
    const CliResult openai = run_cli("generate --model " + demo + " --chat --prompt hi --tool-choice required --max-tokens 40 --tools " +
                                     std::string(QNEXT_SOURCE_DIR) + "/configs/tools/builtin.json");
    EXPECT_EQ(openai.exit_code, 0) << openai.out;
    EXPECT_NE(openai.stdout_text.find("<tool_call>"), std::string::npos) << openai.out;
}

TEST(CliForward, SeededSamplingIsReproducible) {
    test::Golden g("tiny_b");
    const fs::path in = write_ids("seed", g.ids("prompt"));
    const std::string base = "generate --model " + test::model_data_dir("tiny_b").string() + " --ids " + in.string() +
                             " --max-tokens 12 --temperature 1.0 --top-p 0.9 --top-k 50";
    const CliResult a = run_cli(base + " --seed 7"), b = run_cli(base + " --seed 7");
    ASSERT_EQ(a.exit_code, 0) << a.out;
    EXPECT_EQ(a.out, b.out);
}

TEST(CliForward, BadInputIsAClearError) {
    const std::string model = " --model " + test::model_data_dir("tiny_a").string();
    const fs::path bad = write_ids("bad", {1, 2, 9999});
    CliResult r = run_cli("logits" + model + " --ids " + bad.string() + " --out /dev/null");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("qnext: error: forward: token id 9999 at input position 2"), std::string::npos) << r.out;

    const fs::path notjson = fs::temp_directory_path() / "qnext_cli_forward_notjson.json";
    std::ofstream(notjson) << "[1, 2,";
    r = run_cli("logits" + model + " --ids " + notjson.string() + " --out /dev/null");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("invalid JSON"), std::string::npos) << r.out;

    const fs::path ok = write_ids("ok", {1, 2});
    r = run_cli("generate" + model + " --prompt hello --max-tokens 4");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("has no tokenizer.json"), std::string::npos) << r.out;
    r = run_cli("generate" + model + " --ids " + ok.string() + " --max-tokens 1000");  // max_position_embeddings 256
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("exceeds max_position_embeddings = 256"), std::string::npos) << r.out;
    r = run_cli("generate --model /nonexistent/dir --ids " + ok.string());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("model '/nonexistent/dir' does not exist"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace qnext
