// Golden tests: native chat-template renderers against HF apply_chat_template (jinja2 3.1.6).
#include <gtest/gtest.h>

#include "model/chat_template.h"
#include "tests/text/text_test_util.h"

namespace qnext::test {
namespace {

using ordered_json = nlohmann::ordered_json;

TEST(ChatTemplateGolden, RendersByteIdenticalToJinja) {
    const auto rows = read_jsonl<ordered_json>("template_cases.jsonl");
    ASSERT_GE(rows.size(), 300u);
    size_t rendered = 0, errors = 0, mismatches = 0;
    std::map<std::string, size_t> per_template;
    for (const auto& r : rows) {
        const auto kind = parse_template_name(r["template"].get<std::string>());
        const auto& req = r["request"];
        if (r.contains("error")) {   // jinja2 raised: so must we (never a silently different prompt)
            EXPECT_THROW(render_chat(kind, req), TemplateError) << req.dump();
            ++errors;
            continue;
        }
        ++per_template[r["template"].get<std::string>()];
        std::string got;
        try {
            got = render_chat(kind, req);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "threw " << e.what() << " on " << req.dump();
            continue;
        }
        ++rendered;
        if (got != r["prompt"].get<std::string>() && ++mismatches <= 5)
            ADD_FAILURE() << r["template"] << " " << req.dump() << "\nwant " << nlohmann::json(r["prompt"]).dump()
                          << "\ngot  " << nlohmann::json(got).dump();
    }
    EXPECT_EQ(mismatches, 0u);
    EXPECT_GE(errors, 4u);
    for (const char* t : {"instruct", "thinking", "hybrid"}) EXPECT_GE(per_template[t], 100u) << t;
}

// The Qwen3.5 / Qwen3.6 template (tests/reference/make_qwen35_template_golden.py).
TEST(ChatTemplateGolden35, RendersByteIdenticalToJinja) {
    const auto rows = read_jsonl<ordered_json>("qwen35/template_cases.jsonl");
    ASSERT_GE(rows.size(), 300u);
    size_t rendered = 0, errors = 0, mismatches = 0, calls = 0, vision = 0;
    for (const auto& r : rows) {
        const auto& req = r["request"];
        if (r.contains("error")) {
            try {
                render_chat(TemplateKind::Qwen35, req);
                ADD_FAILURE() << "rendered where jinja2 raised: " << req.dump();
            } catch (const TemplateError& e) {
                if (r["error"] == "vision") {
                    ++vision;
                    EXPECT_NE(std::string(e.what()).find("vision not supported"), std::string::npos) << e.what();
                }
            }
            ++errors;
            continue;
        }
        std::string got;
        try {
            got = render_chat(TemplateKind::Qwen35, req);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "threw " << e.what() << " on " << req.dump();
            continue;
        }
        ++rendered;
        const auto& want = r["prompt"].get_ref<const std::string&>();
        calls += want.find("<function=") != std::string::npos;
        if (got != want && ++mismatches <= 5)
            ADD_FAILURE() << req.dump() << "\nwant " << nlohmann::json(want).dump() << "\ngot  " << nlohmann::json(got).dump();
    }
    EXPECT_EQ(mismatches, 0u);
    EXPECT_GE(rendered, 250u);
    EXPECT_GE(errors, 10u);
    EXPECT_GE(vision, 2u);
    EXPECT_GE(calls, 50u);
}

TEST(ChatTemplateGolden35, DetectedFromTheOfficialText) {
    EXPECT_EQ(detect_template(template_source(TemplateKind::Qwen35)), TemplateKind::Qwen35);
    EXPECT_EQ(parse_template_name("qwen35"), TemplateKind::Qwen35);
    EXPECT_TRUE(xml_tool_calls(TemplateKind::Qwen35));
    EXPECT_FALSE(xml_tool_calls(TemplateKind::Hybrid));
}

// Every branch of each template is exercised by the corpus (guards against a corpus that drifts).
TEST(ChatTemplateGolden, CorpusCoversTheBranches) {
    std::map<std::string, std::set<std::string>> seen;
    for (const auto& r : read_jsonl<ordered_json>("template_cases.jsonl")) {
        if (r.contains("error")) continue;
        auto& s = seen[r["template"].get<std::string>()];
        const auto& req = r["request"];
        const auto& p = r["prompt"].get_ref<const std::string&>();
        const auto& msgs = req["messages"];
        if (req.contains("tools") && !req["tools"].empty()) s.insert(msgs.size() && msgs[0]["role"] == "system" ? "tools+system" : "tools");
        else if (msgs.size() && msgs[0]["role"] == "system") s.insert("system");
        if (p.find("<think>\n") != std::string::npos) s.insert("think-block");
        if (p.find("</tool_call>\n<tool_call>") != std::string::npos) s.insert("several-calls");
        if (p.find("</tool_response>\n<tool_response>") != std::string::npos) s.insert("consecutive-tools");
        if (req.value("enable_thinking", true) == false && req.value("add_generation_prompt", false)) s.insert("no-think-prompt");
        for (size_t i = 0; i < msgs.size(); ++i) {
            const auto& m = msgs[i];
            if (m.contains("tool_calls"))
                for (const auto& c : m["tool_calls"]) {
                    const auto& f = c.contains("function") ? c["function"] : c;
                    s.insert(f["arguments"].is_string() ? "string-args" : "object-args");
                    s.insert(c.contains("function") ? "wrapped-call" : "flat-call");
                }
            if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) s.insert("reasoning_content");
            if (m.contains("content") && m["content"].is_string() &&
                m["content"].get<std::string>().find("</think>") != std::string::npos) s.insert("embedded-think");
            if (m.contains("content") && !m["content"].is_string()) s.insert("non-string-content");
            if (m["role"] == "system" && i > 0) s.insert("late-system");
            if (m["role"] == "user" && m["content"].is_string() &&
                m["content"].get<std::string>().rfind("<tool_response>", 0) == 0) s.insert("fake-tool-response");
        }
    }
    const std::vector<std::string> common = {"tools", "tools+system", "system", "several-calls", "consecutive-tools",
                                             "string-args", "object-args", "wrapped-call", "flat-call", "embedded-think",
                                             "late-system", "fake-tool-response", "reasoning_content"};
    for (const auto& t : {"instruct", "thinking", "hybrid"})
        for (const auto& b : common) EXPECT_TRUE(seen[t].count(b)) << t << " lacks " << b;
    EXPECT_TRUE(seen["thinking"].count("think-block"));
    EXPECT_TRUE(seen["hybrid"].count("think-block"));
    EXPECT_TRUE(seen["hybrid"].count("no-think-prompt"));
    EXPECT_TRUE(seen["instruct"].count("non-string-content"));
    EXPECT_TRUE(seen["thinking"].count("non-string-content"));
}

TEST(ChatTemplate, EmbeddedTemplatesAreTheOfficialTexts) {
    for (const auto& [kind, file] : {std::pair{TemplateKind::Instruct, "instruct.jinja"},
                                     std::pair{TemplateKind::Thinking, "thinking.jinja"},
                                     std::pair{TemplateKind::Hybrid, "hybrid.jinja"}}) {
        std::ifstream in(std::filesystem::path(QNEXT_SOURCE_DIR) / "model" / "templates" / file, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ASSERT_FALSE(text.empty()) << file;
        EXPECT_EQ(template_source(kind), text) << file;
        EXPECT_EQ(detect_template(text), kind) << file;
        EXPECT_EQ(detect_template(text + "\n"), std::nullopt) << "whitespace-exact: " << file;
    }
}

TEST(ChatTemplate, DetectsQwen3ConfigAsHybrid) {
    EXPECT_EQ(resolve_template(text_data()), TemplateKind::Hybrid);
    EXPECT_EQ(resolve_template(text_data() / "tokenizer.json"), TemplateKind::Hybrid);
    EXPECT_EQ(resolve_template(text_data(), TemplateKind::Instruct), TemplateKind::Instruct);
}

TEST(ChatTemplate, UnknownTemplateIsAnErrorNamingTheOverride) {
    const auto dir = std::filesystem::temp_directory_path() / ("qnext_tpl_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "{{ messages }}"})";
    }
    try {
        resolve_template(dir);
        ADD_FAILURE() << "no error for an unknown template";
    } catch (const TemplateError& e) {
        EXPECT_NE(std::string(e.what()).find("--template"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("not one of the known"), std::string::npos) << e.what();
    }
    EXPECT_EQ(resolve_template(dir, TemplateKind::Thinking), TemplateKind::Thinking);
    std::filesystem::remove(dir / "tokenizer_config.json");
    EXPECT_THROW(resolve_template(dir), TemplateError);   // no template at all
    std::filesystem::remove_all(dir);
}

TEST(ChatTemplate, ToJsonIsPythonJsonDumps) {
    const auto v = ordered_json::parse(R"({"b": 1, "a": [1.0, 1e-07, 1e16, 123.456, -0.0, null, true], "é": "x\u0001\"\\\n/"})");
    EXPECT_EQ(py_json_dumps(v),
              "{\"b\": 1, \"a\": [1.0, 1e-07, 1e+16, 123.456, -0.0, null, true], \"é\": \"x\\u0001\\\"\\\\\\n/\"}");
    EXPECT_EQ(py_float_repr(0.0001), "0.0001");
    EXPECT_EQ(py_float_repr(1e15), "1000000000000000.0");
    EXPECT_EQ(py_float_repr(2.5e-300), "2.5e-300");
}

TEST(ChatTemplate, NonObjectRequestsAreErrors) {
    EXPECT_THROW(render_chat(TemplateKind::Instruct, ordered_json::array()), TemplateError);
    EXPECT_THROW(render_chat(TemplateKind::Instruct, ordered_json{{"messages", "hi"}}), TemplateError);
    EXPECT_THROW(parse_template_name("chatml"), TemplateError);
}

}  // namespace
}  // namespace qnext::test
