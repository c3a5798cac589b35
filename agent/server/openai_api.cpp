#include "agent/server/openai_api.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>

#include "common/json_limits.h"

namespace qnext::agent::server {

namespace {

constexpr size_t kMaxStopStrings = 16;
constexpr size_t kMaxStopBytes = 1024;

std::string type_name(const ojson& v) {
    if (v.is_boolean()) return "a boolean";
    if (v.is_number()) return "a number";
    if (v.is_string()) return "a string";
    if (v.is_array()) return "an array";
    if (v.is_object()) return "an object";
    return "null";
}

[[noreturn]] void bad(const std::string& param, const std::string& what, const std::string& code = "invalid_value") {
    throw ApiError(400, param.empty() ? what : "'" + param + "': " + what, param, code);
}

// A field that is absent or null counts as not given (clients send null for defaults).
const ojson* field(const ojson& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

double number(const ojson& v, const std::string& param, double lo, double hi) {
    if (!v.is_number() || (v.is_number_float() && !std::isfinite(v.get<double>())))
        bad(param, "expected a number, got " + type_name(v), "invalid_type");
    double d = v.get<double>();
    if (d < lo || d > hi) bad(param, "must be in [" + ojson(lo).dump() + ", " + ojson(hi).dump() + "], got " + v.dump());
    return d;
}

int64_t integer(const ojson& v, const std::string& param, int64_t lo, int64_t hi) {
    if (v.is_number_integer()) {
        // unsigned values above int64 range come out negative from get<int64_t>: check the unsigned form.
        if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
            bad(param, "must be at most " + std::to_string(hi) + ", got " + v.dump());
        int64_t i = v.get<int64_t>();
        if (i < lo || i > hi)
            bad(param, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
        return i;
    }
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(lo) && d <= static_cast<double>(hi))
            return static_cast<int64_t>(d);
        bad(param, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump(),
            "invalid_type");
    }
    bad(param, "expected an integer, got " + type_name(v), "invalid_type");
}

bool boolean(const ojson& v, const std::string& param) {
    if (!v.is_boolean()) bad(param, "expected a boolean, got " + type_name(v), "invalid_type");
    return v.get<bool>();
}

const std::string& string(const ojson& v, const std::string& param) {
    if (!v.is_string()) bad(param, "expected a string, got " + type_name(v), "invalid_type");
    return v.get_ref<const std::string&>();
}

// Message content: a string, or an array of content parts of which only text is supported.
std::string content_text(const ojson& c, const std::string& param) {
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) bad(param, "expected a string or an array of content parts, got " + type_name(c), "invalid_type");
    std::string out;
    for (size_t j = 0; j < c.size(); ++j) {
        const ojson& part = c[j];
        const std::string p = param + "[" + std::to_string(j) + "]";
        if (!part.is_object()) bad(p, "expected a content part object, got " + type_name(part), "invalid_type");
        const ojson* t = field(part, "type");
        if (!t) bad(p + ".type", "is required");
        const std::string& type = string(*t, p + ".type");
        if (type == "text") {
            const ojson* text = field(part, "text");
            if (!text) bad(p + ".text", "is required");
            if (!out.empty()) out += "\n";
            out += string(*text, p + ".text");
        } else if (type == "image_url" || type == "input_image" || type == "image" || type == "video" ||
                   type == "video_url" || type == "input_audio" || type == "file") {
            bad(p + ".type", "'" + type + "' content is not supported: vision and audio are not supported by this "
                             "server (text models only)", "unsupported_content");
        } else {
            bad(p + ".type", "unknown content part type '" + type + "'");
        }
    }
    return out;
}

ojson normalise_message(const ojson& m, size_t i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(at, "expected a message object, got " + type_name(m), "invalid_type");
    const ojson* r = field(m, "role");
    if (!r) bad(at + ".role", "is required");
    std::string role = string(*r, at + ".role");
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        bad(at + ".role", "unknown role '" + role + "' (system, developer, user, assistant, tool)");
    ojson out = ojson::object();
    out["role"] = role;
    const ojson* c = field(m, "content");
    if (c) out["content"] = content_text(*c, at + ".content");
    else if (role == "assistant") out["content"] = "";
    else bad(at + ".content", "is required for a " + role + " message");
    if (const ojson* n = field(m, "name")) out["name"] = string(*n, at + ".name");
    if (role == "assistant") {
        for (const char* key : {"reasoning_content", "reasoning"})
            if (const ojson* rc = field(m, key)) {
                out["reasoning_content"] = string(*rc, at + "." + key);
                break;
            }
        if (const ojson* calls = field(m, "tool_calls")) {
            if (!calls->is_array()) bad(at + ".tool_calls", "expected an array, got " + type_name(*calls), "invalid_type");
            ojson list = ojson::array();
            for (size_t k = 0; k < calls->size(); ++k) {
                const ojson& call = (*calls)[k];
                const std::string cat = at + ".tool_calls[" + std::to_string(k) + "]";
                if (!call.is_object()) bad(cat, "expected an object, got " + type_name(call), "invalid_type");
                if (const ojson* t = field(call, "type"); t && string(*t, cat + ".type") != "function")
                    bad(cat + ".type", "only 'function' tool calls are supported");
                const ojson* fn = field(call, "function");
                if (!fn || !fn->is_object()) bad(cat + ".function", "is required (an object with name and arguments)");
                const ojson* name = field(*fn, "name");
                if (!name) bad(cat + ".function.name", "is required");
                ojson args = ojson::object();
                if (const ojson* a = field(*fn, "arguments")) {
                    if (a->is_string()) {
                        try {
                            args = parse_json_limited<ojson>(a->get<std::string>());
                        } catch (const std::exception& e) {
                            bad(cat + ".function.arguments", std::string("is not valid JSON: ") + e.what());
                        }
                    } else if (a->is_object()) {
                        args = *a;
                    } else {
                        bad(cat + ".function.arguments", "expected a string holding a JSON object, got " + type_name(*a),
                            "invalid_type");
                    }
                }
                ojson oc = ojson::object();
                if (const ojson* id = field(call, "id")) oc["id"] = string(*id, cat + ".id");
                oc["type"] = "function";
                oc["function"] = {{"name", string(*name, cat + ".function.name")}, {"arguments", std::move(args)}};
                list.push_back(std::move(oc));
            }
            if (!list.empty()) out["tool_calls"] = std::move(list);
        }
    }
    if (role == "tool")
        if (const ojson* id = field(m, "tool_call_id")) out["tool_call_id"] = string(*id, at + ".tool_call_id");
    return out;
}

ojson normalise_tools(const ojson& tools) {
    if (!tools.is_array()) bad("tools", "expected an array, got " + type_name(tools), "invalid_type");
    ojson out = ojson::array();
    for (size_t i = 0; i < tools.size(); ++i) {
        const ojson& t = tools[i];
        const std::string at = "tools[" + std::to_string(i) + "]";
        if (!t.is_object()) bad(at, "expected an object, got " + type_name(t), "invalid_type");
        const ojson* type = field(t, "type");
        if (!type || string(*type, at + ".type") != "function")
            bad(at + ".type", "only tools of type 'function' are supported");
        const ojson* fn = field(t, "function");
        if (!fn || !fn->is_object()) bad(at + ".function", "is required (an object with name and parameters)");
        const ojson* name = field(*fn, "name");
        if (!name || string(*name, at + ".function.name").empty()) bad(at + ".function.name", "is required");
        if (const ojson* d = field(*fn, "description")) string(*d, at + ".function.description");
        if (const ojson* p = field(*fn, "parameters"); p && !p->is_object())
            bad(at + ".function.parameters", "expected a JSON Schema object, got " + type_name(*p), "invalid_type");
        ojson f = *fn;
        f.erase("strict");   // every call is constrained to its schema anyway
        out.push_back({{"type", "function"}, {"function", std::move(f)}});
    }
    return out;
}

}  // namespace

std::string ApiError::default_type(int status) {
    switch (status) {
        case 401: return "authentication_error";
        case 404: return "not_found_error";
        case 429: return "rate_limit_error";
        case 500: return "server_error";
        case 503: return "server_error";
        default: return "invalid_request_error";
    }
}

ojson ApiError::body() const {
    ojson e = ojson::object();
    e["message"] = what();
    e["type"] = type;
    e["param"] = param.empty() ? ojson(nullptr) : ojson(param);
    e["code"] = code.empty() ? ojson(nullptr) : ojson(code);
    return {{"error", std::move(e)}};
}

std::string make_id(const std::string& prefix, char sep) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char* hex = "0123456789abcdef";
    std::string s = prefix;
    s += sep;
    for (int i = 0; i < 24; ++i) s += hex[rng() & 15];
    return s;
}

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::ToolCalls: return "tool_calls";
        case FinishReason::Length: return "length";
        default: return "stop";
    }
}

ChatRequest parse_chat_request(const ojson& body, const ServeDefaults& d) {
    if (!body.is_object()) bad("", "the request body must be a JSON object, got " + type_name(body), "invalid_type");
    ChatRequest r;
    r.model = d.model_name;
    if (const ojson* m = field(body, "model")) {
        r.model = string(*m, "model");
        if (r.model != d.model_name)
            throw ApiError(404, "The model '" + r.model + "' does not exist: this server serves '" + d.model_name + "'",
                           "model", "model_not_found");
    }
    const ojson* msgs = field(body, "messages");
    if (!msgs) bad("messages", "is required");
    if (!msgs->is_array() || msgs->empty()) bad("messages", "expected a non-empty array of messages", "invalid_type");
    r.gen.messages = ojson::array();
    for (size_t i = 0; i < msgs->size(); ++i) r.gen.messages.push_back(normalise_message((*msgs)[i], i));

    if (const ojson* t = field(body, "tools")) r.gen.tools = normalise_tools(*t);
    if (const ojson* tc = field(body, "tool_choice")) {
        if (tc->is_string()) {
            const std::string& c = tc->get_ref<const std::string&>();
            if (c != "auto" && c != "none" && c != "required")
                bad("tool_choice", "expected 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}");
            r.gen.tool_choice = c;
        } else if (tc->is_object()) {
            const ojson* fn = field(*tc, "function");
            const ojson* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
            if (!name) bad("tool_choice.function.name", "is required");
            r.gen.tool_choice = string(*name, "tool_choice.function.name");
            bool declared = false;
            for (const ojson& t : r.gen.tools) declared |= t["function"]["name"] == r.gen.tool_choice;
            if (!declared) bad("tool_choice", "names the tool '" + r.gen.tool_choice + "' that 'tools' does not declare");
        } else {
            bad("tool_choice", "expected a string or an object, got " + type_name(*tc), "invalid_type");
        }
        if (r.gen.tool_choice == "required" && r.gen.tools.empty())
            bad("tool_choice", "'required' needs at least one tool in 'tools'");
    }
    if (const ojson* p = field(body, "parallel_tool_calls")) r.gen.parallel_tool_calls = boolean(*p, "parallel_tool_calls");

    if (const ojson* rf = field(body, "response_format")) {
        if (!rf->is_object()) bad("response_format", "expected an object, got " + type_name(*rf), "invalid_type");
        const ojson* t = field(*rf, "type");
        if (!t) bad("response_format.type", "is required");
        const std::string& type = string(*t, "response_format.type");
        if (type == "json_object") {
            r.gen.response_schema = ojson{{"type", "object"}};
        } else if (type == "json_schema") {
            const ojson* js = field(*rf, "json_schema");
            if (!js || !js->is_object()) bad("response_format.json_schema", "is required (an object with name and schema)");
            const ojson* schema = field(*js, "schema");
            if (schema && !schema->is_object() && !schema->is_boolean())
                bad("response_format.json_schema.schema", "expected a JSON Schema object, got " + type_name(*schema),
                    "invalid_type");
            r.gen.response_schema = schema ? *schema : ojson{{"type", "object"}};
        } else if (type != "text") {
            bad("response_format.type", "expected 'text', 'json_object' or 'json_schema', got '" + type + "'");
        }
        if (r.gen.response_schema && !r.gen.tools.empty() && r.gen.tool_choice != "none")
            bad("response_format", "cannot be combined with tools (unless tool_choice is 'none')", "unsupported_parameter");
    }

    // Sampling: the model's defaults, then the request.
    SamplingParams& s = r.gen.sampling;
    s = d.sampling;
    if (const ojson* v = field(body, "temperature")) s.temperature = number(*v, "temperature", 0, 2);
    if (const ojson* v = field(body, "top_p")) {
        s.top_p = number(*v, "top_p", 0, 1);
        if (s.top_p <= 0) bad("top_p", "must be > 0");
    }
    if (const ojson* v = field(body, "top_k")) {
        int64_t k = integer(*v, "top_k", -1, 1 << 24);
        s.top_k = k <= 0 ? 0 : static_cast<int>(k);
    }
    if (const ojson* v = field(body, "min_p")) s.min_p = number(*v, "min_p", 0, 1);
    if (const ojson* v = field(body, "presence_penalty")) s.presence_penalty = number(*v, "presence_penalty", -2, 2);
    if (const ojson* v = field(body, "frequency_penalty")) s.frequency_penalty = number(*v, "frequency_penalty", -2, 2);
    if (const ojson* v = field(body, "repetition_penalty")) {
        s.repetition_penalty = number(*v, "repetition_penalty", 0, 10);
        if (s.repetition_penalty <= 0) bad("repetition_penalty", "must be > 0");
    }
    if (const ojson* v = field(body, "seed")) {
        s.seed = static_cast<uint64_t>(integer(*v, "seed", std::numeric_limits<int64_t>::min(),
                                                std::numeric_limits<int64_t>::max()));
    } else {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        s.seed = rng();
    }

    if (const ojson* v = field(body, "n"); v && integer(*v, "n", 1, 128) != 1)
        bad("n", "only n = 1 is supported", "unsupported_parameter");
    if (const ojson* v = field(body, "logprobs"); v && boolean(*v, "logprobs"))
        bad("logprobs", "logprobs are not supported by this server yet", "unsupported_parameter");
    if (const ojson* v = field(body, "top_logprobs"); v && integer(*v, "top_logprobs", 0, 20) > 0)
        bad("top_logprobs", "logprobs are not supported by this server yet", "unsupported_parameter");
    if (field(body, "audio") || field(body, "prediction"))
        bad(field(body, "audio") ? "audio" : "prediction", "is not supported", "unsupported_parameter");

    r.gen.max_tokens = -1;
    for (const char* key : {"max_tokens", "max_completion_tokens"})   // the newer name wins when both are given
        if (const ojson* v = field(body, key)) r.gen.max_tokens = static_cast<int>(integer(*v, key, 1, 1 << 30));
    if (d.max_tokens_cap > 0) {
        if (r.gen.max_tokens < 0) r.gen.max_tokens = d.max_tokens_cap;
        else if (r.gen.max_tokens > d.max_tokens_cap)
            bad("max_tokens", "must be at most " + std::to_string(d.max_tokens_cap) + " on this server");
    }

    if (const ojson* v = field(body, "stop")) {
        if (v->is_string()) {
            r.stop.push_back(v->get<std::string>());
        } else if (v->is_array()) {
            if (v->size() > kMaxStopStrings) bad("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings");
            for (size_t i = 0; i < v->size(); ++i) r.stop.push_back(string((*v)[i], "stop[" + std::to_string(i) + "]"));
        } else {
            bad("stop", "expected a string or an array of strings, got " + type_name(*v), "invalid_type");
        }
        for (const std::string& st : r.stop)
            if (st.empty() || st.size() > kMaxStopBytes)
                bad("stop", "stop strings must be 1 to " + std::to_string(kMaxStopBytes) + " bytes");
    }
    if (const ojson* v = field(body, "stream")) r.stream = boolean(*v, "stream");
    if (const ojson* so = field(body, "stream_options")) {
        if (!so->is_object()) bad("stream_options", "expected an object, got " + type_name(*so), "invalid_type");
        if (const ojson* u = field(*so, "include_usage")) r.include_usage = boolean(*u, "stream_options.include_usage");
    }

    // Thinking: chat_template_kwargs.enable_thinking, else reasoning_effort, else the model's default.
    r.gen.thinking = d.thinking;
    if (const ojson* e = field(body, "reasoning_effort")) {
        const std::string& effort = string(*e, "reasoning_effort");
        static const std::array<const char*, 5> known = {"none", "minimal", "low", "medium", "high"};
        if (std::find(known.begin(), known.end(), effort) == known.end())
            bad("reasoning_effort", "expected none, minimal, low, medium or high, got '" + effort + "'");
        r.gen.thinking = effort != "none";
    }
    if (const ojson* k = field(body, "chat_template_kwargs")) {
        if (!k->is_object()) bad("chat_template_kwargs", "expected an object, got " + type_name(*k), "invalid_type");
        if (const ojson* et = field(*k, "enable_thinking"))
            r.gen.thinking = boolean(*et, "chat_template_kwargs.enable_thinking");
    }
    if (d.thinking_fixed) r.gen.thinking = true;
    return r;
}

ChatCompletion::ChatCompletion(const ChatRequest& request, std::string id, int64_t created, Emit emit,
                               std::function<void()> on_stop)
    : id_(std::move(id)), model_(request.model), created_(created), stream_(request.stream),
      include_usage_(request.include_usage), stop_(request.stop), emit_(std::move(emit)), on_stop_(std::move(on_stop)) {
    for (const auto& s : stop_) max_stop_ = std::max(max_stop_, s.size());
}

ojson ChatCompletion::chunk(ojson delta, const ojson& finish_reason) const {
    ojson c = ojson::object();
    c["id"] = id_;
    c["object"] = "chat.completion.chunk";
    c["created"] = created_;
    c["model"] = model_;
    c["choices"] = ojson::array({ojson{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr},
                                       {"finish_reason", finish_reason}}});
    return c;
}

void ChatCompletion::send(ojson delta) {
    if (!stream_) return;
    if (!role_sent_) {
        role_sent_ = true;
        emit_(chunk({{"role", "assistant"}, {"content", ""}}));
    }
    emit_(chunk(std::move(delta)));
}

// Sends the content that can no longer become part of a stop string (all of it when `all`).
void ChatCompletion::flush_text(bool all) {
    size_t upto = content_.size();
    if (!all && max_stop_ > 1) {
        upto = content_.size() >= max_stop_ - 1 ? content_.size() - (max_stop_ - 1) : 0;
        while (upto > content_sent_ && (static_cast<unsigned char>(content_[upto]) & 0xC0) == 0x80) --upto;
    }
    if (upto <= content_sent_) return;
    std::string piece = content_.substr(content_sent_, upto - content_sent_);
    content_sent_ = upto;
    send({{"content", std::move(piece)}});
}

void ChatCompletion::on_event(const GenerationEvent& ev) {
    if (stopped_) return;
    using K = GenerationEvent::Kind;
    switch (ev.kind) {
        case K::Reasoning:
            reasoning_ += ev.text;
            send({{"reasoning_content", ev.text}});
            break;
        case K::Text: {
            content_ += ev.text;
            if (!stop_.empty()) {
                // A match can only start in the part not sent yet (see flush_text's hold-back).
                size_t best = std::string::npos;
                for (const auto& s : stop_) best = std::min(best, content_.find(s, content_sent_));
                if (best != std::string::npos) {
                    content_.resize(best);
                    flush_text(true);
                    stopped_ = true;
                    if (on_stop_) on_stop_();
                    return;
                }
            }
            flush_text(false);
            break;
        }
        case K::ToolCallStart: {
            flush_text(true);
            Call& c = calls_[ev.index];
            c.id = make_id("call", '_');
            c.name = ev.text;
            send({{"tool_calls", ojson::array({ojson{{"index", ev.index}, {"id", c.id}, {"type", "function"},
                                                     {"function", {{"name", c.name}, {"arguments", ""}}}}})}});
            break;
        }
        case K::ToolCallArguments:
            calls_[ev.index].arguments += ev.text;
            send({{"tool_calls", ojson::array({ojson{{"index", ev.index}, {"function", {{"arguments", ev.text}}}}})}});
            break;
        case K::ToolCallDone: break;
    }
}

ojson ChatCompletion::usage(const GenerationResult& result) const {
    const auto& st = result.stats;
    return {{"prompt_tokens", st.prompt_tokens},
            {"completion_tokens", st.generated_tokens},
            {"total_tokens", st.prompt_tokens + st.generated_tokens},
            {"prompt_tokens_details", {{"cached_tokens", st.reused_tokens}}}};
}

ojson ChatCompletion::finish(const GenerationResult& result) {
    if (result.finish == FinishReason::Error)
        throw ApiError(result.invalid_request ? 400 : 500, result.error, {},
                       result.invalid_request ? "invalid_request" : "internal_error");
    if (result.finish == FinishReason::Cancelled && !stopped_)
        throw ApiError(503, "the generation was cancelled (the server is shutting down)", {}, "cancelled");
    flush_text(true);
    const char* reason = stopped_ ? "stop" : finish_reason_name(result.finish);

    // The complete calls, in order, with the argument text exactly as streamed.
    ojson calls = ojson::array();
    if (!stopped_) {
        for (size_t k = 0; k < result.tool_calls.size(); ++k) {
            const ToolCall& tc = result.tool_calls[k];
            auto it = calls_.find(static_cast<int>(k));
            std::string id = it != calls_.end() && !it->second.id.empty() ? it->second.id : make_id("call", '_');
            std::string args = it != calls_.end() && !it->second.arguments.empty()
                                   ? it->second.arguments
                                   : tc.arguments.is_discarded() ? tc.arguments_text : tc.arguments.dump();
            calls.push_back({{"id", id}, {"type", "function"}, {"function", {{"name", tc.name}, {"arguments", args}}}});
        }
    }
    if (stream_) {
        if (!role_sent_) send(ojson::object());   // the role chunk, then an empty delta
        emit_(chunk(ojson::object(), reason));
        if (include_usage_) {
            ojson u = chunk(ojson::object());
            u["choices"] = ojson::array();
            u["usage"] = usage(result);
            emit_(u);
        }
    }
    auto trim = [](const std::string& t) {
        size_t b = t.find_first_not_of(" \n\r\t");
        if (b == std::string::npos) return std::string();
        return t.substr(b, t.find_last_not_of(" \n\r\t") - b + 1);
    };
    ojson msg = ojson::object();
    msg["role"] = "assistant";
    std::string content = trim(content_);
    msg["content"] = content.empty() && !calls.empty() ? ojson(nullptr) : ojson(content);
    if (!reasoning_.empty()) msg["reasoning_content"] = trim(reasoning_);
    if (!calls.empty()) msg["tool_calls"] = std::move(calls);
    ojson resp = ojson::object();
    resp["id"] = id_;
    resp["object"] = "chat.completion";
    resp["created"] = created_;
    resp["model"] = model_;
    resp["choices"] = ojson::array({ojson{{"index", 0}, {"message", std::move(msg)}, {"logprobs", nullptr},
                                          {"finish_reason", reason}}});
    resp["usage"] = usage(result);
    return resp;
}

}  // namespace qnext::agent::server
